"""The SQLite store's connections: every commit synced to disk (nothing
acknowledged is lost), and the log copied into the database file by a
thread of the writer's own, not by its commits."""
import time
from uuid import uuid4

from eventsourcing.persistence import StoredEvent

from engine.store.eventlog import EventLog
from engine.store.wal import BACKSTOP_PAGES


def _write(log: EventLog, n: int) -> None:
    log.recorder.insert_events([StoredEvent(originator_id=uuid4(), originator_version=1, topic="t:T",
                                            state=b"{}" * 500) for _ in range(n)])


def test_a_sqlite_store_syncs_every_commit_and_leaves_checkpoints_to_its_thread(tmp_path):
    log = EventLog(f"sqlite:///{tmp_path}/events.db")
    with log.recorder.datastore.transaction(commit=False) as c:
        c.execute("PRAGMA wal_autocheckpoint")
        assert c.fetchone()[0] == BACKSTOP_PAGES > 1000  # the commits' own: only a backstop
        c.execute("PRAGMA synchronous")
        assert c.fetchone()[0] == 2  # FULL
        c.execute("PRAGMA journal_mode")
        assert c.fetchone()[0] == "wal"
    log.close()


def test_the_writers_thread_copies_the_log_and_stops_with_the_store(tmp_path):
    log = EventLog(f"sqlite:///{tmp_path}/events.db")
    assert log.recorder.checkpointer is None  # a reader never starts one
    _write(log, 200)
    checkpointer = log.recorder.checkpointer
    runs = checkpointer.runs
    deadline = time.monotonic() + 10
    while checkpointer.runs == runs and time.monotonic() < deadline:
        time.sleep(0.05)
    assert checkpointer.runs > runs
    _write(log, 200)
    busy, pages, copied = checkpointer.checkpoint()
    assert busy == 0 and pages > 0 and copied == pages  # no reader holds it back: all of it copied
    thread = checkpointer._thread
    log.close()
    assert not thread.is_alive() and log.recorder.checkpointer is None


def test_an_in_memory_store_has_no_checkpoints(tmp_path):
    log = EventLog("memory:")
    log.recorder.insert_events([StoredEvent(originator_id=uuid4(), originator_version=1, topic="t:T", state=b"{}")])
    assert getattr(log.recorder, "checkpointer", None) is None
    log.close()


def test_under_a_busy_writer_the_log_starts_over_and_keeps_every_row(tmp_path):
    """PASSIVE checkpoints racing a busy writer rarely leave the log all copied
    when a write begins, so it used to grow to the backstop; past
    `restart_pages` the thread starts it over."""
    log = EventLog(f"sqlite:///{tmp_path}/events.db")
    _write(log, 10)
    log.recorder.checkpointer.restart_pages = 500  # about 2 MB of log
    for _ in range(200):  # 160 MB of log if it never starts over, 19 if it does (measured)
        _write(log, 200)
        time.sleep(0.01)  # the engine's writer leaves gaps too: it routes the next batch
    restarts = log.recorder.checkpointer.restarts
    wal = (tmp_path / "events.db-wal").stat().st_size
    with log.recorder.datastore.transaction(commit=False) as c:
        c.execute("SELECT COUNT(*) FROM stored_events")
        rows = c.fetchone()[0]
    log.close()
    assert restarts > 0
    assert wal < 120 << 20  # (160 MB without restarts)
    assert rows == 10 + 200 * 200
