"""`o2o serve` as a process: killed mid-intake, a nats-server restart under
load, and a graceful SIGTERM."""
from __future__ import annotations

import asyncio
import time
from collections import Counter

import msgspec
import nats
import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy

from adapters.embedded_nats import EmbeddedNats
from adapters.event_publisher import ID_HEADER, STREAM
from adapters.intake import publish_orders
from domain import ids
from domain.commands import Line, SubmitOrder
from engine.store.network_file import load_sample
from engine.store.eventlog import EventLog
from tests.integration.conftest import ServeProcess, run

NETWORK = load_sample()

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # `o2o serve` as a child process


def orders(n: int, tag: str) -> list[SubmitOrder]:
    stores = [s for s in NETWORK.nodes if s.kind == "store"]
    return [SubmitOrder(channel="mall", external_id=f"{tag}-{i}", lines=[Line(NETWORK.skus[i % 40].id, 1)],
                        lat=stores[i % len(stores)].lat, lon=stores[i % len(stores)].lon) for i in range(n)]


def outcomes(store: str) -> tuple[Counter, Counter, int]:
    """Per order: how many Placed events and how many first decisions; the last notification id."""
    log = EventLog(store)
    try:
        placed, decided, seen = Counter(), Counter(), set()
        for _, e in log.stored_events():
            kind, oid = type(e).__name__, str(e.originator_id)
            if kind == "Placed":
                placed[oid] += 1
            elif kind in ("Routed", "Rejected") and oid not in seen:
                decided[oid] += 1
                seen.add(oid)
        return placed, decided, log.last_notification_id()
    finally:
        log.close()


async def published_ids(url: str) -> list[int]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    info = await js.stream_info(STREAM)
    sub = await js.subscribe("o2o.events.>", stream=STREAM, ordered_consumer=True,
                             config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
    out = []
    for _ in range(info.state.messages):
        msg = await sub.next_msg(timeout=10)
        out.append(int(msg.headers[ID_HEADER]))
    await nc.close()
    return out


async def wait_intake_done(url: str, timeout: float = 90) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            info = await js.consumer_info("O2O_INTAKE", "o2o-engine")
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"intake not consumed: {info.num_pending} pending, {info.num_ack_pending} unacked")
    finally:
        await nc.close()


def test_killed_while_consuming_intake_every_order_is_routed_once_and_the_stream_has_no_gap(nats_server, tmp_path):
    store = f"sqlite:///{tmp_path}/events.db"
    batch = orders(3000, "kill")
    first = ServeProcess(nats_server.url, store, tmp_path / "serve1.log", extra=("--ack-wait", "2")).start()

    async def publish_and_kill():
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await publish_orders(js, batch)
        while (await js.consumer_info("O2O_INTAKE", "o2o-engine")).ack_floor.consumer_seq < 300:
            await asyncio.sleep(0.005)  # until a first batch is stored and acknowledged
        first.kill()  # mid-consumption, no goodbye
        await nc.close()

    run(publish_and_kill())
    placed_after_kill, _, _ = outcomes(store)
    assert 0 < len(placed_after_kill) < len(batch), "the kill should land mid-intake"
    # JetStream redelivers what the killed engine held unacknowledged after the ack wait
    second = ServeProcess(nats_server.url, store, tmp_path / "serve2.log", extra=("--ack-wait", "2")).start()
    run(wait_intake_done(nats_server.url))
    assert second.terminate() == 0  # graceful: publishes what is stored, then exits

    placed, decided, last = outcomes(store)
    expected = {str(ids.order_id(c.channel, c.external_id)) for c in batch}
    assert set(placed) == expected and set(placed.values()) == {1}
    assert set(decided) == expected
    assert sorted(run(published_ids(nats_server.url))) == list(range(1, last + 1))


def test_the_engine_reconnects_after_a_nats_server_restart_under_load(tmp_path):
    server = EmbeddedNats(tmp_path / "nats").start()
    store = f"sqlite:///{tmp_path}/events.db"
    serve = ServeProcess(server.url, store, tmp_path / "serve.log").start()
    batch = orders(400, "restart")
    answered: dict[str, dict] = {}

    async def load():
        nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)

        async def one(cmd: SubmitOrder):
            for _ in range(200):
                try:
                    msg = await nc.request("o2o.orders.submit", msgspec.json.encode(cmd), timeout=2)
                    if not (msg.headers or {}).get("Nats-Service-Error"):
                        answered[cmd.external_id] = msgspec.json.decode(msg.data)
                        return
                except Exception:  # server away or no responder yet: try again, as a channel would
                    await asyncio.sleep(0.2)

        async def restart():
            await asyncio.sleep(0.5)
            server.stop()
            await asyncio.sleep(1.0)
            server.start()

        chunks = [batch[i:i + 20] for i in range(0, len(batch), 20)]

        async def sender():
            for chunk in chunks:
                await asyncio.gather(*(one(c) for c in chunk))
                await asyncio.sleep(0.05)

        await asyncio.gather(sender(), restart())
        await nc.close()

    try:
        run(load())
        assert len(answered) == len(batch)
        assert serve.proc.poll() is None, "the engine should still be running"
        assert serve.terminate() == 0  # graceful: publishes what is stored, then exits
        placed, _, last = outcomes(store)
        assert len(placed) == len(batch) and set(placed.values()) == {1}
        # events published around the restart: none lost, none twice, in commit order
        assert run(published_ids(server.url)) == list(range(1, last + 1))
    finally:
        if serve.proc.poll() is None:
            serve.kill()
        server.stop()


def test_sigterm_finishes_the_batch_in_flight_and_every_request_gets_an_answer(nats_server, tmp_path):
    store = f"sqlite:///{tmp_path}/events.db"
    serve = ServeProcess(nats_server.url, store, tmp_path / "serve.log").start()
    batch = orders(500, "term")

    async def go():
        nc = await nats.connect(nats_server.url)
        tasks = [asyncio.ensure_future(nc.request("o2o.orders.submit", msgspec.json.encode(c), timeout=15))
                 for c in batch]
        await asyncio.sleep(0.05)
        serve.proc.send_signal(15)
        replies = await asyncio.gather(*tasks, return_exceptions=True)
        await nc.close()
        return replies

    replies = run(go())
    assert serve.proc.wait(30) == 0
    ok = [r for r in replies if not isinstance(r, Exception) and not (r.headers or {}).get("Nats-Service-Error")]
    refused = [r for r in replies if not isinstance(r, Exception) and (r.headers or {}).get("Nats-Service-Error")]
    lost = [r for r in replies if isinstance(r, Exception) and not isinstance(r, nats.errors.NoRespondersError)]
    assert ok, "some orders were answered before the stop"
    assert all(r.headers["Nats-Service-Error-Code"] == "503" for r in refused)
    assert not lost, f"{len(lost)} requests got no answer"
    placed, _, _ = outcomes(store)
    answered = {msgspec.json.decode(r.data)["order_id"] for r in ok}
    assert answered <= set(placed)
