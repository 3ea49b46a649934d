"""The demand read model: sales, rejections and shortages per node and SKU."""
from __future__ import annotations

import pytest

from domain.commands import AcceptOrder, Line, ReportProgress, SellOverCounter, SubmitOrder
from domain.errors import Conflict
from engine.app import Engine, EngineSettings
from engine.clock import SimClock
from engine.readmodels import ReadModels
from engine.readmodels.demand import BUCKET_S, LOST_ONLINE, SHORT_COUNTER, SOLD_COUNTER, SOLD_ONLINE
from tests.engine.network_fixture import at_km, small_network

T0 = 1_700_000_100.0


@pytest.fixture
def engine():
    e = Engine(small_network(), EngineSettings(), clock=SimClock(T0), store="memory:").start()
    yield e
    e.close()


def hand_over(engine: Engine, order_id: str) -> None:
    engine.accept(AcceptOrder(order_id=order_id))
    for step in ("picked", "dispatched", "delivered"):
        engine.progress(ReportProgress(order_id=order_id, step=step))


def submit(engine: Engine, ext: str, km: float = 0.0, **lines: int):
    lat, lon = at_km(km)
    return engine.submit(SubmitOrder(channel="app", external_id=ext, lines=[Line(s, q) for s, q in lines.items()],
                                     lat=lat, lon=lon))


def test_an_order_handed_over_counts_as_sold_online_at_its_node_when_handed_over(engine):
    reply = submit(engine, "o1", A=2)
    demand = engine.readmodels.demand
    assert demand.between(SOLD_ONLINE, T0 - BUCKET_S, T0 + 86_400) == {}  # routed is not sold yet
    engine.clock.advance_to(T0 + 600)
    hand_over(engine, reply.order_id)
    assert demand.between(SOLD_ONLINE, T0, T0 + 86_400) == {(reply.node, "A"): 2}
    assert demand.between(SOLD_ONLINE, T0 + 3600, T0 + 86_400) == {}  # a window after the sale


def test_counter_sales_count_and_a_sale_refused_for_stock_records_what_was_short(engine):
    engine.sell(SellOverCounter(node="S1", sale_id="p1", lines=[Line("A", 2)]))
    with pytest.raises(Conflict):
        engine.sell(SellOverCounter(node="S2", sale_id="p2", lines=[Line("C", 1), Line("A", 1)]))  # S2 holds no C
    demand = engine.readmodels.demand
    assert demand.between(SOLD_COUNTER, T0 - BUCKET_S, T0 + 60) == {("S1", "A"): 2}
    assert demand.between(SHORT_COUNTER, T0 - BUCKET_S, T0 + 60) == {("S2", "C"): 1}
    assert demand.short_counter == {("S2", "C"): 1}


def test_an_order_rejected_for_stock_is_lost_at_the_cheapest_node_that_lacked_it(engine):
    reply = submit(engine, "o1", km=1.0, C=20)  # nobody holds 20 cherries; S2 (nearest) holds none
    assert reply.status == "rejected"
    demand = engine.readmodels.demand
    lost = demand.between(LOST_ONLINE, T0 - BUCKET_S, T0 + 60)
    assert lost == {("S2", "C"): 20}
    assert demand.lost == {("S2", "C"): {"no_stock": 20}}


def test_an_order_rejected_for_another_cause_is_kept_by_cause_but_not_as_stock_demand():
    network = small_network()
    full = network.__class__(**{**{f: getattr(network, f) for f in network.__struct_fields__},
                                "nodes": [n.__class__(**{**{f: getattr(n, f) for f in n.__struct_fields__},
                                                         "capacity_per_slot": 0}) for n in network.nodes]})
    e = Engine(full, EngineSettings(), clock=SimClock(T0), store="memory:").start()
    try:
        assert submit(e, "o1", A=1).status == "rejected"
        demand = e.readmodels.demand
        assert demand.between(LOST_ONLINE, T0 - BUCKET_S, T0 + 60) == {}
        assert [c for c in demand.lost.values()] == [{"capacity": 1}]
    finally:
        e.close()


def test_a_rebuild_gives_the_same_sales_and_losses_but_not_the_shortages_observed(engine):
    reply = submit(engine, "o1", A=1)
    hand_over(engine, reply.order_id)
    submit(engine, "o2", km=1.0, C=20)
    engine.sell(SellOverCounter(node="S3", sale_id="p1", lines=[Line("B", 1)]))
    engine.readmodels.demand.record_quote_short("S1", {"C": 3}, T0)
    rebuilt = ReadModels(engine.network)
    for nid, event in engine.stored_events():
        rebuilt.apply(event, nid)
    assert rebuilt.demand.state() == engine.readmodels.demand.state()
    assert rebuilt.demand.state()["sold"][SOLD_COUNTER]
    assert rebuilt.demand.short_quote == {} and engine.readmodels.demand.short_quote == {("S1", "C"): 3}


def test_buckets_older_than_the_kept_days_are_dropped():
    views = ReadModels(small_network())
    demand = views.demand
    demand.record_pos_short("S1", {"A": 1}, T0)
    demand.record_pos_short("S1", {"A": 1}, T0 + 31 * 86_400)
    assert demand.between(SHORT_COUNTER, 0, T0 + 32 * 86_400) == {("S1", "A"): 1}
    assert demand.short_counter == {("S1", "A"): 2}  # the totals keep everything
