"""The production solver: decide the uncontested orders directly, split the
contested rest into independent components and solve each with OR-Tools
under the batch's time budget. Never worse than greedy, always feasible
when greedy is.

An order is uncontested when its cheapest node's stock and capacity cover
every order that could possibly ask for them: no solution can do better
for it, and it takes nothing another order could use. Taking those out
frees supply, so the test is repeated until nothing more comes free.
"""
from __future__ import annotations

import time

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from engine.routing.greedy import solve_greedy
from engine.routing.mip import _ranges, solve_mip
from engine.routing.problem import Problem, Solution, objective


def solve_optimal(problem: Problem, time_limit_s: float = 0.2, solver: str = "highs") -> Solution:
    deadline = time.perf_counter() + time_limit_s
    greedy = solve_greedy(problem)
    parts: list[dict[int, list[int]]] = [{} for _ in range(problem.n_orders)]
    stock = problem.stock.astype(float, copy=True)
    capacity = problem.capacity.astype(float, copy=True)
    has_pairs = problem.pair_ptr[1:] > problem.pair_ptr[:-1]
    remaining = np.flatnonzero(has_pairs)
    may_split_cheaper = problem.split and (problem.pair_cost < 0).any()
    while len(remaining) and not may_split_cheaper:
        tight_key, tight_node = _tight(problem, remaining, stock, capacity)
        first = problem.pair_ptr[remaining]
        free = ~_touches(problem, first, tight_key, tight_node, stock.shape[1])
        if not free.any():
            break
        for o, p in zip(remaining[free], first[free]):
            if problem.pair_cost[p] <= problem.penalty[o]:
                parts[o] = {int(problem.pair_node[p]): list(range(int(problem.line_ptr[o + 1] - problem.line_ptr[o])))}
        _take(problem, parts, remaining[free], stock, capacity)
        remaining = remaining[~free]
    status = "optimal"
    for component in _components(problem, remaining, stock, capacity):
        left = deadline - time.perf_counter()
        sol = solve_mip(problem, component, stock, capacity, time_limit_s=max(left, 0.01), solver=solver) \
            if left > 0 else None
        if sol is None or sol.status == "infeasible":
            sol = _greedy_on(problem, component, stock, capacity)
            status = "feasible"
        elif sol.status != "optimal":
            status = "feasible"
        for o in component:
            parts[o] = sol.parts[o]
        _take(problem, parts, component, stock, capacity)
    if any(not p and np.isinf(problem.penalty[o]) for o, p in enumerate(parts)):
        status = "infeasible" if greedy.status == "infeasible" else status
    mine = Solution(parts, status, objective(problem, parts))
    if greedy.status != "infeasible" and (mine.status == "infeasible" or greedy.objective < mine.objective - 1e-9):
        return Solution(greedy.parts, "feasible", greedy.objective)
    return mine


