"""Benefit sharing through the engine: a member's purchases credit the
parties of the member's origin when handed over or sold, refunds reverse at
the frozen rates, each line once (shared/BENEFIT.md sections 5 and 6)."""
from __future__ import annotations

import msgspec
import pytest

from domain.benefit import RoleRate, RuleSet
from domain.commands import (
    AcceptOrder, ClosePeriod, Discount, GetStatement, Line, PublishBenefitRules, RefundOrder, ReportProgress, ReturnLine,
    SellOverCounter, SignUpMember, SubmitOrder,
)
from domain.errors import Conflict, InvalidInput, NotFound
from engine.app import Engine
from engine.clock import SimClock
from tests.engine.network_fixture import at_km, small_network

T0 = 1_772_323_200.0  # 2026-03-01 08:00 in Shanghai
DAY = 86_400.0
R1 = RuleSet(version="R1", effective_from=T0, window_months=3, excluded_skus=["C"],  # C: a gift card
             roles={"clerk": RoleRate(200), "manager": RoleRate(100), "store": RoleRate(300), "dealer": RoleRate(200)})


@pytest.fixture
def clock():
    return SimClock(T0)


@pytest.fixture
def engine(clock):
    network = small_network()
    network = msgspec.structs.replace(network, nodes=[
        msgspec.structs.replace(n, manager=f"mgr-{n.id}", dealer="dealer-1") for n in network.nodes])
    e = Engine(network, clock=clock, store="memory:").start()
    e.handle(PublishBenefitRules(rules=R1))
    e.sign_up(SignUpMember(member="m1", node="S1", via="clerk", clerk="c7"))
    yield e
    e.close()


def buy(engine: Engine, ext: str, lines: list[Line], **money) -> str:
    lat, lon = at_km(0.0)
    reply = engine.submit(SubmitOrder(channel="app", external_id=ext, lines=lines, lat=lat, lon=lon, member="m1",
                                      **money))
    engine.accept(AcceptOrder(order_id=reply.order_id))
    for step in ("picked", "dispatched", "delivered"):
        engine.progress(ReportProgress(order_id=reply.order_id, step=step))
    return reply.order_id


def totals(engine: Engine, period: str) -> dict[str, int]:
    return {s.party: s.total for s in engine.handle(GetStatement(period=period)).statements}


def test_worked_example_coupon_and_exclusions_through_the_engine(engine):
    oid = buy(engine, "o1", [Line("A", 3, unit_price=10000), Line("C", 1, unit_price=10000)], discounts=[Discount(4000)])
    assert totals(engine, "2026-03") == {"clerk:c7": 540, "manager:mgr-S1": 270, "store:S1": 810, "dealer:dealer-1": 540}
    engine.handle(RefundOrder(order_id=oid, refund_id="r1", reason="one back", lines=[ReturnLine("A", 1)], write_off=True))
    assert totals(engine, "2026-03") == {"clerk:c7": 360, "manager:mgr-S1": 180, "store:S1": 540, "dealer:dealer-1": 360}


def test_a_refund_in_a_later_period_is_booked_there_citing_the_credit_and_every_line_is_booked_once(engine, clock):
    oid = buy(engine, "o1", [Line("A", 2, unit_price=5000)])  # base 100.00: 8.00
    clock.advance_to(T0 + 40 * DAY)  # April
    engine.handle(RefundOrder(order_id=oid, refund_id="r1", reason="back", write_off=True))
    engine.handle(RefundOrder(order_id=oid, refund_id="r1", reason="back", write_off=True))  # a repeat
    march, april = totals(engine, "2026-03"), totals(engine, "2026-04")
    assert march["store:S1"] == 300 and april["store:S1"] == -300 and sum(march.values()) + sum(april.values()) == 0
    line = next(s for s in engine.handle(GetStatement(period="2026-04", party="store:S1")).statements).lines[0]
    assert line.cites == "2026-03" and line.amount == -300 and line.bp == 300 and line.version == "R1"


def test_counter_sales_of_members_are_credited_and_purchases_outside_the_window_are_not(engine, clock):
    engine.sell(SellOverCounter(node="S2", sale_id="p1", lines=[Line("A", 1, unit_price=2500)], member="m1"))
    assert totals(engine, "2026-03")["store:S1"] == 75  # the member's origin store, not the till's
    clock.advance_to(T0 + 95 * DAY)  # June: past the three months
    engine.sell(SellOverCounter(node="S2", sale_id="p2", lines=[Line("A", 1, unit_price=2500)], member="m1"))
    assert totals(engine, "2026-06") == {}


