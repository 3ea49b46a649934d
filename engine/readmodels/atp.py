"""Stock per node x SKU as numpy arrays: on hand, reserved and safety stock,
and the ATP matrix the router reads. Fed by the NodeInventory events."""
from __future__ import annotations

from typing import Any, Callable, Iterable
from uuid import UUID

import numpy as np

from domain.inventory import NodeInventory
from domain.quantities import available

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
        self.owners: dict[str, tuple[int, str]] = {}  # node -> (epoch, owner) of its last fence (scale-out)
        self._available: np.ndarray | None = None  # kept up to date row by row: the matrix can be 600 x 2,000
        self._dirty: set[int] = set()

    def __setattr__(self, name: str, value: Any) -> None:
        """A memoryview over each array, made whenever one is set (grown, or set from
        outside): a single cell read and written through one costs half of numpy's
        scalar indexing (most events move 1-5 lines)."""
        super().__setattr__(name, value)
        if name in _ARRAYS:
            self._cells[name] = memoryview(value)

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        return {
            NodeInventory.Opened: self._opened,
            NodeInventory.Received: self._received,
            NodeInventory.Adjusted: self._adjusted,
            NodeInventory.Counted: self._adjusted,  # carries the delta the count made
            NodeInventory.SafetyStockSet: self._safety_set,
            NodeInventory.Reserved: self._reserved,  # stores written before ReservedMany
            NodeInventory.ReservedMany: self._reserved_many,
            NodeInventory.Released: self._released,
            NodeInventory.Consumed: self._consumed,
            NodeInventory.SoldOverCounter: self._sold,
            NodeInventory.TakenBack: self._received,  # returned goods back on the shelf
            NodeInventory.Fenced: self._fenced,
        }

    # -- queries -------------------------------------------------------
    def atp(self) -> np.ndarray:
        """Available to promise, never below zero (POS may eat safety stock). Read-only."""
        if self._available is None or self._available.shape != self.on_hand.shape:
            self._available = np.maximum(available(self.on_hand, self.reserved, self.safety), 0)
        elif self._dirty:
            rows = sorted(self._dirty)
            self._available[rows] = np.maximum(available(self.on_hand[rows], self.reserved[rows], self.safety[rows]), 0)
        self._dirty.clear()
        view = self._available.view()
        view.flags.writeable = False
        return view

    def row(self, node: str) -> int:
        return self._index(node, self.node_ids, self.node_index, axis=0)

    def col(self, sku: str) -> int:
        return self._index(sku, self.sku_ids, self.sku_index, axis=1)

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

    # -- changes -------------------------------------------------------
    def touch(self, row: int) -> None:
        self._dirty.add(row)

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

    # -- handlers ------------------------------------------------------
    def _opened(self, e: Any) -> None:
        self.rows[e.originator_id] = self.row(e.node_id)

    def _received(self, e: Any) -> None:
        self.add("on_hand", self.rows[e.originator_id], e.lines, 1)

    def _adjusted(self, e: Any) -> None:
        self.add("on_hand", self.rows[e.originator_id], {e.sku: e.delta}, 1)

    def _safety_set(self, e: Any) -> None:
        row = self.rows[e.originator_id]
        cols = self.cols(e.levels)
        self.safety[row, cols] = np.fromiter(e.levels.values(), np.int64, len(cols))
        self.touch(row)

    def _reserved(self, e: Any) -> None:
        self.add("reserved", self.rows[e.originator_id], e.lines, 1)

    def _reserved_many(self, e: Any) -> None:
        row = self.rows[e.originator_id]
        for lines in e.orders.values():
            self.add("reserved", row, lines, 1)

    def _released(self, e: Any) -> None:
        self.add("reserved", self.rows[e.originator_id], e.lines, -1)

    def _consumed(self, e: Any) -> None:
        row = self.rows[e.originator_id]
        self.add("reserved", row, e.lines, -1)
        self.add("on_hand", row, e.lines, -1)

    def _fenced(self, e: Any) -> None:
        row = self.rows.get(e.originator_id)
        if row is not None:  # else a take-over's fence of a node not read yet: the rebuild after it reads both
            self.owners[self.node_ids[row]] = (e.epoch, e.owner)

    def _sold(self, e: Any) -> None:
        self.add("on_hand", self.rows[e.originator_id], e.lines, -1)
