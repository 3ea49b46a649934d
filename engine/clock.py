"""Clocks. The engine asks its clock for the time and never the system, so a
simulation can run a whole day on simulated time."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Annotated, Protocol

from msgspec import Meta, Struct

from domain.errors import InvalidInput


class Clock(Protocol):
    def now(self) -> float: ...  # epoch seconds


class SystemClock:
    def now(self) -> float:
        return time.time()


class SimClock:
    """Moves only when told to."""

    def __init__(self, start: float = 0.0):
        self.t = start

    def now(self) -> float:
        return self.t

    def advance_to(self, t: float) -> None:
        if t < self.t:
            raise ValueError(f"simulated time cannot go back from {self.t} to {t}")
        self.t = t


class ShiftedClock:
    """Wall-clock speed from a chosen start (a demo at lunch time, whenever it runs)."""

    def __init__(self, start: float):
        self.offset = start - time.time()

    def now(self) -> float:
        return time.time() + self.offset


class TestClock(SimClock):
    """A test clock (as Stripe's and Kill Bill's): `o2o serve --test-clock
    [START]` starts the service's clock at START and it moves only by
    o2o.clock.advance / o2o.clock.set requests, never backwards; after each
    move the engine's timers run at once, as if that time had passed."""

    __test__ = False  # not a pytest test class

    def advance(self, seconds: float) -> float:
        if not seconds >= 0:
            raise InvalidInput("seconds", f"the test clock moves only forwards, got {seconds!r}")
        self.t += seconds
        return self.t

    def set(self, at: float) -> float:
        if at < self.t:
            raise InvalidInput("at", f"the test clock moves only forwards: it is {iso(self.t)}, not back to {iso(at)}")
        self.t = at
        return self.t


def parse_time(value: str | float, field: str = "at") -> float:
    """Epoch seconds, or an ISO 8601 time (a time without an offset is UTC)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(field, f"not an ISO 8601 time or epoch seconds: {text!r}") from None
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat()


class AdvanceClock(Struct, frozen=True, forbid_unknown_fields=True):
    """Moves the test clock forwards by `seconds` (o2o.clock.advance)."""

    seconds: Annotated[float, Meta(ge=0, le=100 * 366 * 86_400)]


class SetClock(Struct, frozen=True, forbid_unknown_fields=True):
    """Sets the test clock to `at`, never backwards (o2o.clock.set)."""

    at: Annotated[str, Meta(min_length=1, max_length=64)] | float  # ISO 8601 (no offset: UTC) or epoch seconds


class ClockReply(Struct, frozen=True):
    at: datetime  # the clock's new time
    epoch: float
    timers: int  # what the timers did at once: parts expired, gifts released, members' points expired
