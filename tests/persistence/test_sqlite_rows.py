"""The SQLite recorder's batched insert (engine/store/recorders.py) writes
the rows the library's own insert writes: the same originator ids (as hex
text), versions, topics and states, each state a BLOB."""
from __future__ import annotations

import copy
import sqlite3

from engine.store.aggregates import AggregateStore
from engine.store.eventlog import EventLog
from tests.persistence.test_aggregate_store import _commands, _LibraryApp

LIBRARY_RECORDER = "eventsourcing.sqlite:SQLiteApplicationRecorder"


def _table(path) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        (table,) = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name LIKE '%events'")
                    if "snapshot" not in r[0]]
        return db.execute(f"SELECT rowid, originator_id, originator_version, topic, state, typeof(state) "
                          f"FROM {table} ORDER BY rowid").fetchall()
    finally:
        db.close()


def test_the_batched_insert_writes_the_rows_the_library_writes(tmp_path):
    ours = EventLog(f"sqlite:///{tmp_path}/ours.db")
    theirs = _LibraryApp(f"sqlite:///{tmp_path}/theirs.db", env={"APPLICATION_RECORDER_TOPIC": LIBRARY_RECORDER})
    assert type(ours.recorder) is not type(theirs.recorder)
    store = AggregateStore(ours)
    try:
        for aggregates in _commands():
            twins = copy.deepcopy(aggregates)  # the same events, timestamps included
            store.save(aggregates)
            theirs.save(*twins)
    finally:
        ours.close()
        theirs.close()
    rows = _table(tmp_path / "ours.db")
    assert rows == _table(tmp_path / "theirs.db") and len(rows) == 9
    assert {r[5] for r in rows} == {"blob"} and all(isinstance(r[4], bytes) for r in rows)
    assert rows[0][1] == str(next(iter(_commands()))[0].id).replace("-", "")
