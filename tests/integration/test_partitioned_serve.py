"""Two `o2o serve` processes owning one partition each, on a 3-node
JetStream cluster and PostgreSQL (docs/scale-out.md): requests reach the
owner whatever server and engine they arrive at, intake messages are
handed off to the owner, and when one engine is killed the other takes
its partition over within the lease's TTL and serves it."""
from __future__ import annotations

import asyncio
import time
from collections import Counter

import msgspec
import nats
import pytest

from adapters.cli_cluster import check_store, prepare_jetstream
from adapters.embedded_nats import EmbeddedCluster
from adapters.intake import DURABLE as INTAKE_DURABLE, STREAM as INTAKE_STREAM, publish_orders
from domain import ids
from domain.inventory import NodeInventory
from engine.config import Config
from engine.partitions import partition_map
from engine.store.eventlog import EventLog
from engine.store.network_file import SAMPLE_NETWORK, load_network
from tests.integration.conftest import ServeProcess
from tests.integration.test_process import orders, outcomes

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres]

TTL = 2.0


def run(coro, timeout: float = 120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def submit(url: str, cmds, timeout: float = 2.0, patience: float = 30.0,
                 moving: bool = True) -> tuple[dict, float]:
    """Each order over request/reply, retried until answered (a client's way
    through a take-over; `moving`: also when told the partition is moving);
    returns the replies by external id and the longest time an order waited
    for its answer."""
    nc = await nats.connect(url)
    replies, longest = {}, 0.0

    async def one(cmd):
        nonlocal longest
        start = time.monotonic()
        while time.monotonic() - start < patience:
            try:
                msg = await nc.request("o2o.orders.submit", msgspec.json.encode(cmd), timeout=timeout)
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                await asyncio.sleep(0.2)
                continue
            code = msg.headers and msg.headers.get("Nats-Service-Error-Code")
            if code:
                assert moving and code in ("421", "503"), f"order {cmd.external_id}: {code} {msg.data!r}"
                await asyncio.sleep(0.2)  # the partition is moving: ask again
                continue
            replies[cmd.external_id] = msgspec.json.decode(msg.data)
            longest = max(longest, time.monotonic() - start)
            return
        raise AssertionError(f"order {cmd.external_id} never answered")

    await asyncio.gather(*(one(c) for c in cmds))
    await nc.close()
    return replies, longest


def stored_state(store: str) -> tuple[Counter, Counter, list[str]]:
    """Placed and first-decision counts per order, and every node that reserves more than it holds."""
    placed, decided, _ = outcomes(store)
    log = EventLog(store)
    try:
        over = []
        for node in load_network(SAMPLE_NETWORK).nodes:
            inv: NodeInventory = log.repository.get(ids.inventory_id(node.id))
            over += [f"{node.id}/{s}" for s, r in inv.reserved.items() if r > inv.on_hand.get(s, 0)]
        return placed, decided, over
    finally:
        log.close()


def test_two_engines_serve_their_partitions_and_one_takes_over_when_the_other_is_killed(tmp_path, postgres_url):
    config_file = tmp_path / "o2o.toml"
    config_file.write_text(f"[partitions]\ncount = 2\nlease_ttl_s = {TTL}\n")
    config = Config().with_overrides({"partitions": {"count": 2, "lease_ttl_s": TTL}})
    pmap = partition_map(load_network(SAMPLE_NETWORK), config.partitions)
    with EmbeddedCluster(tmp_path / "cluster", size=3) as cluster:
        run(prepare_jetstream(cluster.url, config, 3))
        check_store(postgres_url)  # as `o2o cluster up` does first
        engines = {}
        for name, mine, spare in (("a", "p1", "p2"), ("b", "p2", "p1")):
            engines[name] = ServeProcess(cluster.urls[0 if name == "a" else 1], postgres_url, tmp_path / f"{name}.log",
                                         ("--config", str(config_file), "--partitions", mine, "--standby", spare,
                                          "--events", "external")).launch()  # as `o2o cluster up`: together
        for e in engines.values():
            e.serving(timeout=60)
        try:
            cmds = orders(120, "both")
            by_partition = Counter(pmap.of_region(pmap.home_region(c.lat, c.lon)) for c in cmds)
            client_url = cluster.urls[2]  # a server neither engine is connected to
            replies, _ = run(submit(client_url, cmds, moving=False))  # misdirected ones are forwarded, not refused
            run(_publish(client_url, orders(60, "intake")))
            run(_intake_taken(client_url))  # else a kill mid-batch leaves them all to the survivor: none handed off

            engines["a"].kill()  # p1's owner: b takes p1 over once its lease lapses
            killed_at = time.monotonic()
            after, longest = run(submit(client_url, orders(60, "after")))
            took_over = time.monotonic() - killed_at
            placed, decided, over = _drained(postgres_url, 120 + 60 + 60)
            handed_off = run(_stream_messages(client_url, "O2O_HANDOFF"))
        finally:
            for e in engines.values():
                if e.proc.poll() is None:
                    e.terminate()
        log_b = (tmp_path / "b.log").read_text()

    assert by_partition["p1"] > 0 and by_partition["p2"] > 0  # orders of both partitions, sent to one server
    assert len(replies) == 120 and all(r["status"] in ("routed", "rejected", "placed") for r in replies.values())
    assert len(after) == 60  # placed: handed over to the other partition, routed there
    assert "took partition p1 over at epoch" in log_b, log_b[-2000:]
    assert len(placed) == 240 and set(placed.values()) == {1}  # every order stored once
    assert len(decided) == 240 and set(decided.values()) == {1}  # and decided once
    assert over == []
    assert 0 < handed_off < 60  # the intake messages of the partition the pulling engine did not own
    print(f"take-over: every order answered within {longest:.1f} s of its first try; "
          f"{took_over:.1f} s from the kill to the last answer")


async def _publish(url: str, cmds) -> None:
    nc = await nats.connect(url)
    await publish_orders(nc.jetstream(), cmds)
    await nc.close()


async def _intake_taken(url: str, timeout: float = 30.0) -> None:
    """Until the engines have acknowledged every intake message."""
    nc = await nats.connect(url)
    try:
        deadline = time.monotonic() + timeout
        while (c := await nc.jetstream().consumer_info(INTAKE_STREAM, INTAKE_DURABLE)).num_pending \
                or c.num_ack_pending:
            assert time.monotonic() < deadline, f"intake not taken: {c.num_pending} pending, {c.num_ack_pending} unacked"
            await asyncio.sleep(0.1)
    finally:
        await nc.close()


async def _stream_messages(url: str, stream: str) -> int:
    nc = await nats.connect(url)
    info = await nc.jetstream().stream_info(stream)
    await nc.close()
    return info.state.messages


def _drained(store: str, expected: int, timeout: float = 90.0):
    """The store once every order is placed and decided (intake and hand-offs are asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        placed, decided, over = stored_state(store)
        if len(decided) >= expected or time.monotonic() > deadline:
            return placed, decided, over
        time.sleep(0.5)
