"""Money on orders and refunds: integer minor units, shared out exactly,
refunded never twice and never beyond what was paid."""
from __future__ import annotations

import pytest
from uuid import UUID

from domain.commands import (
    AcceptOrder, CancelOrder, DeclineOrder, Discount, Line, RefundOrder, RefundSale, ReportProgress, ReturnLine, SellOverCounter,
    SignUpMember,
    SubmitOrder,
)
from domain import ids
from domain.errors import Conflict, InvalidInput, NotFound
from engine.app import Engine, EngineSettings
from engine.clock import SimClock
from engine.routing.types import RouterSettings
from tests.engine.network_fixture import at_km, small_network

T0 = 1_700_000_000.0


@pytest.fixture
def engine():
    e = Engine(small_network(), clock=SimClock(T0), store="memory:").start()
    yield e
    e.close()


def stored(engine: Engine) -> int:
    return engine.recorder.max_notification_id() or 0


def submit(engine: Engine, ext: str, lines: list[Line], **money) -> object:
    lat, lon = at_km(0.0)
    return engine.submit(SubmitOrder(channel="app", external_id=ext, lines=lines, lat=lat, lon=lon, **money))


def hand_over(engine: Engine, order_id: str) -> None:
    engine.accept(AcceptOrder(order_id=order_id))
    for step in ("picked", "dispatched", "delivered"):
        engine.progress(ReportProgress(order_id=order_id, step=step))


def refund(order_id: str, refund_id: str, lines: dict[str, int] | None = None, **kw) -> RefundOrder:
    return RefundOrder(order_id=order_id, refund_id=refund_id, reason="customer returned it",
                       lines=[ReturnLine(s, q) for s, q in (lines or {}).items()], **kw)


def test_an_order_without_amounts_is_paid_at_the_price_list_in_minor_units(engine):
    reply = submit(engine, "o1", [Line("A", 2), Line("B", 1)])  # 5.00 and 3.00 RMB
    assert reply.money.paid == 1300 and reply.money.kept == 1300 and reply.money.refunded == 0


def test_order_discounts_are_shared_over_the_lines_and_add_up_to_what_was_paid(engine):
    # the worked example of BENEFIT.md: 300.00 over 3 units and 100.00 of another line, a 40.00 coupon
    reply = submit(engine, "o1", [Line("A", 3, unit_price=10000), Line("C", 1, unit_price=10000)],
                   discounts=[Discount(4000, "COUPON")], delivery_fee=500, paid=36500)
    order = engine.store.get(UUID(reply.order_id))
    assert {s: line.paid for s, line in order.money.lines.items()} == {"A": 27000, "C": 9000}
    assert order.money.paid == 36500 and reply.money.paid == 36500


def test_a_paid_amount_that_does_not_add_up_is_refused_naming_paid_and_nothing_is_stored(engine):
    before = stored(engine)
    with pytest.raises(InvalidInput) as e:
        submit(engine, "o1", [Line("A", 2, unit_price=500, discount=100)], delivery_fee=300, paid=1300)
    assert e.value.field == "paid" and e.value.reason.startswith("1300 does not add up") and "= 1200" in e.value.reason
    assert stored(engine) == before


@pytest.mark.parametrize("lines, money, field", [
    ([Line("A", 1, unit_price=500, discount=600)], {}, "lines[0].discount"),
    ([Line("A", 1)], {"discounts": [Discount(501)]}, "discounts"),
    ([Line("A", 1)], {"points_used": 10, "points_value": 100}, "points_used"),  # no member named
])
def test_money_that_cannot_be_is_refused_naming_the_field(engine, lines, money, field):
    before = stored(engine)
    with pytest.raises(InvalidInput) as e:
        submit(engine, "o1", lines, **money)
    assert e.value.field == field
    assert stored(engine) == before


def test_a_refund_before_hand_over_cancels_the_order_gives_everything_back_and_once_only(engine):
    reply = submit(engine, "o1", [Line("A", 2)], delivery_fee=500)
    assert engine.stock("S1", ["A"]).available["A"] == 3
    done = engine.handle(refund(reply.order_id, "r-1"))
    assert done.status == "cancelled" and done.money.refunded == done.money.paid == 1500 and done.money.kept == 0
    assert engine.stock("S1", ["A"]).available["A"] == 5
    before = stored(engine)
    again = engine.handle(refund(reply.order_id, "r-1"))
    assert again.money == done.money and stored(engine) == before
    with pytest.raises(Conflict) as e:
        engine.handle(refund(reply.order_id, "r-1", write_off=True))
    assert e.value.field == "refund_id" and stored(engine) == before


def test_a_partial_refund_before_hand_over_is_refused(engine):
    reply = submit(engine, "o1", [Line("A", 2)])
    with pytest.raises(Conflict) as e:
        engine.handle(refund(reply.order_id, "r-1", {"A": 1}))
    assert e.value.field == "lines"


