"""Where the events live, named by one URL:

    memory:                                  in-process, for tests
    sqlite:///relative/path.db               SQLite file (the default)
    sqlite:////absolute/path.db
    postgres://user:password@host:5432/db?schema=o2o&lock_timeout=5

`store_env(url)` turns it into the eventsourcing environment for
`Engine(env=...)`. PostgreSQL gets a lock
timeout (the library's default is to wait forever on its table lock).
"""
from __future__ import annotations

import gc
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator
from uuid import UUID
from urllib.parse import parse_qs, unquote, urlsplit

from eventsourcing.application import Application
from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier
from eventsourcing.utils import get_topic, retry

from domain.errors import InvalidInput
from engine.mapper import MsgspecMapper

DEFAULT_STORE = "sqlite:///o2o-data/events.db"
POSTGRES_LOCK_TIMEOUT_S = 5
# psycopg 3.3.9 hangs for ever sending one query of several MB in pipeline
# mode (measured: 1,800 events of 5 KB hang, 800 do not); above this many
# bytes a save is sent without the pipeline
PIPELINE_MAX_BYTES = 1 << 20
ID_CACHE_SIZE = 50_000  # originator ids parsed and kept: the open orders of an hour or more


def store_env(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    env: dict[str, str] = {}
    if parts.scheme == "memory":
        env["PERSISTENCE_MODULE"] = "eventsourcing.popo"
    elif parts.scheme == "sqlite":
        path = sqlite_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        env.update(PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=str(path), SQLITE_LOCK_TIMEOUT="10",
                   APPLICATION_RECORDER_TOPIC=get_topic(SQLiteEventRecorder))
    elif parts.scheme in ("postgres", "postgresql"):
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"schema", "lock_timeout", "pool_size"}
        if unknown:
            raise InvalidInput("store", f"unknown PostgreSQL option(s) {sorted(unknown)} in {url!r}")
        dbname = parts.path.lstrip("/")
        if not dbname:
            raise InvalidInput("store", f"no database name in {url!r} (postgres://user@host:5432/DBNAME)")
        env.update(
            PERSISTENCE_MODULE="eventsourcing.postgres",
            POSTGRES_DBNAME=dbname,
            POSTGRES_HOST=parts.hostname or "127.0.0.1",
            POSTGRES_PORT=str(parts.port or 5432),
            POSTGRES_USER=unquote(parts.username or os.environ.get("PGUSER", "postgres")),
            POSTGRES_PASSWORD=unquote(parts.password or os.environ.get("PGPASSWORD", "")),
            POSTGRES_LOCK_TIMEOUT=query.get("lock_timeout", str(POSTGRES_LOCK_TIMEOUT_S)),
            POSTGRES_POOL_SIZE=query.get("pool_size", "5"),
            APPLICATION_RECORDER_TOPIC=get_topic(PostgresEventRecorder),
        )
        if "schema" in query:
            env["POSTGRES_SCHEMA"] = query["schema"]
    else:
        raise InvalidInput("store", f"unsupported store {url!r}: use memory:, sqlite:///PATH or postgres://USER@HOST:PORT/DB")
    return env


def sqlite_path(url: str) -> Path:
    """sqlite:///rel/path.db -> rel/path.db; sqlite:////abs/path.db -> /abs/path.db."""
    parts = urlsplit(url)
    if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
        raise InvalidInput("store", f"not a SQLite URL {url!r}: use sqlite:///relative.db or sqlite:////absolute.db")
    return Path(unquote(parts.path[1:]))


