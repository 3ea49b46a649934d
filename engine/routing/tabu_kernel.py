"""The tabu search's steps (repair.tabu) compiled by numba: in numpy each
step weighed every shift and swap in some sixty array passes, 700-750 us
at 100 orders x 10 nodes, so a 200 ms budget bought about 170 steps; here
a step is a plain loop over the same moves (benchmarks/README.md).

`steps` runs up to n steps from the state it is given and leaves the state
where it stopped; the caller checks the clock between calls (numba reads
no clock). The search is the one repair.tabu describes: moves may
overfill, scored cost + weight x overfill change; a move back to a node
left within the tenure is taken only if it gives the best fitting answer
yet; the weight grows while the answer overfills and shrinks while it
fits; after KICK_AFTER steps without a better answer a few orders move at
random from the best answer.
"""
from __future__ import annotations

import numpy as np
from numba import njit

EPS = 1e-9

# the float state: value, overfill, weight, best value (inf: no fitting answer yet); the int state: step,
# last better, last kick, seeded (0 / 1)
VALUE, OVER, WEIGHT, BEST_VALUE = range(4)
STEP, LAST_BETTER, LAST_KICK, SEEDED = range(4)


@njit(cache=True)
def _excess(used: float, supply: float) -> float:
    return used - supply if used > supply else 0.0


@njit(cache=True)
def _overfill(used: np.ndarray, supply: np.ndarray) -> float:
    total = 0.0
    for r in range(len(supply) - 1):  # the last resource stands for "none": unlimited
        if used[r] > supply[r]:
            total += used[r] - supply[r]
    return total


@njit(cache=True)
def tally(chosen, cost, res, load, supply, used):
    """used (in place): what the chosen options take of each resource;
    returns the answer's cost and overfill."""
    used[:] = 0.0
    value = 0.0
    for i in range(len(chosen)):
        used[res[chosen[i]]] += load[chosen[i]]
        value += cost[chosen[i]]
    used[len(used) - 1] = 0.0
    return value, _overfill(used, supply)


