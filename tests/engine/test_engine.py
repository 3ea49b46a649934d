"""Engine behaviour, on the memory store (tests/persistence and tests/engine/test_restart.py cover the stores)."""
from __future__ import annotations

import uuid

import pytest

from domain.commands import (
    AcceptOrder, AdjustStock, CancelOrder, CountStock, DeclineOrder, GetStock, Line, ReceiveStock, RedeemPoints,
    ReportProgress, SellOverCounter, SignUpMember, SubmitOrder,
)
from domain.errors import Conflict, InvalidInput, NotFound
from engine.app import Engine, EngineSettings
from engine.clock import SimClock
from engine.readmodels import ReadModels
from tests.conftest import garbage_left
from tests.engine.network_fixture import at_km, small_network

T0 = 1_700_000_000.0


@pytest.fixture
def clock():
    return SimClock(T0)


@pytest.fixture
def engine(clock):
    e = Engine(small_network(), EngineSettings(), clock=clock, store="memory:").start()
    yield e
    e.close()


def order(ext: str, km: float = 0.0, **lines: int) -> SubmitOrder:
    lat, lon = at_km(km)
    return SubmitOrder(channel="app", external_id=ext, lines=[Line(s, q) for s, q in (lines or {"A": 1}).items()],
                       lat=lat, lon=lon)


def stored(engine: Engine) -> int:
    return engine.recorder.max_notification_id() or 0


def test_an_order_is_routed_to_the_nearest_node_with_stock_and_its_stock_reserved(engine):
    reply = engine.submit(order("o1", km=0.1, A=2))
    assert reply.status == "routed" and reply.node == "S1"
    assert "S1" in reply.explanation
    assert engine.stock("S1", ["A"]).available["A"] == 3


def test_a_cheaper_node_without_the_stock_is_passed_over_with_the_reason(engine):
    reply = engine.submit(order("o1", km=1.0, C=1))  # S2 is nearest but has no C
    assert reply.node in ("S1", "S3")
    assert any(loss.node == "S2" and "C" in loss.reason for loss in reply.lost)


def test_a_repeated_submission_gets_the_first_answer_and_stores_nothing(engine):
    first = engine.submit(order("o1", A=1))
    before = stored(engine)
    again = engine.submit(order("o1", A=1))
    assert again.repeat and again.order_id == first.order_id and again.node == first.node
    assert again.first_decision.outcome == "routed"
    assert stored(engine) == before


def test_a_batch_is_stored_in_one_transaction_and_bad_orders_get_their_own_error(engine):
    before = stored(engine)
    results = engine.submit_batch([order("o1", A=1), order("o2", Z=1), order("o3", A=0), order("o4", B=1)])
    assert results[0].status == "routed" and results[3].status == "routed"
    assert isinstance(results[1], NotFound) and results[1].field == "lines[0].sku"
    assert isinstance(results[2], InvalidInput) and results[2].field == "lines.A.qty"
    assert stored(engine) > before


def test_an_order_no_node_can_serve_is_rejected_with_a_reason(engine):
    reply = engine.submit(order("o1", km=0.0, C=100))
    assert reply.status == "rejected" and reply.reason
    assert reply.node is None


@pytest.mark.parametrize(
    "cmd, error, field",
    [
        (order("x", Z=1), NotFound, "lines[0].sku"),
        (SubmitOrder(channel="app", external_id="x", lines=[Line("A", 1)]), InvalidInput, "lat"),
        (SubmitOrder(channel="app", external_id="x", lines=[Line("A", 1)], mode="pickup", pickup_node="NOPE"), NotFound, "pickup_node"),
        (SubmitOrder(channel="app", external_id="x", lines=[Line("A", -1)], lat=31.2, lon=121.4), InvalidInput, "lines.A.qty"),
        (SubmitOrder(channel="app", external_id="x", lines=[Line("A", 1)], lat=31.2, lon=121.4, member="ghost"), NotFound, "member"),
    ],
)
def test_bad_orders_raise_a_domain_error_naming_the_field_and_store_nothing(engine, cmd, error, field):
    before = stored(engine)
    with pytest.raises(error) as e:
        engine.submit(cmd)
    assert e.value.field == field
    assert stored(engine) == before


