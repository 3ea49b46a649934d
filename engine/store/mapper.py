"""Stores events as JSON with msgspec, decoded with each event class's own
types, so UUIDs, datetimes and structs (routed parts, losses) come back as
they went in, faster than the library's JSON transcoder (ENGINEERING.md).

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
def state_dict_type(cls: type) -> type:
    """The same stored state as a TypedDict: msgspec decodes it straight into
    the dict that becomes the event's __dict__ (no Struct copied out by asdict)."""
    fields = {f.name: f.type for f in msgspec.structs.fields(state_type(cls)) if f.name != "class_version"}
    if getattr(cls, "class_version", 1) > 1:  # an older version may lack fields: its upcasts add them
        fields = {name: typing.NotRequired[hint] for name, hint in fields.items()}
    fields["class_version"] = typing.NotRequired[int]  # written only above 1
    return typing.TypedDict(f"{state_type(cls).__name__}Dict", fields)  # type: ignore[operator]


class MsgspecMapper(Mapper):
    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        return self.stored(domain_event, StoredEvent)

    def stored(self, domain_event: Any, as_class: type) -> Any:
        """to_stored_event's fields in an object of `as_class` (StoredEvent, or
        a Notification whose id the save fills in), made without the frozen
        dataclass's __init__, which sets field by field (about 0.7 us of
        the 4-5 us of storing an event: benchmarks/README.md)."""
        return self.stored_all([domain_event], as_class)[0]

    def stored_all(self, events: list[Any], as_class: type) -> list[Any]:
        """`stored` of each event, in one loop: the save's hot path, where a
        call and the lookups per event were a share of it."""
        wrap = self._wrap if self.compressor or self.cipher else None
        writes, encode = _WRITES, _encoder.encode
        out = []
        for e in events:
            cls = type(e)
            known = writes.get(cls)
            if known is None:
                known = writes[cls] = (get_topic(cls), getattr(cls, "class_version", 1))
            state = e.__dict__.copy()
            originator_id = state.pop("originator_id")
            originator_version = state.pop("originator_version")
            if known[1] > 1:
                state["class_version"] = known[1]
            data = encode(state)
            if wrap is not None:
                data = wrap(data)
            stored = _new(as_class)
            _setattr(stored, "__dict__", {"originator_id": originator_id, "originator_version": originator_version,
                                          "topic": known[0], "state": data})
            out.append(stored)
        return out

    def _wrap(self, data: bytes) -> bytes:
        if self.compressor:
            data = self.compressor.compress(data)
        if self.cipher:
            data = self.cipher.encrypt(data)
        return data

    def to_domain_event(self, stored: StoredEvent) -> Any:
        return self.decode(stored.topic, stored.state, stored.originator_id, stored.originator_version)

    def decode(self, topic: str, data: bytes, originator_id: Any, originator_version: int) -> Any:
        """A stored event's fields to its domain event (a replay reads rows, not StoredEvents)."""
        plan = _PLANS.get(topic)
        if plan is None or plan.id_type is not type(originator_id):
            plan = _PLANS[topic] = _Plan(topic, type(originator_id))
        try:
            if self.cipher or self.compressor:
                data = self._unwrap(data)
            state = plan.decode(data)
            if plan.snapshot:
                state["state"] = _snapshot_state(state["state"])
        except Exception as e:
            raise MapperDeserialisationError(
                f"cannot decode stored event {topic} of {originator_id} v{originator_version}: {e}"
            ) from e
        state["originator_id"] = originator_id if plan.convert is None else plan.convert(originator_id)
        state["originator_version"] = originator_version
        if plan.upcast or "class_version" in state:
            _upcast(plan.cls, state, plan.class_version)
        event = _new(plan.cls)
        _setattr(event, "__dict__", state)
        return event

    def _unwrap(self, data: bytes) -> bytes:
        if self.cipher:
            data = self.cipher.decrypt(data)
        if self.compressor:
            data = self.compressor.decompress(data)
        return data


_new, _setattr = object.__new__, object.__setattr__
_WRITES: dict[type, tuple[str, int]] = {}  # event class -> (topic, class version)


class _Plan:
    """What decoding an event of one topic needs, worked out once per topic
    (and type of originator id: convert is None when the id is kept as it is)."""

    __slots__ = ("cls", "id_type", "decode", "snapshot", "class_version", "upcast", "convert")

    def __init__(self, topic: str, id_type: type):
        cls = resolve_topic(topic)
        convert = find_id_convertor(cls, id_type)
        self.cls, self.id_type = cls, id_type
        self.decode = msgspec.json.Decoder(state_dict_type(cls)).decode
        self.snapshot = issubclass(cls, CanSnapshotAggregate)
        self.class_version = getattr(cls, "class_version", 1)
        self.upcast = self.class_version > 1
        self.convert = None if convert is pass_through_convertor else convert


_PLANS: dict[str, _Plan] = {}  # topic -> its plan: one lookup per event (a store keeps one type of id)


def _upcast(cls: type, state: dict[str, Any], class_version: int) -> None:
    from_version = state.pop("class_version", 1)
    while from_version < class_version:
        getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
        from_version += 1


def _snapshot_state(state: dict[str, Any]) -> dict[str, Any]:
    """Snapshots hold plain JSON besides the base timestamps; retype those."""
    for name, hint in _SNAPSHOT_BASE.items():
        if name in state:
            state[name] = msgspec.convert(state[name], hint)
    return state
