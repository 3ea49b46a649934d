"""The assignment problem every solver works on, in arrays.

Orders x nodes, kept sparse as candidate pairs (an order's allowed nodes,
cheapest first). Each order has lines (sku, qty); each node has stock per
SKU and a capacity; a pair has a cost and a load. An order is served by
one node, or, when splitting is allowed, by several (one part per node, each
extra part paying `split_penalty`); an unserved order pays its penalty
(infinite: it must be served).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

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

    def pair_of(self, orders: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """Pair index of each (order, node); -1 where the node is not a candidate."""
        if not hasattr(self, "_keys"):
            keys = self.pair_order.astype(np.int64) * self.n_nodes + self.pair_node
            self._sort = np.argsort(keys, kind="stable")
            self._keys = keys[self._sort]
        want = np.asarray(orders, np.int64) * self.n_nodes + np.asarray(nodes, np.int64)
        pos = np.minimum(np.searchsorted(self._keys, want), max(len(self._keys) - 1, 0))
        found = (self._keys[pos] == want) if len(self._keys) else np.zeros(len(want), bool)
        return np.where(found, self._sort[pos] if len(self._keys) else -1, -1)

    def restricted(self, keep: np.ndarray) -> "Problem":
        """The same problem with only the pairs where keep is true."""
        out = replace(self, pair_order=self.pair_order[keep], pair_node=self.pair_node[keep],
                      pair_cost=self.pair_cost[keep], pair_load=self.pair_load[keep])
        keep = np.asarray(keep)
        if hasattr(self, "_entries") and keep.dtype == bool:  # the cells keep their numbers
            out._entries = self._entries.restricted(keep)
        return out

    def permuted(self, perm: np.ndarray, **changes: Any) -> "Problem":
        """The same pairs in another order (new pair j is old pair perm[j]),
        other fields as `changes` give them; the cells keep their numbers."""
        out = replace(self, **{"pair_order": self.pair_order[perm], "pair_node": self.pair_node[perm],
                               "pair_cost": self.pair_cost[perm], "pair_load": self.pair_load[perm], **changes})
        out._entries = self._cells().permuted(perm)
        return out

    def with_supply(self, stock: np.ndarray, capacity: np.ndarray) -> "Problem":
        """The same problem against other supply (of the same shape)."""
        out = replace(self, stock=stock, capacity=capacity)
        if hasattr(self, "_entries"):
            out._entries = self._entries
        return out

    def entries(self, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Stock entries of whole orders at the given pairs: cell key (node *
        n_skus + sku), quantity (float), the pair, and the cell's number in
        `cell_keys` (sorted). The cells are numbered once per problem (and
        kept by `restricted`): np.unique over a batch's 27,000 entries took
        about a millisecond, and the reductions, the LP and greedy each did it."""
        e = self._cells()
        at = ranges(e.ptr[pairs], e.ptr[np.asarray(pairs) + 1])
        return e.key[at], e.qty[at], e.pair[at], e.cell[at]

    def entry_owner(self, pairs: np.ndarray) -> np.ndarray:
        """For each entry `entries(pairs)` gives, the position of its pair in `pairs`."""
        return np.repeat(np.arange(len(pairs)), np.diff(self._cells().ptr)[pairs])

    @property
    def cell_keys(self) -> np.ndarray:
        return self._cells().keys

    def _cells(self) -> "Entries":
        if not hasattr(self, "_entries"):
            self._entries = Entries.of(self)
        return self._entries

    def round_bound(self, bound: float) -> float:
        """A lower bound on the objective raised to the next integer when
        every answer's objective is one (integer costs, penalties and split
        penalty); a solver's tolerance is allowed for first."""
        if not hasattr(self, "_integral"):
            pen = self.penalty[np.isfinite(self.penalty)]
            self._integral = all(bool(np.all(v == np.round(v))) for v in (self.pair_cost, pen)) \
                and float(self.split_penalty).is_integer()
        if not self._integral or not np.isfinite(bound):
            return bound
        return float(np.ceil(bound - 1e-6 * max(1.0, abs(bound))))

    def lines(self, o: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.line_ptr[o], self.line_ptr[o + 1]
        return self.line_sku[a:b], self.line_qty[a:b]


@dataclass
class Entries:
    """Every pair's stock entries (the lines of its order at its node)."""

    ptr: np.ndarray  # (P+1,) pair p's entries are [ptr[p], ptr[p+1])
    pair: np.ndarray  # (E,)
    key: np.ndarray  # (E,) node * n_skus + sku
    qty: np.ndarray  # (E,) float
    cell: np.ndarray  # (E,) index into keys
    keys: np.ndarray  # (C,) sorted

    @classmethod
    def of(cls, problem: Problem) -> "Entries":
        owner = problem.pair_order
        lstart, lend = problem.line_ptr[owner], problem.line_ptr[owner + 1]
        lens = lend - lstart
        pair, line = np.repeat(np.arange(len(owner)), lens), ranges(lstart, lend)
        key = problem.pair_node[pair] * problem.stock.shape[1] + problem.line_sku[line]
        keys, cell = np.unique(key, return_inverse=True)
        return cls(np.concatenate([[0], np.cumsum(lens)]), pair, key, problem.line_qty[line].astype(float),
                   cell.reshape(-1), keys)

    def permuted(self, perm: np.ndarray) -> "Entries":
        """The entries of pairs renumbered: new pair j is old pair perm[j]."""
        lens = np.diff(self.ptr)[perm]
        at = ranges(self.ptr[perm], self.ptr[perm + 1])
        return Entries(np.concatenate([[0], np.cumsum(lens)]), np.repeat(np.arange(len(perm)), lens), self.key[at],
                       self.qty[at], self.cell[at], self.keys)

    def restricted(self, keep: np.ndarray) -> "Entries":
        """keep: (P,) bool."""
        at = keep[self.pair]
        lens = np.diff(self.ptr)[keep]
        return Entries(np.concatenate([[0], np.cumsum(lens)]), (np.cumsum(keep) - 1)[self.pair[at]], self.key[at],
                       self.qty[at], self.cell[at], self.keys)


def ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenated aranges [starts[i], ends[i])."""
    lens = ends - starts
    if lens.sum() == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
    return np.arange(lens.sum()) + offsets


@dataclass
class Solution:
    """parts[o]: node -> indices of o's lines served there; empty: unserved."""

    parts: list[dict[int, list[int]]]
    status: str  # optimal | feasible | infeasible (proven, or greedy left a must-assign order out) | unknown
    objective: float
    bound: float | None = None  # proven lower bound, when a solver gives one

    def node_of(self, o: int) -> int:
        """The single node of a whole order, -1 if unserved."""
        return next(iter(self.parts[o]), -1)

    @property
    def filled(self) -> int:
        """Orders served, wholly or in part."""
        return sum(1 for p in self.parts if p)


def whole(problem: Problem, nodes: list[int]) -> list[dict[int, list[int]]]:
    """Parts for whole-order assignments (-1 = unserved)."""
    out: list[dict[int, list[int]]] = []
    for o, n in enumerate(nodes):
        k = int(problem.line_ptr[o + 1] - problem.line_ptr[o])
        out.append({int(n): list(range(k))} if n >= 0 else {})
    return out


def each_cheapest(problem: Problem) -> Solution | None:
    """Every order at its cheapest pair, or unserved where that costs less,
    when all of them fit together (then no order can do better: optimal);
    None when they do not. The check of optimal.each_at_cheapest in arrays:
    a batch of 40 orders took about 0.6 ms through the reductions to the
    same answer, this about a tenth of that."""
    ptr, penalty = problem.pair_ptr, problem.penalty
    first = ptr[:-1]
    served = ptr[1:] > first
    served[served] = problem.pair_cost[first[served]] <= penalty[served]
    if np.isinf(penalty[~served]).any():
        return None
    orders = np.flatnonzero(served)
    pairs = first[orders]
    node = problem.pair_node[pairs]
    if (np.bincount(node, problem.pair_load[pairs], problem.n_nodes) > problem.capacity).any():
        return None
    lstart, lend = problem.line_ptr[orders], problem.line_ptr[orders + 1]
    line = ranges(lstart, lend)
    cell = np.repeat(node, lend - lstart) * problem.stock.shape[1] + problem.line_sku[line]
    cells, at = np.unique(cell, return_inverse=True)
    if (np.bincount(at, problem.line_qty[line], len(cells)) > problem.stock.reshape(-1)[cells]).any():
        return None
    parts: list[dict[int, list[int]]] = [{} for _ in range(problem.n_orders)]
    for o, n, k in zip(orders.tolist(), node.tolist(), (lend - lstart).tolist()):
        parts[o] = {n: list(range(k))}
    # summed as objective() sums it (the same float)
    value = float(problem.pair_cost[pairs].sum() + penalty[~served].sum())
    return Solution(parts, "optimal", value, value)


def flat(parts: list[dict[int, list[int]]], orders: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(order, node) of every part (of the given orders only, if given)."""
    which = range(len(parts)) if orders is None else orders.tolist()
    o = [k for k in which for _ in parts[k]]
    n = [node for k in which for node in parts[k]]
    return np.array(o, dtype=np.int64), np.array(n, dtype=np.int64)


def objective(problem: Problem, parts: list[dict[int, list[int]]], orders: np.ndarray | None = None) -> float:
    """What the parts cost: allowed pairs, penalties of the unserved, extra parts (over the given orders only, if given)."""
    which = np.arange(problem.n_orders) if orders is None else np.asarray(orders, dtype=np.int64)
    part_o, part_n = flat(parts, which)
    pairs = problem.pair_of(part_o, part_n)
    if (pairs < 0).any():
        return float("inf")  # a part at a node the order may not use
    n_parts = np.bincount(part_o, minlength=problem.n_orders)[which]
    return float(problem.pair_cost[pairs].sum() + problem.penalty[which][n_parts == 0].sum()
                 + problem.split_penalty * np.maximum(n_parts - 1, 0).sum())


def violations(problem: Problem, parts: list[dict[int, list[int]]]) -> list[str]:
    """Every broken constraint, in words; empty when the answer is feasible."""
    out: list[str] = []
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
            k = int(problem.pair_of(np.array([o]), np.array([n]))[0])
            if k < 0:
                out.append(f"order {o} at node {n}, which is not allowed")
                continue
            cap[n] += problem.pair_load[k]
            for i in idx:
                used[n, skus[i]] += qtys[i]
    over = np.argwhere(used > problem.stock + 1e-9)
    out += [f"node {n} sku {s}: {used[n, s]:g} > stock {problem.stock[n, s]:g}" for n, s in over]
    out += [f"node {n}: load {cap[n]:g} > capacity {problem.capacity[n]:g}" for n in np.flatnonzero(cap > problem.capacity + 1e-9)]
    return out
