"""The baseline: orders in arrival order, each to its cheapest node that
still has the stock and the capacity (what rule-based systems do)."""
from __future__ import annotations

import numpy as np

from engine.routing.problem import Problem, Solution, objective, ranges


class Ledger:
    """Stock and capacity left, read lazily from the arrays (only touched
    cells become Python numbers: the stock matrix can be 600 x 2,000).
    A stock cell is keyed node * skus + sku."""

    def __init__(self, problem: Problem):
        self.stock = np.ascontiguousarray(problem.stock).reshape(-1)
        self.n_skus = problem.stock.shape[1]
        self.capacity = problem.capacity.tolist()
        self.left: dict[int, float] = {}
        self.cap: dict[int, float] = {}

    def fits(self, n: int, load: float, lines: list[tuple[int, int]]) -> bool:
        cap = self.cap.get(n)
        if (self.capacity[n] if cap is None else cap) < load:
            return False
        base, left, stock = n * self.n_skus, self.left, self.stock
        for s, q in lines:
            v = left.get(base + s)
            if (stock.item(base + s) if v is None else v) < q:
                return False
        return True

    def take(self, n: int, load: float, lines: list[tuple[int, int]]) -> None:
        cap = self.cap.get(n)
        self.cap[n] = (self.capacity[n] if cap is None else cap) - load
        base, left, stock = n * self.n_skus, self.left, self.stock
        for s, q in lines:
            v = left.get(base + s)
            left[base + s] = (stock.item(base + s) if v is None else v) - q


def solve_greedy(problem: Problem, orders: np.ndarray | None = None) -> Solution:
    """orders: only these, in this order (the others stay unserved); the
    status says whether every must-assign order among them was placed."""
    if problem.line_ptr[-1] == 0 and not problem.split:
        return _without_lines(problem, orders)
    if not problem.split:
        return _whole_orders(problem, orders)
    ledger = Ledger(problem)
    parts: list[dict[int, list[int]]] = [{} for _ in range(problem.n_orders)]
    nodes, costs, loads = problem.pair_node.tolist(), problem.pair_cost.tolist(), problem.pair_load.tolist()
    ptr, lptr = problem.pair_ptr.tolist(), problem.line_ptr.tolist()
    skus, qtys = problem.line_sku.tolist(), problem.line_qty.tolist()
    penalty = problem.penalty.tolist()
    fits, take = ledger.fits, ledger.take
    for o in range(problem.n_orders) if orders is None else orders.tolist():
        lines = list(zip(skus[lptr[o]:lptr[o + 1]], qtys[lptr[o]:lptr[o + 1]]))
        for p in range(ptr[o], ptr[o + 1]):
            if costs[p] > penalty[o]:
                break  # pairs are cheapest first: leaving it unserved is cheaper
            if fits(nodes[p], loads[p], lines):
                take(nodes[p], loads[p], lines)
                parts[o] = {nodes[p]: list(range(len(lines)))}
                break
        else:
            if problem.split and len(lines) > 1:
                parts[o] = _split(problem, ledger, o, lines, range(ptr[o], ptr[o + 1]), nodes, costs, loads)
    return Solution(parts, status_of(problem, parts, orders), objective(problem, parts))


def status_of(problem: Problem, parts: list[dict[int, list[int]]], orders: np.ndarray | None = None) -> str:
    """"infeasible" when a must-assign order (among those given) is left out, else "feasible"."""
    which = range(problem.n_orders) if orders is None else orders.tolist()
    return "infeasible" if any(not parts[o] and np.isinf(problem.penalty[o]) for o in which) else "feasible"


