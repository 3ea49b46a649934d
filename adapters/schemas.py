"""JSON Schemas (2020-12) of every request, reply and published event,
generated from the msgspec types; served on `o2o.schema` and committed as
docs/schemas/api.json."""
from __future__ import annotations

from typing import Any

import msgspec

from eventsourcing.domain import Aggregate

from adapters.endpoints import CLOCK_ENDPOINTS, ENDPOINTS
from adapters.event_publisher import subject_for
from engine.readmodels import AGGREGATES  # the aggregates whose events are published and followed
from engine.store.mapper import state_type

REQUESTS = list(dict.fromkeys(ep.request for ep in ENDPOINTS + CLOCK_ENDPOINTS))
REPLIES = list(dict.fromkeys(ep.reply for ep in ENDPOINTS + CLOCK_ENDPOINTS))


def event_classes() -> list[type]:
    """Every event the aggregates record, in a stable order."""
    out = []
    for agg in AGGREGATES:
        for name in sorted(vars(agg)):
            if name in ("Event", "Created"):  # the library's base classes, never recorded as such
                continue
            cls = getattr(agg, name)
            if isinstance(cls, type) and issubclass(cls, Aggregate.Event) and cls.__qualname__.startswith(agg.__name__ + "."):
                out.append(cls)
    return out


def all_schemas() -> dict[str, Any]:
    events = event_classes()
    types = REQUESTS + REPLIES + [state_type(e) for e in events]
    schemas, components = msgspec.json.schema_components(types, ref_template="#/$defs/{name}")
    n_req, n_rep = len(REQUESTS), len(REPLIES)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "requests": {t.__name__: s for t, s in zip(REQUESTS, schemas[:n_req])},
        "replies": {t.__name__: s for t, s in zip(REPLIES, schemas[n_req:n_req + n_rep])},
        # published on o2o.events.<aggregate>.<event> as {notification_id, topic, originator_id, originator_version, data}
        "events": {subject_for(f"{e.__module__}:{e.__qualname__}"): s for e, s in zip(events, schemas[n_req + n_rep:])},
        "$defs": components,
    }
