"""Holds: stock set aside for quoted carts (domain/hold.py), by quote id,
and the open ones by when they lapse (the engine's timer reads `due`).
With a retention (`retain_s`), a used or lapsed hold's record leaves memory
that long after, by the events' own times (as finished orders' records do)."""
from __future__ import annotations

from typing import Any, Callable

import msgspec

from domain.hold import Hold
from engine.readmodels.retention import retention


class HoldRecord(msgspec.Struct):
    quote_id: str
    node: str
    lines: dict[str, int]
    expires_at: float
    status: str = "held"  # held | used | lapsed
    order_id: str | None = None


class HoldView:
    def __init__(self, retain_s: float | None = None) -> None:
        self.retention = retention(retain_s)  # of used and lapsed holds: (quote id, aggregate id)
        self.holds: dict[str, HoldRecord] = {}
        self.open: dict[str, float] = {}  # quote id -> when it lapses, of the holds still held
        self._ids: dict[Any, str] = {}  # hold aggregate id -> quote id

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        return {Hold.Placed: self._placed, Hold.Used: self._used, Hold.Lapsed: self._lapsed}

    def due(self, now: float) -> list[str]:
        """Holds still held whose time has come, soonest first."""
        return sorted((q for q, t in self.open.items() if t <= now), key=self.open.__getitem__)

    def state(self) -> dict[str, Any]:
        return {q: msgspec.to_builtins(r) for q, r in sorted(self.holds.items())}

    def _placed(self, e: Any) -> None:
        self._ids[e.originator_id] = e.quote_id
        self.holds[e.quote_id] = HoldRecord(e.quote_id, e.node, dict(e.lines), e.expires_at)
        self.open[e.quote_id] = e.expires_at

    def _used(self, e: Any) -> None:
        q = self._ids[e.originator_id]
        self.holds[q].status, self.holds[q].order_id = "used", e.order_id
        self.open.pop(q, None)
        if self.retention is not None:
            self._retire(e, q)

    def _lapsed(self, e: Any) -> None:
        q = self._ids[e.originator_id]
        self.holds[q].status = "lapsed"
        self.open.pop(q, None)
        if self.retention is not None:
            self._retire(e, q)

    def _retire(self, e: Any, q: str) -> None:
        """Hold `q` ended with `e` (its last event): those that ended the retention before leave memory."""
        for old, aggregate_id in self.retention.ended(e.at, (q, e.originator_id)):
            del self.holds[old], self._ids[aggregate_id]
