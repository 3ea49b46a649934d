"""shared/BENEFIT.md through the engine: each semantic of section 5 by a test
named after it (test_semantics_<name>_...), and the worked examples of
section 6 as written (test_worked_example_<name>); money in fen, rule R1,
monthly periods in Asia/Shanghai."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec
import pytest

from domain.benefit import RoleRate, RuleSet, split
from domain.commands import (
    AcceptOrder, CancelOrder, ClosePeriod, Discount, GetStatement, Line, PayStatements, PublishBenefitRules,
    RebindMember, RefundOrder, ReportProgress, ReturnLine, SellOverCounter, SignUpMember, SubmitOrder,
)
from domain.errors import Conflict, InvalidInput, NotFound
from engine.app import Engine, EngineSettings
from engine.routing.types import RouterSettings
from engine.clock import SimClock
from tests.engine.network_fixture import at_km, small_network

SH = ZoneInfo("Asia/Shanghai")
DAY = 86_400.0


def local(*args: int) -> float:
    return datetime(*args, tzinfo=SH).timestamp()


T0 = local(2026, 3, 1, 8)
R1 = RuleSet(version="R1", effective_from=T0, window_months=3, excluded_skus=["C"], hold_days=7,  # C: a gift card
             roles={"clerk": RoleRate(200), "manager": RoleRate(100), "store": RoleRate(300), "dealer": RoleRate(200)})


def network(stock: dict | None = None, managers: bool = True):
    net = small_network(stock)
    return msgspec.structs.replace(
        net, nodes=[msgspec.structs.replace(n, manager=f"mgr-{n.id}" if managers else None, dealer="dealer-1")
                    for n in net.nodes],
        skus=[msgspec.structs.replace(s, category="fruit") if s.id == "B" else s for s in net.skus])


@pytest.fixture
def clock():
    return SimClock(T0)


def start(clock, rules: RuleSet = R1, stock: dict | None = None, store: str = "memory:", managers: bool = True) -> Engine:
    settings = EngineSettings(router=RouterSettings(allow_split=True))
    e = Engine(network(stock, managers), settings, clock=clock, store=store).start()
    e.handle(PublishBenefitRules(rules=rules))
    e.sign_up(SignUpMember(member="m1", node="S1", via="clerk", clerk="c7"))
    return e


@pytest.fixture
def engine(clock):
    e = start(clock)
    yield e
    e.close()


def submit(engine: Engine, ext: str, lines: list[Line], **kw) -> str:
    lat, lon = at_km(0.0)
    return engine.submit(SubmitOrder(channel="app", external_id=ext, lines=lines, lat=lat, lon=lon, member="m1",
                                     **kw)).order_id


def hand_over(engine: Engine, oid: str, node: str | None = None) -> None:
    engine.accept(AcceptOrder(order_id=oid, node=node))
    for step in ("picked", "dispatched", "delivered"):
        engine.progress(ReportProgress(order_id=oid, step=step, node=node))


def buy(engine: Engine, ext: str, lines: list[Line], **kw) -> str:
    oid = submit(engine, ext, lines, **kw)
    hand_over(engine, oid)
    return oid


def statements(engine: Engine, period: str):
    return {s.party: s for s in engine.handle(GetStatement(period=period)).statements}


def totals(engine: Engine, period: str) -> dict[str, int]:
    return {party: s.total for party, s in statements(engine, period).items()}


def lines_of(engine: Engine, root: str) -> list:
    return [line for st in engine.readmodels.benefit.statements.values() for line in st.lines if line.root == root]


R1_ROLES = ("clerk:c7", "manager:mgr-S1", "store:S1", "dealer:dealer-1")


# -- section 5 ------------------------------------------------------------
def test_semantics_money_shares_are_integer_fen_rounded_once_and_add_up_to_the_pool(engine):
    buy(engine, "o1", [Line("A", 3, unit_price=3333)])  # base 99.99 at 8%: 7.9992 -> 800 fen
    credited = totals(engine, "2026-03")
    assert all(isinstance(v, int) for v in credited.values())
    assert sum(credited.values()) == 800 and credited == {"clerk:c7": 200, "manager:mgr-S1": 100, "store:S1": 300,
                                                          "dealer:dealer-1": 200}
    assert split(9999, {"clerk": 200, "manager": 100, "store": 300, "dealer": 200}) == {
        "clerk": 200, "manager": 100, "store": 300, "dealer": 200}


def test_semantics_origin_a_rebinding_credits_the_new_origin_from_its_time_never_before(engine, clock):
    clock.advance_to(T0 + DAY)
    member = engine.handle(RebindMember(member="m1", node="S2", clerk="c9", reason="moved to the new store"))
    assert member.node == "S2"
    clock.advance_to(T0 + 2 * DAY)
    engine.sell(SellOverCounter(node="S3", sale_id="after", lines=[Line("A", 1, unit_price=10000)], member="m1"))
    engine.sell(SellOverCounter(node="S3", sale_id="before", lines=[Line("A", 1, unit_price=10000)], member="m1",
                                sold_at=T0 + DAY / 2))  # made before the rebinding, uploaded after it
    by_party = {(line.source, st.party) for st in engine.readmodels.benefit.statements.values() for line in st.lines}
    assert {p for src, p in by_party if src == "pos/S3/after"} == {"clerk:c9", "manager:mgr-S2", "store:S2",
                                                                  "dealer:dealer-1"}
    assert {p for src, p in by_party if src == "pos/S3/before"} == set(R1_ROLES)


def test_semantics_origin_a_rebinding_is_refused_without_a_reason_or_to_an_unknown_node_and_stores_nothing(engine):
    before = engine.readmodels.members["m1"]["node"]
    with pytest.raises(InvalidInput) as e:
        engine.handle(RebindMember(member="m1", node="S2", reason=" "))
    assert e.value.field == "reason"
    with pytest.raises(NotFound) as e:
        engine.handle(RebindMember(member="m1", node="NOPE", reason="moved"))
    assert e.value.field == "node"
    assert engine.readmodels.members["m1"]["node"] == before


def test_semantics_window_runs_in_local_days_from_the_sign_up_day_end_exclusive_clamped_to_the_month(clock):
    e = start(clock)
    clock.advance_to(local(2026, 3, 31, 15))  # the window (3 months) ends 2026-06-30 00:00 local: June has no 31st
    e.sign_up(SignUpMember(member="m2", node="S1", via="clerk", clerk="c7"))
    for at, sale in ((local(2026, 6, 29, 23, 59), "in"), (local(2026, 6, 30, 0, 0), "out")):
        clock.advance_to(at)
        e.sell(SellOverCounter(node="S1", sale_id=sale, lines=[Line("A", 1, unit_price=10000)], member="m2"))
    assert totals(e, "2026-06") == {"clerk:c7": 200, "manager:mgr-S1": 100, "store:S1": 300, "dealer:dealer-1": 200}
    assert {line.source for line in statements(e, "2026-06")["store:S1"].lines} == {"pos/S1/in"}
    e.close()


def test_semantics_base_is_net_paid_after_discounts_and_points_without_fees_gift_cards_or_excluded_categories(clock):
    e = start(clock, msgspec.structs.replace(R1, excluded_categories=["fruit"]))
    oid = buy(e, "o1", [Line("A", 3, unit_price=10000), Line("B", 1, unit_price=5000), Line("C", 1, unit_price=10000)],
              discounts=[Discount(4500)], delivery_fee=800)  # the coupon over 450.00: 300 : 50 : 100
    (a,) = {(line.sku, line.base) for line in lines_of(e, f"order/{oid}")}
    assert a == ("A", 27000)  # 300.00 - its 30.00 of the coupon; B (fruit), C (gift card) and the fee earn nothing
    e.close()


def test_semantics_rules_are_versioned_and_a_later_rule_never_recomputes_an_earlier_credit(engine, clock):
    oid = buy(engine, "o1", [Line("A", 2, unit_price=5000)])
    engine.handle(PublishBenefitRules(rules=msgspec.structs.replace(
        R1, version="R2", effective_from=T0 + DAY, roles={"store": RoleRate(1000)})))
    clock.advance_to(T0 + 2 * DAY)
    buy(engine, "o2", [Line("A", 2, unit_price=5000)])
    engine.handle(RefundOrder(order_id=oid, refund_id="r1", reason="back", write_off=True))
    st = statements(engine, "2026-03")["store:S1"]
    assert [(line.root.split("/")[1] == oid, line.version, line.bp, line.amount) for line in st.lines] == [
        (True, "R1", 300, 300), (False, "R2", 1000, 1000), (True, "R1", 300, -300)]
    assert statements(engine, "2026-03")["clerk:c7"].total == 0  # R2 has no clerk: R1's credit reversed only


def test_semantics_when_a_credit_is_earned_at_hand_over_or_sale_and_a_cancelled_order_earns_nothing(engine):
    oid = submit(engine, "o1", [Line("A", 2, unit_price=5000)])
    engine.accept(AcceptOrder(order_id=oid))
    assert totals(engine, "2026-03") == {}
    engine.handle(CancelOrder(order_id=oid))
    assert totals(engine, "2026-03") == {}
    engine.sell(SellOverCounter(node="S2", sale_id="p1", lines=[Line("A", 1, unit_price=10000)], member="m1"))
    assert sum(totals(engine, "2026-03").values()) == 800


def test_semantics_refunds_reverse_at_the_frozen_rate_and_a_negative_balance_carries_never_paid(engine, clock):
    oid = buy(engine, "o1", [Line("A", 3, unit_price=3333)])  # 800 credited
    for n in (1, 2):
        engine.handle(RefundOrder(order_id=oid, refund_id=f"r{n}", reason="back", lines=[ReturnLine("A", 1)],
                                  write_off=True))
    clock.advance_to(local(2026, 4, 10))
    engine.handle(ClosePeriod(period="2026-03"))
    engine.handle(RefundOrder(order_id=oid, refund_id="r3", reason="back", lines=[ReturnLine("A", 1)], write_off=True))
    back = [line.amount for line in lines_of(engine, f"order/{oid}") if line.amount < 0]
    assert sum(back) == -800  # exactly what was credited, over three refunds
    april = statements(engine, "2026-04")["store:S1"]
    assert april.total < 0 and all(line.cites == "2026-03" for line in april.lines)
    clock.advance_to(local(2026, 5, 10))
    engine.handle(ClosePeriod(period="2026-04"))
    with pytest.raises(Conflict) as e:
        engine.handle(PayStatements(period="2026-04", party="store:S1", reference="t-1"))
    assert e.value.field == "party" and "carries forward" in str(e.value)
    engine.sell(SellOverCounter(node="S1", sale_id="p1", lines=[Line("A", 1, unit_price=10000)], member="m1"))
    may = statements(engine, "2026-05")["store:S1"]
    assert may.opening == april.closing and may.closing == april.closing + 300


def test_semantics_periods_and_statements_in_the_networks_time_zone_draft_closed_paid(engine, clock):
    clock.advance_to(local(2026, 3, 31, 23, 30))  # 15:30 UTC: still March here
    engine.sell(SellOverCounter(node="S1", sale_id="p1", lines=[Line("A", 1, unit_price=10000)], member="m1"))
    clock.advance_to(local(2026, 4, 1, 0, 30))  # 16:30 UTC on March 31st: April here
    engine.sell(SellOverCounter(node="S1", sale_id="p2", lines=[Line("A", 1, unit_price=5000)], member="m1"))
    march = statements(engine, "2026-03")["store:S1"]
    assert (march.status, march.total, sum(line.amount for line in march.lines)) == ("draft", 300, 300)
    assert statements(engine, "2026-04")["store:S1"].total == 150
    clock.advance_to(local(2026, 4, 2))
    assert engine.handle(ClosePeriod(period="2026-03")).statements[0].status == "closed"
    with pytest.raises(Conflict) as e:  # the last day's credits are on hold for 7 days
        engine.handle(PayStatements(period="2026-03", reference="batch-1"))
    assert e.value.field == "period" and "on hold" in str(e.value)
    clock.advance_to(local(2026, 4, 8))
    paid = {s.party: s for s in engine.handle(PayStatements(period="2026-03", reference="batch-1")).statements}
    assert paid["store:S1"].status == "paid" and paid["store:S1"].paid == 300 and paid["store:S1"].payable == 0
    engine.handle(PayStatements(period="2026-03", reference="batch-1"))  # a repeat: nothing new
    assert statements(engine, "2026-03")["store:S1"].lines == march.lines  # paid, unchanged
    with pytest.raises(Conflict):
        engine.handle(PayStatements(period="2026-03", party="store:S1", reference="batch-2"))


def test_semantics_periods_close_in_order_and_only_a_closed_one_is_paid(engine, clock):
    engine.sell(SellOverCounter(node="S1", sale_id="p1", lines=[Line("A", 1, unit_price=10000)], member="m1"))
    clock.advance_to(local(2026, 4, 3))
    engine.sell(SellOverCounter(node="S1", sale_id="p2", lines=[Line("A", 1, unit_price=10000)], member="m1"))
    clock.advance_to(local(2026, 5, 3))
    with pytest.raises(Conflict) as e:
        engine.handle(ClosePeriod(period="2026-04"))
    assert "close 2026-03 first" in str(e.value)
    with pytest.raises(Conflict) as e:
        engine.handle(PayStatements(period="2026-03", reference="x"))
    assert "not closed" in str(e.value)
    assert [s.status for s in engine.handle(GetStatement(period="2026-04")).statements] == ["draft"] * 4


def test_semantics_idempotent_a_repeat_credits_once_and_a_refund_of_an_unknown_order_is_refused(engine):
    oid = buy(engine, "o1", [Line("A", 2, unit_price=5000)])
    with pytest.raises(Conflict):
        engine.progress(ReportProgress(order_id=oid, step="delivered"))  # the hand-over again
    for _ in range(2):
        engine.handle(RefundOrder(order_id=oid, refund_id="r1", reason="back", lines=[ReturnLine("A", 1)],
                                  write_off=True))
    assert [line.amount for line in statements(engine, "2026-03")["store:S1"].lines] == [300, -150]
    with pytest.raises(NotFound) as e:
        engine.handle(RefundOrder(order_id="00000000-0000-4000-8000-000000000001", refund_id="r1", reason="back"))
    assert e.value.field == "order_id"
    assert sum(totals(engine, "2026-03").values()) == 400


def test_semantics_points_and_worked_example_paid_partly_with_points(engine):
    engine.sell(SellOverCounter(node="S1", sale_id="p0", lines=[Line("A", 1, unit_price=100000)], member="m1"))
    assert engine.member("m1").points == 1000
    oid = buy(engine, "o1", [Line("A", 1, unit_price=10000)], points_used=1000, points_value=1000)
    assert {line.base for line in lines_of(engine, f"order/{oid}")} == {9000}
    assert sum(line.amount for line in lines_of(engine, f"order/{oid}")) == 720
    assert engine.member("m1").points == 90  # 90.00 cash earns 90 points, the 1,000 spent
    engine.handle(RefundOrder(order_id=oid, refund_id="r1", reason="back", write_off=True))
    m = engine.member("m1")
    assert m.points == 1000 and [(b.earned, b.left) for b in m.buckets] == [(1000, 1000)]  # back to their bucket, the 90 taken back
    assert sum(line.amount for line in lines_of(engine, f"order/{oid}")) == 0


# -- fixed amounts, vacant roles ---------------------------------------------
def test_a_fixed_amount_per_order_is_credited_once_per_purchase_and_taken_back_with_all_of_it(clock):
    rules = msgspec.structs.replace(R1, roles={"clerk": RoleRate(200, fixed=500), "store": RoleRate(300),
                                               "manager": RoleRate(0, fixed=100)}, vacant_to={"manager": "store"})
    e = start(clock, rules, stock={"S1": {}, "S2": {"A": 5}, "S3": {"B": 5}, "K1": {}}, managers=False)
    oid = submit(e, "o1", [Line("A", 1, unit_price=10000), Line("B", 1, unit_price=10000)])
    parts = [p.node for p in e.order_status(oid).parts]
    for node in parts:
        hand_over(e, oid, node)
    fixed = [(line.role, line.amount) for line in lines_of(e, f"order/{oid}") if line.sku == ""]
    assert len(parts) == 2 and sorted(fixed) == [("clerk", 500), ("store", 100)]  # the vacant manager's is the store's
    e.handle(RefundOrder(order_id=oid, refund_id="r1", reason="back", lines=[ReturnLine("A", 1)], write_off=True))
    assert sum(line.amount for line in lines_of(e, f"order/{oid}") if line.sku == "") == 600  # not all back yet
    e.handle(RefundOrder(order_id=oid, refund_id="r2", reason="back", lines=[ReturnLine("B", 1)], write_off=True))
    assert sum(line.amount for line in lines_of(e, f"order/{oid}")) == 0
    e.close()


# -- section 6 ------------------------------------------------------------
def test_worked_example_refund_inside_the_period(engine, clock):
    clock.advance_to(local(2026, 3, 28, 12))
    oid = buy(engine, "o1", [Line("A", 2, unit_price=5000)])
    clock.advance_to(local(2026, 3, 30, 12))
    engine.handle(RefundOrder(order_id=oid, refund_id="r1", reason="back", write_off=True))
    clock.advance_to(local(2026, 4, 20))
    engine.handle(ClosePeriod(period="2026-03"))
    assert set(totals(engine, "2026-03").values()) == {0} and totals(engine, "2026-04") == {}


def test_worked_example_split_order(clock):
    e = start(clock, stock={"S1": {}, "S2": {"A": 5}, "S3": {"B": 5}, "K1": {}})
    oid = submit(e, "o1", [Line("A", 4, unit_price=10000), Line("B", 2, unit_price=10000)], delivery_fee=1000)
    for node in [p.node for p in e.order_status(oid).parts]:
        hand_over(e, oid, node)
    by_source = {}
    for line in lines_of(e, f"order/{oid}"):
        by_source[line.source] = by_source.get(line.source, 0) + line.amount
    assert by_source == {f"order/{oid}/S2": 3200, f"order/{oid}/S3": 1600}  # 48.00 to A's roles; the fee earns nothing
    e.handle(RefundOrder(order_id=oid, refund_id="r1", reason="back", lines=[ReturnLine("B", 2)], write_off=True))
    back = [line for line in lines_of(e, f"order/{oid}") if line.amount < 0]
    assert sum(line.amount for line in back) == -1600 and {line.sku for line in back} == {"B"}
    assert sum(line.amount for line in lines_of(e, f"order/{oid}") if line.sku == "A") == 3200
    e.close()


def test_worked_example_coupon_and_exclusions(engine):
    oid = buy(engine, "o1", [Line("A", 3, unit_price=10000), Line("C", 1, unit_price=10000)], discounts=[Discount(4000)])
    assert totals(engine, "2026-03") == {"clerk:c7": 540, "manager:mgr-S1": 270, "store:S1": 810, "dealer:dealer-1": 540}
    engine.handle(RefundOrder(order_id=oid, refund_id="r1", reason="one", lines=[ReturnLine("A", 1)], write_off=True))
    back = {line.role: line.amount for line in lines_of(engine, f"order/{oid}") if line.amount < 0}
    assert back == {"clerk": -180, "manager": -90, "store": -270, "dealer": -180}


def test_worked_example_duplicates(tmp_path, clock):
    url = f"sqlite:///{tmp_path}/events.db"
    e = start(clock, store=url)
    oid = buy(e, "o1", [Line("A", 2, unit_price=5000)])
    with pytest.raises(Conflict):
        e.progress(ReportProgress(order_id=oid, step="delivered"))
    for _ in range(2):
        e.handle(RefundOrder(order_id=oid, refund_id="r1", reason="back", lines=[ReturnLine("A", 1)], write_off=True))
    live = e.handle(GetStatement(period="2026-03"))
    e.close()
    rebuilt = Engine(network(), EngineSettings(router=RouterSettings(allow_split=True)), clock=clock, store=url).start()
    assert rebuilt.handle(GetStatement(period="2026-03")) == live
    assert [line.amount for s in live.statements if s.party == "store:S1" for line in s.lines] == [300, -150]
    rebuilt.close()


def test_semantics_periods_of_half_a_month_or_a_quarter_when_the_rules_say_so(clock):
    e = start(clock, msgspec.structs.replace(R1, period="half_month"))
    for day, sale in ((15, "a"), (16, "b")):
        clock.advance_to(local(2026, 3, day, 23, 30))
        e.sell(SellOverCounter(node="S1", sale_id=sale, lines=[Line("A", 1, unit_price=10000)], member="m1"))
    assert totals(e, "2026-03-H1")["store:S1"] == 300 and totals(e, "2026-03-H2")["store:S1"] == 300
    with pytest.raises(InvalidInput) as err:
        e.handle(ClosePeriod(period="2026-03"))
    assert err.value.field == "period" and "half_month" in err.value.reason
    assert e.handle(ClosePeriod(period="2026-03-H1")).statements[0].status == "closed"
    with pytest.raises(Conflict) as err:
        e.handle(PublishBenefitRules(rules=msgspec.structs.replace(R1, version="Q", effective_from=local(2026, 4, 1),
                                                                   period="quarter")))
    assert err.value.field == "period"
    e.close()


@pytest.mark.parametrize("at, length, period, ends", [
    (local(2026, 2, 15, 23, 59), "half_month", "2026-02-H1", local(2026, 2, 16)),
    (local(2026, 2, 28, 12), "half_month", "2026-02-H2", local(2026, 3, 1)),
    (local(2026, 12, 31, 23), "quarter", "2026-Q4", local(2027, 1, 1)),
    (local(2026, 12, 31, 23, 59), "month", "2026-12", local(2027, 1, 1)),
])
def test_a_period_is_named_and_ends_at_local_midnight(at, length, period, ends):
    from domain.benefit import period_end, period_of

    assert period_of(at, "Asia/Shanghai", length) == period and period_end(period, "Asia/Shanghai") == ends


def test_a_members_reply_shows_the_origin_in_force_how_and_when_the_member_signed_up(engine, clock):
    m = engine.member("m1")
    assert (m.node, m.clerk, m.via, m.signed_up_at.timestamp()) == ("S1", "c7", "clerk", T0)
    clock.advance_to(T0 + DAY)
    m = engine.handle(RebindMember(member="m1", node="S3", clerk="c1", reason="moved"))
    assert (m.node, m.clerk, m.signed_up_at.timestamp()) == ("S3", "c1", T0)
