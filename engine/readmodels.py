"""Read models: projections of the stored events, never queries over
aggregates. The engine applies each committed event in commit order; a
rebuild applies the same events from the store and must reach the same state.

- AtpView: on hand / reserved / safety per node x SKU as numpy arrays (the
  router's view of stock);
- OrderView: status, parts and first answer of every order, the orders that
  wait for routing and the parts that wait for the node's decision;
- capacity used per node in its current slot;
- KPIs, computed from the order records.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Iterable
from uuid import UUID

import msgspec
import numpy as np

from domain.network import Network


_MANY = 16  # lines from which one numpy call beats a Python loop
_ARRAYS = ("on_hand", "reserved", "safety")


class AtpView:
    def __init__(self, node_ids: list[str], sku_ids: list[str]):
        self.node_ids = list(node_ids)
        self.sku_ids = list(sku_ids)
        self.node_index = {n: i for i, n in enumerate(self.node_ids)}
        self.sku_index = {s: j for j, s in enumerate(self.sku_ids)}
        shape = (len(self.node_ids), len(self.sku_ids))
        self._cells: dict[str, memoryview] = {}
        self.on_hand = np.zeros(shape, dtype=np.int64)
        self.reserved = np.zeros(shape, dtype=np.int64)
        self.safety = np.zeros(shape, dtype=np.int64)
        self.rows: dict[UUID, int] = {}  # inventory aggregate id -> node row
        self._available: np.ndarray | None = None  # kept up to date row by row: the matrix can be 600 x 2,000
        self._dirty: set[int] = set()

    def __setattr__(self, name: str, value: Any) -> None:
        """A memoryview over each array, made whenever one is set (grown, or set from
        outside): a single cell read and written through one costs half of numpy's
        scalar indexing (most events move 1-5 lines)."""
        super().__setattr__(name, value)
        if name in _ARRAYS:
            self._cells[name] = memoryview(value)

    def atp(self) -> np.ndarray:
        """Available to promise, never below zero (POS may eat safety stock). Read-only."""
        if self._available is None or self._available.shape != self.on_hand.shape:
            self._available = np.maximum(self.on_hand - self.reserved - self.safety, 0)
        elif self._dirty:
            rows = sorted(self._dirty)
            self._available[rows] = np.maximum(self.on_hand[rows] - self.reserved[rows] - self.safety[rows], 0)
        self._dirty.clear()
        view = self._available.view()
        view.flags.writeable = False
        return view

    def touch(self, row: int) -> None:
        self._dirty.add(row)

    def row(self, node: str) -> int:
        return self._index(node, self.node_ids, self.node_index, axis=0)

    def col(self, sku: str) -> int:
        return self._index(sku, self.sku_ids, self.sku_index, axis=1)

    def _index(self, key: str, keys: list[str], index: dict[str, int], axis: int) -> int:
        """The row or column of a node or SKU, added (zeros) if the network did not list it."""
        i = index.get(key)
        if i is None:
            i = len(keys)
            keys.append(key)
            index[key] = i
            pad = [(0, 0), (0, 0)]
            pad[axis] = (0, 1)
            for name in _ARRAYS:
                setattr(self, name, np.pad(getattr(self, name), pad))
        return i

    def add(self, name: str, row: int, lines: dict[str, int], sign: int) -> None:
        """Adds sign x lines to one node's row of on_hand, reserved or safety."""
        if len(lines) > _MANY:  # a delivery of the whole assortment: one numpy call, not one per line
            cols = self.cols(lines)
            getattr(self, name)[row, cols] += sign * np.fromiter(lines.values(), np.int64, len(lines))
        else:
            index, cells = self.sku_index, self._cells[name]
            for sku, qty in lines.items():
                j = index.get(sku)
                if j is None:
                    j = self.col(sku)
                    cells = self._cells[name]  # the arrays grew: new ones
                cells[row, j] += sign * qty
        self._dirty.add(row)

    def cols(self, skus: Iterable[str]) -> list[int]:
        index = self.sku_index
        return [self.col(s) if (j := index.get(s)) is None else j for s in skus]

    def state(self) -> dict[str, Any]:
        """Comparable snapshot, keyed by names so index order does not matter."""
        out: dict[str, Any] = {}
        for n, i in self.node_index.items():
            for s, j in self.sku_index.items():
                v = (int(self.on_hand[i, j]), int(self.reserved[i, j]), int(self.safety[i, j]))
                if v != (0, 0, 0):
                    out[f"{n}/{s}"] = v
        return out