def test_a_published_version_never_changes_and_never_takes_effect_backwards(engine):
    with pytest.raises(Conflict) as e:
        engine.handle(PublishBenefitRules(rules=msgspec.structs.replace(R1, hold_days=1)))
    assert e.value.field == "version"
    with pytest.raises(Conflict) as e:
        engine.handle(PublishBenefitRules(rules=msgspec.structs.replace(R1, version="R0", effective_from=T0 - DAY)))
    assert e.value.field == "effective_from"
    with pytest.raises(InvalidInput) as e:
        engine.handle(PublishBenefitRules(rules=RuleSet(version="R9", effective_from=T0 + DAY,
                                                        roles={"store": RoleRate(9000), "clerk": RoleRate(2000)})))
    assert e.value.field == "roles"
    assert [v.version for v in engine.handle(PublishBenefitRules(rules=R1)).versions] == ["R1"]  # a repeat


def test_a_statement_for_an_unknown_party_is_refused(engine):
    with pytest.raises(NotFound) as e:
        engine.handle(GetStatement(period="2026-03", party="store:NOPE"))
    assert e.value.field == "party"


def test_a_closed_period_never_changes_and_a_sale_uploaded_late_into_it_goes_to_the_current_one(engine, clock):
    buy(engine, "o1", [Line("A", 2, unit_price=5000)])
    with pytest.raises(Conflict) as e:
        engine.handle(ClosePeriod(period="2026-03"))  # March has not ended
    assert e.value.field == "period"
    clock.advance_to(T0 + 40 * DAY)  # April
    closed = engine.handle(ClosePeriod(period="2026-03"))
    assert all(s.closed for s in closed.statements) and totals(engine, "2026-03")["store:S1"] == 300
    engine.sell(SellOverCounter(node="S1", sale_id="late", lines=[Line("A", 1, unit_price=2500)], member="m1",
                                sold_at=T0 + DAY))  # made in March, uploaded in April
    assert totals(engine, "2026-03")["store:S1"] == 300
    april = engine.handle(GetStatement(period="2026-04", party="store:S1")).statements[0]
    assert april.total == 75 and april.lines[0].cites == "2026-03"
    with pytest.raises(Conflict):
        engine.handle(ClosePeriod(period="2026-05"))


def test_a_cap_per_order_holds_over_all_its_lines_and_roles(engine, clock):
    engine.handle(PublishBenefitRules(rules=msgspec.structs.replace(R1, version="R2", effective_from=T0 + DAY,
                                                                    cap_per_order=500)))
    clock.advance_to(T0 + 2 * DAY)
    buy(engine, "o1", [Line("A", 3, unit_price=10000), Line("B", 1, unit_price=10000)])  # 8% of 400.00 = 32.00
    assert sum(totals(engine, "2026-03").values()) == 500


def test_o2o_state_shows_the_benefit_accrued_payable_and_paid_per_period(tmp_path, capsys):
    from adapters.cli import main

    network = msgspec.structs.replace(small_network(), nodes=[
        msgspec.structs.replace(n, manager=f"mgr-{n.id}", dealer="dealer-1") for n in small_network().nodes])
    url = f"sqlite:///{tmp_path}/events.db"
    engine = Engine(network, clock=SimClock(T0), store=url).start()
    engine.handle(PublishBenefitRules(rules=R1))
    engine.sign_up(SignUpMember(member="m1", node="S1", via="clerk", clerk="c7"))
    engine.sell(SellOverCounter(node="S1", sale_id="p1", lines=[Line("A", 1, unit_price=10000)], member="m1"))
    engine.close()
    path = tmp_path / "network.json"
    path.write_bytes(msgspec.json.encode(network))
    assert main(["state", "--store", url, "--network", str(path)]) == 0
    out = capsys.readouterr().out
    assert "  2026-03                     4         800         800           0  draft" in out  # past its 7 hold days
    assert "top: store:S1 300" in out and "store_signed_online_share" in out


def test_bad_input_is_refused_naming_the_field_and_stores_nothing(engine, clock):
    stored = engine.recorder.max_notification_id()
    cases = [
        (PublishBenefitRules(rules=RuleSet(version="R9", effective_from=T0 + DAY, roles={
            "store": RoleRate(6000), "dealer": RoleRate(4001)})), InvalidInput, "roles", "more than 100%"),
        (PublishBenefitRules(rules=msgspec.structs.replace(R1, version="R1b")), Conflict, "effective_from",
         "overlaps version R1"),
        (ClosePeriod(period="2026-04"), Conflict, "period", "has not ended yet"),
        (GetStatement(period="2026-03", party="clerk:nobody"), NotFound, "party", "unknown party"),
    ]
    for cmd, error, field, reason in cases:
        with pytest.raises(error) as e:
            engine.handle(cmd)
        assert e.value.field == field and reason in e.value.reason, (cmd, e.value)
    assert engine.recorder.max_notification_id() == stored
