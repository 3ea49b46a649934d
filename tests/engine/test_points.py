"""The points policy and the points lifecycle through the engine, on the
memory store: earning under the rules, expiry at a local midnight on the
timer, gifts reserved for pickup at a store, bad input."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec
import pytest

from domain.commands import (
    AcceptOrder, CancelRedemption, CollectGift, GetMember, Line, RedeemPoints, ReportProgress, SellOverCounter,
    SignUpMember, SubmitOrder,
)
from domain.errors import Conflict, InvalidInput, NotFound
from domain.network import Sku
from engine.app import Engine
from engine.clock import SimClock
from engine.config import EngineSettings, ExpiryRule, PointsRules
from engine.handlers import gift_key
from engine.points import bucket_times, expires_at, points_for
from engine.readmodels import ReadModels
from tests.engine.network_fixture import at_km, small_network

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = 86_400.0


def local(*args: int) -> float:
    return datetime(*args, tzinfo=SHANGHAI).timestamp()


T0 = local(2026, 3, 30, 10, 0)  # a Monday morning in Shanghai
SKUS = {"A": Sku("A", "apple", 5.0, category="fruit"), "G": Sku("G", "gift card", 100.0, category="cards")}


def network():
    base = small_network()
    stock = {**base.stock, "S1": {**base.stock["S1"], "A": 30, "G": 2}}
    return msgspec.structs.replace(base, skus=[*base.skus, Sku("G", "tote bag", 0.0, category="gifts")], stock=stock)


def make_engine(clock, **rules) -> Engine:
    settings = EngineSettings(points=PointsRules(**rules))
    return Engine(network(), settings, clock=clock, store="memory:").start()


@pytest.fixture
def clock():
    return SimClock(T0)


@pytest.fixture
def engine(clock):
    e = make_engine(clock, expiry=ExpiryRule(kind="end_of_month", days=0), pending_days=1)
    e.sign_up(SignUpMember(member="m1", node="S1"))
    yield e
    e.close()


def stored(engine: Engine) -> int:
    return engine.recorder.max_notification_id() or 0


def sell(engine: Engine, sale: str, **lines: int) -> None:
    engine.sell(SellOverCounter(node="S1", sale_id=sale, lines=[Line(s, q) for s, q in lines.items()], member="m1"))


def member(engine: Engine):
    return engine.handle(GetMember(member="m1"))


def rebuilt_equals_live(engine: Engine) -> bool:
    views = ReadModels(engine.network)
    for nid, event in engine.stored_events():
        views.apply(event, nid)
    return views.state() == engine.readmodels.state()


# -- the policy ------------------------------------------------------------
def test_points_are_floored_once_on_the_cash_of_the_lines_that_earn():
    rules = PointsRules(per_currency_unit=0.1)
    assert points_for({"A": 10_500}, SKUS, rules, 2) == 10  # 1 point per 10 yuan: 105.00 earns 10
    assert points_for({"A": 5_050, "X": 5_050}, SKUS, rules, 2) == 10  # not 5 + 5 floored apart
    excluded = PointsRules(per_currency_unit=1, excluded_categories=("cards",), excluded_skus=("X",))
    assert points_for({"A": 1_999, "G": 50_000, "X": 100}, SKUS, excluded, 2) == 19
    assert points_for({"A": 33}, SKUS, PointsRules(per_currency_unit=0.7), 0) == 23  # exact: 33 x 0.7 = 23.1
    assert points_for({}, SKUS, rules, 2) == 0


def test_expiry_is_the_local_midnight_after_the_last_valid_day():
    earned = local(2020, 7, 6, 15, 0)
    assert expires_at(earned, ExpiryRule(kind="end_of_month", days=365), "Asia/Shanghai") == local(2021, 8, 1)
    assert expires_at(earned, ExpiryRule(kind="days", days=30), "Asia/Shanghai") == local(2020, 8, 6)
    assert expires_at(earned, ExpiryRule(kind="end_of_year"), "Asia/Shanghai") == local(2021, 1, 1)
    assert expires_at(earned, ExpiryRule(kind="never"), "Asia/Shanghai") is None


def test_the_day_earned_is_the_local_day_not_the_utc_one():
    late = local(2026, 3, 31, 23, 30)  # 15:30 UTC on the 31st
    early = local(2026, 4, 1, 0, 30)  # still the 31st in UTC
    rule = ExpiryRule(kind="end_of_month")
    assert expires_at(late, rule, "Asia/Shanghai") == local(2026, 4, 1)
    assert expires_at(early, rule, "Asia/Shanghai") == local(2026, 5, 1)


def test_points_pending_past_their_expiry_expire_no_sooner_than_a_day_after_they_become_available():
    rules = PointsRules(pending_days=3, expiry=ExpiryRule(kind="end_of_month"))
    available, expiry = bucket_times(local(2026, 3, 30, 9), rules, "Asia/Shanghai")
    assert available == local(2026, 4, 2, 9) and expiry == local(2026, 4, 4)


def test_the_sample_configuration_documents_the_points_rules_and_the_clock():
    from engine.config import Config, load_config

    config = load_config("docs/examples/o2o.toml")
    assert config == Config() and config.engine.points.allow_negative and not config.clock.test


# -- through the engine ----------------------------------------------------
def test_points_earned_at_the_counter_are_pending_then_available_and_expire_at_local_midnight(engine, clock):
    sell(engine, "p1", A=3)  # 15 yuan
    m = member(engine)
    assert (m.points, m.pending, m.available) == (0, 15, 0)
    assert m.buckets[0].expires_at.astimezone(SHANGHAI) == datetime(2026, 4, 1, tzinfo=SHANGHAI)
    clock.advance_to(T0 + DAY)
    assert (member(engine).points, member(engine).pending) == (15, 0)
    clock.advance_to(local(2026, 3, 31, 23, 59))
    assert engine.expire_due() == 0
    clock.advance_to(local(2026, 4, 1))
    assert engine.expire_due() == 1
    m = member(engine)
    assert (m.points, m.buckets) == (0, [])
    assert engine.readmodels.kpis()["points_liability"] == 0
    assert rebuilt_equals_live(engine)


def test_an_order_handed_over_earns_on_its_cash_at_list_prices(clock):
    e = make_engine(clock)
    e.sign_up(SignUpMember(member="m1", node="S1"))
    lat, lon = at_km(0)
    r = e.submit(SubmitOrder(channel="app", external_id="o1", lines=[Line("C", 1), Line("A", 1)], lat=lat, lon=lon,
                             member="m1"))
    e.accept(AcceptOrder(order_id=r.order_id))
    for step in ("picked", "dispatched", "delivered"):
        e.progress(ReportProgress(order_id=r.order_id, step=step))
    m = member(e)
    assert (m.points, m.buckets[0].ref, m.buckets[0].expires_at) == (45, f"order/{r.order_id}", None)
    assert e.readmodels.kpis()["points_liability"] == 45


def test_spending_takes_the_bucket_that_expires_first(engine, clock):
    sell(engine, "p1", A=2)  # 10 points, expire 04-01
    clock.advance_to(local(2026, 4, 1, 10))
    sell(engine, "p2", A=4)  # 20 points, expire 05-01
    clock.advance_to(local(2026, 4, 2, 11))
    engine.expire_due()
    engine.redeem(RedeemPoints(member="m1", points=5, gift="sticker", ref="r1"))
    m = member(engine)
    assert [(b.left, b.earned) for b in m.buckets] == [(15, 20)]  # p1's expired, p2's spent from


def test_a_gift_for_pickup_reserves_points_and_a_unit_until_collected(engine, clock):
    sell(engine, "p1", A=8)  # 40 points
    clock.advance_to(T0 + DAY)
    m = engine.redeem(RedeemPoints(member="m1", points=30, gift="tote bag", ref="g1", pickup_node="S1", gift_sku="G"))
    assert (m.points, m.reserved, m.gifts[0].node, m.gifts[0].sku) == (10, 30, "S1", "G")
    assert engine.stock("S1", ["G"]).available["G"] == 1
    assert engine.inventories()["S1"].reservations[gift_key("m1", "g1")] == {"G": 1}
    repeat = engine.redeem(RedeemPoints(member="m1", points=30, gift="tote bag", ref="g1", pickup_node="S1",
                                        gift_sku="G"))
    assert repeat.reserved == 30 and engine.stock("S1", ["G"]).available["G"] == 1
    collected = engine.handle(CollectGift(member="m1", ref="g1", node="S1"))
    assert (collected.points, collected.reserved, collected.gifts) == (10, 0, [])
    assert engine.stock("S1", ["G"]).on_hand["G"] == 1
    before = stored(engine)
    with pytest.raises(Conflict, match="already collected") as e:
        engine.handle(CollectGift(member="m1", ref="g1"))
    assert e.value.field == "ref" and stored(engine) == before
    assert rebuilt_equals_live(engine)


def test_a_cancelled_gift_releases_its_points_and_its_unit(engine, clock):
    sell(engine, "p1", A=8)
    clock.advance_to(T0 + DAY)
    engine.redeem(RedeemPoints(member="m1", points=30, gift="tote bag", ref="g1", pickup_node="S1", gift_sku="G"))
    m = engine.handle(CancelRedemption(member="m1", ref="g1"))
    assert (m.points, m.reserved) == (40, 0)
    assert engine.stock("S1", ["G"]).available["G"] == 2
    with pytest.raises(Conflict):
        engine.handle(CollectGift(member="m1", ref="g1"))


def test_a_gift_not_collected_in_time_is_released_and_its_points_reserved_across_their_expiry_then_expire(engine, clock):
    sell(engine, "p1", A=8)  # 40 points, expire 04-01 00:00 local
    clock.advance_to(local(2026, 3, 31, 20))
    engine.redeem(RedeemPoints(member="m1", points=30, gift="tote bag", ref="g1", pickup_node="S1", gift_sku="G"))
    clock.advance_to(local(2026, 4, 1, 1))
    assert engine.expire_due() == 1  # the 10 not reserved
    m = member(engine)
    assert (m.points, m.reserved, m.buckets[0].reserved) == (0, 30, 30)
    clock.advance_to(local(2026, 3, 31, 20) + 72 * 3600)  # the pickup window (72 h) is over
    assert engine.expire_due() == 2  # the gift released, its points expired at once: their bucket is past
    m = member(engine)
    assert (m.points, m.reserved, m.gifts, m.buckets) == (0, 0, [], [])
    assert engine.stock("S1", ["G"]).available["G"] == 2
    assert engine.expire_due() == 0
    assert rebuilt_equals_live(engine)


def test_bad_redemptions_are_refused_naming_the_field_and_store_nothing(engine, clock):
    sell(engine, "p1", A=2)  # 10 points
    clock.advance_to(T0 + DAY)
    before = stored(engine)
    cases = [
        (RedeemPoints(member="m1", points=11, gift="mug", ref="r1"), Conflict, "points"),
        (RedeemPoints(member="m1", points=11, gift="mug", ref="r1", pickup_node="S1", gift_sku="G"), Conflict, "points"),
        (RedeemPoints(member="m1", points=5, gift="mug", ref="r1", pickup_node="S1", gift_sku="NOPE"), NotFound, "gift_sku"),
        (RedeemPoints(member="m1", points=5, gift="mug", ref="r1", pickup_node="S9", gift_sku="G"), NotFound, "pickup_node"),
        (RedeemPoints(member="m1", points=5, gift="mug", ref="r1", pickup_node="K1", gift_sku="G"), InvalidInput, "pickup_node"),
        (RedeemPoints(member="m1", points=5, gift="mug", ref="r1", pickup_node="S1"), InvalidInput, "gift_sku"),
        (RedeemPoints(member="m1", points=5, gift="mug", ref="r1", pickup_node="S2", gift_sku="G"), Conflict, "gift_sku"),
        (RedeemPoints(member="m1", points=5, gift="mug", ref="r1", gift_sku="NOPE"), NotFound, "gift_sku"),
        (CollectGift(member="m1", ref="nothing"), NotFound, "ref"),
        (CancelRedemption(member="m1", ref="nothing"), NotFound, "ref"),
        (RedeemPoints(member="nobody", points=1, gift="mug", ref="r1"), NotFound, "member"),
    ]
    for cmd, error, field in cases:
        with pytest.raises(error) as e:
            engine.handle(cmd)
        assert e.value.field == field, cmd
    assert stored(engine) == before and member(engine).points == 10


def test_collecting_at_another_store_than_the_one_holding_the_gift_is_refused(engine, clock):
    sell(engine, "p1", A=8)
    clock.advance_to(T0 + DAY)
    engine.redeem(RedeemPoints(member="m1", points=30, gift="tote bag", ref="g1", pickup_node="S1", gift_sku="G"))
    with pytest.raises(Conflict) as e:
        engine.handle(CollectGift(member="m1", ref="g1", node="S2"))
    assert e.value.field == "node" and member(engine).reserved == 30


def test_the_timer_looks_only_at_members_with_points_due(engine, clock):
    for i in range(50):
        engine.sign_up(SignUpMember(member=f"x{i}", node="S2"))
    sell(engine, "p1", A=2)
    view = engine.readmodels.member_view
    assert list(view.expiring.at) == ["m1"] and view.expiring.due(T0) == []
    assert view.expiring.due(local(2026, 4, 1)) == ["m1"]