def describe(url: str) -> str:
    """The URL with any password hidden, for logs and summaries."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


class SQLiteEventRecorder(SQLiteApplicationRecorder):
    """The library's recorder, parsing each originator id once: an order has
    about 8 events, an inventory hundreds, and UUID(str) was a fifth of a replay."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._ids: dict[str, UUID] = {}

    def convert_originator_id(self, originator_id: str) -> UUID | str:
        if self.datastore.originator_id_type != "uuid":
            return originator_id
        parsed = self._ids.get(originator_id)
        if parsed is None:
            if len(self._ids) >= ID_CACHE_SIZE:
                self._ids.clear()
            parsed = self._ids[originator_id] = UUID(originator_id)
        return parsed

    def _insert_events(self, c: Any, stored_events: list[StoredEvent], **kwargs: Any) -> list[int]:
        """One executemany instead of an execute per event for its rowid: in the
        transaction this writer holds the write lock, so the rows get consecutive
        rowids ending at last_insert_rowid()."""
        if len(stored_events) < 2:
            return super()._insert_events(c, stored_events, **kwargs)
        c.executemany(self.insert_events_statement, [
            (s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id, s.originator_version,
             s.topic, s.state) for s in stored_events])
        c.execute("SELECT last_insert_rowid()")
        last = c.fetchone()[0]
        return list(range(last - len(stored_events) + 1, last + 1))

    def notification_rows(self, start: int, limit: int) -> list[tuple[int, Any, int, str, bytes]]:
        """(notification id, originator id, version, topic, state) from `start`:
        what select_notifications returns, without a Notification object per
        row (they were most of a replay's reading)."""
        statement = (f"SELECT rowid, originator_id, originator_version, topic, state FROM {self.events_table_name} "
                     "WHERE rowid>=? ORDER BY rowid LIMIT ?")
        with self.datastore.transaction(commit=False) as c:
            c.sqlite_cursor.row_factory = None  # plain tuples: sqlite3.Row costs more than it helps here
            c.execute(statement, (start, limit))
            rows = c.fetchall()
        if self.datastore.originator_id_type != "uuid":
            return rows
        ids, convert = self._ids, self.convert_originator_id
        return [(r[0], ids.get(r[1]) or convert(r[1]), r[2], r[3], r[4]) for r in rows]


class PostgresEventRecorder(PostgresApplicationRecorder):
    """The library's recorder; a big save (a 600-node network's opening stock
    is about 5 MB) runs the same statements in one transaction without the
    pipeline, which hangs on it."""

    def insert_events(self, stored_events: list[StoredEvent], **kwargs: Any) -> Any:
        if sum(len(e.state) for e in stored_events) <= PIPELINE_MAX_BYTES:
            return super().insert_events(stored_events, **kwargs)
        return self._insert_without_pipeline(stored_events, **kwargs)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)  # as the library's select_notifications
    def notification_rows(self, start: int, limit: int) -> list[tuple[int, Any, int, str, bytes]]:
        """As SQLiteEventRecorder.notification_rows."""
        statement = SQL("SELECT notification_id, originator_id, originator_version, topic, state FROM {0}.{1} "
                        "WHERE notification_id>=%s ORDER BY notification_id LIMIT %s").format(
            Identifier(self.datastore.schema), Identifier(self.events_table_name))
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(statement, (start, limit), prepare=True)
            return curs.fetchall()

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)  # as the library's insert_events
    def _insert_without_pipeline(self, stored_events: list[StoredEvent], **kwargs: Any) -> Any:
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._insert_events(curs, stored_events, **kwargs)
            self._insert_stored_events(curs, stored_events, **kwargs)
            return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)


class EventLog(Application):
    """The engine's event store with our mapper; on its own, a read-only view
    of it (for `o2o state`, rebuilds and reports). Shares the engine's tables."""

    name = "Engine"

    def construct_mapper(self) -> MsgspecMapper:
        return self.factory.mapper(transcoder=self.construct_transcoder(), mapper_class=MsgspecMapper)

    def stored_events(self, start: int = 1, page: int = 2000, stop: int | None = None) -> Iterator[tuple[int, Any]]:
        """(notification id, domain event) in commit order from `start` (to
        `stop`, included). The cyclic garbage collector is paused until the
        events are read: a replay makes no cycles, and full collections over
        the growing read models took a fifth of it."""
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
                        yield note.id, self.mapper.to_domain_event(note)
                    start = notes[-1].id + 1
                return
            decode = self.mapper.decode
            with ThreadPoolExecutor(1, thread_name_prefix="o2o-replay") as reader:
                ahead = reader.submit(read, start)
                while batch := ahead.result():
                    ahead = reader.submit(read, batch[-1][0] + 1)  # read while this page is decoded and applied
                    for notification_id, originator_id, version, topic, state in batch:
                        yield notification_id, decode(topic, state, originator_id, version)
        finally:
            if paused:
                gc.enable()

    def last_notification_id(self) -> int:
        return self.recorder.max_notification_id() or 0