def test_bad_stock_commands_store_nothing(engine):
    before = stored(engine)
    with pytest.raises(NotFound):
        engine.receive(ReceiveStock(node="NOPE", lines=[Line("A", 1)]))
    with pytest.raises(NotFound):
        engine.receive(ReceiveStock(node="S1", lines=[Line("Z", 1)]))
    with pytest.raises(InvalidInput):
        engine.receive(ReceiveStock(node="S1", lines=[Line("A", 0)]))
    with pytest.raises(Conflict):
        engine.adjust(AdjustStock(node="S1", sku="A", delta=-99, reason="lost"))
    assert stored(engine) == before


def test_a_declined_order_is_routed_again_in_the_next_batch_to_another_node(engine):
    first = engine.submit(order("o1", km=0.0, A=1))
    assert first.node == "S1"
    declined = engine.decline(DeclineOrder(order_id=first.order_id, reason="no staff"))
    assert declined.status == "placed"
    assert engine.stock("S1", ["A"]).available["A"] == 5
    engine.route_pending()
    again = engine.order_status(first.order_id)
    assert again.status == "routed" and again.node not in ("S1", None)


def test_a_reservation_not_accepted_in_time_expires_and_the_order_is_routed_again(engine, clock):
    first = engine.submit(order("o1", km=0.0, A=1))
    clock.advance_to(T0 + EngineSettings().accept_timeout_s - 1)
    assert engine.expire_due() == 0
    clock.advance_to(T0 + EngineSettings().accept_timeout_s)
    assert engine.expire_due() == 1
    assert engine.order_status(first.order_id).status == "placed"
    engine.submit(order("o2", km=0.0, A=1))  # the next batch takes the waiting order along
    assert engine.order_status(first.order_id).node != "S1"


def test_parts_expire_oldest_first_and_only_once_their_own_time_is_up(engine, clock):
    timeout = EngineSettings().accept_timeout_s
    early = engine.submit(order("o1", km=0.0, A=1))
    clock.advance_to(T0 + 100)
    late = engine.submit(order("o2", km=0.0, A=1))
    accepted = engine.submit(order("o3", km=0.0, A=1))
    engine.accept(AcceptOrder(order_id=accepted.order_id))
    clock.advance_to(T0 + timeout + 50)
    assert engine.expire_due() == 1
    assert engine.readmodels.orders[early.order_id].reroutes == 1 and engine.readmodels.orders[late.order_id].reroutes == 0
    clock.advance_to(T0 + 100 + timeout)
    assert engine.expire_due() == 1
    assert engine.readmodels.orders[late.order_id].reroutes == 1
    assert engine.order_status(accepted.order_id).status == "accepted"


def test_cancel_releases_the_stock_and_cancel_after_hand_over_is_refused(engine):
    a = engine.submit(order("o1", A=2))
    engine.cancel(CancelOrder(order_id=a.order_id))
    assert engine.stock("S1", ["A"]).available["A"] == 5
    b = engine.submit(order("o2", A=1))
    for step in ("picked", "dispatched", "delivered"):
        if step == "picked":
            engine.accept(AcceptOrder(order_id=b.order_id))
        engine.progress(ReportProgress(order_id=b.order_id, step=step))
    before = stored(engine)
    with pytest.raises(Conflict):
        engine.cancel(CancelOrder(order_id=b.order_id))
    assert stored(engine) == before
    assert engine.stock("S1", ["A"]).on_hand["A"] == 4


