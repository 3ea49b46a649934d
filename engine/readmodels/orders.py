"""Orders as the engine answers about them: status, parts and first answer
of every order, the orders that wait for routing and the parts that wait
for their node's decision. Fed by the Order events.

Records keep the event's own dicts where neither side changes them (a
routed part's lines and cost terms: made for the event, never changed by
the order).

With a retention (`retain_s`), an order's record leaves memory that long
after the order finished (completed, rejected or cancelled), by the
events' own times, so a replay keeps the same ones. A finished order is
read back from its stored events (`events_of`) when asked for: by a status
query, a later refund, or a repeat of its submission."""
from __future__ import annotations

import heapq
from typing import Any, Callable, Iterable
from uuid import UUID

import msgspec

from domain import ids
from domain.order import PROGRESS, Order
from domain.quantities import NO_LINES, merge_lines
from engine.readmodels.retention import EventsOf, replayed, retention


class PartRecord(msgspec.Struct, gc=False):
    node: str
    lines: dict[str, int]
    eta_at: float
    status: str
    routed_at: float


class FirstAnswer(msgspec.Struct, gc=False):
    """An order's first routing answer, returned to repeats (a struct: a dict
    per order took four times the memory; dumped as the same dict)."""

    outcome: str
    parts: list[Any]  # the Routed event's own parts (frozen: node, lines, eta_at, cost); none for a rejection
    lost: list[dict[str, str]]
    reason: str | None


class OrderRecord(msgspec.Struct, gc=False):
    order_id: str
    channel: str
    external_id: str
    mode: str
    value: float
    lines: dict[str, int]
    placed_at: float
    promised_at: float
    member: str | None
    pickup_node: str | None
    status: str = "placed"
    parts: dict[str, PartRecord] = {}
    pending: dict[str, int] = {}
    reroutes: int = 0
    max_parts: int = 0
    reason: str | None = None
    lost: list[dict[str, str]] = []  # the latest routing's losing candidates
    cost: dict[str, dict[str, float]] = {}  # node -> cost terms of its routing
    first_answer_at: float | None = None
    first: FirstAnswer | None = None
    handed_over_at: float | None = None
    late: bool = False  # any part handed over after the promise
    distance_km: float = 0.0
    delivery_cost: float = 0.0
    paid: int | None = None  # minor units; None: placed before amounts were recorded
    refunded: int = 0  # minor units given back (refunds, cancellation, rejection)
    points_used: int = 0
    points_returned: int = 0
    refunds: tuple[str, ...] = ()  # refund ids, in the order made (immutable: none made per order placed)
    returned: dict[str, int] | None = None  # units refunded, by SKU
    shorted: dict[str, int] | None = None  # units dropped unserved after goods were handed over
    region: str | None = None  # its home region where partitions are owned (moved by a transfer)
    window_start: float | None = None  # a booked order's slot (epoch seconds) ...
    window_end: float | None = None
    due_at: float | None = None  # ... and when it is routed, its stock reserved
    booked_nodes: list[str] | None = None  # where it was planned


def held(r: OrderRecord) -> dict[str, int]:
    """Units of an order the customer holds: handed over and not returned."""
    out: dict[str, int] = {}
    for part in r.parts.values():
        if part.status == "handed_over":
            for sku, q in part.lines.items():
                out[sku] = out.get(sku, 0) + q
    returned, shorted = r.returned or {}, r.shorted or {}  # units refunded include the shorted ones
    return {sku: q - returned.get(sku, 0) + shorted.get(sku, 0) for sku, q in out.items()}


_RANK = {status: i for i, status in enumerate(PROGRESS)}


def _least(parts: dict[str, PartRecord]) -> str:
    if len(parts) == 1:  # most orders: one part
        return next(iter(parts.values())).status
    return min((p.status for p in parts.values()), key=_RANK.__getitem__)


FINISHED = ("completed", "rejected", "cancelled")


