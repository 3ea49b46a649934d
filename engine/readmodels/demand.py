"""Demand per node and SKU: what was sold (online at hand-over, over the
counter) in time buckets, and what was lost or at risk: online orders
rejected, by cause; counter customers who went without (`record_pos_short`);
quotes that found a SKU short (`record_quote_short`). The replenishment
policy (engine/replenish.py) reads it.

Sales and rejections are projections of events (a rebuild gives the same);
counter and quote shortages are observations no event records (a counter
customer who went without buys nothing), so they live in memory only and are
left out of `state()`.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from domain.inventory import NodeInventory
from domain.order import Order

BUCKET_S = 900  # sales are counted per quarter hour: a delivery schedule's times fall on them
KEEP_DAYS = 30  # buckets older than this are dropped (a policy looks back at most 28 days)

# why a rejected order found no node, from the router's explanations (engine/routing/explain.py), most binding first
CAUSES = (("capacity", "capacity full"), ("no_stock", "no stock"), ("closed", "closed"),
          ("late", "too late"), ("out_of_reach", "too far"))

# the kinds of demand counted per bucket
SOLD_ONLINE, SOLD_COUNTER, LOST_ONLINE, SHORT_COUNTER, SHORT_QUOTE = (
    "sold_online", "sold_counter", "lost_online", "short_counter", "short_quote")
KINDS = (SOLD_ONLINE, SOLD_COUNTER, LOST_ONLINE, SHORT_COUNTER, SHORT_QUOTE)

Cell = tuple[str, str]  # (node, SKU)


def cause(losses: Iterable[str], reason: str | None = None) -> str:
    """A rejection's cause from its losing candidates' reasons (and the order's own): the most binding."""
    reasons = [*losses, reason or ""]
    for name, text in CAUSES:
        if any(text in r for r in reasons):
            return name
    return "unexplained"


class DemandView:
    def __init__(self, orders: dict[str, Any]):
        self._orders = orders  # the order view's records: a rejected order's lines are read there
        self.buckets: dict[str, dict[int, dict[Cell, int]]] = {k: {} for k in KINDS}
        self.lost: dict[Cell, dict[str, int]] = {}  # online units rejected per node and SKU, by cause
        self.short_counter: dict[Cell, int] = {}  # units counter customers went without (observed)
        self.short_quote: dict[Cell, int] = {}  # units quotes found short (observed)
        self.opened_at: float | None = None  # the first node inventory opened: demand is known from then
        self.seen_until = 0.0  # the latest event's time: demand is known up to then
        self._nodes: dict[Any, str] = {}  # inventory aggregate id -> node
        self._current: dict[str, tuple[int, dict[Cell, int]]] = {}  # kind -> its latest bucket (most events fall there)

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        return {
            NodeInventory.Opened: self._opened,
            NodeInventory.Consumed: self._consumed,
            NodeInventory.SoldOverCounter: self._sold,
            Order.Rejected: self._rejected,
        }

    # -- observations no event records ------------------------------------
    def record_pos_short(self, node: str, lines: dict[str, int], at: float) -> None:
        """Units a counter customer asked for and did not get at `node`."""
        self._count(SHORT_COUNTER, node, lines, at)
        _add_all(self.short_counter, node, lines)

    def record_quote_short(self, node: str, lines: dict[str, int], at: float) -> None:
        """Units a quote would have taken from `node` but found short there."""
        self._count(SHORT_QUOTE, node, lines, at)
        _add_all(self.short_quote, node, lines)

    # -- queries ----------------------------------------------------------
    def between(self, kind: str, start: float, end: float) -> dict[Cell, int]:
        """Units of one kind of demand per (node, SKU) in buckets starting in [start, end)."""
        lo, hi = -(-start // BUCKET_S), -(-end // BUCKET_S)  # buckets whose start is >= start and < end
        out: dict[Cell, int] = {}
        for b, cells in self.buckets[kind].items():
            if lo <= b < hi:
                for cell, q in cells.items():
                    out[cell] = out.get(cell, 0) + q
        return out

    def state(self) -> dict[str, Any]:
        """The event-fed part, comparable (shortages observed are not events: a rebuild has none)."""
        return {
            "sold": {k: {f"{b}/{n}/{s}": q for b, cells in sorted(self.buckets[k].items())
                         for (n, s), q in sorted(cells.items())} for k in (SOLD_ONLINE, SOLD_COUNTER, LOST_ONLINE)},
            "lost": {f"{n}/{s}": dict(sorted(c.items())) for (n, s), c in sorted(self.lost.items())},
            "opened_at": self.opened_at,
            "seen_until": self.seen_until,
        }

    def since(self, now: float) -> float | None:
        """From when demand is known: the first node's opening, or the oldest
        bucket kept at `now`; None before any node opened."""
        if self.opened_at is None:
            return None
        return max(self.opened_at, (int(now // BUCKET_S) - KEEP_DAYS * 86_400 // BUCKET_S) * BUCKET_S)

    # -- handlers ---------------------------------------------------------
    def _opened(self, e: Any) -> None:
        self._nodes[e.originator_id] = e.node_id
        if self.opened_at is None or e.at < self.opened_at:
            self.opened_at = e.at
        self._seen(e.at)

    def _seen(self, at: float) -> None:
        if at > self.seen_until:
            self.seen_until = at

    def _consumed(self, e: Any) -> None:
        self._count(SOLD_ONLINE, self._nodes[e.originator_id], e.lines, e.at)
        if e.at > self.seen_until:
            self.seen_until = e.at

    def _sold(self, e: Any) -> None:
        self._count(SOLD_COUNTER, self._nodes[e.originator_id], e.lines, e.at)
        if e.at > self.seen_until:
            self.seen_until = e.at

    def _rejected(self, e: Any) -> None:
        """The order's units are lost at the node that would have served it:
        its pickup store, else the cheapest candidate that lost (the first
        named); an order no node could even be considered for is lost nowhere."""
        self._seen(e.at)
        r = self._orders.get(str(e.originator_id))
        if r is None:
            return
        why = cause([x.reason for x in e.lost], e.reason)
        node = r.pickup_node or (e.lost[0].node if e.lost else None)
        if why == "no_stock":  # the node that lacked stock: the first that lost for it
            node = next((x.node for x in e.lost if "no stock" in x.reason), node)
        if node is None:
            return
        if why == "no_stock":
            self._count(LOST_ONLINE, node, r.lines, e.at)
        for sku, q in r.lines.items():
            by = self.lost.setdefault((node, sku), {})
            by[why] = by.get(why, 0) + q

    def _count(self, kind: str, node: str, lines: dict[str, int], at: float) -> None:
        b = int(at // BUCKET_S)
        current = self._current.get(kind)
        if current is not None and current[0] == b:
            cells = current[1]
        else:
            cells = self._bucket(kind, b)
        for sku, q in lines.items():
            key = (node, sku)
            cells[key] = cells.get(key, 0) + q

    def _bucket(self, kind: str, b: int) -> dict[Cell, int]:
        buckets = self.buckets[kind]
        cells = buckets.get(b)
        if cells is None:
            cells = buckets[b] = {}
            oldest = b - KEEP_DAYS * 86_400 // BUCKET_S
            for old in [x for x in buckets if x < oldest]:
                del buckets[old]
        if b >= self._current.get(kind, (b - 1, None))[0]:
            self._current[kind] = (b, cells)
        return cells


def _add_all(totals: dict[Cell, int], node: str, lines: dict[str, int]) -> None:
    for sku, q in lines.items():
        totals[(node, sku)] = totals.get((node, sku), 0) + q
