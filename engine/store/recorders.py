"""The library's SQLite and PostgreSQL recorders with what this engine
needs of them: batched inserts, plain-row reads for replays, and big saves
that psycopg's pipeline cannot carry; and its in-memory one, whose
conflicts name the event."""
from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder, POPOFactory
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import retry
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from domain.ids import dashed, plain_hex
from engine.store.wal import BACKSTOP_PAGES, Checkpointer

# psycopg 3.3.9 hangs for ever sending one query of several MB in pipeline
# mode (benchmarks/README.md); above this many bytes a save is sent without
# the pipeline
PIPELINE_MAX_BYTES = 1 << 20
ID_CACHE_SIZE = 50_000  # originator ids parsed and kept: the open orders of an hour or more


class SQLiteEventRecorder(SQLiteApplicationRecorder):
    """The library's recorder, parsing each originator id once: an order has
    about 8 events, an inventory hundreds, and UUID(str) was costly in a replay."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._ids: dict[str, UUID] = {}
        self.checkpointer: Checkpointer | None = None  # started by the first write: only a writer needs one
        pool = self.datastore.pool
        if not pool.is_sqlite_memory_mode:
            create = pool._create_connection

            def create_connection() -> Any:
                conn = create()
                conn._sqlite_conn.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
                return conn

            pool._create_connection = create_connection

    def insert_events(self, stored_events: list[StoredEvent], **kwargs: Any) -> Any:
        if self.checkpointer is None and not self.datastore.pool.is_sqlite_memory_mode:
            self.checkpointer = Checkpointer(self.datastore.pool.db_name)
        return super().insert_events(stored_events, **kwargs)

    def close(self) -> None:
        """Stops the checkpoints (the store's connections are the library's to close)."""
        if self.checkpointer is not None:
            self.checkpointer.close()
            self.checkpointer = None

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
        # the state as a bytearray: Python's sqlite3 binds it as the same BLOB, but
        # looks a bytes parameter up in its adapter registry first (a tuple
        # built, a dict and two attributes looked up: 1% of an order, benchmarks/README.md);
        # the id's hex from its bytes (ids.plain_hex: UUID.hex is several times dearer)
        c.executemany(self.insert_events_statement, [
            (plain_hex(s.originator_id) if isinstance(s.originator_id, UUID)
             else s.originator_id, s.originator_version, s.topic, bytearray(s.state)) for s in stored_events])
        c.execute("SELECT last_insert_rowid()")
        last = c.fetchone()[0]
        return list(range(last - len(stored_events) + 1, last + 1))

    def notification_rows(self, start: int, limit: int, text_ids: bool = False) -> list[tuple[int, Any, int, str, bytes]]:
        """(notification id, originator id, version, topic, state) from `start`:
        what select_notifications returns, without a Notification object per
        row (they were the costly part of a replay's reading); `text_ids`:
        originator ids as `str(UUID)` writes them, not parsed (for publishing)."""
        statement = (f"SELECT rowid, originator_id, originator_version, topic, state FROM {self.events_table_name} "
                     "WHERE rowid>=? ORDER BY rowid LIMIT ?")
        with self.datastore.transaction(commit=False) as c:
            c.sqlite_cursor.row_factory = None  # plain tuples: sqlite3.Row costs more than it helps here
            c.execute(statement, (start, limit))
            rows = c.fetchall()
        if self.datastore.originator_id_type != "uuid":
            return rows
        if text_ids:
            return [(r[0], dashed(r[1]), r[2], r[3], r[4]) for r in rows]
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
    def notification_rows(self, start: int, limit: int, text_ids: bool = False) -> list[tuple[int, Any, int, str, bytes]]:
        """As SQLiteEventRecorder.notification_rows."""
        statement = SQL("SELECT notification_id, originator_id, originator_version, topic, state FROM {0}.{1} "
                        "WHERE notification_id>=%s ORDER BY notification_id LIMIT %s").format(
            Identifier(self.datastore.schema), Identifier(self.events_table_name))
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(statement, (start, limit), prepare=True)
            rows = curs.fetchall()
        if text_ids:
            return [(r[0], str(r[1]), r[2], r[3], r[4]) for r in rows]
        return rows

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)  # as the library's insert_events
    def _insert_without_pipeline(self, stored_events: list[StoredEvent], **kwargs: Any) -> Any:
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._insert_events(curs, stored_events, **kwargs)
            self._insert_stored_events(curs, stored_events, **kwargs)
            return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)


class MemoryEventRecorder(POPOApplicationRecorder):
    """The library's in-memory recorder. Its conflict message prints each
    stored event whole, and the engine's are Notifications numbered by the
    save (engine.store.eventlog), without an id until then: the message
    raised AttributeError in place of the IntegrityError a conflict is."""

    def _assert_uniqueness(self, stored_events: list[StoredEvent], **_: Any) -> None:
        index = self._stored_events_index
        new = set()
        for s in stored_events:
            if s.originator_version in index[str(s.originator_id)]:
                raise IntegrityError(f"Stored event already recorded: {s.originator_id} v{s.originator_version}")
            new.add((s.originator_id, s.originator_version))
        if len(new) < len(stored_events):
            raise IntegrityError(f"Stored events are not unique: {len(stored_events) - len(new)} repeated")


class MemoryFactory(POPOFactory):
    """The library's in-memory store with MemoryEventRecorder (its factory takes no recorder topic)."""

    def application_recorder(self) -> MemoryEventRecorder:
        return MemoryEventRecorder()
