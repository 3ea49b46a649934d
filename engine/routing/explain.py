"""Decisions with their explanations: the chosen nodes' cost terms, and why
each node cheaper than the chosen one lost (any node, when none was chosen).

Vectorised over the batch: the pairs that may cost less than the order's
chosen node are found by a lower bound on the cost, only those are
costed, the few cheapest that lost are kept per order, and only those
get a reason.
"""
from __future__ import annotations

from itertools import chain

import numpy as np

from engine.routing.candidates import Batch
from engine.routing.problem import Solution, ranges
from engine.routing.types import CostTerms, Decision, Loss, Part

MAX_LOSSES = 5  # cheaper nodes explained per decision

# reasons, in the order they are checked
EXCLUDED, TOO_FAR, CLOSED, TOO_LATE, FULL, NO_STOCK, TAKEN, ELSEWHERE, NOT_PICKUP_STORE = range(9)
_CHECKED = np.array([EXCLUDED, TOO_FAR, CLOSED, TOO_LATE, ELSEWHERE, FULL, NO_STOCK, TAKEN])
_TEXTS = {EXCLUDED: "declined or let the order expire before", TOO_FAR: "too far", CLOSED: "closed",
          ELSEWHERE: "in another partition: served there if this one cannot", FULL: "capacity full",
          TAKEN: "stock or capacity went to other orders in the batch", NOT_PICKUP_STORE: "not the pickup store",
          TOO_LATE: None, NO_STOCK: None}  # (these two name the ETA and the SKU)


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
        parts[o].append(Part(node_ids[n], lines, at, CostTerms(*row), guess))
    return parts, part_o, part_n, part_terms["total"]


# the cost terms in CostTerms' field order ("eta" is eta_min), with the decimals each is rounded to
_TERMS = ("distance_km", "eta", "delivery", "time", "lateness", "operating", "home", "total")
_SCALE = np.array([[1000.0], [10.0], [100.0], [100.0], [100.0], [100.0], [100.0], [100.0]])
assert len(_TERMS) == len(CostTerms.__struct_fields__)


def _losses(b: Batch, limit: np.ndarray, part_o: np.ndarray, part_n: np.ndarray):
    """Up to MAX_LOSSES nodes per order, cheapest first (ties by node), that
    cost less than its dearest chosen node (any, when none was chosen) and
    were considered (nodes offering the order's mode: for pickup the chosen
    store; and nodes that declined it), not chosen: (order, node, reason).
    Only the pairs a lower bound on the cost lets through are costed: on
    1,000 orders x 600 nodes about 8 an order, where costing every pair took
    most of the explanations' time (benchmarks/README.md)."""
    n_nodes = b.dist.shape[1]
    nodes = b.nodes
    excluded = None  # most batches have no order a node declined
    if len(b.excluded[0]):
        excluded = np.zeros(b.dist.shape, bool)
        excluded[b.excluded] = True
    k = min(MAX_LOSSES, n_nodes)
    delivery = ~b.pickup
    served = np.flatnonzero(np.isfinite(limit) & delivery)
    unserved = np.flatnonzero(np.isinf(limit) & delivery)
    per_node = _per_node(b)
    pairs = [_below(b, served, limit[served], per_node)]
    if len(unserved):
        # below the k-th dearest of its k nodes of least bound: the k cheapest are among them or cost less
        bound = _bound(b, unserved, per_node)
        least = np.argpartition(bound, k - 1, axis=1)[:, :k] if k < n_nodes \
            else np.tile(np.arange(n_nodes), (len(unserved), 1))
        cost = b.total_at(np.repeat(unserved, least.shape[1]), least.ravel()).reshape(least.shape)
        cost[np.isinf(np.take_along_axis(bound, least, axis=1))] = np.inf  # fewer than k deliver
        pairs.append(_below(b, unserved, cost.max(axis=1), per_node, bound))
    pickup = np.flatnonzero(b.pickup)
    if len(pickup):
        po, pn = np.nonzero(b.reach[pickup])
        pairs.append((pickup[po], pn))
    if excluded is not None:  # those not among the pairs above
        eo, en = b.excluded
        ek = ~(delivery[eo] & nodes.delivers[en]) & ~(b.pickup[eo] & b.reach[eo, en])
        pairs.append((eo[ek], en[ek]))
    o, n = np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])
    chosen = np.zeros(b.dist.shape, bool)
    chosen[part_o, part_n] = True
    keep = ~chosen[o, n]
    o, n = o[keep], n[keep]
    cost = b.total_at(o, n)
    keep = cost < limit[o]
    o, n, cost = o[keep], n[keep], cost[keep]
    if excluded is None:  # each order's pairs came from one source, by node: two stable sorts keep ties by node
        sort = np.argsort(cost, kind="stable")
        sort = sort[np.argsort(o[sort], kind="stable")]
    else:
        sort = np.lexsort((n, cost, o))
    o, n = o[sort], n[sort]
    top = np.arange(len(o)) - np.searchsorted(o, o) < k  # among the first k of its order
    o, n = o[top], n[top]
    return o, n, _reasons(b, o, n, excluded)