def test_refunds_after_hand_over_take_goods_back_to_a_node_and_add_up_to_what_was_paid(engine):
    reply = submit(engine, "o1", [Line("A", 3, unit_price=333)], delivery_fee=200)  # 999 + 200
    hand_over(engine, reply.order_id)
    s2 = engine.stock("S2", ["A"]).on_hand["A"]
    one = engine.handle(refund(reply.order_id, "r-1", {"A": 1}, return_to="S2"))
    assert one.money.refunded == 333 and engine.stock("S2", ["A"]).on_hand["A"] == s2 + 1
    with pytest.raises(Conflict) as e:
        engine.handle(refund(reply.order_id, "r-2", {"A": 3}, write_off=True))
    assert e.value.field == "lines[0].qty"
    rest = engine.handle(refund(reply.order_id, "r-3", write_off=True))  # the whole rest, and the delivery fee
    assert rest.money.refunded == rest.money.paid == 1199 and rest.money.kept == 0
    assert engine.stock("S2", ["A"]).on_hand["A"] == s2 + 1  # written off: nowhere back on a shelf
    with pytest.raises(Conflict):
        engine.handle(refund(reply.order_id, "r-4", write_off=True))


def test_units_refunded_one_by_one_give_back_exactly_the_line(engine):
    reply = submit(engine, "o1", [Line("A", 3, unit_price=1000)], discounts=[Discount(100)])  # line pays 2900
    hand_over(engine, reply.order_id)
    amounts = [engine.handle(refund(reply.order_id, f"r-{i}", {"A": 1}, write_off=True)).money.refunded
               for i in range(3)]
    assert amounts == [967, 1933, 2900]  # 966.67 rounded, then what is left shared again, the last unit the rest


@pytest.mark.parametrize("lines, kw, error, field", [
    ({"Z": 1}, {"write_off": True}, NotFound, "lines[0].sku"),
    ({"B": 1}, {"write_off": True}, NotFound, "lines[0].sku"),  # a SKU the order does not have
    ({"A": 1}, {}, InvalidInput, "return_to"),
    ({"A": 1}, {"return_to": "S2", "write_off": True}, InvalidInput, "write_off"),
    ({"A": 1}, {"return_to": "NOPE"}, NotFound, "return_to"),
])
def test_a_refund_that_cannot_be_is_refused_naming_the_field_and_nothing_is_stored(engine, lines, kw, error, field):
    reply = submit(engine, "o1", [Line("A", 1)])
    hand_over(engine, reply.order_id)
    before = stored(engine)
    with pytest.raises(error) as e:
        engine.handle(refund(reply.order_id, "r-1", lines, **kw))
    assert e.value.field == field and stored(engine) == before


def test_a_cancelled_order_gives_its_money_back_and_cannot_be_refunded_again(engine):
    reply = submit(engine, "o1", [Line("A", 1)])
    done = engine.cancel(CancelOrder(order_id=reply.order_id))
    assert done.money.refunded == done.money.paid == 500
    with pytest.raises(Conflict) as e:
        engine.handle(refund(reply.order_id, "r-1"))
    assert e.value.field == "order_id"


def test_a_rejected_order_keeps_nothing(engine):
    reply = submit(engine, "o1", [Line("C", 100)])
    assert reply.status == "rejected" and reply.money.kept == 0 and reply.money.refunded == 4000_00


def test_a_refund_of_an_unknown_order_is_refused(engine):
    with pytest.raises(NotFound) as e:
        engine.handle(refund("00000000-0000-0000-0000-000000000000", "r-1"))
    assert e.value.field == "order_id"


def sell(engine: Engine, sale_id: str, lines: list[Line], **money) -> object:
    return engine.sell(SellOverCounter(node="S1", sale_id=sale_id, lines=lines, **money))


def refund_sale(sale_id: str, refund_id: str, lines: dict[str, int] | None = None, **kw) -> RefundSale:
    return RefundSale(node="S1", sale_id=sale_id, refund_id=refund_id, reason="returned at the till",
                      lines=[ReturnLine(s, q) for s, q in (lines or {}).items()], **kw)


def test_a_counter_sale_records_its_money_and_is_refunded_once_to_any_store(engine):
    sell(engine, "p1", [Line("A", 2, unit_price=450)], discounts=[Discount(100)], paid=800)
    s3 = engine.stock("S3", ["A"]).on_hand["A"]
    done = engine.handle(refund_sale("p1", "r-1", {"A": 1}, return_to="S3"))
    assert (done.paid, done.refunded, done.kept) == (800, 400, 400)
    assert engine.stock("S3", ["A"]).on_hand["A"] == s3 + 1
    before = stored(engine)
    assert engine.handle(refund_sale("p1", "r-1", {"A": 1}, return_to="S3")) == done and stored(engine) == before
    with pytest.raises(Conflict) as e:
        engine.handle(refund_sale("p1", "r-1", {"A": 1}, write_off=True))
    assert e.value.field == "refund_id"
    with pytest.raises(Conflict) as e:
        engine.handle(refund_sale("p1", "r-2", {"A": 2}, write_off=True))
    assert e.value.field == "lines[0].qty" and stored(engine) == before
    assert engine.handle(refund_sale("p1", "r-3", write_off=True)).kept == 0


