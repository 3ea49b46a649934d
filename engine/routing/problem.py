"""The assignment problem every solver works on, in arrays.

Orders x nodes, kept sparse as candidate pairs (an order's allowed nodes,
cheapest first). Each order has lines (sku, qty); each node has stock per
SKU and a capacity; a pair has a cost and a load. An order is served by
one node, or, when splitting is allowed, by several (one part per node, each
extra part paying `split_penalty`); an unserved order pays its penalty
(infinite: it must be served).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

INF = float("inf")


@dataclass
class Problem:
    n_nodes: int
    pair_order: np.ndarray  # (P,) int, grouped by order, cheapest first within an order
    pair_node: np.ndarray  # (P,) int
    pair_cost: np.ndarray  # (P,) float
    pair_load: np.ndarray  # (P,) float
    line_ptr: np.ndarray  # (O+1,) int: order o's lines are line_sku/line_qty[line_ptr[o]:line_ptr[o+1]]
    line_sku: np.ndarray  # (L,) int
    line_qty: np.ndarray  # (L,) int
    stock: np.ndarray  # (N, S) float, np.inf where unlimited
    capacity: np.ndarray  # (N,) float, np.inf where unlimited
    penalty: np.ndarray  # (O,) float, np.inf = must assign
    split: bool = False
    split_penalty: float = 0.0
    pair_ptr: np.ndarray = field(init=False)  # (O+1,) order o's pairs are pair_ptr[o]:pair_ptr[o+1]

    def __post_init__(self) -> None:
        counts = np.bincount(self.pair_order, minlength=self.n_orders)
        self.pair_ptr = np.concatenate([[0], np.cumsum(counts)])

    @property
    def n_orders(self) -> int:
        return len(self.penalty)

    def lines(self, o: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.line_ptr[o], self.line_ptr[o + 1]
        return self.line_sku[a:b], self.line_qty[a:b]


@dataclass
class Solution:
    """parts[o]: node -> indices of o's lines served there; empty: unserved."""

    parts: list[dict[int, list[int]]]
    status: str  # optimal | feasible | infeasible
    objective: float
    bound: float | None = None  # proven lower bound, when a solver gives one

    def node_of(self, o: int) -> int:
        """The single node of a whole order, -1 if unserved."""
        return next(iter(self.parts[o]), -1)


def whole(problem: Problem, nodes: list[int]) -> list[dict[int, list[int]]]:
    """Parts for whole-order assignments (-1 = unserved)."""
    out: list[dict[int, list[int]]] = []
    for o, n in enumerate(nodes):
        k = int(problem.line_ptr[o + 1] - problem.line_ptr[o])
        out.append({int(n): list(range(k))} if n >= 0 else {})
    return out


def objective(problem: Problem, parts: list[dict[int, list[int]]]) -> float:
    cost = {(int(o), int(n)): float(c) for o, n, c in zip(problem.pair_order, problem.pair_node, problem.pair_cost)}
    total = 0.0
    for o, p in enumerate(parts):
        if not p:
            total += float(problem.penalty[o])
            continue
        total += sum(cost[(o, n)] for n in p) + problem.split_penalty * (len(p) - 1)
    return total


def violations(problem: Problem, parts: list[dict[int, list[int]]]) -> list[str]:
    """Every broken constraint, in words; empty when the answer is feasible."""
    out: list[str] = []
    allowed = set(zip(problem.pair_order.tolist(), problem.pair_node.tolist()))
    load = {(int(o), int(n)): float(x) for o, n, x in zip(problem.pair_order, problem.pair_node, problem.pair_load)}
    used = np.zeros_like(problem.stock, dtype=float)
    cap = np.zeros(problem.n_nodes)
    for o, p in enumerate(parts):
        skus, qtys = problem.lines(o)
        if not p:
            if np.isinf(problem.penalty[o]):
                out.append(f"order {o} must be assigned")
            continue
        if len(p) > 1 and not problem.split:
            out.append(f"order {o} split although splitting is off")
        served = sorted(i for idx in p.values() for i in idx)
        if served != list(range(len(skus))):
            out.append(f"order {o} lines served {served}, expected each once")
        for n, idx in p.items():
            if (o, n) not in allowed:
                out.append(f"order {o} at node {n}, which is not allowed")
                continue
            cap[n] += load[(o, n)]
            for i in idx:
                used[n, skus[i]] += qtys[i]
    over = np.argwhere(used > problem.stock + 1e-9)
    out += [f"node {n} sku {s}: {used[n, s]:g} > stock {problem.stock[n, s]:g}" for n, s in over]
    out += [f"node {n}: load {cap[n]:g} > capacity {problem.capacity[n]:g}" for n in np.flatnonzero(cap > problem.capacity + 1e-9)]
    return out