class OrderView:
    def __init__(self, retain_s: float | None = None, events_of: EventsOf | None = None) -> None:
        self.retention = retention(retain_s)  # of finished orders' records
        self.events_of = events_of
        self.retired = 0  # records that left memory
        self.orders: dict[str, OrderRecord] = {}
        self.to_route: dict[str, None] = {}  # order ids waiting for a node, in arrival order
        self.awaiting: dict[tuple[str, str], float] = {}  # (order, node) -> routed_at
        self._keys: dict[UUID, str] = {}  # order id -> its key in `orders`, for the order's next events
        # orders stored under the uuid5 ids of before (domain.ids.order_id): the id their name has now -> theirs
        self.renamed: dict[UUID, UUID] = {}
        self._losses: dict[Any, dict[str, str]] = {}  # Loss -> its record, shared by every order that lost there
        self._due: list[tuple[float, str]] = []  # booked orders by due time (a heap; left ones dropped as met)
        self._due_now: dict[str, None] = {}  # booked orders due, until routed, rejected or cancelled

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        return {
            Order.Placed: self._placed,
            Order.Routed: self._routed,
            Order.Rejected: self._rejected,
            Order.Accepted: self._part_step("accepted"),
            Order.Declined: self._given_back,
            Order.Expired: self._given_back,
            Order.Picked: self._part_step("picked"),
            Order.ReadyForPickup: self._part_step("ready"),
            Order.Dispatched: self._part_step("dispatched"),
            Order.HandedOver: self._handed_over,
            Order.Cancelled: self._cancelled,
            Order.Refunded: self._refunded,
            Order.Transferred: self._transferred,
            Order.Shorted: self._shorted,
            Order.Booked: self._booked,
        }

    # -- caches --------------------------------------------------------
    def known_key(self, order_id: UUID, key: str) -> None:
        """`key` is str(order_id), already made by whoever placed the order: its events find it here."""
        keys = self._keys
        if len(keys) >= 50_000:
            keys.clear()
        keys[order_id] = key

    def stored_id(self, order_id: UUID) -> UUID:
        """The id an order is stored under: `order_id`, or the uuid5 of an
        order placed before domain.ids.order_id ordered ids (`renamed`)."""
        renamed = self.renamed
        return renamed.get(order_id, order_id) if renamed else order_id

    def _key(self, order_id: UUID) -> str:
        """str(order_id), made once per order: formatting it again for each
        of the order's events was a measurable share of a replay."""
        keys = self._keys
        key = keys.get(order_id)
        if key is None:
            if len(keys) >= 50_000:  # bounded: an order's events come within hours
                keys.clear()
            key = keys[order_id] = str(order_id)
        return key

    def _lost(self, lost: Iterable[Any]) -> list[dict[str, str]]:
        """The losing candidates as records. One dict per (node, reason) is
        shared by every order that lost there: nothing changes them, and one
        per loss per order took much of the read models' memory."""
        cache = self._losses
        out = []
        for x in lost:
            d = cache.get(x)
            if d is None:
                if len(cache) >= 100_000:
                    cache.clear()
                d = cache[x] = {"node": x.node, "reason": x.reason}
            out.append(d)
        return out

    # -- handlers ------------------------------------------------------
    def _placed(self, e: Any) -> None:
        stored = e.originator_id
        oid = self._keys.get(stored) or self._key(stored)
        # only a uuid5 (version 5: placed before ordered ids, or a name not ending in digits) can differ from
        # today's id; the version read from the bits, not UUID.version's variant checks, once per order placed
        if stored.int >> 76 & 0xF == 5 and (now := ids.order_id(e.channel, e.external_id)) != stored:
            self.renamed[now] = stored
        lines = e.lines
        money = e.money
        self.orders[oid] = OrderRecord(
            oid, e.channel, e.external_id, e.mode, e.value, lines, e.at, e.promised_at, e.member,
            e.pickup_node, pending=lines, paid=money.paid if money else None,
            points_used=money.points_used if money else 0, region=e.region,
        )
        self.to_route[oid] = None

    def _booked(self, e: Any) -> None:
        """Booked for a later slot: it waits for its due time, not for routing."""
        key = self._key(e.originator_id)
        r = self.orders[key]
        r.status = "booked"
        r.window_start, r.window_end, r.due_at, r.booked_nodes = e.window_start, e.window_end, e.due_at, list(e.nodes)
        r.promised_at = e.window_end
        r.lost = self._lost(e.lost)
        self.to_route.pop(key, None)
        heapq.heappush(self._due, (e.due_at, key))

    def due(self, now: float) -> list[str]:
        """Booked orders whose due time has come, still booked, oldest due first."""
        heap, due = self._due, self._due_now
        while heap and heap[0][0] <= now:
            due[heapq.heappop(heap)[1]] = None
        for key in [k for k in due if (r := self.orders.get(k)) is None or r.status != "booked"]:
            del due[key]
        return list(due)

    def _transferred(self, e: Any) -> None:
        """Moved to another region's partition: still waiting for routing, there."""
        self.orders[self._key(e.originator_id)].region = e.region

    # -- retention -----------------------------------------------------
    def _retire(self, key: str, at: float) -> None:
        """`key` finished at `at`: those finished the retention before leave memory (if still finished)."""
        orders = self.orders
        for old in self.retention.ended(at, key):
            r = orders.get(old)
            if r is not None and r.status in FINISHED:
                del orders[old]
                self.retired += 1

    def record(self, key: str, order_id: UUID) -> OrderRecord | None:
        """The order's record: in memory, or read back from the store (not
        kept: a status query of an old order brings nothing back into memory)."""
        r = self.orders.get(key)
        if r is None and self.events_of is not None:
            r = self._read_back(order_id, None)
        return r

    def _read_back(self, order_id: UUID, upto: int | None) -> OrderRecord | None:
        """The order's record built from its stored events (to version `upto`), as this view builds it live."""
        return replayed(OrderView(), self.events_of(order_id, upto)).orders.get(str(order_id))

    def _recalled(self, e: Any, key: str) -> OrderRecord:
        """The record of an order that left memory, as it stood before event `e`, kept again."""
        r = self._read_back(e.originator_id, e.originator_version - 1) if self.events_of is not None else None
        if r is None:
            raise KeyError(key)
        self.orders[key] = r
        self.retention.back(e.at, key)
        return r

    def forget(self, key: str) -> None:
        """Drops an order this engine no longer answers for (its partition moved, or the order did)."""
        r = self.orders.pop(key, None)
        self.to_route.pop(key, None)
        if r is not None:
            for node in r.parts:
                self.awaiting.pop((key, node), None)

    def _routed(self, e: Any) -> None:
        key = self._keys.get(e.originator_id) or self._key(e.originator_id)  # inline: one call less per event
        r = self.orders[key]
        at = e.at
        parts, costs, awaiting = r.parts, r.cost, self.awaiting
        for p in e.parts:
            node, cost = p.node, p.cost
            parts[node] = PartRecord(node, p.lines, p.eta_at, "routed", at)
            costs[node] = cost
            r.distance_km += cost.get("distance_km", 0.0)
            r.delivery_cost += cost.get("delivery", 0.0)
            awaiting[(key, node)] = at
        r.pending = NO_LINES
        r.lost = lost = self._lost(e.lost)
        if len(parts) > r.max_parts:
            r.max_parts = len(parts)
        r.status = _least(parts)
        if r.first is None:
            r.first_answer_at = at
            r.first = FirstAnswer("routed", e.parts, lost, None)
        self.to_route.pop(key, None)

    def _close(self, r: OrderRecord, status: str, reason: str | None, at: float) -> None:
        for node in r.parts:
            self.awaiting.pop((r.order_id, node), None)
        r.status = status
        r.reason = reason
        r.parts = {} if status != "completed" else r.parts
        r.pending = NO_LINES
        self.to_route.pop(r.order_id, None)
        if r.first_answer_at is None:
            r.first_answer_at = at
        if self.retention is not None:
            self._retire(r.order_id, at)

    def _rejected(self, e: Any) -> None:
        r = self.orders[self._key(e.originator_id)]
        r.lost = self._lost(e.lost)
        if r.first is None:
            r.first = FirstAnswer("rejected", [], r.lost, e.reason)
        self._close(r, "rejected", e.reason, e.at)

    def _refunded(self, e: Any) -> None:
        key = self._key(e.originator_id)
        r = self.orders.get(key) or self._recalled(e, key)  # a refund may come after the record left
        r.refunded += sum(e.cash.values()) + e.delivery_fee
        r.points_returned += sum(e.points.values())
        r.refunds = (*r.refunds, e.refund_id)
        r.returned = merge_lines(r.returned or {}, e.lines)

    def _shorted(self, e: Any) -> None:
        """The rest dropped after goods were handed over: the order ends with those once its open parts do."""
        r = self.orders[self._key(e.originator_id)]
        r.pending = NO_LINES
        r.shorted = merge_lines(r.shorted or {}, e.lines)
        r.reason = e.reason
        r.lost = self._lost(e.lost)
        self.to_route.pop(r.order_id, None)
        r.status = "completed" if all(p.status == "handed_over" for p in r.parts.values()) else _least(r.parts)
        if r.status == "completed" and self.retention is not None:
            self._retire(r.order_id, e.at)

    def _cancelled(self, e: Any) -> None:
        self._close(self.orders[self._key(e.originator_id)], "cancelled", e.reason, e.at)

    def _part_step(self, status: str) -> Callable[[Any], None]:
        """The handler of a part's step to `status` (accepted, picked, ...)."""
        accepted = status == "accepted"

        def step(e: Any) -> None:
            key = self._keys.get(e.originator_id) or self._key(e.originator_id)
            r = self.orders[key]
            parts = r.parts
            parts[e.node].status = status
            if accepted:
                self.awaiting.pop((key, e.node), None)
            r.status = "placed" if r.pending else _least(parts)

        return step

    def _given_back(self, e: Any) -> None:
        """Declined or expired: the part's lines wait for routing again."""
        r = self.orders[self._key(e.originator_id)]
        part = r.parts.pop(e.node)
        self.awaiting.pop((r.order_id, e.node), None)
        r.pending = merge_lines(r.pending, part.lines)
        r.reroutes += 1
        r.status = "placed"
        self.to_route[r.order_id] = None

    def _handed_over(self, e: Any) -> None:
        r = self.orders[self._keys.get(e.originator_id) or self._key(e.originator_id)]
        parts = r.parts
        parts[e.node].status = "handed_over"
        at = e.at
        if at > r.promised_at + 1e-9:
            r.late = True
        if r.handed_over_at is None or at > r.handed_over_at:
            r.handed_over_at = at
        if not r.pending and all(p.status == "handed_over" for p in parts.values()):
            r.status = "completed"
            if self.retention is not None:
                self._retire(r.order_id, at)
