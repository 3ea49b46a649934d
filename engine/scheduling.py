"""Scheduled orders: the slot a submit asks for, and the first slot after a
node opens for an order placed while the nodes that reach it are closed.

A booked order is planned against its slot (the nodes' hours then, the
capacity left in that slot) and routed, its stock reserved, at its lead
time before the slot starts (docs/api.md, "Scheduled orders").
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Iterable
from zoneinfo import ZoneInfo

from msgspec import Meta, Struct

from domain.errors import InvalidInput


class ScheduleSettings(Struct, frozen=True, forbid_unknown_fields=True):
    slot_minutes: Annotated[int, Meta(ge=5, le=1440)] = 30  # a booked slot after opening is this long
    horizon_days: Annotated[int, Meta(ge=0, le=60)] = 7  # how far ahead a window may start
    lead_minutes: Annotated[int, Meta(ge=0, le=1440)] = 45  # routed, its stock reserved, this long before its slot


class Slot(Struct, frozen=True):
    start: float  # epoch seconds
    end: float

    def due_at(self, settings: ScheduleSettings, now: float) -> float:
        """When the order is routed and its stock reserved: its lead time before the slot, or now if that passed."""
        return max(now, self.start - settings.lead_minutes * 60)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def requested(cmd: Any, now: float, settings: ScheduleSettings) -> Slot | None:
    """The window a submit asks for, checked (raises naming the field); None without one."""
    ws, we = cmd.window_start, cmd.window_end
    if ws is None and we is None:
        return None
    if ws is None or we is None:
        raise InvalidInput("window_start" if ws is None else "window_end", "a window has a start and an end")
    for name, t in (("window_start", ws), ("window_end", we)):
        if t.tzinfo is None:
            raise InvalidInput(name, "give the time with its offset (2026-03-21T09:00:00+08:00) or Z")
    if cmd.promise_minutes is not None:
        raise InvalidInput("promise_minutes", "an order with a window is promised by its window's end")
    if cmd.later_ok:
        raise InvalidInput("later_ok", "an order with a window is served in it: later_ok is for orders without one")
    start, end = ws.timestamp(), we.timestamp()
    if end <= start:
        raise InvalidInput("window_end", "must be after window_start")
    if end <= now:
        raise InvalidInput("window_end", f"the window ended at {_iso(end)}; it is {_iso(now)}")
    horizon = now + settings.horizon_days * 86_400
    if start > horizon:
        raise InvalidInput("window_start", f"beyond the {settings.horizon_days}-day horizon (until {_iso(horizon)})")
    return Slot(start, end)


def next_opening(hours: Iterable[tuple[int, int]], tz: ZoneInfo, after: float, days: int) -> float | None:
    """The first time at or after `after` a node with these opening windows
    (minutes of the local day) is open, looking `days` days ahead; None if never."""
    local = datetime.fromtimestamp(after, tz)
    day = local.date()
    minute = local.hour * 60 + local.minute + local.second / 60
    best: float | None = None
    for d in range(days + 1):
        date = day + timedelta(days=d)
        for opens, closes in hours:
            if d == 0 and opens <= minute < closes:
                return after
            t = datetime(date.year, date.month, date.day, tzinfo=tz) + timedelta(minutes=opens)
            at = t.timestamp()
            if at >= after and (best is None or at < best):
                best = at
        if best is not None:
            return best
    return best


def slot_after(t: float, settings: ScheduleSettings, tz: ZoneInfo) -> Slot:
    """The first slot starting at or after `t`, on a grid of `slot_minutes` from local midnight."""
    local = datetime.fromtimestamp(t, tz)
    midnight = datetime(local.year, local.month, local.day, tzinfo=tz).timestamp()
    size = settings.slot_minutes * 60
    start = midnight + -(-(t - midnight) // size) * size
    return Slot(start, start + size)
