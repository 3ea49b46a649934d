"""Exact branch and bound over a handful of whole orders, in plain Python:
what a fractional LP leaves for a MIP is often 2-10 orders, and HiGHS
took 1.5-3.5 ms on each such MIP, most of it its own set-up (downtown
1,000 off-peak: 6 and 2 orders). Depth first, each order's options
cheapest first, a branch cut when its cost plus every later order at its
cheapest cannot beat the best answer found; past MAX_NODES it gives up
and the caller solves a MIP."""
from __future__ import annotations

import numpy as np

from engine.routing.problem import Problem, Solution, objective

MAX_ORDERS = 12  # more: a MIP
MAX_NODES = 20_000  # branches tried before giving up (a few ms of Python)


def solve_small(problem: Problem, orders: np.ndarray, stock: np.ndarray, capacity: np.ndarray) -> Solution | None:
    """The optimum over the given whole orders against this supply (parts of
    other orders stay empty; objective and bound over the given orders), as
    solve_mip would give it: "infeasible" when no answer places every
    must-assign order. None when there are too many orders or the search ran
    past MAX_NODES."""
    if problem.split or len(orders) > MAX_ORDERS:
        return None
    orders = np.asarray(orders, dtype=np.int64)
    ptr, n_skus = problem.pair_ptr, stock.shape[1]
    options, first_cost = [], []
    cell_of: dict[int, int] = {}
    left: list[float] = []
    nodes_left: dict[int, float] = {}
    for o in orders.tolist():
        pen = float(problem.penalty[o])
        skus, qtys = problem.lines(o)
        mine = []
        for p in range(int(ptr[o]), int(ptr[o + 1])):
            cost = float(problem.pair_cost[p])
            if cost > pen:
                break  # pairs come cheapest first: leaving the order out costs less than the rest
            n = int(problem.pair_node[p])
            uses = []
            for s, q in zip(skus.tolist(), qtys.tolist()):
                key = n * n_skus + s
                if key not in cell_of:
                    cell_of[key] = len(left)
                    left.append(float(stock.flat[key]))
                uses.append((cell_of[key], float(q)))
            nodes_left.setdefault(n, float(capacity[n]))
            mine.append((cost, n, float(problem.pair_load[p]), uses))
        if np.isfinite(pen):
            mine.append((pen, -1, 0.0, []))  # unserved
        options.append(mine)
        first_cost.append(mine[0][0] if mine else np.inf)
    # the later orders' least cost: the bound that cuts a branch
    rest = [0.0] * (len(options) + 1)
    for i in range(len(options) - 1, -1, -1):
        rest[i] = rest[i + 1] + first_cost[i]
    best, best_pick = np.inf, None
    pick = [-1] * len(options)  # each order's node (-1: unserved) on the branch searched
    tried = 0

    def visit(i: int, cost: float) -> bool:
        nonlocal best, best_pick, tried
        if i == len(options):
            if cost < best:
                best, best_pick = cost, list(pick)
            return True
        for c, n, load, uses in options[i]:
            if cost + c + rest[i + 1] >= best:
                return True  # the options come cheapest first: none after this one can do better
            tried += 1
            if tried > MAX_NODES:
                return False
            if n >= 0:
                if nodes_left[n] < load or any(left[j] < q for j, q in uses):
                    continue
                nodes_left[n] -= load
                for j, q in uses:
                    left[j] -= q
            pick[i] = n
            done = visit(i + 1, cost + c)
            if n >= 0:
                nodes_left[n] += load
                for j, q in uses:
                    left[j] += q
            if not done:
                return False
        return True

    if not visit(0, 0.0):
        return None
    parts: list[dict[int, list[int]]] = [{} for _ in range(problem.n_orders)]
    if best_pick is None:
        return Solution(parts, "infeasible", float("inf"))
    for o, n in zip(orders.tolist(), best_pick):
        if n >= 0:
            parts[o] = {n: list(range(int(problem.line_ptr[o + 1] - problem.line_ptr[o])))}
    value = objective(problem, parts, orders)  # (summed as every solver's answer is)
    return Solution(parts, "optimal", value, value)
