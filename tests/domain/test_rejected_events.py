"""Order.Rejected and Order.Refunded, triggered directly since they stopped
being @event methods: the stored JSON is byte for byte what the @event
methods stored (taken from d6e9436), and such events replay."""
from domain.money import LineMoney, OrderMoney
from domain.order import Loss, Order
from domain.trigger import trigger
from engine.store.eventlog import EventLog

# the stored states (after the timestamp) of d6e9436's refund and rejection of this order
BEFORE = [
    ("domain.order:Order.Refunded", b'"refund_id":"rejected","fingerprint":"rejected","reason":"order rejected",'
     b'"lines":{"A":2},"cash":{"A":1000},"points":{"A":0},"delivery_fee":0,"return_to":null,"write_off":false,'
     b'"at":1001.0}'),
    ("domain.order:Order.Rejected", b'"reason":"no node","lost":[{"node":"S2","reason":"too far"}],"released":[],'
     b'"at":1001.0}'),
]


def placed() -> Order:
    return Order.place(channel="app", external_id="t1", lines={"A": 2}, value=10.0, mode="delivery", lat=31.2,
                       lon=121.5, promised_at=2000.0, at=1000.0,
                       money=OrderMoney(currency="CNY", lines={"A": LineMoney(2, 1000, 0, 0, 0, 0, 1000)}, paid=1000))


def test_a_rejection_stores_what_the_event_methods_stored_and_replays():
    mapper = EventLog("memory:").mapper
    order = placed()
    order.refund("rejected", "rejected", {}, "order rejected", 1001.0)
    order.reject("no node", [Loss(node="S2", reason="too far")], 1001.0)
    events = order.collect_events()
    stored = [mapper.to_stored_event(e) for e in events]
    assert [(s.topic, s.state[s.state.index(b'",') + 2:]) for s in stored[1:]] == BEFORE
    copy = None
    for s in stored:
        copy = mapper.to_domain_event(s).mutate(copy)
    assert copy.outcome == "rejected" and copy.reason == "no node" and copy.parts == {}
    assert copy.refunds.total == order.refunds.total == 1000 and copy.version == order.version == 3


def test_triggered_as_the_library_triggers_them():
    ours, theirs = placed(), placed()
    trigger(ours, Order.Rejected, reason="r", lost=[], released=[], at=1001.0)
    theirs.trigger_event(Order.Rejected, reason="r", lost=[], released=[], at=1001.0)
    (a,), (b,) = ours.collect_events()[1:], theirs.collect_events()[1:]
    va, vb = dict(vars(a)), dict(vars(b))
    va.pop("timestamp"), vb.pop("timestamp")
    assert list(va) == list(vb) and va == vb and ours.outcome == theirs.outcome == "rejected"
