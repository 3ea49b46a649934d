"""domain/trigger.py makes the same events as the library's trigger_event
and _create: the same attributes in the same order, the same stored JSON,
the same aggregate."""
from __future__ import annotations

from domain import ids
from domain.inventory import NodeInventory
from domain.money import LineMoney, OrderMoney
from domain.order import Loss, Order, RoutedPart
from domain.trigger import create, trigger
from engine.store.eventlog import EventLog

PLACED = dict(channel="app", external_id="t1", lines={"A": 2}, value=10.0, mode="delivery", lat=31.2, lon=121.5,
              promised_at=2000.0, at=1000.0, pickup_node=None, member="m1",
              money=OrderMoney(currency="CNY", lines={"A": LineMoney(2, 1000, 0, 0, 0, 0, 1000)}, paid=1000), region="Pudong")
PARTS = [RoutedPart(node="S1", lines={"A": 2}, eta_at=1500.0, cost={"total": 3.5, "distance_km": 1.2})]
LOST = [Loss(node="S2", reason="too far")]


def _same(a, b, mapper) -> None:
    va, vb = dict(vars(a)), dict(vars(b))
    assert va.pop("timestamp").tzinfo is not None and vb.pop("timestamp") is not None
    assert list(va) == list(vb) and va == vb and type(a) is type(b)
    sa, sb = mapper.to_stored_event(a), mapper.to_stored_event(b)
    assert sa.topic == sb.topic and sa.originator_version == sb.originator_version
    assert mapper.to_domain_event(sa).__dict__.keys() == vars(a).keys()


def test_triggered_events_equal_the_librarys_and_build_the_same_aggregates():
    mapper = EventLog("memory:").mapper
    oid = ids.order_id("app", "t1")
    ours = create(Order, Order.Placed, id=oid, **PLACED)
    theirs = Order._create(Order.Placed, id=oid, **PLACED)
    trigger(ours, Order.Routed, parts=PARTS, lost=LOST, at=1100.0)
    theirs.trigger_event(Order.Routed, parts=PARTS, lost=LOST, at=1100.0)
    for a, b in zip(ours.collect_events(), theirs.collect_events(), strict=True):
        _same(a, b, mapper)
    state = lambda o: {k: v for k, v in vars(o).items() if k not in ("_created_on", "_modified_on")}  # noqa: E731
    assert state(ours) == state(theirs) and ours.version == theirs.version == 2

    inv_ours, inv_theirs = NodeInventory(node_id="S1", at=0.0), NodeInventory(node_id="S1", at=0.0)
    for inv in (inv_ours, inv_theirs):
        inv.receive({"A": 5}, ref="po", at=1.0)
        inv.collect_events()
    trigger(inv_ours, NodeInventory.ReservedMany, orders={str(oid): {"A": 2}}, at=2.0)
    inv_theirs.trigger_event(NodeInventory.ReservedMany, orders={str(oid): {"A": 2}}, at=2.0)
    _same(inv_ours.collect_events()[0], inv_theirs.collect_events()[0], mapper)
    assert inv_ours.reserved == inv_theirs.reserved == {"A": 2} and inv_ours.version == inv_theirs.version
