"""Sales over the counter (POS): how many, and the units they took.
Fed by NodeInventory.SoldOverCounter, which the ATP view also takes."""
from __future__ import annotations

from typing import Any, Callable

from domain.inventory import NodeInventory


class CounterSales:
    def __init__(self) -> None:
        self.counts = {"sales": 0, "units": 0}

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        return {NodeInventory.SoldOverCounter: self._sold}

    def _sold(self, e: Any) -> None:
        counts = self.counts
        counts["sales"] += 1
        counts["units"] += sum(e.lines.values())
