"""The baseline: orders in arrival order, each to its cheapest node that
still has the stock and the capacity (what rule-based systems do)."""
from __future__ import annotations

import numpy as np

from engine.routing.problem import Problem, Solution, objective


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