def _whole_orders(problem: Problem, orders: np.ndarray | None) -> Solution:
    """The same answer as the loop in solve_greedy, with less of it in
    Python (it was 4-6 ms of a 1,000-order downtown batch). Supply only
    falls, so a pair that does not fit at the start never will: only the
    pairs that fit then are kept. A resource (stock cell or node capacity)
    whose demand from every kept pair together is within its supply never
    runs out: an order whose first kept pair uses only such resources takes
    it whatever came before, and the loop over the other orders tracks
    and checks only the resources that can run out."""
    n_orders = problem.n_orders
    seq = np.arange(n_orders) if orders is None else np.asarray(orders, dtype=np.int64)
    ptr = problem.pair_ptr
    pairs = ranges(ptr[seq], ptr[seq + 1])
    owner = problem.pair_order[pairs]
    # the loop stops at an order's first pair costlier than leaving it unserved
    over = problem.pair_cost[pairs] > problem.penalty[owner]
    if over.any():
        lens = ptr[seq + 1] - ptr[seq]
        seg = np.repeat(np.arange(len(seq)), lens)
        starts = np.cumsum(lens) - lens
        seen = np.cumsum(over)
        keep = seen == (seen - over)[starts[seg]]  # no costlier pair at or before it in its order
        pairs, owner = pairs[keep], owner[keep]
    node, load = problem.pair_node[pairs], problem.pair_load[pairs]
    lptr = problem.line_ptr
    key, qty, _, cell = problem.entries(pairs)
    entry_pair = np.repeat(np.arange(len(pairs)), lptr[owner + 1] - lptr[owner])
    stock = problem.stock.reshape(-1)[key]
    fits = (problem.capacity[node] >= load) & (np.bincount(entry_pair, stock < qty, len(pairs)) == 0)
    pairs, owner, node, load = pairs[fits], owner[fits], node[fits], load[fits]
    kept = fits[entry_pair]
    entry_pair = (np.cumsum(fits) - 1)[entry_pair[kept]]
    qty, stock, cell = qty[kept], stock[kept], cell[kept]
    n_cells = len(problem.cell_keys)
    supply = np.zeros(n_cells)
    supply[cell] = stock
    cell_safe = _within(np.bincount(cell, qty, n_cells), supply)
    node_safe = _within(np.bincount(node, load, problem.n_nodes), problem.capacity)
    entry_safe = cell_safe[cell]
    pair_safe = node_safe[node] & (np.bincount(entry_pair, ~entry_safe, len(pairs)) == 0)
    chosen = np.full(n_orders, -1)
    first = np.ones(len(pairs), bool)
    first[1:] = owner[1:] != owner[:-1]
    free = first & pair_safe
    chosen[owner[free]] = pairs[free]
    # the rest in turn, over the pairs of the orders whose first kept pair may not fit when their turn comes
    rest = np.zeros(n_orders, bool)
    rest[owner[first & ~pair_safe]] = True
    if rest.any():
        sel = rest[owner]
        r_pairs, r_owner, r_node, r_load = pairs[sel], owner[sel], node[sel], load[sel]
        r_check = ~node_safe[r_node]
        e_sel = sel[entry_pair] & ~entry_safe
        local = (np.cumsum(sel) - 1)[entry_pair[e_sel]]
        e_ptr = np.concatenate([[0], np.cumsum(np.bincount(local, minlength=len(r_pairs)))]).tolist()
        tracked = np.cumsum(~cell_safe) - 1  # the cells that can run out, numbered
        e_cell, e_qty = tracked[cell[e_sel]].tolist(), qty[e_sel].tolist()
        left, cap = supply[~cell_safe].tolist(), problem.capacity.tolist()
        o_start = np.flatnonzero(np.concatenate([[True], r_owner[1:] != r_owner[:-1]]))
        o_ptr = np.append(o_start, len(r_pairs)).tolist()
        which, p_list = r_owner[o_start].tolist(), r_pairs.tolist()
        nodes_l, loads_l, check_l = r_node.tolist(), r_load.tolist(), r_check.tolist()
        got = [-1] * len(which)
        for k in range(len(which)):
            for j in range(o_ptr[k], o_ptr[k + 1]):
                n = nodes_l[j]
                if check_l[j] and cap[n] < loads_l[j]:
                    continue
                a, b = e_ptr[j], e_ptr[j + 1]
                for e in range(a, b):
                    if left[e_cell[e]] < e_qty[e]:
                        break
                else:
                    if check_l[j]:
                        cap[n] -= loads_l[j]
                    for e in range(a, b):
                        left[e_cell[e]] -= e_qty[e]
                    got[k] = p_list[j]
                    break
        chosen[which] = got
    parts: list[dict[int, list[int]]] = [{} for _ in range(n_orders)]
    served = np.flatnonzero(chosen >= 0)
    for o, n, k in zip(served.tolist(), problem.pair_node[chosen[served]].tolist(),
                       (lptr[served + 1] - lptr[served]).tolist()):
        parts[o] = {n: list(range(k))}
    left_out = chosen[seq] < 0
    status = "infeasible" if np.isinf(problem.penalty[seq[left_out]]).any() else "feasible"
    # objective(problem, parts), summed in the same order (the same float), without looking the pairs up again
    value = float(problem.pair_cost[chosen[served]].sum() + problem.penalty[chosen < 0].sum() + problem.split_penalty * 0)
    return Solution(parts, status, value)


def _within(demand: np.ndarray, supply: np.ndarray) -> np.ndarray:
    """demand <= supply with a margin against rounding (the loop subtracts one
    by one); unlimited supply always holds."""
    margin = 1e-9 * np.maximum(1.0, np.abs(np.where(np.isinf(supply), 0.0, supply)))
    return np.isposinf(supply) | (demand <= supply - margin)


def _without_lines(problem: Problem, orders: np.ndarray | None) -> Solution:
    """Orders that take no stock (generalised assignment): capacity alone,
    in plain lists (the ledger's per-pair calls took 30 ms at 1,000 x 40)."""
    cap = problem.capacity.tolist()
    nodes, costs, loads = problem.pair_node.tolist(), problem.pair_cost.tolist(), problem.pair_load.tolist()
    ptr, penalty = problem.pair_ptr.tolist(), problem.penalty.tolist()
    parts: list[dict[int, list[int]]] = [{} for _ in range(problem.n_orders)]
    value = 0.0
    which = range(problem.n_orders) if orders is None else orders.tolist()
    for o in which:
        pen = penalty[o]
        for p in range(ptr[o], ptr[o + 1]):
            if costs[p] > pen:
                break
            n = nodes[p]
            if cap[n] >= loads[p]:
                cap[n] -= loads[p]
                parts[o] = {n: []}
                value += costs[p]
                break
    served = np.array([bool(p) for p in parts])
    value += float(problem.penalty[~served].sum())
    return Solution(parts, status_of(problem, parts, orders), value)


def _split(problem, ledger, o, lines, pairs, nodes, costs, loads) -> dict[int, list[int]]:
    """Each line to the cheapest node that has it, preferring nodes already
    used; kept only if it beats leaving the order unserved."""
    plan: dict[int, list[int]] = {}
    trial = Ledger(problem)
    trial.left, trial.cap = dict(ledger.left), dict(ledger.cap)
    cost = 0.0
    for i, line in enumerate(lines):
        order = sorted(pairs, key=lambda p: (nodes[p] not in plan, costs[p]))
        for p in order:
            n = nodes[p]
            load = 0.0 if n in plan else loads[p]
            if trial.fits(n, load, [line]):
                trial.take(n, load, [line])
                if n not in plan:
                    cost += costs[p]
                plan.setdefault(n, []).append(i)
                break
        else:
            return {}
    cost += problem.split_penalty * (len(plan) - 1)
    if cost > problem.penalty[o]:
        return {}
    ledger.left, ledger.cap = trial.left, trial.cap
    return plan
