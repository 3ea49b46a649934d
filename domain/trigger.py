"""Triggering the hot events (every order's Placed and Routed, a batch's ReservedMany per node)
without the frozen dataclass's `__init__`, which sets each field through
`object.__setattr__`, the costliest step of making an event (figures in
benchmarks/README.md).

The event is made as the library's mapper remakes a stored one (a new
object given its attribute dict), with the same attributes in the same
order as `Aggregate.trigger_event` and `Aggregate._create` give it, then
applied as the library's `mutate` applies it, less what costs and cannot
fail here (checking that the event is the aggregate's next, working out
`__init__`'s parameters per event): the same event, the same stored JSON,
the same aggregate (tests/domain/test_trigger.py)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import eventsourcing.domain as _library
from eventsourcing.domain import (
    Aggregate, CanCreateTimestamp, CanInitAggregate, CanMutateAggregate, _init_mentions_id,
    _spec_filter_kwargs_for_method_params,
)
from eventsourcing.utils import get_topic

A = TypeVar("A", bound=Aggregate)


def trigger(agg: Aggregate, event_class: type, **fields: Any) -> None:
    """As `agg.trigger_event(event_class, **fields)`."""
    event = object.__new__(event_class)
    version = agg._version + 1
    timestamp = _now(_library.TZINFO) if event_class.create_timestamp is _TIMESTAMP else event_class.create_timestamp()
    object.__setattr__(event, "__dict__", {"originator_id": agg._id, "originator_version": version,
                                           "timestamp": timestamp, **fields})
    if event_class.mutate is _MUTATE:
        # the library's mutate less its checks that the event is this aggregate's next: made so just above
        event.apply(agg)
        agg._version = version
        agg._modified_on = timestamp
    else:
        event.mutate(agg)
    agg._pending_events.append(event)


def create(aggregate_class: type[A], event_class: type, id: UUID, **fields: Any) -> A:  # noqa: A002
    """As `aggregate_class._create(event_class, id=id, **fields)`."""
    event = object.__new__(event_class)
    version = aggregate_class.INITIAL_VERSION
    timestamp = _now(_library.TZINFO) if event_class.create_timestamp is _TIMESTAMP else event_class.create_timestamp()
    state = {"originator_id": id, "originator_version": version, "timestamp": timestamp,
             "originator_topic": get_topic(aggregate_class), **fields}
    object.__setattr__(event, "__dict__", state)
    names = _init_params(aggregate_class) if event_class.mutate is _INIT else None
    if names is None:
        agg = event.mutate(None)
    else:
        # the library's mutate with the __init__ parameters picked once per class, not twice per event
        agg = aggregate_class.__new__(aggregate_class)
        agg.__base_init__(id, version, timestamp)
        # the fields are __init__'s parameters (Order.place's): passed as they are, not picked one by one
        agg.__init__(**(fields if fields.keys() == names[1] else {k: state[k] for k in names[0] if k in state}))
        event.apply(agg)
    agg._pending_events.append(event)
    return agg


_MUTATE, _INIT = CanMutateAggregate.mutate, CanInitAggregate.mutate
# the library's create_timestamp is datetime.now(TZINFO) through two calls: made here directly, its TZINFO
# read at each call as the library reads it (written out in both places: a helper's call cost more, README)
_TIMESTAMP, _now = CanCreateTimestamp.create_timestamp, datetime.now
_PARAMS: dict[type, tuple[tuple[str, ...], frozenset[str]] | None] = {}


def _init_params(aggregate_class: type) -> tuple[tuple[str, ...], frozenset[str]] | None:
    """The names `__init__` takes, in order and as a set (None: it takes the id too, left to the library)."""
    if aggregate_class not in _PARAMS:
        if aggregate_class in _init_mentions_id:
            _PARAMS[aggregate_class] = None
        else:
            names = tuple(_spec_filter_kwargs_for_method_params(aggregate_class.__init__))
            _PARAMS[aggregate_class] = names, frozenset(names)
    return _PARAMS[aggregate_class]
