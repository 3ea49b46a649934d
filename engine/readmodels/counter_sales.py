"""Sales over the counter (POS): how many, the units they took, and each
sale's money and refunds. Fed by NodeInventory.SoldOverCounter (which the
ATP view also takes) and the Sale events.

With a retention (`retain_s`), a sale's record leaves memory that long
after the sale, by the events' own times; a later refund builds it again
from the sale's stored events (`events_of`), as the order view does."""
from __future__ import annotations

from typing import Any, Callable

import msgspec

from domain import ids
from domain.inventory import NodeInventory
from domain.sale import Sale
from engine.readmodels.retention import EventsOf, replayed, retention


class SaleRecord(msgspec.Struct, gc=False):
    node: str
    sale_id: str
    member: str | None
    paid: int
    points_used: int
    refunded: int = 0
    points_returned: int = 0
    refunds: list[str] = []


class CounterSales:
    def __init__(self, retain_s: float | None = None, events_of: EventsOf | None = None) -> None:
        self.retention = retention(retain_s)  # of sales' records, by sale aggregate id
        self.events_of = events_of
        self.counts = {"sales": 0, "units": 0}
        self.sales: dict[str, SaleRecord] = {}  # "node/sale id" -> its money
        self._keys: dict[Any, str] = {}  # sale aggregate id -> its key

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        return {NodeInventory.SoldOverCounter: self._sold, Sale.Made: self._made, Sale.Refunded: self._refunded}

    def _sold(self, e: Any) -> None:
        counts = self.counts
        counts["sales"] += 1
        counts["units"] += sum(e.lines.values())

    def _made(self, e: Any) -> None:
        key = self._keys[e.originator_id] = f"{e.node}/{e.sale_id}"
        self.sales[key] = SaleRecord(e.node, e.sale_id, e.member, e.money.paid, e.money.points_used)
        if self.retention is not None:
            for old in self.retention.ended(e.at, e.originator_id):  # made the retention before it
                key = self._keys.pop(old, None)
                if key is not None:
                    del self.sales[key]

    def _refunded(self, e: Any) -> None:
        key = self._keys.get(e.originator_id)
        r = self.sales[key] if key is not None else self._read_back(e)  # a refund may come after the record left
        r.refunded += sum(e.cash.values())
        r.points_returned += sum(e.points.values())
        r.refunds = [*r.refunds, e.refund_id]

    def record(self, node: str, sale_id: str) -> SaleRecord | None:
        """A sale's record: in memory, or built from its stored events (not kept)."""
        key = f"{node}/{sale_id}"
        r = self.sales.get(key)
        if r is None and self.events_of is not None:
            r = self._replayed(ids.sale_id(node, sale_id), None).sales.get(key)
        return r

    def _read_back(self, e: Any) -> SaleRecord:
        """The record of a sale that left memory, as it stood before event `e`, kept again."""
        if self.events_of is None:
            raise KeyError(e.originator_id)
        view = self._replayed(e.originator_id, e.originator_version - 1)
        key = self._keys[e.originator_id] = view._keys[e.originator_id]
        r = self.sales[key] = view.sales[key]
        self.retention.back(e.at, e.originator_id)
        return r

    def _replayed(self, sale: Any, upto: int | None) -> "CounterSales":
        """A view of that sale alone, built from its stored events (to version `upto`)."""
        return replayed(CounterSales(), self.events_of(sale, upto))