class PartRecord(msgspec.Struct, gc=False):
    node: str
    lines: dict[str, int]
    eta_at: float
    status: str
    routed_at: float


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
    first: dict[str, Any] | None = None  # the first routing answer, returned to repeats
    handed_over_at: float | None = None
    late: bool = False  # any part handed over after the promise
    distance_km: float = 0.0
    delivery_cost: float = 0.0


PROGRESS = ("routed", "accepted", "picked", "ready", "dispatched", "handed_over")


_RANK = {status: i for i, status in enumerate(PROGRESS)}


def _least(parts: dict[str, PartRecord]) -> str:
    if len(parts) == 1:  # most orders: one part
        return next(iter(parts.values())).status
    return min((p.status for p in parts.values()), key=_RANK.__getitem__)


_KEYS: dict[UUID, str] = {}  # order id -> its key in the views, for the order's next events


def _key(order_id: UUID) -> str:
    """str(order_id), made once per order: it was a twentieth of a replay."""
    key = _KEYS.get(order_id)
    if key is None:
        if len(_KEYS) >= 50_000:  # bounded: an order's events come within hours
            _KEYS.clear()
        key = _KEYS[order_id] = str(order_id)
    return key


_LOSSES: dict[Any, dict[str, str]] = {}  # Loss -> its record, shared: a few thousand (node, reason) pairs


def _losses(lost: Iterable[Any]) -> list[dict[str, str]]:
    """The losing candidates as records. One dict per (node, reason) is shared
    by every order that lost there: nothing changes them, and three per order
    were a tenth of the read models' memory."""
    out = []
    for x in lost:
        d = _LOSSES.get(x)
        if d is None:
            if len(_LOSSES) >= 100_000:
                _LOSSES.clear()
            d = _LOSSES[x] = {"node": x.node, "reason": x.reason}
        out.append(d)
    return out


_UNSEEN = object()


