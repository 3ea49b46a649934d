"""An order's steps at its node (Accepted, Declined, Expired, Picked,
ReadyForPickup, Dispatched, HandedOver, Cancelled) and a node's Consumed and
Released, triggered directly since they stopped being @event methods: the
stored JSON is byte for byte what the @event methods stored (taken from
c09545f), such events replay to the same aggregates, and they are the events
the library's trigger_event makes."""
from __future__ import annotations

import pytest

from domain.inventory import NodeInventory
from domain.money import LineMoney, OrderMoney
from domain.order import Order, RoutedPart
from domain.trigger import trigger
from engine.store.eventlog import EventLog

# (topic, the stored state after the timestamp) of c09545f's events, in the order the lives below make them
BEFORE = [
    ('domain.order:Order.Accepted', b'"node":"S1","at":1002.0}'),
    ('domain.order:Order.Picked', b'"node":"S1","at":1003.0}'),
    ('domain.order:Order.Dispatched', b'"node":"S1","at":1004.0}'),
    ('domain.order:Order.HandedOver', b'"node":"S1","how":"delivered","at":1005.0}'),
    ('domain.order:Order.Accepted', b'"node":"S1","at":1002.0}'),
    ('domain.order:Order.Picked', b'"node":"S1","at":1003.0}'),
    ('domain.order:Order.ReadyForPickup', b'"node":"S1","at":1004.0}'),
    ('domain.order:Order.HandedOver', b'"node":"S1","how":"collected","at":1005.0}'),
    ('domain.inventory:NodeInventory.ReservedMany', b'"orders":{"o1":{"A":2}},"at":2.0}'),
    ('domain.inventory:NodeInventory.Consumed', b'"order_id":"o1","lines":{"A":2},"at":3.0}'),
    ('domain.order:Order.Declined', b'"node":"S1","reason":"busy","at":1002.0}'),
    ('domain.order:Order.Expired', b'"node":"S2","at":1003.0}'),
    ('domain.order:Order.Cancelled', b'"reason":"changed mind","released":[],"at":1002.0}'),
    ('domain.inventory:NodeInventory.Released', b'"order_id":"o1","lines":{"A":2},"reason":"declined: busy","at":3.0}'),
]


def placed(mode: str, ext: str) -> Order:
    return Order.place(channel="app", external_id=ext, lines={"A": 2}, value=10.0, mode=mode, lat=31.2, lon=121.5,
                       promised_at=2000.0, at=1000.0, pickup_node="S1" if mode == "pickup" else None,
                       money=OrderMoney(currency="CNY", lines={"A": LineMoney(2, 1000, 0, 0, 0, 0, 1000)}, paid=1000))


