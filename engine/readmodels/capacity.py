"""Orders each node takes per slot, and the capacity left there for the
router: parts routed now count in the slot they are routed in; an order
booked for a later slot counts in the slot its window starts in, at the
nodes it is booked or routed to, from its booking until it is cancelled or
rejected. Fed by Order.Routed and, for booked orders, Booked, Declined,
Expired, Cancelled and Rejected."""
from __future__ import annotations

from typing import Any, Callable
from uuid import UUID

import numpy as np

from domain.network import Network
from domain.order import Order


class CapacityView:
    def __init__(self, network: Network):
        self.slot_used: dict[str, tuple[int, int]] = {}  # node -> (slot, parts routed in it)
        self._slot_seconds = {n.id: n.slot_minutes * 60 for n in network.nodes}
        self._capacity = np.array([n.capacity_per_slot for n in network.nodes], dtype=np.int64)
        self._node_row = {n.id: i for i, n in enumerate(network.nodes)}
        # slot_used as arrays, for capacity_left per batch; brought up to date there
        self._slot_len = np.array([n.slot_minutes * 60 for n in network.nodes], dtype=float)
        self._slot = np.full(len(network.nodes), -1, dtype=np.int64)
        self._used = np.zeros(len(network.nodes), dtype=np.int64)
        self._slot_dirty: set[str] = set()
        # booked orders: where each counts (below), and node -> slot -> orders counted there
        self.booked: dict[UUID, list[Any]] = {}  # [window start, nodes, still as planned (not yet routed)]
        self.slot_booked: dict[str, dict[int, int]] = {}

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        return {Order.Routed: self._routed, Order.Booked: self._booked, Order.Declined: self._left,
                Order.Expired: self._left, Order.Cancelled: self._ended, Order.Rejected: self._ended}

    def slot_of(self, node: str, t: float) -> int:
        return int(t // self._slot_seconds.get(node, 1800))

    def capacity_left(self, now: float, at: float | None = None) -> np.ndarray:
        """Orders each node can still take in the slot `at` (default: `now`)
        falls in, in the network's node order, as of `now`."""
        if self._slot_dirty:
            for node in self._slot_dirty:
                i = self._node_row.get(node)
                if i is not None:
                    self._slot[i], self._used[i] = self.slot_used[node]
            self._slot_dirty.clear()
        when = now if at is None else at
        current = self._slot == (when // self._slot_len).astype(np.int64)
        left = np.where(current, np.maximum(self._capacity - self._used, 0), self._capacity)
        if self.slot_booked:  # only once some order was booked for a later slot
            rows = self._node_row
            for node, slots in self.slot_booked.items():
                n = slots.get(self.slot_of(node, when))
                if n and (i := rows.get(node)) is not None:
                    left[i] = max(left[i] - n, 0)
        return left

    def _routed(self, e: Any) -> None:
        at, slot_used, seconds, dirty = e.at, self.slot_used, self._slot_seconds, self._slot_dirty
        if self.booked and e.originator_id in self.booked:
            b = self.booked[e.originator_id]
            start, nodes, planned = b
            if planned:  # first routed: it counts where it is served, no longer where it was planned
                self._count(nodes, start, -1)
                nodes = b[1] = []
                b[2] = False
            if at < start:  # routed before its slot: it counts there
                parts = [p.node for p in e.parts]
                nodes.extend(parts)
                self._count(parts, start, +1)
                return
        for p in e.parts:  # routed now: it counts in this slot
            node = p.node
            slot = int(at // seconds.get(node, 1800))
            current, used = slot_used.get(node, (slot, 0))
            slot_used[node] = (slot, used + 1 if current == slot else 1)
            dirty.add(node)

    def _booked(self, e: Any) -> None:
        self.booked[e.originator_id] = [e.window_start, list(e.nodes), True]
        self._count(e.nodes, e.window_start, +1)

    def _left(self, e: Any) -> None:
        """A part declined or expired: it no longer counts at that node."""
        b = self.booked.get(e.originator_id)
        if b is not None and e.node in b[1]:
            b[1].remove(e.node)
            self._count([e.node], b[0], -1)

    def _ended(self, e: Any) -> None:
        """Cancelled or rejected: its slot is free again."""
        b = self.booked.pop(e.originator_id, None)
        if b is not None:
            self._count(b[1], b[0], -1)

    def _count(self, nodes: list[str], start: float, delta: int) -> None:
        for node in nodes:
            slots = self.slot_booked.setdefault(node, {})
            slot = self.slot_of(node, start)
            n = slots.get(slot, 0) + delta
            if n > 0:
                slots[slot] = n
            else:
                slots.pop(slot, None)
                if not slots:
                    del self.slot_booked[node]
