"""Triggering the hot events (every order's Placed, Routed, Reserved)
without the frozen dataclass's `__init__`, which sets each field through
`object.__setattr__`, the costliest step of making an event (figures in
benchmarks/README.md).

The event is made as the library's mapper remakes a stored one (a new
object given its attribute dict), with the same attributes in the same
order as `Aggregate.trigger_event` and `Aggregate._create` give it, then
applied with the library's own `mutate`: the same event, the same stored
JSON, the same aggregate (tests/domain/test_trigger.py)."""
from __future__ import annotations

from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

A = TypeVar("A", bound=Aggregate)


def trigger(agg: Aggregate, event_class: type, **fields: Any) -> None:
    """As `agg.trigger_event(event_class, **fields)`."""
    event = object.__new__(event_class)
    object.__setattr__(event, "__dict__", {"originator_id": agg.id, "originator_version": agg.version + 1,
                                           "timestamp": event_class.create_timestamp(), **fields})
    event.mutate(agg)
    agg.pending_events.append(event)


def create(aggregate_class: type[A], event_class: type, id: UUID, **fields: Any) -> A:  # noqa: A002
    """As `aggregate_class._create(event_class, id=id, **fields)`."""
    event = object.__new__(event_class)
    object.__setattr__(event, "__dict__", {"originator_id": id, "originator_version": aggregate_class.INITIAL_VERSION,
                                           "timestamp": event_class.create_timestamp(),
                                           "originator_topic": get_topic(aggregate_class), **fields})
    agg = event.mutate(None)
    agg.pending_events.append(event)
    return agg
