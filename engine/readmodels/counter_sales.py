"""Sales over the counter (POS): how many, the units they took, and each
sale's money and refunds. Fed by NodeInventory.SoldOverCounter (which the
ATP view also takes) and the Sale events."""
from __future__ import annotations

from typing import Any, Callable

import msgspec

from domain.inventory import NodeInventory
from domain.sale import Sale


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
    def __init__(self) -> None:
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

    def _refunded(self, e: Any) -> None:
        r = self.sales[self._keys[e.originator_id]]
        r.refunded += sum(e.cash.values())
        r.points_returned += sum(e.points.values())
        r.refunds = [*r.refunds, e.refund_id]
