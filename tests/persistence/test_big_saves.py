"""A save of several MB on PostgreSQL (a 600-node network's opening stock):
psycopg's pipeline hung on it for ever; the recorder sends it without."""
from __future__ import annotations

import threading
import uuid

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from engine.store.eventlog import EventLog
from engine.store.recorders import PIPELINE_MAX_BYTES

pytestmark = pytest.mark.postgres


def _events(n: int, size: int) -> list[StoredEvent]:
    return [StoredEvent(uuid.uuid4(), 1, "domain.inventory:NodeInventory.Received", b"x" * size) for _ in range(n)]


def _insert(log: EventLog, events: list[StoredEvent], timeout: float = 30) -> list[int]:
    """The insert in a thread, so a hang fails the test instead of stopping the suite."""
    done: dict = {}

    def work():
        try:
            done["ids"] = log.recorder.insert_events(events)
        except Exception as e:  # handed to the test below
            done["error"] = e

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"inserting {sum(len(e.state) for e in events):,} bytes hung"
    if "error" in done:
        raise done["error"]
    return done["ids"]


def test_a_save_of_several_megabytes_is_stored_in_one_piece_with_its_notification_ids(postgres_url):
    log = EventLog(postgres_url)
    small = _insert(log, _events(3, 100))
    big = _events(1200, 5000)
    assert sum(len(e.state) for e in big) > PIPELINE_MAX_BYTES
    ids = _insert(log, big)
    assert ids == list(range(small[-1] + 1, small[-1] + 1 + len(big)))
    assert [n.originator_id for n in log.recorder.select_notifications(ids[0], len(big))] == [e.originator_id for e in big]


def test_a_big_save_that_conflicts_stores_nothing(postgres_url):
    log = EventLog(postgres_url)
    first = _insert(log, _events(1, 100))
    clash = _events(1200, 5000)
    clash[-1] = StoredEvent(log.recorder.select_notifications(first[0], 1)[0].originator_id, 1, "x:Y", b"{}")
    with pytest.raises(IntegrityError):
        _insert(log, clash)
    assert log.last_notification_id() == first[0]