class Projections:
    """All read models, fed one event at a time in commit order. Records keep
    the event's own dicts where neither side changes them (a routed part's
    lines and cost terms: made for the event, never changed by the order)."""

    def __init__(self, network: Network):
        self.network = network
        self.atp = AtpView([n.id for n in network.nodes], [s.id for s in network.skus])
        self.orders: dict[str, OrderRecord] = {}
        self.to_route: dict[str, None] = {}  # order ids waiting for a node, in arrival order
        self.awaiting: dict[tuple[str, str], float] = {}  # (order, node) -> routed_at
        self.slot_used: dict[str, tuple[int, int]] = {}  # node -> (slot, parts routed in it)
        self.members: dict[str, dict[str, Any]] = {}  # member -> node, clerk, dealer, points
        self.member_ids: dict[UUID, str] = {}
        self.signups: Counter[str] = Counter()
        self.pos = {"sales": 0, "units": 0}
        self.last_notification_id = 0
        self._slot_seconds = {n.id: n.slot_minutes * 60 for n in network.nodes}
        self._capacity = np.array([n.capacity_per_slot for n in network.nodes], dtype=np.int64)
        self._node_row = {n.id: i for i, n in enumerate(network.nodes)}
        # slot_used as arrays, for capacity_left per batch; brought up to date there
        self._slot_len = np.array([n.slot_minutes * 60 for n in network.nodes], dtype=float)
        self._slot = np.full(len(network.nodes), -1, dtype=np.int64)
        self._used = np.zeros(len(network.nodes), dtype=np.int64)
        self._slot_dirty: set[str] = set()
        self._handlers: dict[str, Callable[[Any], None]] = {
            "NodeInventory.Opened": self._inventory_opened,
            "NodeInventory.Received": self._received,
            "NodeInventory.Adjusted": self._adjusted,
            "NodeInventory.Counted": self._adjusted,
            "NodeInventory.SafetyStockSet": self._safety_set,
            "NodeInventory.Reserved": self._reserved,
            "NodeInventory.Released": self._released,
            "NodeInventory.Consumed": self._consumed,
            "NodeInventory.SoldOverCounter": self._sold,
            "Order.Placed": self._placed,
            "Order.Routed": self._routed,
            "Order.Rejected": self._rejected,
            "Order.Accepted": self._part_step("accepted"),
            "Order.Declined": self._given_back,
            "Order.Expired": self._given_back,
            "Order.Picked": self._part_step("picked"),
            "Order.ReadyForPickup": self._part_step("ready"),
            "Order.Dispatched": self._part_step("dispatched"),
            "Order.HandedOver": self._handed_over,
            "Order.Cancelled": self._cancelled,
            "Member.SignedUp": self._signed_up,
            "Member.IdentityBound": self._identity_bound,
            "Member.PointsEarned": lambda e: self._points(e, e.points),
            "Member.PointsRedeemed": lambda e: self._points(e, -e.points),
        }
        self._by_class: dict[type, Callable[[Any], None] | None] = {}

    # -- feeding -------------------------------------------------------
    def apply(self, event: Any, notification_id: int | None = None) -> None:
        handler = self._by_class.get(event.__class__, _UNSEEN)
        if handler is _UNSEEN:
            handler = self._by_class[event.__class__] = self._handlers.get(event.__class__.__qualname__)
        if handler is not None:
            handler(event)
        if notification_id is not None:
            self.last_notification_id = notification_id

    def apply_all(self, events: Iterable[Any]) -> None:
        for e in events:
            self.apply(e)

    # -- inventory -----------------------------------------------------
    def _inventory_opened(self, e: Any) -> None:
        self.atp.rows[e.originator_id] = self.atp.row(e.node_id)

    def _received(self, e: Any) -> None:
        self.atp.add("on_hand", self.atp.rows[e.originator_id], e.lines, 1)

    def _adjusted(self, e: Any) -> None:
        self.atp.add("on_hand", self.atp.rows[e.originator_id], {e.sku: e.delta}, 1)

    def _reserved(self, e: Any) -> None:
        self.atp.add("reserved", self.atp.rows[e.originator_id], e.lines, 1)

    def _released(self, e: Any) -> None:
        self.atp.add("reserved", self.atp.rows[e.originator_id], e.lines, -1)

    def _safety_set(self, e: Any) -> None:
        row = self.atp.rows[e.originator_id]
        cols = self.atp.cols(e.levels)
        self.atp.safety[row, cols] = np.fromiter(e.levels.values(), np.int64, len(cols))
        self.atp.touch(row)

    def _consumed(self, e: Any) -> None:
        atp = self.atp
        row = atp.rows[e.originator_id]
        atp.add("reserved", row, e.lines, -1)
        atp.add("on_hand", row, e.lines, -1)

    def _sold(self, e: Any) -> None:
        self.atp.add("on_hand", self.atp.rows[e.originator_id], e.lines, -1)
        self.pos["sales"] += 1
        self.pos["units"] += sum(e.lines.values())

    # -- orders --------------------------------------------------------
    def _placed(self, e: Any) -> None:
        oid = _key(e.originator_id)
        lines = e.lines
        self.orders[oid] = OrderRecord(
            oid, e.channel, e.external_id, e.mode, e.value, dict(lines), e.at, e.promised_at, e.member,
            e.pickup_node, pending=dict(lines),
        )
        self.to_route[oid] = None

    def _routed(self, e: Any) -> None:
        key = _key(e.originator_id)
        r = self.orders[key]
        at = e.at
        parts, costs, awaiting, slot_used = r.parts, r.cost, self.awaiting, self.slot_used
        for p in e.parts:
            node, cost = p.node, p.cost
            parts[node] = PartRecord(node, p.lines, p.eta_at, "routed", at)
            costs[node] = cost
            r.distance_km += cost.get("distance_km", 0.0)
            r.delivery_cost += cost.get("delivery", 0.0)
            awaiting[(key, node)] = at
            # the node's capacity in its current slot
            slot = int(at // self._slot_seconds.get(node, 1800))
            current, used = slot_used.get(node, (slot, 0))
            slot_used[node] = (slot, used + 1 if current == slot else 1)
            self._slot_dirty.add(node)
        r.pending = {}
        r.lost = lost = _losses(e.lost)
        if len(parts) > r.max_parts:
            r.max_parts = len(parts)
        r.status = _least(parts)
        if r.first is None:
            r.first_answer_at = at
            r.first = {
                "outcome": "routed",
                "parts": [{"node": p.node, "lines": p.lines, "eta_at": p.eta_at, "cost": p.cost} for p in e.parts],
                "lost": lost,
                "reason": None,
            }
        self.to_route.pop(key, None)

    def _close(self, r: OrderRecord, status: str, reason: str | None, at: float) -> None:
        for node in r.parts:
            self.awaiting.pop((r.order_id, node), None)
        r.status = status
        r.reason = reason
        r.parts = {} if status != "completed" else r.parts
        r.pending = {}
        self.to_route.pop(r.order_id, None)
        if r.first_answer_at is None:
            r.first_answer_at = at

    def _rejected(self, e: Any) -> None:
        r = self.orders[_key(e.originator_id)]
        r.lost = _losses(e.lost)
        if r.first is None:
            r.first = {"outcome": "rejected", "parts": [], "lost": r.lost, "reason": e.reason}
        self._close(r, "rejected", e.reason, e.at)

    def _cancelled(self, e: Any) -> None:
        self._close(self.orders[_key(e.originator_id)], "cancelled", e.reason, e.at)

    def _part_step(self, status: str) -> Callable[[Any], None]:
        """The handler of a part's step to `status` (accepted, picked, ...)."""
        accepted = status == "accepted"

        def step(e: Any) -> None:
            key = _key(e.originator_id)
            r = self.orders[key]
            parts = r.parts
            parts[e.node].status = status
            if accepted:
                self.awaiting.pop((key, e.node), None)
            r.status = "placed" if r.pending else _least(parts)

        return step

    def _given_back(self, e: Any) -> None:
        r = self.orders[_key(e.originator_id)]
        part = r.parts.pop(e.node)
        self.awaiting.pop((r.order_id, e.node), None)
        for sku, qty in part.lines.items():
            r.pending[sku] = r.pending.get(sku, 0) + qty
        r.reroutes += 1
        r.status = "placed"
        self.to_route[r.order_id] = None

    def _handed_over(self, e: Any) -> None:
        r = self.orders[_key(e.originator_id)]
        parts = r.parts
        parts[e.node].status = "handed_over"
        at = e.at
        if at > r.promised_at + 1e-9:
            r.late = True
        if r.handed_over_at is None or at > r.handed_over_at:
            r.handed_over_at = at
        if not r.pending and all(p.status == "handed_over" for p in parts.values()):
            r.status = "completed"

    # -- members -------------------------------------------------------
    def _signed_up(self, e: Any) -> None:
        self.members[e.member] = {"node": e.node, "clerk": e.clerk, "dealer": e.dealer, "points": 0, "identities": {}}
        self.member_ids[e.originator_id] = e.member
        self.signups[e.node] += 1

    def _identity_bound(self, e: Any) -> None:
        self.members[self.member_ids[e.originator_id]]["identities"][e.kind] = e.external_id

    def _points(self, e: Any, delta: int) -> None:
        self.members[self.member_ids[e.originator_id]]["points"] += delta

    # -- queries -------------------------------------------------------
    def capacity_left(self, now: float) -> np.ndarray:
        if self._slot_dirty:
            for node in self._slot_dirty:
                i = self._node_row.get(node)
                if i is not None:
                    self._slot[i], self._used[i] = self.slot_used[node]
            self._slot_dirty.clear()
        current = self._slot == (now // self._slot_len).astype(np.int64)
        return np.where(current, np.maximum(self._capacity - self._used, 0), self._capacity)

    def kpis(self) -> dict[str, Any]:
        by_status = Counter(r.status for r in self.orders.values())
        decided = [r for r in self.orders.values() if r.max_parts > 0 or r.status == "rejected"]
        routed = [r for r in self.orders.values() if r.max_parts > 0]
        done = [r for r in self.orders.values() if r.status == "completed"]
        served_by_kitchen = 0
        kinds = {n.id: n.kind for n in self.network.nodes}
        for r in done:
            if any(kinds.get(node) == "kitchen" for node in r.parts):
                served_by_kitchen += 1
        n_decided = len(decided)
        return {
            "orders": len(self.orders),
            "orders_by_status": dict(sorted(by_status.items())),
            "fill_rate": _ratio(len(routed), n_decided),
            "on_time_rate": _ratio(sum(1 for r in done if not r.late), len(done)),
            "split_rate": _ratio(sum(1 for r in routed if r.max_parts > 1), len(routed)),
            "average_order_value": round(sum(r.value for r in done) / len(done), 2) if done else None,
            "reroutes": sum(r.reroutes for r in self.orders.values()),
            "kitchen_share": _ratio(served_by_kitchen, len(done)),
            "members_by_node": dict(sorted(self.signups.items())),
            "pos_sales": self.pos["sales"],
            "pos_units": self.pos["units"],
        }

    def state(self) -> dict[str, Any]:
        """Everything, in comparable form (used to prove a rebuild equals live)."""
        return {
            "atp": self.atp.state(),
            "orders": {k: msgspec.to_builtins(v) for k, v in self.orders.items()},
            "to_route": list(self.to_route),
            "awaiting": sorted(f"{o}/{n}@{t}" for (o, n), t in self.awaiting.items()),
            "slot_used": dict(sorted(self.slot_used.items())),
            "members": self.members,
            "kpis": self.kpis(),
        }


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 6) if b else None