def test_a_refund_of_an_unknown_sale_or_a_sale_recorded_twice_is_refused(engine):
    with pytest.raises(NotFound) as e:
        engine.handle(refund_sale("nope", "r-1", write_off=True))
    assert e.value.field == "sale_id"
    sell(engine, "p1", [Line("A", 1)])
    with pytest.raises(Conflict) as e:
        sell(engine, "p1", [Line("A", 1)])
    assert e.value.field == "sale_id"


def member_with_points(engine: Engine, points_worth_fen: int) -> str:
    """A member who earned points at the counter (1 point per yuan of cash, by default)."""
    engine.sign_up(SignUpMember(member="m1", node="S1", via="qr"))
    sell(engine, "earn", [Line("A", 1, unit_price=points_worth_fen)], member="m1")
    return "m1"


def test_points_used_on_an_order_are_spent_as_it_is_placed_and_refused_beyond_the_balance(engine):
    member = member_with_points(engine, 5000)  # 50 points
    before = stored(engine)
    with pytest.raises(Conflict) as e:
        submit(engine, "o1", [Line("A", 1)], member=member, points_used=60, points_value=60)
    assert e.value.field == "points_used" and stored(engine) == before
    reply = submit(engine, "o2", [Line("A", 2)], member=member, points_used=30, points_value=300)
    assert reply.money.paid == 700 and reply.money.points_used == 30
    assert engine.member(member).points == 20


def test_a_cancelled_order_gives_the_points_it_used_back(engine):
    member = member_with_points(engine, 5000)
    reply = submit(engine, "o1", [Line("A", 2)], member=member, points_used=30, points_value=300)
    done = engine.handle(refund(reply.order_id, "r-1"))
    assert done.status == "cancelled" and done.money.points_returned == 30
    assert engine.member(member).points == 50


def test_a_refund_takes_back_the_points_its_cash_earned_in_proportion_and_all_with_the_last(engine):
    member = member_with_points(engine, 100)  # 1 point
    reply = submit(engine, "o1", [Line("A", 4, unit_price=2500)], member=member, delivery_fee=800)  # earns 100
    hand_over(engine, reply.order_id)
    assert engine.member(member).points == 101  # on the goods' cash, not on the delivery fee
    engine.handle(refund(reply.order_id, "r-1", {"A": 1}, write_off=True))
    assert engine.member(member).points == 76
    engine.handle(refund(reply.order_id, "r-2", write_off=True))
    assert engine.member(member).points == 1


def test_a_sale_uploaded_late_by_an_offline_till_keeps_its_own_time_and_one_from_the_future_is_refused(engine):
    earlier = T0 - 3600
    sell(engine, "late-1", [Line("A", 1)], sold_at=earlier)
    sale = engine.log.repository.get(ids.sale_id("S1", "late-1"))
    assert sale.made_at == earlier
    with pytest.raises(InvalidInput) as e:
        sell(engine, "late-2", [Line("A", 1)], sold_at=T0 + 3600)
    assert e.value.field == "sold_at"


def test_a_split_order_whose_rest_cannot_be_served_after_a_hand_over_keeps_what_it_got_and_refunds_the_rest():
    # A only at S1, B only at S2: the order is split; S2 hands B over, then S1 declines and no one else has A
    network = small_network({"S1": {"A": 1}, "S2": {"B": 5}, "S3": {}, "K1": {}})
    engine = Engine(network, EngineSettings(router=RouterSettings(allow_split=True)), clock=SimClock(T0),
                    store="memory:").start()
    try:
        order_id = submit(engine, "split", [Line("A", 1), Line("B", 1)]).order_id  # 5.00 + 3.00
        engine.accept(AcceptOrder(order_id=order_id, node="S2"))
        for step in ("picked", "dispatched", "delivered"):
            engine.progress(ReportProgress(order_id=order_id, step=step, node="S2"))
        engine.decline(DeclineOrder(order_id=order_id, node="S1", reason="broken"))
        other = submit(engine, "other", [Line("B", 1)])  # routed in the same batch as the rest of "split"
        assert other.status == "routed" and other.node == "S2"
        reply = engine.order_status(order_id)
        assert reply.status == "completed" and "no node" in (reply.reason or "")
        assert reply.money.paid == 800 and reply.money.refunded == 500 and reply.money.kept == 300
        order = engine.store.get(UUID(order_id))
        assert order.shorted == {"A": 1} and order.outcome == "completed"
        with pytest.raises(Conflict):  # the dropped unit was never handed over: only B can come back
            engine.handle(refund(order_id, "r1", {"A": 1}, write_off=True))
        back = engine.handle(refund(order_id, "r2", {"B": 1}, write_off=True))
        assert back.money.refunded == 800 and back.money.kept == 0
    finally:
        engine.close()