def _below(b: Batch, rows: np.ndarray, threshold: np.ndarray, per_node: tuple[np.ndarray, np.ndarray],
           bound: np.ndarray | None = None):
    """Pairs (order, node) of delivery orders `rows` at nodes that deliver
    whose bound is below the row's threshold (with a margin for rounding:
    the bound's sums are not the cost's). With straight-line travel the
    bound grows with distance at least at the least rate any node has, so
    only the pairs that near are bounded (a pass over the distances alone)."""
    threshold = threshold + 1e-9 * (1 + np.abs(threshold))
    if bound is None:
        rate, base = per_node
        if b.road is None and len(rows) and rate.min() > 0:
            least = base.min() - (max(0.0, b.weights.home_bonus) if (b.home[rows] >= 0).any() else 0.0)
            within = np.full(len(b.orders), -np.inf)
            within[rows] = (threshold - least) / rate.min()
            flat = np.flatnonzero(b.dist < within[:, None])
            o = flat // len(rate)
            n = flat - o * len(rate)
            within[rows] = threshold
            near = _bound_at(b, o, n, per_node) < within[o]
            return o[near], n[near]
        bound = _bound(b, rows, per_node)
    r, n = np.nonzero(bound < threshold[:, None])
    return rows[r], n


def _per_node(b: Batch) -> tuple[np.ndarray, np.ndarray]:
    """Each node's bound per km with straight-line travel, and at distance 0
    (preparation, operating cost and the least lateness risk; infinite at
    nodes that do not deliver): the cost less its lateness risk is
    rate * km + base, less the home bonus at the member's home node."""
    w, nodes = b.weights, b.nodes
    rate = nodes.cost_per_km + 60 / nodes.speed_kmh * w.per_minute
    base = nodes.prep * w.per_minute + nodes.operating * w.operating + min(0.0, w.lateness) \
        + np.where(nodes.delivers, 0.0, np.inf)
    return rate, base


def _bound(b: Batch, rows: np.ndarray, per_node: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(rows, nodes): a lower bound on those delivery orders' cost at every
    node (`_per_node`; with road times their minutes in place of the km's),
    made from whole rows: a third of the time of `_bound_at` on every pair."""
    w, (rate, base) = b.weights, per_node
    if b.road is None:
        out = b.dist[rows] * rate
    else:
        out = b.dist[rows] * b.nodes.cost_per_km
        out += b.road[rows] * w.per_minute
    out += base
    home = b.home[rows]
    member = np.flatnonzero(home >= 0)
    out[member, home[member]] -= max(0.0, w.home_bonus)
    return out


def _bound_at(b: Batch, o: np.ndarray, n: np.ndarray, per_node: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """`_bound` at pairs (order, node) of delivery orders, with straight-line travel."""
    rate, base = per_node
    out = b.dist[o, n] * rate[n]
    out += base[n]
    out[b.home[o] == n] -= max(0.0, b.weights.home_bonus)
    return out


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
    code[(code == TOO_FAR) & b.pickup[lo]] = NOT_PICKUP_STORE
    out = [_TEXTS[c] for c in code.tolist()]  # the texts that name nothing, then those that do
    for k in np.flatnonzero(code == TOO_LATE).tolist():
        out[k] = f"too late (ready in {eta[k]:.0f} min)"
    nostock = np.flatnonzero(code == NO_STOCK)
    if len(nostock):
        skus = list(chain.from_iterable([o.lines for o in b.orders]))  # the batch's lines, as line_ptr counts them
        for k, line in zip(nostock.tolist(), (b.problem.line_ptr[lo[nostock]] + short[nostock]).tolist()):
            out[k] = "no stock of SKU " + skus[line]
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