@njit(cache=True)
def steps(cost, owner, res, load, supply, slot, option_at, option_by_slot, ptr, chosen, used, tabu_until, best,
          f, s, base, n_steps, patience, until_fits, swap_rows, by_node, tenure_lo, tenure_hi, kick_after,
          kick_count, seed):
    """Up to n_steps moves, in place. res: each option's resource, the
    "none" resource being the last one (supply inf); load: what it takes
    of it; option_at (orders, slots): an order's option at a slot, -1 none,
    and option_by_slot its transpose, contiguous; best: the best fitting
    answer (while f[BEST_VALUE] is inf there is none); base: the weight's
    scale. swap_rows: orders whose swaps are weighed per step (k: all;
    fewer: a sample drawn each step, none while the answer overfills).
    by_node: every option at a node takes that node's resource and no two
    nodes share one (generalised assignment): a swap's overfill then has a
    shorter formula. Returns 1 when it stopped for good (no move,
    patience, first fit), else 0."""
    if s[SEEDED] == 0:
        np.random.seed(seed)
        s[SEEDED] = 1
    k = len(ptr) - 1
    n_res = len(supply)
    over_now = np.empty(n_res)
    rows = np.arange(k)
    cur_slot, cur_res = np.empty(k, np.int64), np.empty(k, np.int64)
    cur_cost, cur_left = np.empty(k), np.empty(k)
    for _ in range(n_steps):
        if patience >= 0 and s[STEP] - s[LAST_BETTER] >= patience:
            return 1
        if until_fits and f[BEST_VALUE] < np.inf:
            return 1
        s[STEP] += 1
        step = s[STEP]
        value, over, weight, best_value = f[VALUE], f[OVER], f[WEIGHT], f[BEST_VALUE]
        for r in range(n_res):
            over_now[r] = _excess(used[r], supply[r])
        for b in range(k):  # each order's slot, cost and resource as it stands
            cb = chosen[b]
            cur_slot[b], cur_cost[b], cur_res[b] = slot[cb], cost[cb], res[cb]
            cur_left[b] = used[res[cb]] - load[cb]  # its resource's use without it
        # shifts: every option of every order (leaving its resource a, taking b)
        move_s, move_c = np.inf, 0.0
        m_i, m_q, m_j, m_qj = -1, -1, -1, -1
        for q in range(len(cost)):
            i = owner[q]
            if slot[q] == cur_slot[i]:
                continue
            ra, rb = cur_res[i], res[q]
            if ra == rb:
                d_over = _excess(cur_left[i] + load[q], supply[rb]) - over_now[rb]
            else:
                d_over = _excess(used[rb] + load[q], supply[rb]) - over_now[rb] \
                    + _excess(cur_left[i], supply[ra]) - over_now[ra]
            d_cost = cost[q] - cur_cost[i]
            score = d_cost + weight * d_over
            if score >= move_s:
                continue
            if tabu_until[i, slot[q]] >= step and not (over + d_over <= EPS and value + d_cost < best_value - EPS):
                continue
            move_s, move_c, m_i, m_q = score, d_cost, i, q
        # swaps: order a to b's slot and b to a's
        n_rows = swap_rows
        if swap_rows < k:
            n_rows = 0 if over > EPS else swap_rows
            for t in range(n_rows):  # a sample without replacement (partial Fisher-Yates)
                u = t + np.random.randint(0, k - t)
                rows[t], rows[u] = rows[u], rows[t]
        for t in range(n_rows):
            a = rows[t]
            sa, ra = cur_slot[a], cur_res[a]
            for b in range(k):
                sb = cur_slot[b]
                if sa == sb:
                    continue
                qi = option_at[a, sb]
                qj = option_by_slot[sa, b]
                if qi < 0 or qj < 0:
                    continue
                s_cost = cost[qi] + cost[qj] - cur_cost[a] - cur_cost[b]
                if by_node:  # a's node's resource gives up a and takes b's option there, and the other way round
                    rb = cur_res[b]
                    s_over = _excess(cur_left[a] + load[qj], supply[ra]) - over_now[ra] \
                        + _excess(cur_left[b] + load[qi], supply[rb]) - over_now[rb]
                else:  # the (up to four) resources involved, each counted once
                    r1, r2, r3, r4 = res[qi], res[qj], ra, cur_res[b]
                    s_over = 0.0
                    for n in range(4):
                        r = r1 if n == 0 else r2 if n == 1 else r3 if n == 2 else r4
                        if (n > 0 and r == r1) or (n > 1 and r == r2) or (n > 2 and r == r3):
                            continue
                        after = used[r]
                        if r == r1:
                            after += load[qi]
                        if r == r2:
                            after += load[qj]
                        if r == r3:
                            after -= load[chosen[a]]
                        if r == r4:
                            after -= load[chosen[b]]
                        s_over += _excess(after, supply[r]) - over_now[r]
                score = s_cost + weight * s_over
                if score >= move_s:
                    continue
                if not (tabu_until[a, slot[qi]] < step and tabu_until[b, slot[qj]] < step) \
                        and not (over + s_over <= EPS and value + s_cost < best_value - EPS):
                    continue
                move_s, move_c, m_i, m_q, m_j, m_qj = score, s_cost, a, qi, b, qj
        if m_i < 0:
            return 1  # no move allowed
        for n in range(2 if m_j >= 0 else 1):  # a shift moves one order, a swap two
            i, q = (m_i, m_q) if n == 0 else (m_j, m_qj)
            old = chosen[i]
            tabu_until[i, slot[old]] = step + np.random.randint(tenure_lo, tenure_hi + 1)
            used[res[old]] -= load[old]
            used[res[q]] += load[q]
            chosen[i] = q
        used[n_res - 1] = 0.0
        value += move_c
        over = _overfill(used, supply)
        weight = min(weight * 1.1, base * 1e4) if over > EPS else max(weight / 1.1, base * 1e-3)
        if over <= EPS and value < best_value - EPS:
            best[:] = chosen
            best_value = value
            s[LAST_BETTER] = step
        if step - max(s[LAST_BETTER], s[LAST_KICK]) >= kick_after:
            # stuck: from the best answer, a few orders to random other options (iterated tabu search)
            s[LAST_KICK] = step
            if best_value < np.inf:
                chosen[:] = best
            for t in range(kick_count):
                u = t + np.random.randint(0, k - t)
                rows[t], rows[u] = rows[u], rows[t]
            for t in range(kick_count):
                i = rows[t]
                chosen[i] = ptr[i] + np.random.randint(0, ptr[i + 1] - ptr[i])
            value, over = tally(chosen, cost, res, load, supply, used)
            tabu_until[:, :] = 0
        f[VALUE], f[OVER], f[WEIGHT], f[BEST_VALUE] = value, over, weight, best_value
    return 0


def warm() -> None:
    """Compiles `steps` (or loads it from numba's cache) with the argument
    types tabu passes, by a call that makes no move."""
    i8, f8 = np.zeros(1, np.int64), np.zeros(1)
    one = np.zeros((1, 1), np.int64)
    steps(f8, i8, i8, f8, np.full(2, np.inf), i8, one, one.copy(), np.zeros(2, np.int64), i8.copy(), np.zeros(2),
          one.copy(), i8.copy(), np.zeros(4), np.ones(4, np.int64), 1.0, 0, -1, False, 1, True, 2, 6, 150, 1, 0)
    tally(i8, f8, i8, f8, np.full(2, np.inf), np.zeros(2))
