"""The SQLite store's connections: a longer WAL between checkpoints (cheaper
saves), every commit still synced to disk (nothing acknowledged is lost)."""
from engine.store.eventlog import EventLog
from engine.store.recorders import WAL_AUTOCHECKPOINT


def test_a_sqlite_store_checkpoints_less_often_and_still_syncs_every_commit(tmp_path):
    log = EventLog(f"sqlite:///{tmp_path}/events.db")
    with log.recorder.datastore.transaction(commit=False) as c:
        c.execute("PRAGMA wal_autocheckpoint")
        assert c.fetchone()[0] == WAL_AUTOCHECKPOINT > 1000
        c.execute("PRAGMA synchronous")
        assert c.fetchone()[0] == 2  # FULL
        c.execute("PRAGMA journal_mode")
        assert c.fetchone()[0] == "wal"