def _pair_lines(problem: Problem, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pair, line) expanded: the pair index per entry and the global line index."""
    owner = problem.pair_order[pairs]
    lstart, lend = problem.line_ptr[owner], problem.line_ptr[owner + 1]
    return np.repeat(pairs, lend - lstart), _ranges(lstart, lend)


def _tight(problem: Problem, orders: np.ndarray, stock: np.ndarray, capacity: np.ndarray):
    """Stock cells and nodes whose potential demand from `orders` exceeds supply."""
    pairs = _ranges(problem.pair_ptr[orders], problem.pair_ptr[orders + 1])
    pp, line = _pair_lines(problem, pairs)
    key = problem.pair_node[pp] * stock.shape[1] + problem.line_sku[line]
    uniq, inv = np.unique(key, return_inverse=True)
    demand = np.bincount(inv, weights=problem.line_qty[line].astype(float))
    tight_key = uniq[demand > stock.ravel()[uniq] + 1e-9]
    load = np.bincount(problem.pair_node[pairs], weights=problem.pair_load[pairs], minlength=problem.n_nodes)
    tight_node = np.flatnonzero(load > capacity + 1e-9)
    return tight_key, tight_node


def _touches(problem: Problem, pairs: np.ndarray, tight_key: np.ndarray, tight_node: np.ndarray, n_skus: int) -> np.ndarray:
    """For each pair: does it use a tight stock cell or a tight node?"""
    hit = np.isin(problem.pair_node[pairs], tight_node)
    pp, line = _pair_lines(problem, pairs)
    if len(pp):
        bad = np.isin(problem.pair_node[pp] * n_skus + problem.line_sku[line], tight_key)
        pos = np.searchsorted(pairs, pp) if np.all(np.diff(pairs) >= 0) else None
        if pos is None:
            index = {int(p): i for i, p in enumerate(pairs)}
            pos = np.array([index[int(p)] for p in pp])
        np.logical_or.at(hit, pos, bad)
    return hit


def _take(problem: Problem, parts, orders, stock: np.ndarray, capacity: np.ndarray) -> None:
    """Subtracts what the given orders' parts use."""
    load = {}
    for o in orders:
        if not parts[o]:
            continue
        skus, qtys = problem.lines(o)
        lo, hi = problem.pair_ptr[o], problem.pair_ptr[o + 1]
        for n, idx in parts[o].items():
            k = lo + int(np.flatnonzero(problem.pair_node[lo:hi] == n)[0])
            load[n] = load.get(n, 0.0) + problem.pair_load[k]
            np.subtract.at(stock[n], skus[idx], qtys[idx])
    for n, x in load.items():
        capacity[n] -= x


def _components(problem: Problem, orders: np.ndarray, stock: np.ndarray, capacity: np.ndarray) -> list[np.ndarray]:
    """Contested orders grouped by the tight stock cells and nodes they share."""
    if len(orders) == 0:
        return []
    tight_key, tight_node = _tight(problem, orders, stock, capacity)
    pairs = _ranges(problem.pair_ptr[orders], problem.pair_ptr[orders + 1])
    pp, line = _pair_lines(problem, pairs)
    keys = problem.pair_node[pp] * stock.shape[1] + problem.line_sku[line]
    k_mask = np.isin(keys, tight_key)
    n_mask = np.isin(problem.pair_node[pairs], tight_node)
    # bipartite graph: orders 0..len-1, then resources
    local = {int(o): i for i, o in enumerate(orders)}
    res_keys = np.concatenate([keys[k_mask], -1 - problem.pair_node[pairs][n_mask].astype(np.int64)])
    res_orders = np.concatenate([problem.pair_order[pp][k_mask], problem.pair_order[pairs][n_mask]])
    if len(res_keys) == 0:
        return [np.array([o]) for o in orders]
    uniq, res = np.unique(res_keys, return_inverse=True)
    rows = np.array([local[int(o)] for o in res_orders])
    size = len(orders) + len(uniq)
    graph = coo_matrix((np.ones(len(rows)), (rows, len(orders) + res)), shape=(size, size))
    _, label = connected_components(graph, directed=False)
    label = label[: len(orders)]
    groups = np.argsort(label, kind="stable")
    cuts = np.flatnonzero(np.diff(label[groups])) + 1
    return [orders[g] for g in np.split(groups, cuts)]


def _greedy_on(problem: Problem, orders: np.ndarray, stock: np.ndarray, capacity: np.ndarray) -> Solution:
    sub = Problem(
        n_nodes=problem.n_nodes, pair_order=problem.pair_order, pair_node=problem.pair_node,
        pair_cost=problem.pair_cost, pair_load=problem.pair_load, line_ptr=problem.line_ptr,
        line_sku=problem.line_sku, line_qty=problem.line_qty, stock=stock, capacity=capacity,
        penalty=problem.penalty, split=problem.split, split_penalty=problem.split_penalty,
    )
    return solve_greedy(sub, np.sort(orders))
