"""Decisions with their explanations: the chosen nodes' cost terms, and why
each node cheaper than the chosen one lost (any node, when none was chosen).

Vectorised over the batch: the cost of every order at every node it could
be considered for is computed at once, the few cheapest that lost are
picked per order, and only those get a reason.
"""
from __future__ import annotations

import numpy as np

from engine.routing.candidates import Batch
from engine.routing.problem import Solution, ranges
from engine.routing.types import CostTerms, Decision, Loss, Part

MAX_LOSSES = 5  # cheaper nodes explained per decision
BLOCK = 1000  # orders per block of the dense cost matrix: about 5 MB per matrix at 600 nodes

# reasons, in the order they are checked
EXCLUDED, TOO_FAR, CLOSED, TOO_LATE, FULL, NO_STOCK, TAKEN, ELSEWHERE = range(8)
_CHECKED = np.array([EXCLUDED, TOO_FAR, CLOSED, TOO_LATE, ELSEWHERE, FULL, NO_STOCK, TAKEN])


def decisions(b: Batch, sol: Solution) -> list[Decision]:
    n_orders = len(b.orders)
    parts, part_o, part_n, total = chosen_parts(b, sol.parts)
    limit = np.full(n_orders, np.inf)
    if b.problem.split:
        np.minimum.at(limit, part_o, -np.inf)  # served: replaced by the dearest part's cost below
        np.maximum.at(limit, part_o, total)
    else:  # one part an order at most
        limit[part_o] = total
    lost_o, lost_n, reason = _losses(b, limit, part_o, part_n)
    losses: list[list[Loss]] = [[] for _ in range(n_orders)]
    for o, n, r in zip(lost_o.tolist(), lost_n.tolist(), reason):
        losses[o].append(Loss(node=b.nodes.ids[n], reason=r))
    return [Decision(key=o.key, parts=parts[i], lost=losses[i], reason=None if parts[i] else _why_unserved(o.mode, losses[i]))
            for i, o in enumerate(b.orders)]


def chosen_parts(b: Batch, chosen: list[dict[int, list[int]]]) -> tuple[list[list[Part]], np.ndarray, np.ndarray,
                                                                        np.ndarray]:
    """Each order's parts (node, lines, ETA, cost terms) as chosen (node ->
    indices of the order's lines), without the losses; also each part's
    (order, node) and total cost."""
    n_orders = len(b.orders)
    part_o = np.array([o for o in range(n_orders) for _ in chosen[o]], dtype=np.int64)
    part_n = np.array([n for o in range(n_orders) for n in chosen[o]], dtype=np.int64)
    part_terms = b.terms(part_o, part_n)
    parts: list[list[Part]] = [[] for _ in range(n_orders)]
    # one rounding for all columns (np.round(x, d) is rint(x * 10**d) / 10**d): a small batch pays per numpy call;
    # a row per part in CostTerms' field order, so each is made from its row by position
    rows = (np.rint(np.stack([part_terms[k] for k in _TERMS]) * _SCALE) / _SCALE).T.tolist()
    eta_at = (b.now + part_terms["eta"] * 60).tolist()
    guessed = b.straight_line(part_o, part_n).tolist()
    node_ids, orders = b.nodes.ids, b.orders
    for o, n, row, at, guess in zip(part_o.tolist(), part_n.tolist(), rows, eta_at, guessed):
        lines = orders[o].lines
        served = chosen[o][n]
        if served != list(range(len(lines))):  # not the order's lines as they stand (a split): a dict of its own
            skus = list(lines)
            lines = {skus[i]: lines[skus[i]] for i in served}
        parts[o].append(Part(node=node_ids[n], lines=lines, eta_at=at, cost=CostTerms(*row), straight_line=guess))
    return parts, part_o, part_n, part_terms["total"]


# the cost terms in CostTerms' field order ("eta" is eta_min), with the decimals each is rounded to
_TERMS = ("distance_km", "eta", "delivery", "time", "lateness", "operating", "home", "total")
_SCALE = np.array([[1000.0], [10.0], [100.0], [100.0], [100.0], [100.0], [100.0], [100.0]])
assert len(_TERMS) == len(CostTerms.__struct_fields__)


