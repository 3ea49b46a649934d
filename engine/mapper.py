"""Stores events as JSON with msgspec, decoded with each event class's own
types, so UUIDs, datetimes and structs (routed parts, losses) come back as
they went in. About 3x faster than the library's JSON transcoder.

eventsourcing 9.5.6 has no msgspec mapper; the application plugs this one
in through `construct_mapper` (see engine.app).
"""
from __future__ import annotations

import typing
from datetime import datetime
from functools import lru_cache
from typing import Any

import msgspec
from eventsourcing.domain import CanSnapshotAggregate
from eventsourcing.persistence import (
    Mapper, MapperDeserialisationError, StoredEvent, find_id_convertor, pass_through_convertor,
)
from eventsourcing.utils import get_topic, resolve_topic

_encoder = msgspec.json.Encoder()
_SKIP = {"originator_id", "originator_version"}
# Attributes every aggregate carries in a snapshot besides its own.
_SNAPSHOT_BASE = {"_created_on": datetime, "_modified_on": datetime | None}


@lru_cache(maxsize=None)
def state_type(cls: type) -> type[msgspec.Struct]:
    """The stored state of one event class as a Struct, typed from its hints
    (also what the published events' JSON Schemas are made from)."""
    fields: list[Any] = []
    for name, hint in typing.get_type_hints(cls).items():
        if name in _SKIP or typing.get_origin(hint) is typing.ClassVar:
            continue
        fields.append((name, hint if name != "state" else dict[str, Any]))
    fields.append(("class_version", int, 1))
    return msgspec.defstruct(f"{cls.__qualname__.replace('.', '')}State", fields, kw_only=True)


@lru_cache(maxsize=None)
def _decoder(cls: type) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(state_type(cls))


class MsgspecMapper(Mapper):
    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        state = dict(vars(domain_event))
        originator_id = state.pop("originator_id")
        originator_version = state.pop("originator_version")
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        data = _encoder.encode(state)
        if self.compressor:
            data = self.compressor.compress(data)
        if self.cipher:
            data = self.cipher.encrypt(data)
        return StoredEvent(
            originator_id=originator_id, originator_version=originator_version,
            topic=get_topic(type(domain_event)), state=data,
        )

    def to_domain_event(self, stored: StoredEvent) -> Any:
        return self.decode(stored.topic, stored.state, stored.originator_id, stored.originator_version)

    def decode(self, topic: str, data: bytes, originator_id: Any, originator_version: int) -> Any:
        """A stored event's fields to its domain event (a replay reads rows, not StoredEvents)."""
        cls, decoder, snapshot, class_version, convert = _plan(topic, type(originator_id))
        try:
            if self.cipher:
                data = self.cipher.decrypt(data)
            if self.compressor:
                data = self.compressor.decompress(data)
            state = msgspec.structs.asdict(decoder.decode(data))
            if snapshot:
                state["state"] = _snapshot_state(state["state"])
        except Exception as e:
            raise MapperDeserialisationError(
                f"cannot decode stored event {topic} of {originator_id} v{originator_version}: {e}"
            ) from e
        state["originator_id"] = originator_id if convert is None else convert(originator_id)
        state["originator_version"] = originator_version
        from_version = state.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
            from_version += 1
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event


@lru_cache(maxsize=None)
def _plan(topic: str, id_type: type) -> tuple[type, msgspec.json.Decoder, bool, int, Any]:
    """What decoding an event of this topic needs, worked out once per topic
    (and type of originator id: None when the id is kept as it is)."""
    cls = resolve_topic(topic)
    convert = find_id_convertor(cls, id_type)
    return (cls, _decoder(cls), issubclass(cls, CanSnapshotAggregate), getattr(cls, "class_version", 1),
            None if convert is pass_through_convertor else convert)


def _snapshot_state(state: dict[str, Any]) -> dict[str, Any]:
    """Snapshots hold plain JSON besides the base timestamps; retype those."""
    for name, hint in _SNAPSHOT_BASE.items():
        if name in state:
            state[name] = msgspec.convert(state[name], hint)
    return state
