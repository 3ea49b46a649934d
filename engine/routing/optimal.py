"""The production solver: decide the uncontested orders directly, split the
contested rest into independent components and solve each with OR-Tools
under the batch's time budget. Never worse than greedy, always feasible
when greedy is.

Contested orders are found as a closure. A resource (a node's stock of a
SKU, or its capacity) is tight when the uncontested orders' demand at their
cheapest nodes plus everything the contested orders could ask of it exceeds
its supply; an order whose cheapest node uses a tight resource is
contested; repeat until nothing changes. Some optimal answer then gives
every uncontested order its cheapest node (moving it there costs nothing
and can never overfill), and contested orders interact only through tight
resources, so each connected group is solved on its own.
"""
from __future__ import annotations

import time

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from engine.routing.greedy import solve_greedy
from engine.routing.mip import _ranges, solve_mip, solve_relaxation

LP_FIRST = 200  # components this large are first solved as an LP
MIN_MIP_S = 0.05  # time the MIP on an LP's fractional rest gets even when the LP used up the budget
from engine.routing.problem import Problem, Solution, objective


def solve_optimal(problem: Problem, time_limit_s: float = 0.2, solver: str = "highs") -> Solution:
    deadline = time.perf_counter() + time_limit_s
    parts: list[dict[int, list[int]]] = [{} for _ in range(problem.n_orders)]
    served = np.flatnonzero(problem.pair_ptr[1:] > problem.pair_ptr[:-1])
    if problem.split and (problem.pair_cost < 0).any():
        contested = served  # two negative-cost parts may beat one: no shortcut
    else:
        contested = _contested(problem, served, problem.stock, problem.capacity)
    # residual supply is only needed when something is contested (copying 600 x 2,000 per batch is not free)
    stock = problem.stock.astype(float, copy=True) if len(contested) else problem.stock
    capacity = problem.capacity.astype(float, copy=True)
    if len(contested) < len(served):
        free = np.setdiff1d(served, contested)
        first = problem.pair_ptr[free]
        first = first[problem.pair_cost[first] <= problem.penalty[free]]  # else unserved is cheaper
        n_lines = problem.line_ptr[1:] - problem.line_ptr[:-1]
        for o, n in zip(problem.pair_order[first].tolist(), problem.pair_node[first].tolist()):
            parts[o] = {n: list(range(n_lines[o]))}
        if len(contested):
            _take_pairs(problem, first, stock, capacity)
    status = "optimal"
    for component in _components(problem, contested, stock, capacity):
        floor = 0.0
        if len(component) >= LP_FIRST and not problem.split:
            component = _fix_integral(problem, component, parts, stock, capacity)
            if len(component) == 0:
                continue  # the LP came out integral: optimal
            status = "feasible"  # fixing by the LP is not a proof
            floor = MIN_MIP_S  # the fractional rest is small: worth solving even past the budget
        left = max(deadline - time.perf_counter(), floor)
        sol = solve_mip(problem, component, stock, capacity, time_limit_s=left, solver=solver) if left > 0.005 else None
        if sol is None or sol.status == "infeasible":
            sol = _greedy_on(problem, component, stock, capacity)
            status = "feasible"
        elif sol.status != "optimal":
            status = "feasible"
        for o in component:
            parts[o] = sol.parts[o]
        _take(problem, parts, component, stock, capacity)
    if any(not p and np.isinf(problem.penalty[o]) for o, p in enumerate(parts)):
        status = "infeasible"
    mine = Solution(parts, status, objective(problem, parts))
    if status == "optimal":
        return mine  # proven: greedy cannot be better
    greedy = solve_greedy(problem)
    if greedy.status != "infeasible" and (mine.status == "infeasible" or greedy.objective < mine.objective - 1e-9):
        return Solution(greedy.parts, "feasible", greedy.objective)
    return mine


