"""The event publisher against a real nats-server: one that goes away while
it publishes still ends up holding every stored event once, in commit
order; a stream filled from another store is refused."""
from __future__ import annotations

import asyncio

import nats
import pytest

from adapters.embedded_nats import EmbeddedNats
from adapters.event_publisher import EventPublisher, ForeignStream
from domain.commands import Line, SubmitOrder
from engine.app import Engine
from engine.clock import ShiftedClock
from engine.store.network_file import load_sample
from tests.integration.conftest import NOON, run
from tests.integration.test_process import published_ids


def _busy_store(n_orders: int) -> Engine:
    network = load_sample()
    engine = Engine(network, clock=ShiftedClock(NOON), store="memory:").start()
    stores = [s for s in network.nodes if s.kind == "store"]
    engine.submit_batch([
        SubmitOrder(channel="app", external_id=f"ev-{i}", lines=[Line(network.skus[i % 50].id, 1)],
                    lat=stores[i % len(stores)].lat, lon=stores[i % len(stores)].lon)
        for i in range(n_orders)
    ])
    return engine


@pytest.mark.slow
def test_a_nats_server_killed_while_events_are_published_leaves_no_gap_no_repeat_and_commit_order(tmp_path):
    engine = _busy_store(3000)
    last = engine.last_notification_id()
    server = EmbeddedNats(tmp_path / "nats").start()

    async def go():
        nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
        publisher = EventPublisher(nc, engine.recorder, asyncio.Event(), page=500, ack_timeout=1.0)
        await publisher.start()
        while publisher.last < 1000:  # well into the burst
            await asyncio.sleep(0.001)
        server.proc.kill()  # no goodbye: acks and messages in flight are lost
        server.proc.wait()
        await asyncio.sleep(0.3)
        server.start()
        while publisher.last < last:
            await asyncio.sleep(0.05)
        await publisher.stop()
        await nc.close()

    try:
        run(go())
        assert run(published_ids(server.url)) == list(range(1, last + 1))
    finally:
        server.stop()
        engine.close()


def test_a_stream_filled_from_another_store_is_refused_instead_of_skipping_this_stores_events(nats_server):
    busy, empty = _busy_store(50), Engine(load_sample(), clock=ShiftedClock(NOON), store="memory:").start()

    async def go():
        nc = await nats.connect(nats_server.url)
        first = EventPublisher(nc, busy.recorder, asyncio.Event())
        await first.start()
        while first.last < busy.last_notification_id():
            await asyncio.sleep(0.01)
        await first.stop()
        with pytest.raises(ForeignStream, match="another store"):
            await EventPublisher(nc, empty.recorder, asyncio.Event()).start()
        await nc.close()

    try:
        run(go())
    finally:
        busy.close()
        empty.close()
