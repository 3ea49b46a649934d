import pytest

from domain.errors import Conflict, InvalidInput
from domain.order import Order, RoutedPart
from domain.quantities import NO_LINES


def placed(mode="delivery", **kw) -> Order:
    return Order.place(
        channel="app", external_id="X1", lines={"A": 2, "B": 1}, value=30.0, mode=mode, lat=31.2, lon=121.4,
        promised_at=2700.0, at=0.0, pickup_node="S1" if mode == "pickup" else None, **kw,
    )


def part(node="S1", lines=None) -> RoutedPart:
    return RoutedPart(node=node, lines=lines or {"A": 2, "B": 1}, eta_at=1500.0, cost={"total": 5.0})


def test_a_delivery_order_goes_from_placed_to_completed_in_order():
    o = placed()
    assert o.status == "placed"
    o.route([part()], [], at=1.0)
    assert o.status == "routed"
    for step, status in [(o.accept, "accepted"), (o.pick, "picked"), (o.dispatch, "dispatched")]:
        step(None, at=2.0)
        assert o.status == status
    o.deliver(None, at=3.0)
    assert o.status == "completed" and o.is_terminal


def test_a_pickup_order_is_made_ready_and_collected_not_dispatched():
    o = placed("pickup")
    o.route([part()], [], at=1.0)
    o.accept(None, 2.0)
    o.pick(None, 3.0)
    with pytest.raises(Conflict, match="not dispatched"):
        o.dispatch(None, 4.0)
    o.make_ready(None, 4.0)
    o.collect(None, 5.0)
    assert o.outcome == "completed"


def test_steps_out_of_order_are_refused():
    o = placed()
    o.route([part()], [], at=1.0)
    with pytest.raises(Conflict, match="expected dispatched"):
        o.deliver(None, 2.0)
    with pytest.raises(Conflict, match="expected accepted"):
        o.pick(None, 2.0)


def test_a_declined_part_goes_back_to_pending_and_its_node_is_excluded():
    o = placed()
    o.route([part("S1")], [], at=1.0)
    o.decline(None, "too busy", 2.0)
    assert o.status == "placed" and o.pending == {"A": 2, "B": 1} and o.excluded == ("S1",)
    with pytest.raises(Conflict, match="declined"):
        o.route([part("S1")], [], at=3.0)
    o.route([part("S2")], [], at=3.0)
    assert o.status == "routed" and o.reroutes == 1


def test_lines_are_shared_while_unchanged_and_never_changed_in_place():
    o = placed()
    lines = o.lines
    assert o.pending is lines  # placed: its lines wait for a node as they are
    o.route([part("S1", {"A": 2}), part("S2", {"B": 1})], [], at=1.0)
    assert o.pending is NO_LINES
    o.decline("S1", "too busy", 2.0)
    o.expire("S2", 2.5)
    assert o.pending == {"A": 2, "B": 1} and o.pending is not NO_LINES
    o.route([part("S3")], [], at=3.0)
    o.accept(None, 4.0)
    o.pick(None, 5.0)
    o.dispatch(None, 6.0)
    o.deliver(None, 7.0)
    assert o.outcome == "completed" and o.shorted is NO_LINES
    # what every order with none pending or shorted shares is still empty, and the order's lines are as placed
    assert NO_LINES == {} and lines == {"A": 2, "B": 1}


def test_a_routing_must_cover_exactly_the_pending_lines():
    o = placed()
    with pytest.raises(Conflict, match="differ"):
        o.route([part(lines={"A": 2})], [], at=1.0)


def test_a_split_order_is_as_far_as_its_least_advanced_part():
    o = placed()
    o.route([part("S1", {"A": 2}), part("S2", {"B": 1})], [], at=1.0)
    o.accept("S1", 2.0)
    assert o.status == "routed"
    with pytest.raises(InvalidInput, match="name the node"):
        o.accept(None, 2.0)
    o.accept("S2", 2.0)
    assert o.status == "accepted"


def test_cancel_is_allowed_before_hand_over_and_names_the_nodes_to_release():
    o = placed()
    o.route([part("S1")], [], at=1.0)
    o.accept(None, 2.0)
    assert o.cancel("changed mind", 3.0) == ["S1"]
    assert o.status == "cancelled"
    with pytest.raises(Conflict, match="already cancelled"):
        o.cancel("again", 4.0)


def test_cancel_after_hand_over_is_refused():
    o = placed()
    o.route([part()], [], at=1.0)
    o.accept(None, 2.0)
    o.pick(None, 3.0)
    o.dispatch(None, 4.0)
    o.deliver(None, 5.0)
    with pytest.raises(Conflict, match="completed"):
        o.cancel("too late", 6.0)


def test_one_terminal_state_only():
    o = placed()
    o.reject("no node can serve it", [], 1.0)
    with pytest.raises(Conflict):
        o.route([part()], [], at=2.0)
    with pytest.raises(Conflict):
        o.cancel("x", 2.0)


@pytest.mark.parametrize(
    "change, field",
    [({"lines": {}}, "lines"), ({"lines": {"A": 0}}, "lines.A.qty"), ({"promised_at": 0.0}, "promised_at"),
     ({"external_id": ""}, "external_id"), ({"mode": "drone"}, "mode")],
)
def test_bad_orders_are_refused_naming_the_field(change, field):
    args = dict(channel="app", external_id="X1", lines={"A": 1}, value=1.0, mode="delivery", lat=0.0, lon=0.0,
                promised_at=100.0, at=0.0)
    args.update(change)
    with pytest.raises(InvalidInput) as e:
        Order.place(**args)
    assert e.value.field == field


def test_the_same_channel_and_external_id_always_give_the_same_order_id():
    assert placed().id == placed().id
