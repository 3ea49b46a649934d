"""Replenishment suggestions: order-up-to levels from recent demand, transfers before purchases."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from domain.commands import (
    AcceptOrder, Line, ReplenishPolicy, ReportProgress, SellOverCounter, SetSafetyStock, SubmitOrder, SuggestStock,
)
from domain.errors import Conflict, NotFound
from engine.app import Engine, EngineSettings
from engine.clock import SimClock
from engine.replenish import deliveries_around
from tests.engine.network_fixture import at_km, small_network

TZ = ZoneInfo("Asia/Shanghai")


def local(day: int, hhmm: str) -> float:
    h, m = map(int, hhmm.split(":"))
    return datetime(2026, 12, 1 + day, h, m, tzinfo=TZ).timestamp()


NO_MOVES = ReplenishPolicy(transfer_km=0)


def make(stock: dict | None = None) -> Engine:
    return Engine(small_network(stock), EngineSettings(), clock=SimClock(local(0, "07:00")), store="memory:").start()


@pytest.fixture
def engine():
    e = make()
    yield e
    e.close()


def sell(engine: Engine, node: str, at: float, sale_id: str, **lines: int) -> None:
    engine.clock.advance_to(at)
    engine.sell(SellOverCounter(node=node, sale_id=sale_id, lines=[Line(s, q) for s, q in lines.items()]))


def plan(engine: Engine, suggestion, node: str, sku: str):
    return next((x for x in suggestion.lines if (x.node, x.sku) == (node, sku)), None)


def test_the_next_delivery_and_the_one_after_it_come_from_the_local_times():
    assert deliveries_around(["16:00", "11:00"], "Asia/Shanghai", local(0, "12:00")) == (local(0, "16:00"), local(1, "11:00"))
    assert deliveries_around(["11:00", "16:00"], "Asia/Shanghai", local(0, "11:00")) == (local(0, "11:00"), local(0, "16:00"))


def test_with_no_day_of_demand_behind_it_nothing_is_suggested(engine):
    sell(engine, "S1", local(0, "12:00"), "p1", A=2)
    engine.clock.advance_to(local(0, "16:00"))
    s = engine.handle(SuggestStock(policy=NO_MOVES))
    assert s.history_days == 0 and s.purchases == [] and s.transfers == []


def test_a_node_is_topped_up_to_the_demand_of_the_same_hours_yesterday_plus_a_margin(engine):
    for k in range(4):  # 4 apples sold between 11:00 and 16:00 on day 0, at S1 (which holds 5)
        sell(engine, "S1", local(0, f"1{2 + k}:00"), f"p{k}", A=1)
    engine.clock.advance_to(local(1, "11:00"))
    s = engine.handle(SuggestStock(policy=NO_MOVES))
    assert s.history_days == 1 and s.delivery_at.timestamp() == local(1, "11:00")
    a = plan(engine, s, "S1", "A")
    # mean 4, spread at least Poisson's (2), the counter's 99.9%: 4 + 3.09 x 2 = 10.2 -> 11; 1 apple left
    assert (a.expected, a.target, a.free, a.buy) == (4.0, 11, 1, 10)
    assert plan(engine, s, "S2", "A") is None  # nothing sold there: 5 on the shelf is enough
    assert s.units_to_buy == sum(p.qty for p in s.purchases)


def test_counter_customers_who_went_without_raise_the_level_as_sales_do(engine):
    sell(engine, "S2", local(0, "12:00"), "p1", A=5)  # S2's last apples
    for k in range(3):
        with pytest.raises(Conflict):
            sell(engine, "S2", local(0, f"1{3 + k}:00"), f"p{2 + k}", A=1)
    engine.clock.advance_to(local(1, "11:00"))
    a = plan(engine, engine.handle(SuggestStock(policy=NO_MOVES)), "S2", "A")
    assert a.expected == 8.0 and a.buy == a.target  # nothing left


def test_online_orders_lost_for_stock_raise_the_level_where_they_were_lost(engine):
    lat, lon = at_km(1.0)  # S2 is nearest and holds no cherries; nobody holds 20
    engine.clock.advance_to(local(0, "12:00"))
    reply = engine.submit(SubmitOrder(channel="app", external_id="o1", lines=[Line("C", 20)], lat=lat, lon=lon))
    assert reply.status == "rejected"
    engine.clock.advance_to(local(1, "11:00"))
    c = plan(engine, engine.handle(SuggestStock(policy=ReplenishPolicy(transfer_km=0, new_skus=True))), "S2", "C")
    assert c is not None and c.expected == 20.0 and c.buy >= 20


def test_a_nearby_kitchen_s_surplus_is_moved_before_anything_is_bought(engine):
    for k in range(4):
        sell(engine, "S3", local(0, f"1{2 + k}:00"), f"p{k}", A=1)
    engine.clock.advance_to(local(1, "11:00"))
    s = engine.handle(SuggestStock(policy=ReplenishPolicy(transfer_km=3.0)))  # K1 is 2 km from S3, 50 apples
    moved = [t for t in s.transfers if (t.to_node, t.sku) == ("S3", "A")]
    assert [(t.from_node, t.qty) for t in moved] == [("K1", 10)]
    assert plan(engine, s, "S3", "A").buy == 0 and plan(engine, s, "K1", "A").transfer_out == 10
    assert s.units_to_move == 10


def test_surplus_below_the_smallest_transfer_is_not_moved_and_the_rest_is_bought():
    e = make({"S1": {"A": 5}, "S2": {"A": 1}, "S3": {"A": 4}, "K1": {"A": 1}})
    try:
        for k in range(4):
            sell(e, "S1", local(0, f"1{2 + k}:00"), f"p{k}", A=1)
        e.clock.advance_to(local(1, "11:00"))
        s = e.handle(SuggestStock(policy=ReplenishPolicy(transfer_km=3.0, min_transfer=5)))
        assert s.transfers == [] and plan(e, s, "S1", "A").buy == 10
    finally:
        e.close()


def test_a_source_keeps_a_day_of_its_own_demand_and_moves_only_the_rest():
    e = make({"S1": {"A": 5}, "S2": {"A": 0}, "S3": {"A": 20}, "K1": {"A": 0}})
    try:
        for k in range(4):
            sell(e, "S3", local(0, f"0{7 + k}:30"), f"q{k}", A=1)  # S3 sells its 4 in the morning
        for k in range(4):
            sell(e, "S1", local(0, f"1{2 + k}:00"), f"p{k}", A=1)
        e.clock.advance_to(local(1, "11:00"))
        s = e.handle(SuggestStock(policy=ReplenishPolicy(transfer_km=3.0)))
        # S3: 16 left, keeps what it needs; S1 needs 11 - 1
        assert [(t.from_node, t.to_node, t.qty) for t in s.transfers] == [("S3", "S1", 10)]
    finally:
        e.close()


def test_only_the_nodes_asked_for_are_suggested_and_an_unknown_node_is_named(engine):
    for k in range(4):
        sell(engine, "S1", local(0, f"1{2 + k}:00"), f"p{k}", A=1)
        sell(engine, "S3", local(0, f"1{2 + k}:00"), f"q{k}", A=1)
    engine.clock.advance_to(local(1, "11:00"))
    s = engine.handle(SuggestStock(nodes=["S3"], policy=NO_MOVES))
    assert {p.node for p in s.purchases} == {"S3"}
    with pytest.raises(NotFound) as e:
        engine.handle(SuggestStock(nodes=["S1", "X9"]))
    assert e.value.field == "nodes[1]"


def test_packs_round_purchases_up(engine):
    for k in range(4):
        sell(engine, "S1", local(0, f"1{2 + k}:00"), f"p{k}", A=1)
    engine.clock.advance_to(local(1, "11:00"))
    s = engine.handle(SuggestStock(policy=ReplenishPolicy(transfer_km=0, pack=6)))
    assert plan(engine, s, "S1", "A").buy == 12


def test_every_sku_a_node_carries_is_kept_at_the_smallest_stock_sold_or_not(engine):
    sell(engine, "S1", local(0, "12:00"), "p1", A=1)
    engine.clock.advance_to(local(1, "11:00"))
    kept = engine.handle(SuggestStock(policy=ReplenishPolicy(transfer_km=0, min_stock=3)))
    assert plan(engine, kept, "S3", "C").buy == 1  # S3 lists 2 cherries and sold none
    assert plan(engine, kept, "S2", "C") is None  # S2 does not carry them
    bare = engine.handle(SuggestStock(policy=ReplenishPolicy(transfer_km=0, min_stock=0)))
    assert plan(engine, bare, "S3", "C") is None


def test_the_counter_gets_a_level_of_its_own_on_top_of_online_demand_s():
    e = make({"S1": {"A": 10}, "S2": {"A": 0}, "S3": {"A": 0}, "K1": {"A": 0}})
    try:
        e.clock.advance_to(local(0, "11:30"))  # 4 apples online, collected at S1 between 11:00 and 16:00 ...
        reply = e.submit(SubmitOrder(channel="app", external_id="o1", lines=[Line("A", 4)], mode="pickup",
                                     pickup_node="S1"))
        e.handle(AcceptOrder(reply.order_id, "S1"))
        for step in ("picked", "ready", "collected"):
            e.handle(ReportProgress(reply.order_id, step, "S1"))
        for k in range(4):  # ... and 4 over its counter
            sell(e, "S1", local(0, f"1{2 + k}:00"), f"p{k}", A=1)
        e.clock.advance_to(local(1, "11:00"))
        s = e.handle(SuggestStock(policy=NO_MOVES))
        a = plan(e, s, "S1", "A")
        # online 4 + 1.645 x 2 -> 8 (95%), the counter 4 + 3.09 x 2 -> 11 (99.9%), added up: 19 (one level for
        # the 8 together would be 8 + 1.645 x 2.83 -> 13, and online orders, routed first, would take the counter's)
        assert (a.expected, a.target, a.free) == (8.0, 19, 2)
        assert s.reserves == []  # by default nothing is kept from online orders
        loose = e.handle(SuggestStock(policy=ReplenishPolicy(transfer_km=0, counter_service_level=0.95)))
        assert plan(e, loose, "S1", "A").target == 8 + 8
        for kept, qty in (("level", 11), ("margin", 11 - 4)):  # the counter's level, or its margin over its mean
            s = e.handle(SuggestStock(policy=ReplenishPolicy(transfer_km=0, counter_reserve=kept)))
            assert [(r.node, r.sku, r.qty) for r in s.reserves if r.sku == "A"] == [("S1", "A", qty)]
    finally:
        e.close()


def test_a_reserve_set_for_the_counter_is_left_by_online_orders_and_sold_over_the_counter(engine):
    engine.clock.advance_to(local(0, "12:00"))
    engine.handle(SetSafetyStock(node="S1", levels={"A": 4}))  # S1 holds 5 apples: 1 for online orders
    reply = engine.submit(SubmitOrder(channel="app", external_id="o1", lines=[Line("A", 1)], mode="pickup",
                                      pickup_node="S1"))
    assert reply.status == "routed"
    again = engine.submit(SubmitOrder(channel="app", external_id="o2", lines=[Line("A", 1)], mode="pickup",
                                      pickup_node="S1"))
    assert again.status == "rejected"  # the rest is the counter's
    sell(engine, "S1", local(0, "12:05"), "p1", A=4)  # the counter takes it all
    assert engine.stock("S1", ["A"]).on_hand["A"] == 1  # the online order's, reserved


def test_a_reserve_for_an_unknown_sku_or_node_is_refused_naming_it(engine):
    with pytest.raises(NotFound) as e:
        engine.handle(SetSafetyStock(node="S1", levels={"A": 1, "X": 1}))
    assert e.value.field == "levels.X"
    assert engine.stock("S1", ["A"]).available["A"] == 5  # nothing changed
    with pytest.raises(NotFound) as e:
        engine.handle(SetSafetyStock(node="X9", levels={"A": 1}))
    assert e.value.field == "node"