def _fix_integral(problem: Problem, orders: np.ndarray, parts, stock: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Solves the LP relaxation and keeps the orders it answers whole (x = 0
    or 1 everywhere); returns the orders left fractional, for the MIP. The
    fixed ones are what the LP optimum does; on these batches only a few
    percent of orders come out fractional."""
    relaxed = solve_relaxation(problem, orders, stock, capacity)
    if relaxed is None:
        return orders
    pairs, x = relaxed
    owner = problem.pair_order[pairs]
    fractional = np.zeros(problem.n_orders, bool)
    fractional[owner[(x > 1e-6) & (x < 1 - 1e-6)]] = True
    chosen = pairs[(x >= 1 - 1e-6) & ~fractional[owner]]
    n_lines = problem.line_ptr[1:] - problem.line_ptr[:-1]
    for o, n in zip(problem.pair_order[chosen].tolist(), problem.pair_node[chosen].tolist()):
        parts[o] = {n: list(range(n_lines[o]))}
    _take_pairs(problem, chosen, stock, capacity)
    return orders[fractional[orders]]


def _pair_lines(problem: Problem, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pair, line) expanded: the pair index per entry and the global line index."""
    owner = problem.pair_order[pairs]
    lstart, lend = problem.line_ptr[owner], problem.line_ptr[owner + 1]
    return np.repeat(pairs, lend - lstart), _ranges(lstart, lend)


def _usage(problem: Problem, pairs: np.ndarray, n_skus: int):
    """Stock entries of the given pairs: cell key, quantity, and the pair."""
    pp, line = _pair_lines(problem, pairs)
    return problem.pair_node[pp] * n_skus + problem.line_sku[line], problem.line_qty[line].astype(float), pp


def _contested(problem: Problem, orders: np.ndarray, stock: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """The closure described in the module docstring."""
    n_skus = stock.shape[1]
    first = problem.pair_ptr[orders]
    all_pairs = _ranges(problem.pair_ptr[orders], problem.pair_ptr[orders + 1])
    f_key, f_qty, f_pair = _usage(problem, first, n_skus)
    a_key, a_qty, a_pair = _usage(problem, all_pairs, n_skus)
    f_owner, a_owner = problem.pair_order[f_pair], problem.pair_order[a_pair]
    keys = np.unique(np.concatenate([f_key, a_key]))
    supply = stock.ravel()[keys]
    fk, ak = np.searchsorted(keys, f_key), np.searchsorted(keys, a_key)
    # an order whose cheapest node costs more than leaving it unserved uses nothing
    wants = np.zeros(problem.n_orders, bool)
    wants[orders] = problem.pair_cost[first] <= problem.penalty[orders]
    first_node, first_load = problem.pair_node[first], problem.pair_load[first]
    pair_owner, pair_node, pair_load = problem.pair_order[all_pairs], problem.pair_node[all_pairs], problem.pair_load[all_pairs]
    contested = np.zeros(problem.n_orders, bool)
    while True:
        fixed_f, open_a = wants[f_owner] & ~contested[f_owner], contested[a_owner]
        demand = np.bincount(fk[fixed_f], f_qty[fixed_f], len(keys)) + np.bincount(ak[open_a], a_qty[open_a], len(keys))
        fixed_o, open_p = wants[orders] & ~contested[orders], contested[pair_owner]
        load = np.bincount(first_node[fixed_o], first_load[fixed_o], problem.n_nodes) \
            + np.bincount(pair_node[open_p], pair_load[open_p], problem.n_nodes)
        hit = np.zeros(problem.n_orders, bool)
        hit[f_owner[demand[fk] > supply[fk] + 1e-9]] = True
        hit[orders[load[first_node] > capacity[first_node] + 1e-9]] = True
        new = hit & wants & ~contested
        if not new.any():
            return orders[contested[orders]]
        contested |= new


def _take(problem: Problem, parts, orders, stock: np.ndarray, capacity: np.ndarray) -> None:
    """Subtracts what the given orders' parts use."""
    part_o, part_n, line_n, line = [], [], [], []
    for o in orders:
        base = int(problem.line_ptr[o])
        for n, idx in parts[o].items():
            part_o.append(o)
            part_n.append(n)
            line_n.extend([n] * len(idx))
            line.extend(base + i for i in idx)
    if not part_o:
        return
    pairs = problem.pair_of(np.array(part_o), np.array(part_n))
    np.subtract.at(capacity, problem.pair_node[pairs], problem.pair_load[pairs])
    line = np.array(line, dtype=np.int64)
    np.subtract.at(stock, (np.array(line_n, dtype=np.int64), problem.line_sku[line]), problem.line_qty[line])


def _take_pairs(problem: Problem, pairs: np.ndarray, stock: np.ndarray, capacity: np.ndarray) -> None:
    """Subtracts what whole orders at the given pairs use."""
    np.subtract.at(capacity, problem.pair_node[pairs], problem.pair_load[pairs])
    key, qty, _ = _usage(problem, pairs, stock.shape[1])
    np.subtract.at(stock.reshape(-1), key, qty)


def _components(problem: Problem, orders: np.ndarray, stock: np.ndarray, capacity: np.ndarray) -> list[np.ndarray]:
    """Contested orders grouped by the stock cells and nodes they could
    overfill together (those whose combined potential demand exceeds supply)."""
    if len(orders) == 0:
        return []
    pairs = _ranges(problem.pair_ptr[orders], problem.pair_ptr[orders + 1])
    key, qty, pp = _usage(problem, pairs, stock.shape[1])
    uniq, inv = np.unique(key, return_inverse=True)
    k_tight = (np.bincount(inv, qty) > stock.ravel()[uniq] + 1e-9)[inv]
    load = np.bincount(problem.pair_node[pairs], problem.pair_load[pairs], problem.n_nodes)
    n_tight = (load > capacity + 1e-9)[problem.pair_node[pairs]]
    # bipartite graph: orders, then stock cells, then nodes
    local = np.searchsorted(orders, np.concatenate([problem.pair_order[pp][k_tight], problem.pair_order[pairs][n_tight]]))
    res = np.concatenate([inv[k_tight], len(uniq) + problem.pair_node[pairs][n_tight]])
    size = len(orders) + len(uniq) + problem.n_nodes
    graph = coo_matrix((np.ones(len(local)), (local, len(orders) + res)), shape=(size, size))
    _, label = connected_components(graph, directed=False)
    label = label[: len(orders)]
    groups = np.argsort(label, kind="stable")
    cuts = np.flatnonzero(np.diff(label[groups])) + 1
    return [orders[np.sort(g)] for g in np.split(groups, cuts)]


def _greedy_on(problem: Problem, orders: np.ndarray, stock: np.ndarray, capacity: np.ndarray) -> Solution:
    sub = Problem(
        n_nodes=problem.n_nodes, pair_order=problem.pair_order, pair_node=problem.pair_node,
        pair_cost=problem.pair_cost, pair_load=problem.pair_load, line_ptr=problem.line_ptr,
        line_sku=problem.line_sku, line_qty=problem.line_qty, stock=stock, capacity=capacity,
        penalty=problem.penalty, split=problem.split, split_penalty=problem.split_penalty,
    )
    return solve_greedy(sub, np.sort(orders))
