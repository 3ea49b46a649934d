"""The engine over a store that outlives it: restarts, snapshots, and two
writers on one store (optimistic concurrency)."""
from __future__ import annotations

import msgspec
import pytest
from eventsourcing.application import project_aggregate

from domain import ids
from domain.commands import Line, ReceiveStock, SubmitOrder
from engine.app import Engine, EngineSettings
from engine.clock import SimClock
from tests.engine.network_fixture import at_km, small_network

T0 = 1_700_000_000.0


def order(ext: str, km: float = 0.0, **lines: int) -> SubmitOrder:
    lat, lon = at_km(km)
    return SubmitOrder(channel="app", external_id=ext, lines=[Line(s, q) for s, q in lines.items()], lat=lat, lon=lon)


@pytest.fixture
def durable_url(request, tmp_path):
    """SQLite and PostgreSQL: the stores that survive the process."""
    return request.getfixturevalue("postgres_url") if request.param == "postgres" else f"sqlite:///{tmp_path}/events.db"


durable = pytest.mark.parametrize("durable_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
                                  indirect=True)


@durable
def test_a_restarted_engine_sees_what_it_stored_and_opens_no_node_twice(durable_url):
    clock = SimClock(T0)
    first = Engine(small_network(), clock=clock, store=durable_url).start()
    reply = first.submit(order("o1", A=2))
    state, events = first.readmodels.state(), first.last_notification_id()
    first.close()

    again = Engine(small_network(), clock=clock, store=durable_url).start()
    try:
        assert again.last_notification_id() == events  # nothing opened again
        assert again.readmodels.state() == state
        repeat = again.submit(order("o1", A=2))
        assert repeat.repeat and repeat.order_id == reply.order_id
        assert again.last_notification_id() == events
    finally:
        again.close()


@durable
def test_inventories_are_snapshotted_and_load_from_the_snapshot(durable_url):
    settings = EngineSettings(inventory_snapshot_interval=5)
    engine = Engine(small_network(), settings, clock=SimClock(T0), store=durable_url).start()
    try:
        for i in range(12):
            engine.receive(ReceiveStock(node="S1", lines=[Line("A", 1)], ref=f"po-{i}"))
        inv_id = ids.inventory_id("S1")
        snapshots = list(engine.log.snapshots.get(inv_id))
        version = engine.inventories()["S1"].version
        assert [s.originator_version for s in snapshots] == list(range(5, version + 1, 5)), "one per interval crossed"
        for snap in snapshots:  # taken from memory: each equals the events replayed up to its version
            replayed = project_aggregate(None, engine.log.events.get(inv_id, lte=snap.originator_version))
            assert snap.mutate(None).on_hand == replayed.on_hand and replayed.version == snap.originator_version
        loaded = engine.log.repository.get(inv_id)
        assert loaded.on_hand == engine.inventories()["S1"].on_hand
        assert loaded.on_hand["A"] == 5 + 12
    finally:
        engine.close()


@durable
def test_members_are_snapshotted_and_a_restarted_engine_loads_them_from_the_snapshot(durable_url):
    from domain.commands import SellOverCounter, SignUpMember

    settings = EngineSettings(member_snapshot_interval=5)
    network = small_network(stock={"S1": {"A": 5}, "S2": {"B": 50}, "S3": {}, "K1": {}})
    engine = Engine(network, settings, clock=SimClock(T0), store=durable_url).start()
    try:
        engine.sign_up(SignUpMember(member="m1", node="S1"))
        for i in range(12):  # one PointsEarned a sale
            engine.handle(SellOverCounter(node="S2", sale_id=f"p{i}", lines=[Line("B", 1, unit_price=1000)],
                                          member="m1"))
        points = engine.member("m1").points
    finally:
        engine.close()
    again = Engine(network, settings, clock=SimClock(T0), store=durable_url).start()
    try:
        member_id = ids.member_id("m1")
        assert [s.originator_version for s in again.log.snapshots.get(member_id)] == [5, 10]
        loaded = again.store.get(member_id)
        replayed = project_aggregate(None, again.log.events.get(member_id))
        assert vars(loaded) == vars(replayed) and loaded.version == 13 and points == 12 * 10
        again.handle(SellOverCounter(node="S2", sale_id="p12", lines=[Line("B", 1, unit_price=1000)], member="m1"))
        assert again.member("m1").points == points + 10
    finally:
        again.close()


@durable
def test_an_inventory_holding_many_open_reservations_is_snapshotted_less_often(durable_url):
    """Snapshots every `interval` events, or every as many events as the node holds open reservations."""
    network = small_network(stock={"S1": {"A": 1000}})
    network = msgspec.structs.replace(network, nodes=[msgspec.structs.replace(n, capacity_per_slot=1000)
                                                      for n in network.nodes])
    engine = Engine(network, EngineSettings(inventory_snapshot_interval=5), clock=SimClock(T0), store=durable_url).start()
    try:
        for i in range(40):
            assert engine.submit(order(f"r{i}", A=1)).node == "S1"  # one reservation (one event) at S1 each
        inv_id = ids.inventory_id("S1")
        versions = [s.originator_version for s in engine.log.snapshots.get(inv_id)]
        gaps = [b - a for a, b in zip([0, *versions], versions)]
        open_at = [v - 3 for v in versions]  # the opening events come first: reservations held at each snapshot
        assert all(gap >= max(5, held) for gap, held in zip(gaps, open_at)), (versions, gaps)
        assert len(versions) < 43 // 5  # fewer than one per interval
        for v in versions:
            snap = next(s for s in engine.log.snapshots.get(inv_id) if s.originator_version == v)
            replayed = project_aggregate(None, engine.log.events.get(inv_id, lte=v))
            assert snap.mutate(None).reservations == replayed.reservations
    finally:
        engine.close()


@durable
def test_two_engines_writing_one_store_retry_a_version_conflict_and_lose_nothing(durable_url):
    clock = SimClock(T0)
    a = Engine(small_network(), clock=clock, store=durable_url).start()
    b = Engine(small_network(), clock=clock, store=durable_url).start()
    try:
        assert "S1" in a.inventories()  # a opened the nodes and holds S1 in memory
        b.receive(ReceiveStock(node="S1", lines=[Line("C", 3)], ref="po-b"))
        # a's cached S1 is now one version behind: its save conflicts, it reloads and retries
        reply = a.receive(ReceiveStock(node="S1", lines=[Line("C", 2)], ref="po-a"))
        assert reply.on_hand["C"] == 1 + 3 + 2
        b.catch_up()
        assert b.stock("S1", ["C"]).on_hand["C"] == 6
    finally:
        a.close()
        b.close()
