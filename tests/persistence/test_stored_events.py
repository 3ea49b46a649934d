"""EventLog.stored_events, the engine's replay path: the same events, in the
same order, as the library's notifications give, on every store."""
from __future__ import annotations

import gc

from domain.commands import CancelOrder, Line, SubmitOrder
from engine.app import Engine
from engine.clock import SimClock
from engine.store.eventlog import EventLog
from tests.engine.network_fixture import at_km, small_network


def _filled(url: str) -> EventLog:
    engine = Engine(small_network(), clock=SimClock(1_700_000_000.0), store=url).start()
    lat, lon = at_km(0.5)
    replies = engine.submit_batch([SubmitOrder(channel="app", external_id=f"o{i}", lines=[Line("A", 1)], lat=lat, lon=lon)
                                   for i in range(5)])
    engine.cancel(CancelOrder(order_id=replies[0].order_id, reason="changed my mind"))
    return engine.log


def _library(log: EventLog) -> list[tuple]:
    notes = log.recorder.select_notifications(1, 10_000)
    return [(n.id, type(e), vars(e)) for n in notes for e in [log.mapper.to_domain_event(n)]]


def test_stored_events_are_the_library_notifications_decoded_in_commit_order(store_url):
    log = _filled(store_url)
    expected = _library(log)
    assert len(expected) > 10
    assert [(nid, type(e), vars(e)) for nid, e in log.stored_events(page=3)] == expected
    assert [nid for nid, _ in log.stored_events(4, page=2, stop=7)] == [4, 5, 6, 7]
    assert list(log.stored_events(8, stop=7)) == []
    assert [nid for nid, _ in log.stored_events(len(expected))] == [len(expected)]


def test_the_garbage_collector_runs_again_once_the_events_are_read_or_left(store_url):
    log = _filled(store_url)
    assert gc.isenabled()
    for _ in log.stored_events():
        assert not gc.isenabled()
    assert gc.isenabled()
    for _ in log.stored_events():
        break
    assert gc.isenabled()
    gc.disable()
    try:
        list(log.stored_events())
        assert not gc.isenabled()  # a caller's own pause is left alone
    finally:
        gc.enable()


def test_each_saved_event_is_told_the_notification_id_the_store_gave_it(store_url):
    """A batch's save hands its notifications to the read models and the publisher: their ids must be the store's."""
    engine = Engine(small_network(), clock=SimClock(1_700_000_000.0), store=store_url).start()
    told: list = []
    engine.on_commit.append(told.extend)
    lat, lon = at_km(0.5)
    engine.submit_batch([SubmitOrder(channel="app", external_id=f"n{i}", lines=[Line("A", 1)], lat=lat, lon=lon)
                         for i in range(4)])
    engine.submit_batch([SubmitOrder(channel="app", external_id="single", lines=[Line("B", 1)], lat=lat, lon=lon)])
    stored = {n.id: (n.originator_id, n.originator_version) for n in engine.recorder.select_notifications(1, 10_000)}
    assert len(told) > 8 and [n.id for n in told] == sorted(stored)[-len(told):]
    assert all(stored[n.id] == (n.originator_id, n.originator_version) for n in told)
    assert engine.readmodels.last_notification_id == max(stored)
