"""The read models fed events directly: the cases a replay of the engine's
own events seldom reaches."""
from __future__ import annotations

from uuid import uuid4

import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import JSONTranscoder

from domain.hold import Hold
from domain.inventory import NodeInventory
from domain.member import Member
from domain.sale import Sale
from domain.benefit import BenefitRules, PartyLedger
from domain.order import Loss, Order, RoutedPart
from domain.quantities import NO_LINES
from engine.store.mapper import MsgspecMapper
from engine.readmodels import AGGREGATES, ReadModels, UnhandledEvent
from tests.engine.network_fixture import small_network

T = 1_700_000_000.0


def test_stock_of_a_sku_the_network_does_not_list_gets_its_own_column_and_keeps_counting():
    views = ReadModels(small_network())
    inv = NodeInventory(node_id="S1", at=T)
    inv.receive({"A": 3, "NEW": 4}, ref="po-1", at=T)
    inv.reserve("o1", {"NEW": 1, "A": 1}, T)
    inv.sell_over_counter("sale-1", {"NEW": 2}, T)
    views.apply_all(inv.collect_events())
    atp = views.atp
    row, new, a = atp.row("S1"), atp.col("NEW"), atp.col("A")
    assert atp.sku_ids[-1] == "NEW" and atp.on_hand.shape == (4, 4)
    assert (atp.on_hand[row, new], atp.reserved[row, new], atp.atp()[row, new]) == (2, 1, 1)
    assert (atp.on_hand[row, a], atp.reserved[row, a]) == (3, 1)


def test_orders_that_lost_at_the_same_node_for_the_same_reason_both_report_it():
    views = ReadModels(small_network())
    for external_id in ("x1", "x2"):
        order = Order.place(channel="app", external_id=external_id, lines={"A": 1}, value=5.0, mode="delivery",
                            lat=31.2, lon=121.4, promised_at=T + 2700, at=T)
        order.route([RoutedPart(node="S1", lines={"A": 1}, eta_at=T + 900, cost={"total": 2.0})],
                    [Loss(node="S2", reason="no stock of A"), Loss(node="K1", reason="too far")], T)
        views.apply_all(order.collect_events())
    first, second = views.orders.values()
    assert first.lost == second.lost == [{"node": "S2", "reason": "no stock of A"}, {"node": "K1", "reason": "too far"}]
    assert first.first.lost == first.lost
    assert first.parts["S1"].lines == {"A": 1} and first.cost == {"S1": {"total": 2.0}}
    network = small_network()
    s1 = [n.id for n in network.nodes].index("S1")
    assert views.capacity_left(T)[s1] == network.nodes[s1].capacity_per_slot - 2


def test_a_part_given_back_waits_again_with_its_lines_and_no_shared_dict_changes():
    views = ReadModels(small_network())
    order = Order.place(channel="app", external_id="g1", lines={"A": 1, "B": 2}, value=5.0, mode="delivery",
                        lat=31.2, lon=121.4, promised_at=T + 2700, at=T)
    order.route([RoutedPart(node="S1", lines={"A": 1}, eta_at=T + 900, cost={"total": 2.0}),
                 RoutedPart(node="S2", lines={"B": 2}, eta_at=T + 900, cost={"total": 3.0})], [], T)
    order.decline("S1", "too busy", T + 60)
    order.expire("S2", T + 120)
    views.apply_all(order.collect_events())
    (r,) = views.orders.values()
    assert r.status == "placed" and r.pending == {"A": 1, "B": 2} and r.reroutes == 2 and not r.parts
    assert r.order_id in views.to_route
    assert NO_LINES == {} and r.lines == {"A": 1, "B": 2}  # the shared empty dict and the placed lines unchanged


def test_stock_moves_reach_an_array_set_in_place_of_the_view_s_own():
    views = ReadModels(small_network())
    inv = NodeInventory(node_id="S2", at=T)
    views.apply_all(inv.collect_events())
    views.atp.reserved = views.atp.reserved.copy()
    inv.receive({"A": 3}, ref="po-1", at=T)
    inv.reserve("o1", {"A": 2}, T)
    views.apply_all(inv.collect_events())
    row, a = views.atp.row("S2"), views.atp.col("A")
    assert (views.atp.reserved[row, a], views.atp.atp()[row, a]) == (2, 1)


