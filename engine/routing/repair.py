"""Feasibility first, for components with must-assign orders that a single
greedy pass cannot place (tight generalised assignment problems): a regret
construction, a repair that moves orders until every resource fits, and a
shift/swap descent on cost. Whole orders only.

Each order has options: its allowed pairs no costlier than leaving it
unserved, plus "unserved" (cost: its penalty, no resources) when it may be
left out. Resources are the stock cells and node capacities the options
could overfill; the others can never bind and are left out.

- construction (Martello & Toth's regret rule): repeatedly the order whose
  best fitting option beats its second best by the most takes its best;
  run once ranking options by cost and once by the largest share of a
  resource's remaining supply they take (what keeps tight problems feasible);
  the better answer is kept.
- repair: orders that fit nowhere go where they overfill least; then shifts
  and swaps that reduce the overfill (ties: cheaper), with random kicks when
  none does, until nothing is overfilled or the time is up.
- descent: shifts and swaps that keep every resource within supply and cost
  less, until none does or the time is up.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from engine.routing.problem import Problem, ranges
from engine.routing.reduce import usage

EPS = 1e-9
REPAIR_SHARE = 0.5  # of the time given, what the repairs may use
REPAIR_STEPS = 50  # per order; type D 20 x 200 needed far fewer from the LP's rounding
REPAIR_FLOOR_S = 0.02  # what the repair of the first start may use past the deadline (then a fitting fallback)
SWAP_PAIRS = 40_000  # swaps the tabu search weighs per step (all of them up to 200 orders, else a sample of orders)
TENURE = (5, 12)  # steps an order may not go back to a node it left (drawn in this range)
SMALL_TENURE, SMALL = (2, 6), 200  # up to SMALL orders (every swap weighed each step): shorter
KICK_AFTER, KICK_SHARE = 150, 0.1  # moves without a better answer before a kick; the share of orders it moves
SMALL_KICK = 2  # orders a kick moves up to SMALL orders (type D 10 x 100, seeds 14-30: 0.2% cheaper than 10)
REPAIR_WEIGHT = 100.0  # the tabu search mending an answer starts with overfill weighed this much more
ROUND_ROWS = 150  # orders that move first in a round of improve_in_rounds (150, 300, 1,000 tried on C-E 40 x 1000:
# the same answers within 0.02%, 150 in a third of the time of 1,000)
LNS_NODES = 6  # improve_by_nodes: nodes whose orders are searched again together (6 of 40: about 150 orders;
LNS_PATIENCE, LNS_STEP_S = 60, 0.02  # 2 and 3 did less in the same time), tabu moves without a better answer
LAGRANGE_ROUNDS = 120  # subgradient steps at most (from the uniform price, 80-300 gave the same bound within 2 units)
LAGRANGE_MIN_ROUNDS = 80  # whatever the deadline (about 10 ms at 40 x 1000): from the uniform price, 80 came
# within 0-2 units of the LP's value on B-E 40 x 1000 seeds 1-3 (40: up to 10; from zero prices it took 150)
LAGRANGE_TARGET = 0.003  # each step aims this far (relative) above the best bound yet (the step halves after
LAGRANGE_STALE = 5  # this many steps without a better bound); from zero prices 0.5 and 3 had been the quickest
LAGRANGE_BISECT = 12  # steps of the bisection for the uniform starting price


@dataclass
class Local:
    """The component as options and resources."""

    orders: np.ndarray  # (k,) problem order index of each local order
    ptr: np.ndarray  # (k+1,) local order i's options are ptr[i]:ptr[i+1]
    pair: np.ndarray  # (Q,) the option's pair, -1 = unserved
    node: np.ndarray  # (Q,) the option's node, -1 = unserved
    cost: np.ndarray  # (Q,)
    use: sp.csr_matrix  # (Q, R) what each option takes of each resource
    supply: np.ndarray  # (R,)
    option_of: np.ndarray  # (problem's pairs,) the option of each pair, -1 if none

    def dense(self) -> "Dense":
        """The component as matrices (single_resource components only), made once."""
        if not hasattr(self, "_dense"):
            self._dense = Dense.of(self)
        return self._dense

    @classmethod
    def of(cls, problem: Problem, orders: np.ndarray, stock: np.ndarray, capacity: np.ndarray) -> "Local":
        pairs = ranges(problem.pair_ptr[orders], problem.pair_ptr[orders + 1])
        owner = problem.pair_order[pairs]
        pen = problem.penalty[owner]
        pairs = pairs[problem.pair_cost[pairs] <= pen]  # else unserved is cheaper
        owner = problem.pair_order[pairs]
        optional = orders[np.isfinite(problem.penalty[orders])]
        # options grouped by order: the pairs (cheapest first), then unserved
        opt_order = np.concatenate([owner, optional])
        opt_pair = np.concatenate([pairs, np.full(len(optional), -1)])
        sort = np.argsort(opt_order, kind="stable")
        opt_order, opt_pair = opt_order[sort], opt_pair[sort]
        real = opt_pair >= 0
        cost = np.where(real, problem.pair_cost[np.maximum(opt_pair, 0)], problem.penalty[opt_order])
        node = np.where(real, problem.pair_node[np.maximum(opt_pair, 0)], -1)
        local = np.searchsorted(orders, opt_order)
        ptr = np.searchsorted(local, np.arange(len(orders) + 1))
        # resources: stock cells, then nodes; only those the options could overfill
        n_skus = stock.shape[1]
        key, qty, pp = usage(problem, opt_pair[real], n_skus)
        opt_of = np.full(len(problem.pair_order), -1)
        opt_of[opt_pair[real]] = np.flatnonzero(real)
        opt_of_pair = opt_of[pp]
        cells, cell = np.unique(key, return_inverse=True)
        cell_tight = np.bincount(cell, qty, len(cells)) > stock.ravel()[cells] + EPS
        load = problem.pair_load[opt_pair[real]]
        node_demand = np.bincount(node[real], load, problem.n_nodes)
        node_tight = node_demand > capacity + EPS
        keep_c = cell_tight[cell]
        rows = [opt_of_pair[keep_c], np.flatnonzero(real)[node_tight[node[real]]]]
        res_index = np.full(len(cells), -1)
        res_index[cell_tight] = np.arange(int(cell_tight.sum()))
        node_index = np.full(problem.n_nodes, -1)
        node_index[node_tight] = int(cell_tight.sum()) + np.arange(int(node_tight.sum()))
        cols = [res_index[cell[keep_c]], node_index[node[real][node_tight[node[real]]]]]
        vals = [qty[keep_c], load[node_tight[node[real]]]]
        supply = np.concatenate([stock.ravel()[cells[cell_tight]], capacity[node_tight]]).astype(float)
        use = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                            shape=(len(opt_pair), len(supply)))
        use.sum_duplicates()
        return cls(orders, ptr, opt_pair, node, cost, use, supply, opt_of)


def feasible_first(problem: Problem, orders: np.ndarray, stock: np.ndarray, capacity: np.ndarray,
                   deadline: float, lp: tuple[np.ndarray, np.ndarray] | None = None,
                   descend_share: float = 1.0, seed: int = 0, grace: float | None = None) -> np.ndarray | None:
    """A pair per order (-1: unserved) using at most the stock and capacity
    given, every must-assign order placed, as cheap as the time allows; None
    when no such answer was found (which proves nothing). lp: the LP
    relaxation's (pairs, x); rounded, it is the first start (a basic LP
    solution splits few orders, so little needs repair). descend_share: of
    the time left once a feasible answer is found, what the descent may use.
    grace: until a first fitting answer is found, the repair may go on
    until then (feasibility first), past the deadline."""
    local = Local.of(problem, orders, stock, capacity)
    if np.any(local.ptr[1:] == local.ptr[:-1]):
        return None  # a must-assign order with nowhere to go
    now = time.perf_counter()
    repair_deadline = now + REPAIR_SHARE * max(0.0, deadline - now)  # the rest to a solver that may prove infeasibility
    first_deadline = repair_deadline if grace is None else max(repair_deadline, now + REPAIR_SHARE * (grace - now))
    starts = []
    if lp is not None:
        starts.append(_rounded(local, *lp))
    if single_resource(local):  # generalised assignment: the tabu search repairs too (overfill is weighed)
        return _tabu_first(local, starts, repair_deadline, first_deadline, deadline, descend_share, seed)
    starts.append(lambda: construct(local, "share", first_deadline))
    best: Search | None = None
    for start in starts:
        if best is not None and time.perf_counter() > repair_deadline:
            break
        search = Search(local, start(), seed)
        if search.overfill() > EPS and not search.repair(repair_deadline if best is not None else first_deadline):
            continue
        if best is None or search.value() < best.value() - EPS:
            best = search
    if best is None:
        return None
    now = time.perf_counter()
    best.descend(now + descend_share * max(0.0, deadline - now))
    return local.pair[best.chosen]


def _tabu_first(local: Local, starts, repair_deadline: float, first_deadline: float, deadline: float,
                descend_share: float, seed: int) -> np.ndarray | None:
    """feasible_first for one resource per option: from each start (the LP's
    rounding) the tabu search until it has a fitting answer (the weight on
    overfill grows until one fits) or the time is up (the first start: the
    whole time, then the repair's share); every order at its least share
    (instant, no regret construction, whose 1,000 rounds took about a second
    at 1,000 orders) when none fits: it fits at once on types C-E, else it
    is repaired too, within the grace. The best found is then searched on
    for the descent's share."""
    least = _least_share(local)
    fallback = least if _fits(local, least) else None  # on type E 9x the bound: kept for last
    best = None
    for start in starts + ([] if fallback is not None else [lambda: least]):
        if best is not None and time.perf_counter() > repair_deadline:
            break
        chosen = start()
        chosen = np.where(chosen < 0, local.ptr[:-1], chosen)
        # (the first start gets at least REPAIR_FLOOR_S, within the grace: on a machine at load 13 the deadline
        # had passed before it, and the least-share fallback made type E 40 x 1000 28% above the bound)
        until = repair_deadline if best is not None else first_deadline if fallback is None \
            else min(first_deadline, max(deadline, time.perf_counter() + REPAIR_FLOOR_S))
        found = tabu(local, chosen, until, seed, until_fits=True)
        if found is not None and (best is None or local.cost[found].sum() < local.cost[best].sum() - EPS):
            best = found
    best = fallback if best is None else best
    if best is None:
        return None
    now = time.perf_counter()
    if descend_share > 0:
        best = tabu(local, best, now + descend_share * max(0.0, deadline - now), seed)
    return local.pair[best]


def _fits(local: Local, chosen: np.ndarray) -> bool:
    used = np.asarray(local.use[chosen].sum(axis=0)).ravel()
    return bool((used <= local.supply + EPS).all())


def _single(local: Local) -> tuple[np.ndarray, np.ndarray]:
    """Each option's resource (-1: none that binds) and what it takes of it, for single_resource components."""
    has = np.diff(local.use.indptr) > 0
    res, amount = np.full(len(local.pair), -1), np.zeros(len(local.pair))
    res[has] = local.use.indices[local.use.indptr[:-1][has]]
    amount[has] = local.use.data[local.use.indptr[:-1][has]]
    return res, amount


def _slots(local: Local) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """For the moves over single_resource components: each option's order,
    resource and amount (_single), the supply with resource -1 unbounded, and
    its slot (node, or unserved, as 0..m-1) with the slot count m. Made
    once per Local (2.5 ms at 40 x 1000; read only)."""
    if not hasattr(local, "_slots"):
        owner = np.repeat(np.arange(len(local.orders)), np.diff(local.ptr))
        res, amount = _single(local)
        supply = np.append(local.supply, np.inf)
        slot = np.unique(local.node, return_inverse=True)[1]
        local._slots = owner, res, amount, supply, slot, int(slot.max()) + 1
    return local._slots


@dataclass
class Dense:
    """A single_resource component as orders x slots matrices (a slot: a node,
    or "unserved"), for the Lagrangian's steps: on generalised assignment
    every order has an option at every node, so a step is a few operations
    over one matrix instead of reductions over ragged groups."""

    option: np.ndarray  # (k, m) the option of each order at each slot, -1: none
    cost: np.ndarray  # (k, m) its cost, inf: none
    res: np.ndarray  # (k, m) its resource, R (one past the last): none that binds
    amount: np.ndarray  # (k, m) what it takes of it
    slot_res: np.ndarray | None  # (m,) the resource of each slot when every option there takes it, else None

    @classmethod
    def of(cls, local: Local) -> "Dense":
        res, amount = _single(local)
        k, n_res = len(local.orders), len(local.supply)
        owner = np.repeat(np.arange(k), np.diff(local.ptr))
        slot = np.unique(local.node, return_inverse=True)[1].reshape(-1)
        m = int(slot.max()) + 1 if len(slot) else 0
        option = np.full((k, m), -1)
        option[owner, slot] = np.arange(len(owner))
        cost = np.full((k, m), np.inf)
        cost[owner, slot] = local.cost
        r = np.full((k, m), n_res)
        r[owner, slot] = np.where(res >= 0, res, n_res)
        a = np.zeros((k, m))
        a[owner, slot] = amount
        first = r.max(axis=0) if k else np.zeros(m, np.int64)
        same = bool(((r == first) | (option < 0)).all())
        return cls(option, cost, r, a, first if same else None)

    def float32(self) -> "Dense":
        """The same with cost and amount in float32 (the Lagrangian's steps: half the memory to stream)."""
        return replace(self, cost=self.cost.astype(np.float32), amount=self.amount.astype(np.float32))

    def priced(self, prices: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(k, m) costs with each resource's multiplier (prices: one per resource, then 0) times what is
        taken, in this Dense's dtype; out: into this."""
        price = prices[self.slot_res] if self.slot_res is not None else prices[self.res]
        out = np.multiply(self.amount, price.astype(self.amount.dtype, copy=False), out=out)
        return np.add(out, self.cost, out=out)


def lagrangian(local: Local, deadline: float) -> tuple[float, np.ndarray]:
    """A lower bound on a single_resource component's cost, and the prices
    (one per resource) that gave it: capacity rows priced into the costs,
    each order at its cheapest priced option, by subgradient steps. It bounds
    what the LP bounds (the order rows are integral), in tens of
    milliseconds where GLOP took 0.4-0.7 s on type D/E 40 x 1000. The steps
    run in float32 over one buffer (a step on 40 x 1000: 135 -> 72 us); the
    bound returned is the float64 value at the best prices, so it holds."""
    dense = local.dense()
    k, n_res = len(local.orders), len(local.supply)
    rows = np.arange(k)
    steps = dense.float32()
    priced = np.empty_like(steps.cost)
    prices = np.zeros(n_res + 1)  # the last: options taking no resource
    prices[:-1] = _uniform_multiplier(dense, steps, local.supply, priced)
    best, best_prices = -np.inf, prices[:-1].copy()
    theta, stale = 2.0, 0
    for step in range(LAGRANGE_ROUNDS):
        if step >= LAGRANGE_MIN_ROUNDS and time.perf_counter() > deadline:
            break
        steps.priced(prices, out=priced)
        at = priced.argmin(axis=1)
        value = float(priced[rows, at].sum(dtype=np.float64) - prices[:-1] @ local.supply)
        if value > best + EPS:
            best, best_prices, stale = value, prices[:-1].copy(), 0
        elif (stale := stale + 1) >= LAGRANGE_STALE:
            theta, stale = theta / 2, 0
        g = np.bincount(dense.res[rows, at], dense.amount[rows, at], n_res + 1)[:-1] - local.supply
        g[(prices[:-1] <= 0) & (g < 0)] = 0.0
        if g @ g <= EPS:
            break  # the priced answer fits with complementary slackness: optimal
        target = best + LAGRANGE_TARGET * abs(best)
        prices[:-1] = np.maximum(0.0, prices[:-1] + theta * (target - value) / (g @ g) * g)
    if not np.isfinite(best):
        return best, best_prices
    exact = dense.priced(np.append(best_prices, 0.0))
    return float(exact.min(axis=1).sum() - best_prices @ local.supply), best_prices


def _uniform_multiplier(dense: Dense, steps: Dense, supply: np.ndarray, out: np.ndarray) -> float:
    """The lowest Lagrangian multiplier (a price on capacity, not money), the
    same on every resource, at which the orders' cheapest priced options take no more than the supply in all (bisection,
    LAGRANGE_BISECT steps): where the subgradient steps start. From zero
    prices they took 150 steps to come within 0.01% of the LP's value on type
    D/E 40 x 1000; from here 80 came within 0-2 units of it on B-E. Priced
    in `steps` (dense in float32), what is taken summed from `dense`."""
    rows, last = np.arange(len(dense.cost)), len(supply)
    total = float(supply.sum())

    def demand(u: float) -> float:
        at = steps.priced(np.append(np.full(last, u), 0.0), out=out).argmin(axis=1)
        taken = dense.res[rows, at] < last
        return float(dense.amount[rows, at][taken].sum())

    if demand(0.0) <= total:
        return 0.0
    lo, hi = 0.0, 1.0
    for _ in range(LAGRANGE_BISECT):
        if demand(hi) <= total:
            break
        lo, hi = hi, hi * 4
    else:
        return 0.0  # no uniform price brings the demand down to the supply: the steps from zero
    for _ in range(LAGRANGE_BISECT):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if demand(mid) > total else (lo, mid)
    return hi


def priced_options(local: Local, prices: np.ndarray, k: int) -> np.ndarray:
    """The pairs of each order's k cheapest options at the Lagrangian prices."""
    dense = local.dense()
    priced = dense.priced(np.append(prices, 0.0))
    if k < priced.shape[1]:
        cheapest = np.argpartition(priced, k - 1, axis=1)[:, :k]
        option = np.take_along_axis(dense.option, cheapest, axis=1)
        option = option[np.take_along_axis(priced, cheapest, axis=1) < np.inf]
    else:
        option = dense.option[dense.option >= 0]
    pair = local.pair[option]
    return pair[pair >= 0]


def priced_fit(local: Local, prices: np.ndarray) -> np.ndarray:
    """From the Lagrangian prices, an answer that mostly fits: orders in
    decreasing regret (second cheapest priced option minus the cheapest),
    each at its cheapest priced option that still fits (where it overfills
    least when none does; the tabu search repairs the rest)."""
    res, amount = _single(local)
    priced = local.cost + np.append(prices, 0.0)[res] * amount
    owner = np.repeat(np.arange(len(local.orders)), np.diff(local.ptr))
    low = np.minimum.reduceat(priced, local.ptr[:-1])
    second = np.minimum.reduceat(np.where(priced == low[owner], np.inf, priced), local.ptr[:-1])
    left = np.append(local.supply, np.inf)
    chosen = np.full(len(local.orders), -1)
    for i in np.argsort(low - second, kind="stable").tolist():
        lo, hi = local.ptr[i], local.ptr[i + 1]
        room = left[res[lo:hi]] - amount[lo:hi]
        q = lo + int(np.argmin(np.where(room >= -EPS, priced[lo:hi], np.inf)) if (room >= -EPS).any()
                     else np.argmax(room))
        chosen[i] = q
        left[res[q]] -= amount[q]
    return _mend(local, chosen, res, amount)


def _mend(local: Local, chosen: np.ndarray, res: np.ndarray, amount: np.ndarray, rounds: int = 20) -> np.ndarray:
    """Shifts orders off overfilled resources to options with room, the
    cheapest per unit freed first, a round of moves per numpy pass (the tabu
    search, one move per step, took 50-200 steps on priced type E answers)."""
    chosen = chosen.copy()
    supply = np.append(local.supply, np.inf)
    used = np.append(np.bincount(res[chosen][res[chosen] >= 0], amount[chosen][res[chosen] >= 0],
                                 len(local.supply)), 0.0)
    owner = np.repeat(np.arange(len(local.orders)), np.diff(local.ptr))
    for _ in range(rounds):
        over = used > supply + EPS
        if not over.any():
            break
        here = res[chosen][owner]
        room = supply - used
        fits = over[here] & (res != here) & (amount <= room[res] + EPS)
        if not fits.any():
            break
        freed = np.maximum(amount[chosen][owner], EPS)
        score = np.where(fits, (local.cost - local.cost[chosen][owner]) / freed, np.inf)
        low = np.minimum.reduceat(score, local.ptr[:-1])
        best = np.minimum.reduceat(np.where(score == low[owner], np.arange(len(owner)), len(owner)), local.ptr[:-1])
        movers = np.flatnonzero(np.isfinite(low))
        for i in movers[np.argsort(low[movers], kind="stable")].tolist():
            q, old = int(best[i]), int(chosen[i])
            if used[res[old]] > supply[res[old]] + EPS and used[res[q]] + amount[q] <= supply[res[q]] + EPS:
                used[res[old]] -= amount[old]
                used[res[q]] += amount[q]
                chosen[i] = q
        used[-1] = 0.0
    return chosen


def _least_share(local: Local) -> np.ndarray:
    """Each order at its option taking the smallest share of its resource's
    supply (cheaper among equal shares): an instant start that packs tightly."""
    has = np.diff(local.use.indptr) > 0
    share = np.zeros(len(local.pair))
    at = local.use.indptr[:-1][has]
    share[has] = local.use.data[at] / np.maximum(local.supply[local.use.indices[at]], EPS)
    key = share + 1e-9 * (local.cost - local.cost.min())
    owner = np.repeat(np.arange(len(local.orders)), np.diff(local.ptr))
    best = np.minimum.reduceat(key, local.ptr[:-1])
    position = np.where(key == best[owner], np.arange(len(key)), len(key))
    return np.minimum.reduceat(position, local.ptr[:-1])


def _rounded(local: Local, pairs: np.ndarray, x: np.ndarray):
    """Each order at its option with the largest LP value (unserved when the LP leaves it mostly out)."""
    def start() -> np.ndarray:
        k = len(local.orders)
        weight = np.zeros(len(local.pair))
        opt = local.option_of[pairs]
        np.add.at(weight, opt[opt >= 0], x[opt >= 0])
        served = np.add.reduceat(weight, local.ptr[:-1])
        unserved = local.pair < 0
        weight[unserved] = np.maximum(0.0, 1.0 - served[np.repeat(np.arange(k), np.diff(local.ptr))][unserved])
        position = np.arange(len(weight))
        top = np.maximum.reduceat(weight, local.ptr[:-1])
        owner = np.repeat(np.arange(k), np.diff(local.ptr))
        return np.minimum.reduceat(np.where(weight == top[owner], position, len(weight)), local.ptr[:-1])
    return start


def construct(local: Local, rank: str, deadline: float = np.inf) -> np.ndarray:
    """The regret construction; an order that fits nowhere, or is not
    reached before the deadline, gets -1."""
    k = len(local.orders)
    use, supply = local.use, local.supply
    starts = local.ptr[:-1]
    owner = np.repeat(np.arange(k), np.diff(local.ptr))
    row_has = np.diff(use.indptr) > 0
    row_starts = use.indptr[:-1][row_has]
    used = np.zeros(len(supply))
    chosen = np.full(k, -1)
    active = np.ones(k, bool)
    position = np.arange(len(owner))
    while active.any() and time.perf_counter() < deadline:
        slack = supply - used
        fits = np.ones(len(owner), bool)
        key = local.cost.copy() if rank == "cost" else np.zeros(len(owner))
        if len(use.data):
            margin = slack[use.indices] - use.data
            fits[row_has] = np.minimum.reduceat(margin, row_starts) >= -EPS
            if rank == "share":
                key[row_has] = np.maximum.reduceat(use.data / np.maximum(slack[use.indices], EPS), row_starts)
        if rank == "share":
            key += 1e-6 * local.cost  # cheaper among equal shares
        key = np.where(fits & active[owner], key, np.inf)
        best = np.minimum.reduceat(key, starts)
        best_pos = np.minimum.reduceat(np.where(key == best[owner], position, len(owner)), starts)
        key[best_pos[best_pos < len(owner)]] = np.inf
        second = np.minimum.reduceat(key, starts)
        stuck = active & ~np.isfinite(best)
        active &= ~stuck
        if not active.any():
            break
        regret = np.full(k, -np.inf)
        regret[active] = np.where(np.isfinite(second[active]), second[active] - best[active], np.inf)
        i = int(np.argmax(regret))  # the first of equal regrets
        q = int(best_pos[i])
        chosen[i] = q
        active[i] = False
        lo, hi = use.indptr[q], use.indptr[q + 1]
        used[use.indices[lo:hi]] += use.data[lo:hi]
    return chosen


class Search:
    """Local search state: each order's option, each resource's use."""

    def __init__(self, local: Local, chosen: np.ndarray, seed: int):
        self.local = local
        self.rng = random.Random(seed)
        use = local.use
        self.res = [list(zip(use.indices[use.indptr[q]:use.indptr[q + 1]].tolist(),
                             use.data[use.indptr[q]:use.indptr[q + 1]].tolist())) for q in range(len(local.pair))]
        self.cost = local.cost.tolist()
        self.ptr = local.ptr.tolist()
        self.node = local.node.tolist()
        self.supply = local.supply.tolist()
        self.used = [0.0] * len(self.supply)
        self.chosen = np.array(chosen)
        for q in self.chosen[self.chosen >= 0].tolist():
            self._add(q, 1.0)
        # orders that fit nowhere: where they overfill least (then cheapest), one after another
        for i in np.flatnonzero(self.chosen < 0).tolist():
            q = min(range(self.ptr[i], self.ptr[i + 1]), key=lambda q: (self._excess_if(q), self.cost[q]))
            self.chosen[i] = q
            self._add(q, 1.0)
        # options per order and node (for swaps)
        self.at: list[dict[int, int]] = [{self.node[q]: q for q in range(self.ptr[i], self.ptr[i + 1])}
                                         for i in range(len(local.orders))]

    def _add(self, q: int, sign: float) -> None:
        for r, a in self.res[q]:
            self.used[r] += sign * a

    def _excess_if(self, q: int) -> float:
        return sum(max(0.0, self.used[r] + a - self.supply[r]) for r, a in self.res[q])

    def value(self) -> float:
        return float(sum(self.cost[q] for q in self.chosen.tolist()))

    def overfill(self) -> float:
        return sum(max(0.0, u - s) for u, s in zip(self.used, self.supply))

    def _over(self, rs) -> float:
        return sum(max(0.0, self.used[r] - self.supply[r]) for r in rs)

    def _delta(self, moves: list[tuple[int, int]]) -> tuple[float, float]:
        """(change in overfill, change in cost) if each (order, option) move were made."""
        rs = {r for i, q in moves for r, _ in self.res[q]} | {r for i, _ in moves for r, _ in self.res[int(self.chosen[i])]}
        before = self._over(rs)
        dc = 0.0
        for i, q in moves:
            old = int(self.chosen[i])
            self._add(old, -1.0)
            self._add(q, 1.0)
            dc += self.cost[q] - self.cost[old]
        after = self._over(rs)
        for i, q in moves:
            self._add(q, -1.0)
            self._add(int(self.chosen[i]), 1.0)
        return after - before, dc

    def _apply(self, moves: list[tuple[int, int]]) -> None:
        for i, q in moves:
            self._add(int(self.chosen[i]), -1.0)
            self._add(q, 1.0)
            self.chosen[i] = q

    def _neighbours(self, i: int):
        """Shifts of order i, then swaps with orders at other nodes."""
        here = self.node[int(self.chosen[i])]
        for q in range(self.ptr[i], self.ptr[i + 1]):
            if q != self.chosen[i]:
                yield [(i, q)]
        for j in range(len(self.chosen)):
            there = self.node[int(self.chosen[j])]
            if j == i or there == here or there < 0 or here < 0:
                continue
            qi, qj = self.at[i].get(there), self.at[j].get(here)
            if qi is not None and qj is not None:
                yield [(i, qi), (j, qj)]

    def repair(self, deadline: float) -> bool:
        """Moves orders until nothing is overfilled; False if the time or the
        steps (REPAIR_STEPS per order: an infeasible problem never ends) ran out first."""
        tabu: dict[int, int] = {}
        step = 0
        while self.overfill() > EPS:
            if time.perf_counter() > deadline or step > REPAIR_STEPS * len(self.chosen):
                return False
            step += 1
            over = {r for r in range(len(self.supply)) if self.used[r] > self.supply[r] + EPS}
            culprits = [i for i, q in enumerate(self.chosen.tolist()) if any(r in over for r, _ in self.res[q])]
            best, best_key = None, (-EPS, 0.0)
            for i in culprits:
                if tabu.get(i, 0) > step:
                    continue
                for moves in self._neighbours(i):
                    d_over, d_cost = self._delta(moves)
                    if (d_over, d_cost) < best_key and d_over < -EPS:
                        best, best_key = moves, (d_over, d_cost)
            if best is None:  # stuck: a random culprit to a random other option, kept there a while
                i = self.rng.choice(culprits)
                options = [q for q in range(self.ptr[i], self.ptr[i + 1]) if q != self.chosen[i]]
                if not options:
                    return False
                best = [(i, self.rng.choice(options))]
            for i, _ in best:
                tabu[i] = step + 3
            self._apply(best)
        return True

    def descend(self, deadline: float) -> None:
        """Cheaper moves that keep every resource within supply, first found first taken."""
        improved = True
        while improved and time.perf_counter() < deadline:
            improved = False
            for i in range(len(self.chosen)):
                if time.perf_counter() > deadline:
                    return
                for moves in self._neighbours(i):
                    d_over, d_cost = self._delta(moves)
                    if d_cost < -EPS and d_over <= EPS:
                        self._apply(moves)
                        improved = True
                        break


def single_resource(local: Local) -> bool:
    """Every option takes at most one resource (generalised assignment: its node's capacity)."""
    return bool((np.diff(local.use.indptr) <= 1).all())


def improve_in_rounds(local: Local, chosen: np.ndarray, deadline: float, first_by: float | None = None) -> np.ndarray:
    """Shifts, swaps and ejection chains (an order to another's node, that
    order out to its cheapest other node with room) that lower the cost and
    keep every resource within supply, many per round: every order's best
    such move is found at once over orders x orders matrices, then the moves
    are taken in order of gain while each still fits (checked again, exactly:
    the matrices are float32 screens). Until a round finds none, or the
    deadline. For single_resource components whose resources are their
    nodes' (generalised assignment), from a fitting answer; returns a fitting
    answer no costlier. On type C-E 40 x 1000 it reached a local optimum of
    these moves in 3-4 rounds, 0.4-0.7% below the repair's answer, where the
    tabu search's single moves had time for a fraction of that (and from
    that local optimum the tabu search found nothing better in 800 ms, D and
    E seed 1)."""
    if not rounds_apply(local):
        return chosen
    k = len(local.orders)
    owner, res, amount, supply, slot, m = _slots(local)
    slot_res = np.full(m, -1)
    slot_res[slot] = res
    option_at = np.full((k, m), -1)
    option_at[owner, slot] = np.arange(len(local.pair))
    cost = local.cost
    inf = np.float32(np.inf)
    C = np.full((k, m), inf, np.float32)
    C[owner, slot] = cost
    W = np.zeros((k, m), np.float32)
    W[owner, slot] = amount
    CT, WT = np.ascontiguousarray(C.T), np.ascontiguousarray(W.T)
    cheapest = np.minimum.reduceat(cost, local.ptr[:-1])
    chosen = np.array(chosen)
    used = np.append(np.bincount(res[chosen][res[chosen] >= 0], amount[chosen][res[chosen] >= 0],
                                 len(local.supply)), 0.0)
    buffers: dict[tuple, np.ndarray] = {}  # kept across rounds: fresh 4 MB arrays cost more in page faults than in work

    def buf(name: str, shape: tuple, dtype) -> np.ndarray:
        if (name, shape) not in buffers:
            buffers[(name, shape)] = np.empty(shape, dtype)
        return buffers[(name, shape)]

    def fits_after(out: tuple[int, ...], into: tuple[int, ...]) -> bool:
        """Takes the options `out` off and puts `into` on; undone unless every resource they touch fits."""
        for q in out:
            used[res[q]] -= amount[q]
        for q in into:
            used[res[q]] += amount[q]
        used[-1] = 0.0
        if all(res[q] < 0 or used[res[q]] <= supply[res[q]] + EPS for q in into):
            return True
        for q in into:
            used[res[q]] -= amount[q]
        for q in out:
            used[res[q]] += amount[q]
        used[-1] = 0.0
        return False

    chunk, took, first = 0, 0.0, deadline if first_by is None else max(deadline, first_by)
    # no round that would end past the deadline, but the first until first_by: on a machine at load 10 the
    # repair had left none, and a first round takes the answer about half way to its local optimum (5 ms of CPU:
    # 0.8 -> 0.46% above the bound on type D 40 x 1000)
    while (now := time.perf_counter()) + took < deadline or (not took and now < first):
        moved = 0
        # shifts: each order's cheapest option with room, cheapest gain first
        d = cost - cost[chosen][owner]
        room = supply[res] - used[res]
        cand = np.flatnonzero((d < -EPS) & ((res < 0) | (amount <= room + EPS)))
        done = np.zeros(k, bool)
        for q in cand[np.argsort(d[cand], kind="stable")].tolist():
            i = int(owner[q])
            if not done[i] and fits_after((int(chosen[i]),), (q,)):
                chosen[i], done[i] = q, True
                moved += 1
        # swaps and chains: rows i move to j's node (a move that lowers the cost has an order not at its
        # cheapest option moving first), columns j make room there: to i's node (swap) or out (chain)
        # (a round costs rows x orders: the orders furthest above their cheapest option first, the next
        # ones only when those have no move: on D 40 x 1000 seeds 1-6 that was 0.03% closer to the bound in
        # 150 ms of CPU than stopping there and searching the nodes again)
        regret = cost[chosen] - cheapest
        rows = np.flatnonzero(regret > EPS)
        rows = rows[np.argsort(-regret[rows], kind="stable")][chunk * ROUND_ROWS:(chunk + 1) * ROUND_ROWS]
        if len(rows) and (time.perf_counter() < deadline or not took):
            cs, ca, cc = slot[chosen], amount[chosen].astype(np.float32), cost[chosen].astype(np.float32)
            slack = np.where(slot_res < 0, np.inf, supply[slot_res] - used[slot_res]).astype(np.float32)
            room = slack[cs] + ca + np.float32(1e-6)  # what each order's node can take once it leaves
            shape = (len(rows), k)
            cij = np.take(C[rows], cs, axis=1, out=buf("cij", shape, np.float32))  # i's cost at j's node
            wij = np.take(W[rows], cs, axis=1, out=buf("wij", shape, np.float32))
            cji = np.take(CT, cs[rows], axis=0, out=buf("cji", shape, np.float32))  # j's cost at i's node
            wji = np.take(WT, cs[rows], axis=0, out=buf("wji", shape, np.float32))
            # j's cheapest other node with room now, and the next (when the cheapest is i's node: the swap)
            out = np.where(W <= slack[None, :] + np.float32(1e-6), C, inf)
            out[np.arange(k), cs] = inf
            two = np.argpartition(out, 1, axis=1)[:, :2]
            o2 = np.take_along_axis(out, two, axis=1)
            flip = o2[:, 0] > o2[:, 1]
            two[flip], o2[flip] = two[flip][:, ::-1], o2[flip][:, ::-1]
            first, second = two[:, 0], two[:, 1]
            with np.errstate(invalid="ignore"):  # (no node with room at all: inf - inf)
                step = np.where(np.isfinite(o2[:, 0]), o2[:, 1] - o2[:, 0], inf).astype(np.float32)
            mask, other = buf("mask", shape, bool), buf("other", shape, bool)
            chain = np.subtract(cij, cc[rows][:, None], out=buf("chain", shape, np.float32))
            chain += (o2[:, 0] - cc)[None, :]
            np.equal(cs[rows][:, None], first[None, :], out=mask)
            np.add(chain, step[None, :], out=chain, where=mask)
            delta = np.add(cij, cji, out=buf("delta", shape, np.float32))
            delta -= cc[rows][:, None]
            delta -= cc[None, :]
            np.greater(wji, room[rows][:, None], out=mask)  # j does not fit at i's node once i leaves
            np.copyto(delta, inf, where=mask)
            is_chain = np.less(chain, delta, out=buf("is_chain", shape, bool))
            np.copyto(delta, chain, where=is_chain)
            np.greater(wij, room[None, :], out=mask)  # i does not fit at j's node once j leaves
            np.equal(cs[rows][:, None], cs[None, :], out=other)
            mask |= other
            np.copyto(delta, inf, where=mask)
            col = np.argmin(delta, axis=1)
            gain = delta[np.arange(len(rows)), col]
            found = np.flatnonzero(gain < -1e-6)
            for t in found[np.argsort(gain[found], kind="stable")].tolist():
                i, j = int(rows[t]), int(col[t])
                if done[i] or done[j]:
                    continue
                oi, oj = int(chosen[i]), int(chosen[j])
                qi = int(option_at[i, slot[oj]])
                if is_chain[t, j]:
                    options = [int(option_at[j, c]) for c in (int(first[j]), int(second[j]))
                               if c != slot[oi] and option_at[j, c] >= 0]
                    qj = min(options, key=lambda q: cost[q], default=-1)
                else:
                    qj = int(option_at[j, slot[oi]])
                if qi < 0 or qj < 0 or cost[qi] + cost[qj] - cost[oi] - cost[oj] >= -EPS:
                    continue
                if fits_after((oi, oj), (qi, qj)):
                    chosen[i], chosen[j], done[i], done[j] = qi, qj, True, True
                    moved += 1
        took = time.perf_counter() - now
        if moved:
            chunk = 0
        elif len(rows) == ROUND_ROWS:
            chunk += 1
        else:
            break
    return chosen


def improve_by_nodes(local: Local, chosen: np.ndarray, deadline: float, seed: int = 0) -> np.ndarray:
    """From improve_in_rounds' local optimum, until the deadline: the orders
    at LNS_NODES random nodes are searched again by the tabu search (every
    swap among them weighed each step, as on the LP's fractional rest), to any
    node, against what the other orders leave; a better answer is taken and improve_in_rounds
    run from it. For rounds_apply components, from a fitting answer; returns a
    fitting answer no costlier. On D and E 40 x 1000 seeds 1-3 it took the
    rounds' answer 0.420 -> 0.407% above the bound (mean) in 60 ms of CPU,
    where the tabu search over all orders found nothing in 800 ms."""
    rng = np.random.default_rng(seed)
    owner, res, amount, supply, slot, m = _slots(local)
    chosen = np.array(chosen)
    step = 0
    while time.perf_counter() < deadline and m > LNS_NODES:
        step += 1
        here = np.isin(slot[chosen], rng.choice(m, LNS_NODES, replace=False))
        mine = np.flatnonzero(here)
        if not len(mine):
            continue
        options = np.flatnonzero(here[owner])  # (to any node, with what the others leave there)
        others = chosen[~here]
        taken = res[others] >= 0
        used = np.bincount(res[others][taken], amount[others][taken], len(local.supply))
        sub_owner = np.searchsorted(mine, owner[options])
        sub = Local(local.orders[mine], np.searchsorted(sub_owner, np.arange(len(mine) + 1)), local.pair[options],
                    local.node[options], local.cost[options], local.use[options], local.supply - used, local.option_of)
        start = np.searchsorted(options, chosen[mine])
        found = tabu(sub, start, min(deadline, time.perf_counter() + LNS_STEP_S), seed=step, patience=LNS_PATIENCE)
        if found is not None and sub.cost[found].sum() < sub.cost[start].sum() - EPS:
            chosen[mine] = options[found]
            chosen = improve_in_rounds(local, chosen, deadline)
    return chosen


def rounds_apply(local: Local) -> bool:
    """improve_in_rounds' case: one resource per option, its node's, and at least 3 nodes."""
    if not single_resource(local):
        return False
    _, res, _, _, slot, m = _slots(local)
    return m >= 3 and _one_per_node(res, slot, m)


def _one_per_node(res: np.ndarray, slot: np.ndarray, m: int) -> bool:
    """Every option at a node takes the same resource (its capacity), or every one none."""
    slot_res = np.full(m, -1)
    slot_res[slot] = res
    return bool((slot_res[slot] == res).all())


def _by_node(res: np.ndarray, slot: np.ndarray, m: int) -> bool:
    """_one_per_node, and no two nodes share a resource (generalised
    assignment): a swap's overfill then has a shorter formula (tabu_kernel)."""
    return _one_per_node(res, slot, m) and len(np.unique(res[res >= 0])) == len(np.unique(slot[res >= 0]))


def compiled_steps():
    """The tabu search's compiled steps (tabu_kernel), imported on first use:
    only must-assign components take them, and numba's import with the
    cached machine code costs about a second (a first compile on a new
    machine about ten); solve_optimal loads them before its clock starts."""
    from engine.routing import tabu_kernel

    if not getattr(tabu_kernel, "warmed", False):
        tabu_kernel.warm()
        tabu_kernel.warmed = True
    return tabu_kernel


def tabu(local: Local, chosen: np.ndarray, deadline: float, seed: int = 0, steps: int | None = None,
         patience: int | None = None, until_fits: bool = False, patience_s: float = 0.0) -> np.ndarray | None:
    """Tabu search over shifts and swaps for components whose options take
    one resource each (single_resource), every move weighed each step (the
    steps compiled: tabu_kernel). Moves may overfill: each step takes the
    move that lowers cost + weight x overfill the most (or raises it the
    least), the weight growing
    while the answer overfills and shrinking while it fits (strategic
    oscillation: on tight type D problems the answers that fit are islands
    that shifts and swaps between fitting answers do not connect). A move
    that puts an order back on a node it left in the last few steps is not
    taken unless it gives the best fitting answer yet. Starts from a
    answer that may overfill; returns the best fitting answer seen (None:
    none). (The Python descent above took about a second per sweep of 100
    orders' swaps.) steps: at most this many moves (tests; the deadline
    otherwise); patience: stop after this many moves without a better
    answer, and (patience_s) as many seconds without one as well; until_fits:
    stop at the first fitting answer."""
    if time.perf_counter() >= deadline and not until_fits:  # (its set-up alone: 3-8 ms at 1,000 orders)
        return np.array(chosen) if _fits(local, chosen) else None
    kernel = compiled_steps()
    k = len(local.orders)
    owner, res, load, supply, slot, m = _slots(local)  # (load: what an option takes of its resource)
    option_at = np.full((k, m), -1)
    option_at[owner, slot] = np.arange(len(local.pair))
    by_node = _by_node(res, slot, m)
    res = np.where(res >= 0, res, len(supply) - 1)  # options that take none: the last resource, unlimited
    cost = np.ascontiguousarray(local.cost, dtype=float)
    chosen = np.array(chosen, dtype=np.int64)
    used = np.empty(len(supply))
    value, over = kernel.tally(chosen, cost, res, load, supply, used)
    best = chosen.copy()
    base = float(np.abs(cost).mean()) / max(float(load[load > 0].mean()) if (load > 0).any() else 1.0, EPS)
    f = np.array([value, over, base * (REPAIR_WEIGHT if until_fits else 1.0), value if over <= EPS else np.inf])
    tenure, kick = (SMALL_TENURE, min(k, SMALL_KICK)) if k <= SMALL else (TENURE, max(2, int(KICK_SHARE * k)))
    swap_rows = k if k * k <= SWAP_PAIRS else max(1, SWAP_PAIRS // k)
    counts = np.zeros(4, np.int64)  # the kernel's step, last better, last kick, seeded
    args = (cost, owner, res, load, supply, slot, option_at, np.ascontiguousarray(option_at.T),
            local.ptr.astype(np.int64), chosen, used, np.zeros((k, m), np.int64), best, f, counts, base)
    chunk, left = 8, (np.iinfo(np.int64).max if steps is None else steps)
    better_step, better_at = 0, time.perf_counter()
    while left > 0:
        # chunks of about a millisecond: the clock is read between them
        t = time.perf_counter()
        if t >= deadline:
            break
        if counts[kernel.LAST_BETTER] != better_step:
            better_step, better_at = counts[kernel.LAST_BETTER], t
        n = min(chunk, left)
        # the kernel counts the moves without a better answer only once patience_s has passed without one too
        # (given 10-60 s, 2,000 moves came early: CP-SAT's answers in the rest were dearer, benchmarks/README.md)
        moves = -1 if patience is None or t - better_at < patience_s else patience
        done = kernel.steps(*args, n, moves, until_fits, swap_rows, by_node, *tenure, KICK_AFTER, kick, seed)
        left -= n
        if done:
            break
        chunk = max(1, min(4 * chunk, int(chunk * 0.001 / max(time.perf_counter() - t, 1e-6))))
    return best if np.isfinite(f[kernel.BEST_VALUE]) else None
