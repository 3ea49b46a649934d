"""The engine's event log: an eventsourcing application with the msgspec
mapper and the recorders of engine.store, opened on a store URL. On its
own it is a read-only view of a store (`o2o state`, rebuilds, reports)."""
from __future__ import annotations

import gc
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

from eventsourcing.application import Application, Recording
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from engine.store.mapper import MsgspecMapper
from engine.store.urls import creating_tables, store_env
from engine.threads import name_os_thread


class EventLog(Application):
    """The engine's event store with our mapper; on its own, a read-only view
    of it (for `o2o state`, rebuilds and reports). Shares the engine's tables."""

    name = "Engine"

    def __init__(self, store: str = "memory:", snapshots: bool = False, env: dict[str, str] | None = None):
        """Opens the store named by the URL (creating its tables, and a missing
        PostgreSQL schema); `snapshots` turns the snapshot table on."""
        self.url = store
        opened = store_env(store)
        if snapshots:
            opened["IS_SNAPSHOTTING_ENABLED"] = "y"
        with creating_tables(opened):
            super().__init__(env={**opened, **(env or {})})

    def close(self) -> None:
        closing = getattr(self.recorder, "close", None)
        if closing is not None:
            closing()
        super().close()

    def construct_mapper(self) -> MsgspecMapper:
        return self.factory.mapper(transcoder=self.construct_transcoder(), mapper_class=MsgspecMapper)

    def stored_events(self, start: int = 1, page: int = 2000, stop: int | None = None,
                      skip: Callable[[Any, str], bool] | None = None) -> Iterator[tuple[int, Any]]:
        """(notification id, domain event) in commit order from `start` (to
        `stop`, included); `skip(originator id, topic)` leaves events out
        before they are decoded. The cyclic garbage collector is paused until the
        events are read: a replay makes no cycles, and full collections over
        the growing read models were a large part of it."""
        rows = getattr(self.recorder, "notification_rows", None)

        def read(start: int) -> list[tuple[int, Any, int, str, bytes]]:
            limit = page if stop is None else min(page, stop - start + 1)
            return rows(start, limit) if limit > 0 else []

        paused = gc.isenabled()
        gc.disable()
        try:
            if rows is None:  # in memory: the library's notifications
                while notes := self.recorder.select_notifications(start, page, stop=stop):
                    for note in notes:
                        if skip is None or not skip(note.originator_id, note.topic):
                            yield note.id, self.mapper.to_domain_event(note)
                    start = notes[-1].id + 1
                return
            decode = self.mapper.decode
            with ThreadPoolExecutor(1, thread_name_prefix="o2o-replay", initializer=name_os_thread) as reader:
                ahead = reader.submit(read, start)
                while batch := ahead.result():
                    ahead = reader.submit(read, batch[-1][0] + 1)  # read while this page is decoded and applied
                    for notification_id, originator_id, version, topic, state in batch:
                        if skip is None or not skip(originator_id, topic):
                            yield notification_id, decode(topic, state, originator_id, version)
        finally:
            if paused:
                gc.enable()

    def followed_events(self, start: int, topics: list[str], page: int = 500) -> Iterator[tuple[int, Any]]:
        """(notification id, domain event) of the given topics only, from `start`:
        the few events an engine follows of what other engines write."""
        while notes := self.recorder.select_notifications(start, page, topics=topics):
            for note in notes:
                yield note.id, self.mapper.to_domain_event(note)
            start = notes[-1].id + 1

    def record(self, events: list[Any]) -> list[Recording]:
        """Stores events in one transaction, as the library's Application._record
        and EventStore.put do (no tracking, no aggregate cache), each made
        straight into the Notification its recording holds: the library
        makes a StoredEvent, then a Notification, through frozen
        dataclasses' __init__ (benchmarks/README.md)."""
        notes = self.mapper.stored_all(events, Notification)
        ids = self.recorder.insert_events(notes)
        recordings = []
        if ids:
            for e, note, n_id in zip(events, notes, ids, strict=True):
                note.__dict__["id"] = n_id
                rec = _new(Recording)
                _setattr(rec, "__dict__", {"domain_event": e, "notification": note})
                recordings.append(rec)
        return recordings

    def last_notification_id(self) -> int:
        return self.recorder.max_notification_id() or 0


_new, _setattr = object.__new__, object.__setattr__


def topic_of(cls: type) -> str:
    """The topic events of this class are stored under."""
    return get_topic(cls)
