"""What the read models keep of things that ended (finished orders, counter
sales, used or lapsed holds) and for how long, by the events' own times so
a rebuild keeps the same; and a record that left built again from its
aggregate's stored events."""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterable, TypeVar
from uuid import UUID

# an aggregate's stored events: (its id, up to that version; None: all of them) -> the events, oldest first
EventsOf = Callable[[UUID, "int | None"], Iterable[Any]]
V = TypeVar("V")


class Retention:
    """Things that ended, oldest first, kept `seconds` after they ended."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._ended: deque[tuple[float, Any]] = deque()

    def ended(self, at: float, thing: Any) -> list[Any]:
        """`thing` ended at `at`; returns those that ended `seconds` before
        it, which leave memory now."""
        ended = self._ended
        ended.append((at, thing))
        horizon = at - self.seconds
        gone = []
        while ended[0][0] < horizon:
            gone.append(ended.popleft()[1])
        return gone

    def back(self, at: float, thing: Any) -> None:
        """`thing` read back into memory at `at`: it leaves again with the next ones past it."""
        self._ended.append((at, thing))


def retention(seconds: float | None) -> Retention | None:
    return Retention(seconds) if seconds is not None else None


def replayed(view: V, events: Iterable[Any]) -> V:
    """`view` (a fresh read model) fed `events`: one aggregate's record as it is built live."""
    handlers = view.handlers()  # type: ignore[attr-defined]
    for e in events:
        handlers[type(e)](e)
    return view