def test_a_member_earns_points_online_and_at_the_counter_and_cannot_overspend(engine):
    engine.sign_up(SignUpMember(member="m1", node="S2", via="clerk", clerk="c9", phone="13800000000"))
    lat, lon = at_km(0)
    r = engine.submit(SubmitOrder(channel="app", external_id="o1", lines=[Line("C", 1)], lat=lat, lon=lon, member="m1"))
    engine.accept(AcceptOrder(order_id=r.order_id))
    for step in ("picked", "dispatched", "delivered"):
        engine.progress(ReportProgress(order_id=r.order_id, step=step))
    assert engine.member("m1").points == 40
    engine.sell(SellOverCounter(node="S2", sale_id="pos-1", lines=[Line("A", 2)], member="m1"))
    assert engine.member("m1").points == 50
    before = stored(engine)
    with pytest.raises(Conflict, match="holds 50"):
        engine.redeem(RedeemPoints(member="m1", points=51, gift="mug", ref="r1"))
    assert stored(engine) == before
    assert engine.redeem(RedeemPoints(member="m1", points=50, gift="mug", ref="r1")).points == 0


def test_pos_sales_and_online_orders_draw_on_one_stock(engine):
    engine.sell(SellOverCounter(node="S1", sale_id="p1", lines=[Line("A", 4)]))
    reply = engine.submit(order("o1", km=0.0, A=2))
    assert reply.node != "S1"


def test_a_stocktake_and_an_adjustment_move_on_hand(engine):
    engine.count(CountStock(node="S1", sku="A", counted=9))
    engine.adjust(AdjustStock(node="S1", sku="A", delta=-2, reason="damaged"))
    assert engine.stock("S1", ["A"]).on_hand["A"] == 7


def test_the_read_models_rebuilt_from_the_stored_events_equal_the_live_ones(engine):
    engine.sign_up(SignUpMember(member="m1", node="S1"))
    a = engine.submit(order("o1", A=1))
    engine.submit_batch([order("o2", km=2, B=2), order("o3", km=4, A=3, C=1)])
    engine.decline(DeclineOrder(order_id=a.order_id))
    engine.sell(SellOverCounter(node="S3", sale_id="p1", lines=[Line("B", 1)]))
    rebuilt = ReadModels(small_network())
    for notification_id, event in engine.stored_events():
        rebuilt.apply(event, notification_id)
    assert rebuilt.state() == engine.readmodels.state()


def test_many_node_steps_are_stored_in_one_transaction_and_a_refused_one_is_reported_in_its_slot(engine):
    a = engine.submit(order("o1", A=1))
    b = engine.submit(order("o2", km=2, B=1))
    results = engine.node_steps([
        AcceptOrder(order_id=a.order_id), ReportProgress(order_id=a.order_id, step="picked"),
        ReportProgress(order_id=b.order_id, step="delivered"),  # not accepted, not dispatched: refused
        AcceptOrder(order_id=b.order_id),
    ])
    assert results[0] is None and results[1] is None and results[3] is None
    assert isinstance(results[2], Conflict)
    assert engine.order_status(a.order_id).status == "picked"
    assert engine.order_status(b.order_id).status == "accepted"


def test_refused_commands_leave_no_reference_cycles_behind(engine):
    """Long runs make no full collections (engine.memory): garbage must not need them."""
    def refusals() -> None:
        results = engine.submit_batch([order("fine", A=1), order("bad", Z=1)])
        assert isinstance(results[1], NotFound)
        steps = engine.node_steps([AcceptOrder(order_id=str(uuid.uuid4()))])
        assert isinstance(steps[0], NotFound)
        with pytest.raises(NotFound):
            engine.receive(ReceiveStock(node="S9", lines=[Line("A", 1)]))

    _, left = garbage_left(refusals)
    assert left["traceback"] == left["frame"] == 0, left


def test_a_nodes_stock_is_read_through_the_command_table_and_an_unknown_sku_is_named(engine):
    engine.receive(ReceiveStock(node="S1", lines=[Line("A", 3)], ref="po-1"))
    reply = engine.handle(GetStock(node="S1", skus=["A"]))
    assert reply.on_hand["A"] == engine.stock("S1", ["A"]).on_hand["A"] and set(reply.on_hand) == {"A"}
    with pytest.raises(NotFound) as e:
        engine.handle(GetStock(node="S1", skus=["nope"]))
    assert e.value.field == "skus[0]"
