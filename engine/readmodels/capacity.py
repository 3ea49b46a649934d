"""Parts routed to each node in its current slot, and the capacity left
there for the router. Fed by Order.Routed."""
from __future__ import annotations

from typing import Any, Callable

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

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        return {Order.Routed: self._routed}

    def capacity_left(self, now: float) -> np.ndarray:
        """Parts each node can still take in the slot `now` falls in, in the network's node order."""
        if self._slot_dirty:
            for node in self._slot_dirty:
                i = self._node_row.get(node)
                if i is not None:
                    self._slot[i], self._used[i] = self.slot_used[node]
            self._slot_dirty.clear()
        current = self._slot == (now // self._slot_len).astype(np.int64)
        return np.where(current, np.maximum(self._capacity - self._used, 0), self._capacity)

    def _routed(self, e: Any) -> None:
        at, slot_used, seconds, dirty = e.at, self.slot_used, self._slot_seconds, self._slot_dirty
        for p in e.parts:
            node = p.node
            slot = int(at // seconds.get(node, 1800))
            current, used = slot_used.get(node, (slot, 0))
            slot_used[node] = (slot, used + 1 if current == slot else 1)
            dirty.add(node)