def _event_classes(aggregate: type) -> list[type]:
    """The events an aggregate can record: its nested event classes, less the
    library's bases (`Event`, and `Created` where the aggregate names its own)."""
    classes = [v for v in vars(aggregate).values() if isinstance(v, type) and issubclass(v, aggregate.Event)]
    own_created = any(issubclass(c, Aggregate.Created) and c is not aggregate.Created for c in classes)
    return [c for c in classes if c is not aggregate.Event and not (own_created and c is aggregate.Created)]


def test_every_event_of_every_known_aggregate_has_a_read_model_handler():
    views = ReadModels(small_network())
    assert AGGREGATES == (NodeInventory, Order, Member, Sale, BenefitRules, PartyLedger, Hold)
    unhandled = [c.__qualname__ for a in AGGREGATES for c in _event_classes(a) if not views.handles(c)]
    assert unhandled == []
    assert all(_event_classes(a) for a in AGGREGATES)


def test_an_event_of_a_known_aggregate_that_no_read_model_handles_raises_naming_its_class():
    class Misrouted(Order.Event):  # as if its handler were keyed by a mistyped class
        at: float

    views = ReadModels(small_network())
    event = Misrouted(originator_id=uuid4(), originator_version=2, timestamp=Misrouted.create_timestamp(), at=T)
    with pytest.raises(UnhandledEvent, match=r"Misrouted, an event of Order"):
        views.apply(event, 7)
    assert views.last_notification_id == 0


def test_an_event_of_the_class_an_aggregate_s_body_defined_and_the_library_replaced_raises_too():
    original = Order.Routed.__bases__[0]  # Order.Routed is the library's subclass of it; a table keyed by it would miss
    assert original is not Order.Routed and original.__qualname__ == "Order.Routed"
    event = object.__new__(original)
    object.__setattr__(event, "__dict__", {"originator_id": uuid4(), "originator_version": 2, "at": T})
    with pytest.raises(UnhandledEvent, match=r"domain.order.Order.Routed, an event of Order"):
        ReadModels(small_network()).apply(event)


def test_events_of_an_aggregate_no_read_model_follows_are_ignored():
    class Courier(Aggregate):
        @event("Hired")
        def __init__(self, name: str) -> None:
            self.name = name

    views = ReadModels(small_network())
    before = views.state()
    views.apply(Courier(name="Li").collect_events()[0], 3)
    assert views.state() == before and views.last_notification_id == 3


def test_the_hot_events_as_triggered_and_as_decoded_from_the_store_are_the_classes_handled():
    views = ReadModels(small_network())
    mapper = MsgspecMapper(transcoder=JSONTranscoder())
    inv = NodeInventory(node_id="S1", at=T)
    inv.receive({"A": 3}, ref="po-1", at=T)
    inv.reserve("o1", {"A": 1}, T)
    order = Order.place(channel="app", external_id="x1", lines={"A": 1}, value=5.0, mode="delivery",
                        lat=31.2, lon=121.4, promised_at=T + 2700, at=T)
    order.route([RoutedPart(node="S1", lines={"A": 1}, eta_at=T + 900, cost={"total": 2.0})], [], T)
    triggered = inv.collect_events() + order.collect_events()
    decoded = [mapper.to_domain_event(mapper.to_stored_event(e)) for e in triggered]
    hot = (NodeInventory.ReservedMany, Order.Placed, Order.Routed)
    assert [type(e) for e in decoded] == [type(e) for e in triggered]
    assert all(any(type(e) is c for e in triggered) for c in hot)
    assert all(views.handles(type(e)) for e in triggered)
    views.apply_all(decoded)
    atp = views.atp
    assert views.orders[str(order.id)].status == "routed" and atp.reserved[atp.row("S1"), atp.col("A")] == 1


def test_a_reservation_event_of_a_store_written_before_reserved_many_still_feeds_the_atp_view():
    views = ReadModels(small_network())
    mapper = MsgspecMapper(transcoder=JSONTranscoder())
    inv = NodeInventory(node_id="S1", at=T)
    inv.receive({"A": 3}, ref="po-1", at=T)
    inv.trigger_event(NodeInventory.Reserved, order_id="o1", lines={"A": 2}, at=T)  # as written until then
    inv.reserve_many({"o2": {"A": 1}}, T)
    decoded = [mapper.to_domain_event(mapper.to_stored_event(e)) for e in inv.collect_events()]
    views.apply_all(decoded)
    atp = views.atp
    assert atp.reserved[atp.row("S1"), atp.col("A")] == 3 and int(atp.atp()[atp.row("S1"), atp.col("A")]) == 0