def routed(mode: str, ext: str, *nodes: str) -> Order:
    order = placed(mode, ext)
    qty = {"A": 2 // len(nodes)}
    order.route([RoutedPart(n, qty, 1500.0, {"total": 1.0}) for n in nodes], [], 1001.0)
    return order


def stocked() -> NodeInventory:
    inv = NodeInventory(node_id="S1", at=0.0)
    inv.receive({"A": 5}, ref="po", at=1.0)
    trigger(inv, NodeInventory.ReservedMany, orders={"o1": {"A": 2}}, at=2.0)
    return inv


def lives() -> list[tuple[object, int]]:
    """Aggregates taken through every converted event, and how many of their events come before those."""
    delivered = routed("delivery", "t1", "S1")
    delivered.accept("S1", 1002.0), delivered.pick(None, 1003.0), delivered.dispatch("S1", 1004.0)
    delivered.deliver("S1", 1005.0)
    collected = routed("pickup", "t2", "S1")
    collected.accept("S1", 1002.0), collected.pick("S1", 1003.0), collected.make_ready("S1", 1004.0)
    collected.collect("S1", 1005.0)
    consumed = stocked()
    consumed.consume("o1", 3.0)
    given_back = routed("delivery", "t3", "S1", "S2")
    given_back.decline("S1", "busy", 1002.0), given_back.expire("S2", 1003.0)
    cancelled = placed("delivery", "t4")
    cancelled.cancel("changed mind", 1002.0)
    released = stocked()
    released.release("o1", "declined: busy", 3.0)
    return [(delivered, 2), (collected, 2), (consumed, 2), (given_back, 2), (cancelled, 1), (released, 3)]


def test_the_steps_store_what_the_event_methods_stored_and_replay():
    mapper = EventLog("memory:").mapper
    seen = []
    for agg, before in lives():
        stored = [mapper.to_stored_event(e) for e in agg.collect_events()]
        seen += [(s.topic, s.state[s.state.index(b'",') + 2:]) for s in stored[before:]]
        copy = None
        for s in stored:
            copy = mapper.to_domain_event(s).mutate(copy)
        state = lambda a: {k: v for k, v in vars(a).items() if k not in ("_created_on", "_modified_on")}  # noqa: E731
        assert state(copy) == state(agg) and copy.version == agg.version
    assert seen == BEFORE
    delivered, collected, consumed, given_back, cancelled, released = (a for a, _ in lives())
    assert delivered.outcome == collected.outcome == "completed" and cancelled.outcome == "cancelled"
    assert given_back.pending == {"A": 2} and given_back.excluded == ("S1", "S2") and given_back.reroutes == 2
    assert consumed.on_hand == {"A": 3} and consumed.reserved == {"A": 0} and consumed.reservations == {}
    assert released.on_hand == {"A": 5} and released.reserved == {"A": 0} and released.reservations == {}


@pytest.mark.parametrize("event, fields", [
    ("Accepted", {"node": "S1", "at": 1002.0}),
    ("Declined", {"node": "S1", "reason": "busy", "at": 1002.0}),
    ("HandedOver", {"node": "S1", "how": "delivered", "at": 1002.0}),
    ("Cancelled", {"reason": "r", "released": ["S1"], "at": 1002.0}),
])
def test_triggered_as_the_library_triggers_them(event, fields):
    ours, theirs = routed("delivery", "t1", "S1"), routed("delivery", "t1", "S1")
    trigger(ours, getattr(Order, event), **fields)
    theirs.trigger_event(getattr(Order, event), **fields)
    (a,), (b,) = ours.collect_events()[2:], theirs.collect_events()[2:]
    va, vb = dict(vars(a)), dict(vars(b))
    assert va.pop("timestamp").tzinfo is not None and vb.pop("timestamp") is not None
    assert list(va) == list(vb) and va == vb
    state = lambda o: {k: v for k, v in vars(o).items() if k not in ("_created_on", "_modified_on")}  # noqa: E731
    assert state(ours) == state(theirs) and ours.version == theirs.version == 3


def test_a_counter_sale_stores_what_the_event_method_stored_and_the_node_keeps_two_days_of_sale_ids():
    mapper = EventLog("memory:").mapper
    inv = NodeInventory(node_id="S1", at=0.0)
    inv.receive({"A": 5}, ref="po", at=1.0)
    inv.collect_events()
    inv.sell_over_counter("p1", {"A": 2}, 3.0)
    (event,) = inv.collect_events()
    s = mapper.to_stored_event(event)  # c09545f's bytes
    assert (s.topic, s.state[s.state.index(b'",') + 2:]) == (
        "domain.inventory:NodeInventory.SoldOverCounter", b'"sale_id":"p1","lines":{"A":2},"at":3.0}')
    assert inv.on_hand == {"A": 3} and inv.pos_sales == {"p1": 3.0}
    day = 86_400.0
    inv.sell_over_counter("late", {"A": 1}, 3.0 - day)  # a till's upload of a sale made the day before
    inv.sell_over_counter("p2", {"A": 1}, 3.0 + 1.5 * day)  # "late" is out of the window, behind p1 which is not
    assert list(inv.pos_sales) == ["p1", "late", "p2"]  # it stays until those before it go
    inv.sell_over_counter("p3", {"A": 1}, 4.0 + 2 * day)  # p1 is over two days old: both go
    assert list(inv.pos_sales) == ["p2", "p3"] and inv.on_hand == {"A": 0}


def test_a_sale_made_directly_stores_what_the_librarys_creation_stored_and_replays():
    from domain.sale import Sale

    mapper = EventLog("memory:").mapper
    money = OrderMoney(currency="CNY", lines={"A": LineMoney(2, 1000, 0, 0, 0, 0, 1000)}, paid=1000)
    ours, theirs = Sale.make("S1", "p1", "m1", money, 3.0), Sale(node="S1", sale_id="p1", member="m1", money=money, at=3.0)
    (a,), (b,) = ours.collect_events(), theirs.collect_events()
    s = mapper.to_stored_event(a)  # c09545f's bytes, made through the library's @event("Made") __init__
    assert (s.topic, s.state[s.state.index(b'",') + 2:]) == ("domain.sale:Sale.Made", (
        b'"originator_topic":"domain.sale:Sale","node":"S1","sale_id":"p1","member":"m1","money":{"currency":"CNY",'
        b'"lines":{"A":[2,1000,0,0,0,0,1000]},"discounts":0,"delivery_fee":0,"points_used":0,"points_value":0,'
        b'"paid":1000},"at":3.0}'))
    va, vb = dict(vars(a)), dict(vars(b))
    va.pop("timestamp"), vb.pop("timestamp")
    assert list(va) == list(vb) and va == vb
    copy = mapper.to_domain_event(s).mutate(None)
    state = lambda x: {k: v for k, v in vars(x).items() if k not in ("_created_on", "_modified_on")}  # noqa: E731
    assert state(copy) == state(ours) == state(theirs) and copy.id == ours.id
