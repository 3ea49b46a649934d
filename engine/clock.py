"""Clocks. The engine asks its clock for the time and never the system, so a
simulation can run a whole day on simulated time."""
from __future__ import annotations

import time
from typing import Protocol


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
