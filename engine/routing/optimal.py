"""The production solver: decide the uncontested orders directly, split the
contested rest into independent components and solve each with OR-Tools
under the batch's time budget. Never worse than greedy, always feasible
when greedy is. The exact reductions that make this safe are in reduce.py.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from engine.routing.greedy import solve_greedy
from engine.routing.mip import solve_mip, solve_relaxation
from engine.routing.problem import Problem, Solution, objective
from engine.routing.reduce import components, contested, prune_dominated, usage

LP_FIRST = 200  # components this large are first solved as an LP
MIN_MIP_S = 0.05  # time the MIP on an LP's fractional rest gets even when the LP used up the budget


def solve_optimal(problem: Problem, time_limit_s: float = 0.2, solver: str = "highs") -> Solution:
    deadline = time.perf_counter() + time_limit_s
    work = prune_dominated(problem)  # same optimum, fewer pairs
    parts: list[dict[int, list[int]]] = [{} for _ in range(problem.n_orders)]
    served = np.flatnonzero(work.pair_ptr[1:] > work.pair_ptr[:-1])
    if work.split and (work.pair_cost < 0).any():
        open_orders = served  # two negative-cost parts may beat one: no shortcut
    else:
        open_orders = contested(work, served, work.stock, work.capacity)
    # residual supply is only needed when something is contested (copying 600 x 2,000 per batch is not free)
    stock = work.stock.astype(float, copy=True) if len(open_orders) else work.stock
    capacity = work.capacity.astype(float, copy=True)
    if len(open_orders) < len(served):
        free = np.setdiff1d(served, open_orders)
        first = work.pair_ptr[free]
        first = first[work.pair_cost[first] <= work.penalty[free]]  # else unserved is cheaper
        _assign(work, first, parts)
        if len(open_orders):
            _take_pairs(work, first, stock, capacity)
    status = "optimal"
    for component in components(work, open_orders, stock, capacity):
        floor = 0.0
        if len(component) >= LP_FIRST and not work.split:
            component = _fix_integral(work, component, parts, stock, capacity)
            if len(component) == 0:
                continue  # the LP came out integral: optimal
            status = "feasible"  # fixing by the LP is not a proof
            floor = MIN_MIP_S  # the fractional rest is small: worth solving even past the budget
        left = max(deadline - time.perf_counter(), floor)
        sol = solve_mip(work, component, stock, capacity, time_limit_s=left, solver=solver) if left > 0.005 else None
        if sol is None or sol.status == "infeasible":
            sol = _greedy_on(work, component, stock, capacity)
            status = "feasible"
        elif sol.status != "optimal":
            status = "feasible"
        for o in component:
            parts[o] = sol.parts[o]
        _take(work, parts, component, stock, capacity)
    if any(not p and np.isinf(problem.penalty[o]) for o, p in enumerate(parts)):
        status = "infeasible"
    mine = Solution(parts, status, objective(problem, parts))
    if status == "optimal":
        return mine  # proven: greedy cannot be better
    greedy = solve_greedy(problem)
    if greedy.status != "infeasible" and (mine.status == "infeasible" or greedy.objective < mine.objective - 1e-9):
        return Solution(greedy.parts, "feasible", greedy.objective)
    return mine


def _assign(problem: Problem, pairs: np.ndarray, parts: list[dict[int, list[int]]]) -> None:
    """Whole orders to the nodes of the given pairs."""
    n_lines = problem.line_ptr[1:] - problem.line_ptr[:-1]
    for o, n in zip(problem.pair_order[pairs].tolist(), problem.pair_node[pairs].tolist()):
        parts[o] = {n: list(range(n_lines[o]))}


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
    _assign(problem, chosen, parts)
    _take_pairs(problem, chosen, stock, capacity)
    return orders[fractional[orders]]


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
    key, qty, _ = usage(problem, pairs, stock.shape[1])
    np.subtract.at(stock.reshape(-1), key, qty)


def _greedy_on(problem: Problem, orders: np.ndarray, stock: np.ndarray, capacity: np.ndarray) -> Solution:
    return solve_greedy(replace(problem, stock=stock, capacity=capacity), np.sort(orders))