def _losses(b: Batch, limit: np.ndarray, part_o: np.ndarray, part_n: np.ndarray):
    """Up to MAX_LOSSES nodes per order, cheapest first, that cost less than
    its dearest chosen node and were not chosen: (order, node, reason).
    Orders x nodes matrices are made a block of orders at a time (memory)."""
    n_orders, n_nodes = b.dist.shape
    excluded = None  # most batches have no order a node declined
    if len(b.excluded[0]):
        excluded = np.zeros(b.dist.shape, bool)
        excluded[b.excluded] = True
    chosen = np.zeros(b.dist.shape, bool)
    chosen[part_o, part_n] = True
    k = min(MAX_LOSSES, n_nodes)
    found_o, found_n = [], []
    for start in range(0, n_orders, BLOCK):
        rows = slice(start, start + BLOCK)
        # considered: nodes offering the order's mode (for pickup, only the chosen store), and those excluded
        considered = np.where(b.pickup[rows, None], b.reach[rows], b.nodes.delivers[None, :])
        if excluded is not None:
            considered |= excluded[rows]
        cost = b.total_all(rows)
        cost[~considered | chosen[rows] | (cost >= limit[rows, None])] = np.inf
        lost = np.flatnonzero(np.isfinite(cost).any(axis=1))  # most orders have no cheaper node: ranked no further
        cost = cost[lost]
        top = np.argpartition(cost, k - 1, axis=1)[:, :k] if k < n_nodes else np.tile(np.arange(n_nodes), (len(cost), 1))
        top_cost = np.take_along_axis(cost, top, axis=1)
        order = np.lexsort((top, top_cost), axis=1)  # cheapest first, ties by node
        top, top_cost = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_cost, order, axis=1)
        r, c = np.nonzero(np.isfinite(top_cost))
        found_o.append(start + lost[r])
        found_n.append(top[r, c])
    lo, ln = np.concatenate(found_o).astype(np.int64), np.concatenate(found_n).astype(np.int64)
    return lo, ln, _reasons(b, lo, ln, excluded)


def _reasons(b: Batch, lo: np.ndarray, ln: np.ndarray, excluded: np.ndarray | None) -> list[str]:
    """Why node ln[k] could not take order lo[k], the first check that fails."""
    _, _, eta, slack = b.timing(lo, ln)
    short = _short_line(b, lo, ln)
    # a row per check, in _CHECKED's order, then one that always holds; the first true row is the reason
    # (np.select over the rows took several times as long on a small batch)
    checks = np.empty((8, len(lo)), bool)
    checks[0] = False if excluded is None else excluded[lo, ln]
    np.logical_not(b.reach[lo, ln], out=checks[1])
    np.less(b.open_for[ln], eta, out=checks[2])
    np.less(slack, 0, out=checks[3])
    checks[4] = False if b.state.elsewhere is None else b.state.elsewhere[ln]
    np.less_equal(b.state.capacity_left[ln], 0, out=checks[5])
    np.greater_equal(short, 0, out=checks[6])
    checks[7] = True
    code = _CHECKED[checks.argmax(axis=0)]
    out = []
    for k, (o, c) in enumerate(zip(lo.tolist(), code.tolist())):
        order = b.orders[o]
        if c == EXCLUDED:
            out.append("declined or let the order expire before")
        elif c == TOO_FAR:
            out.append("too far" if order.mode == "delivery" else "not the pickup store")
        elif c == CLOSED:
            out.append("closed")
        elif c == TOO_LATE:
            out.append(f"too late (ready in {eta[k]:.0f} min)")
        elif c == ELSEWHERE:
            out.append("in another partition: served there if this one cannot")
        elif c == FULL:
            out.append("capacity full")
        elif c == NO_STOCK:
            out.append(f"no stock of SKU {list(order.lines)[short[k]]}")
        else:
            out.append("stock or capacity went to other orders in the batch")
    return out


def _short_line(b: Batch, lo: np.ndarray, ln: np.ndarray) -> np.ndarray:
    """Per (order, node): the index of the order's first line the node cannot
    promise, -1 if it can promise them all."""
    p = b.problem
    start, end = p.line_ptr[lo], p.line_ptr[lo + 1]
    line = ranges(start, end)
    owner = np.repeat(np.arange(len(lo)), end - start)
    lacking = p.stock[ln[owner], p.line_sku[line]] < p.line_qty[line]
    first = np.full(len(lo), np.iinfo(np.int64).max)
    np.minimum.at(first, owner[lacking], (line - start[owner])[lacking])
    return np.where(first == np.iinfo(np.int64).max, -1, first)


def _why_unserved(mode: str, lost: list[Loss]) -> str:
    if not lost:
        return "no node reaches the location" if mode == "delivery" else "the pickup store cannot serve it"
    if len(lost) == 1:
        return lost[0].reason
    return "no node can serve it: " + "; ".join(f"{x.node} {x.reason}" for x in lost[:3])
