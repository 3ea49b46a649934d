"""Quotes: a cart's options before checkout, and the promise that a submit of
the same cart right after gets the quote's best option."""
from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from domain.commands import (
    AdjustStock, CancelOrder, DeclineOrder, Line, QuoteOrder, ReceiveStock, SellOverCounter, SubmitOrder,
)
from domain.errors import DomainError, InvalidInput, NotFound
from domain.network import Window
from engine.app import Engine, EngineSettings
from engine.clock import SimClock
from engine.readmodels import ReadModels
from engine.routing.types import RouterSettings
from tests.engine.network_fixture import at_km, small_network

T0 = 1_700_000_000.0  # 06:13 in Shanghai


@pytest.fixture
def engine():
    e = Engine(small_network(), EngineSettings(), clock=SimClock(T0), store="memory:").start()
    yield e
    e.close()


def cart(km: float = 0.0, modes: str = "both", **lines: int) -> QuoteOrder:
    lat, lon = at_km(km)
    return QuoteOrder(lines=[Line(s, q) for s, q in (lines or {"A": 1}).items()], lat=lat, lon=lon, modes=modes)


def stored(e: Engine) -> int:
    return e.recorder.max_notification_id() or 0


def test_a_quote_offers_delivery_from_the_node_a_submit_would_get_and_reserves_nothing(engine):
    before, atp = stored(engine), engine.readmodels.atp.atp().copy()
    q = engine.quote(cart(km=0.1, A=2))
    best = q.options[0]
    assert best.best and best.mode == "delivery" and best.node == "S1"
    assert best.eta_at < best.promised_at
    assert stored(engine) == before and (engine.readmodels.atp.atp() == atp).all()


def test_pickup_options_are_the_nearest_stores_that_can_serve_the_cart_with_their_ready_times(engine):
    q = engine.quote(cart(km=0.9, modes="pickup", C=1))  # S2 is nearest but holds no C; the kitchen has no pickup
    assert [o.node for o in q.options] == ["S1", "S3"]
    assert all(o.mode == "pickup" for o in q.options) and q.options[0].best
    assert q.options[0].eta_at.timestamp() == pytest.approx(T0 + 10 * 60)  # ready after the store's preparation
    assert any(s.node == "S2" and s.sku == "C" and s.available == 0 for s in q.short)


def test_what_the_nearest_node_lacks_is_recorded_as_unmet_demand_once_per_quote(engine):
    engine.quote(cart(km=1.0, modes="delivery", C=1, A=7))  # S2 nearest: no C, 5 of A
    engine.quote(cart(km=1.0, modes="pickup", C=2))  # the pickup area's nearest store is S2 too
    engine.quote(cart(km=0.0, modes="delivery", A=1))  # S1 has it: nothing lacking
    assert engine.readmodels.demand.short_quote == {("S2", "C"): 3, ("S2", "A"): 2}


def test_a_split_is_offered_when_no_single_node_has_the_whole_cart_but_never_as_best():
    net = small_network({"S1": {"A": 5}, "S2": {"C": 1}, "S3": {}, "K1": {}})
    e = Engine(net, EngineSettings(), clock=SimClock(T0)).start()
    q = e.quote(cart(km=0.5, modes="delivery", A=1, C=1))
    assert len(q.options) == 1 and q.options[0].split and not q.options[0].best
    assert {p.node: p.lines for p in q.options[0].parts} == {"S1": {"A": 1}, "S2": {"C": 1}}
    assert {(s.node, s.sku) for s in q.short} >= {("S1", "C"), ("S2", "A")}


def test_with_splitting_on_the_split_is_the_best_option_and_what_a_submit_gets():
    net = small_network({"S1": {"A": 5}, "S2": {"C": 1}, "S3": {}, "K1": {}})
    e = Engine(net, EngineSettings(router=RouterSettings(allow_split=True)), clock=SimClock(T0)).start()
    q = e.quote(cart(km=0.5, modes="delivery", A=1, C=1))
    assert q.options[0].split and q.options[0].best
    reply = e.submit(SubmitOrder(channel="app", external_id="o1", lines=[Line("A", 1), Line("C", 1)],
                                 lat=at_km(0.5)[0], lon=at_km(0.5)[1]))
    assert [(p.node, p.lines, p.eta_at) for p in reply.parts] == [(p.node, p.lines, p.eta_at) for p in q.options[0].parts]


def test_a_cart_nobody_can_serve_has_no_option_and_says_why(engine):
    q = engine.quote(cart(km=0.0, modes="delivery", C=20))
    assert q.options == [] and "C" in q.reason
    assert {s.node for s in q.short} == {"S1", "S2", "S3"}


def test_bad_quotes_are_refused_naming_the_field_and_the_rest_of_the_batch_is_answered(engine):
    good = cart(A=1)
    unknown = cart(Z=1)
    nowhere = QuoteOrder(lines=[Line("A", 1)], modes="pickup")
    no_pickup = QuoteOrder(lines=[Line("A", 1)], pickup_node="K1", modes="pickup")
    replies = engine.quote_batch([good, unknown, nowhere, no_pickup])
    assert replies[0].options
    assert isinstance(replies[1], NotFound) and replies[1].field == "lines[0].sku"
    assert isinstance(replies[2], InvalidInput) and replies[2].field == "lat"
    assert isinstance(replies[3], InvalidInput) and replies[3].field == "pickup_node"


def test_quotes_in_one_batch_do_not_take_stock_from_each_other(engine):
    alone = engine.quote(cart(km=0.0, modes="delivery", C=1))
    many = engine.quote_batch([cart(km=0.0, modes="delivery", C=1)] * 5)
    assert all(r.options[0].node == alone.options[0].node == "S1" for r in many)


# -- the promise: a quote's best option is what a submit right after gets ------------------------------

NODES = ["S1", "S2", "S3", "K1"]
SKUS = ["A", "B", "C"]
lines_st = st.dictionaries(st.sampled_from(SKUS), st.integers(1, 4), min_size=1, max_size=3)
km_st = st.floats(-1.0, 6.0)
step_st = st.one_of(
    st.tuples(st.just("submit"), km_st, lines_st),
    st.tuples(st.just("pickup"), st.sampled_from(["S1", "S2", "S3"]), lines_st),
    st.tuples(st.just("sell"), st.sampled_from(NODES), lines_st),
    st.tuples(st.just("receive"), st.sampled_from(NODES), lines_st),
    st.tuples(st.just("adjust"), st.sampled_from(NODES), st.sampled_from(SKUS), st.integers(-5, 5)),
    st.tuples(st.just("cancel"), st.integers(0, 30)),
    st.tuples(st.just("decline"), st.integers(0, 30)),
    st.tuples(st.just("wait"), st.integers(1, 600)),
)


def _network():
    """Small capacities (nodes fill up) and a store that closes at 09:00 local (from 01:00 UTC)."""
    net = small_network()
    nodes = [msgspec.structs.replace(n, capacity_per_slot=3) for n in net.nodes]
    nodes[2] = msgspec.structs.replace(nodes[2], hours=[Window("06:00", "06:45")])  # S3: the clock passes its close
    return msgspec.structs.replace(net, nodes=nodes)


def _apply(e: Engine, clock: SimClock, orders: list[str], step: tuple) -> None:
    kind, n = step[0], len(orders)
    before = stored(e)
    try:
        if kind == "submit":
            lat, lon = at_km(step[1])
            oid = f"s{n}"
            e.submit(SubmitOrder(channel="app", external_id=oid, lines=[Line(s, q) for s, q in step[2].items()],
                                 lat=lat, lon=lon))
            orders.append(oid)
        elif kind == "pickup":
            oid = f"s{n}"
            e.submit(SubmitOrder(channel="app", external_id=oid, lines=[Line(s, q) for s, q in step[2].items()],
                                 mode="pickup", pickup_node=step[1]))
            orders.append(oid)
        elif kind == "sell":
            e.sell(SellOverCounter(node=step[1], sale_id=f"p{clock.now()}-{step[1]}",
                                   lines=[Line(s, q) for s, q in step[2].items()]))
        elif kind == "receive":
            e.receive(ReceiveStock(node=step[1], lines=[Line(s, q) for s, q in step[2].items()]))
        elif kind == "adjust":
            if step[3]:
                e.adjust(AdjustStock(node=step[1], sku=step[2], delta=step[3], reason="count"))
        elif kind == "cancel" and orders:
            e.cancel(CancelOrder(order_id=f"app:{orders[step[1] % n]}"))
        elif kind == "decline" and orders:
            e.decline(DeclineOrder(order_id=f"app:{orders[step[1] % n]}"))
            e.route_pending()
        elif kind == "wait":
            clock.advance_to(clock.now() + step[1])
            e.expire_due()
            e.route_pending()
    except DomainError as err:  # random steps: a refusal names its field and stores nothing
        assert err.field and err.reason and stored(e) == before, err


@pytest.mark.slow
@pytest.mark.parametrize("split", [False, True], ids=["whole", "split"])
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step_st, max_size=14), cart_lines=lines_st, km=km_st,
       modes=st.sampled_from(["delivery", "pickup", "both"]))
def test_a_quotes_best_option_is_what_a_submit_of_the_same_cart_right_after_gets(split, steps, cart_lines, km, modes):
    clock = SimClock(T0)
    e = Engine(_network(), EngineSettings(router=RouterSettings(allow_split=split)), clock=clock).start()
    orders: list[str] = []
    for step in steps:
        _apply(e, clock, orders, step)
    assert not e.readmodels.to_route
    lat, lon = at_km(km)
    lines = [Line(s, q) for s, q in cart_lines.items()]
    q = e.quote(QuoteOrder(lines=lines, lat=lat, lon=lon, modes=modes))
    best = [o for o in q.options if o.best]
    assert len(best) <= 1 and (not best or q.options[0] is best[0])
    if best:
        o = best[0]
        event(f"best: {o.mode}{' split' if o.split else ''}")
        reply = e.submit(SubmitOrder(channel="app", external_id="the-cart", lines=lines, lat=lat, lon=lon,
                                     mode=o.mode, pickup_node=o.node if o.mode == "pickup" else None))
        assert reply.status == "routed", reply.explanation
        assert [(p.node, p.lines, p.eta_at) for p in reply.parts] == [(p.node, p.lines, p.eta_at) for p in o.parts]
        assert reply.promised_at == o.promised_at
        return
    event("no option")
    # nothing to promise: a delivery is refused, and so is a pickup at every store of the area
    subs = [SubmitOrder(channel="app", external_id="the-cart", lines=lines, lat=lat, lon=lon)] \
        if modes != "pickup" else []
    if modes != "delivery":
        subs += [SubmitOrder(channel="app", external_id=f"the-cart-{n}", lines=lines, lat=lat, lon=lon, mode="pickup",
                             pickup_node=n) for n in _area(e, lat, lon)]
    for sub in subs:
        reply = e.submit(sub)
        assert reply.status == "rejected", (q, reply.explanation)


def _area(e: Engine, lat: float, lon: float) -> list[str]:
    return e.quotes._pickup_areas([QuoteOrder(lines=[Line("A", 1)], lat=lat, lon=lon)],
                                  e.router.nodes(e.network_state(0))).get(0, [])


# -- holds ---------------------------------------------------------------------------------------------

def _submit(e: Engine, ext: str, km: float, hold: str | None = None, **lines: int):
    lat, lon = at_km(km)
    return e.submit(SubmitOrder(channel="app", external_id=ext, lines=[Line(s, q) for s, q in lines.items()],
                                lat=lat, lon=lon, hold=hold))


def test_a_held_quotes_stock_is_kept_from_other_orders_and_the_submit_with_the_hold_gets_it(engine):
    q = engine.quote(msgspec.structs.replace(cart(km=0.0, modes="delivery", C=1), quote_id="q1", hold_minutes=5))
    assert q.hold is not None and q.hold.node == "S1" and q.hold.lines == {"C": 1}
    assert q.hold.expires_at.timestamp() == T0 + 300
    assert engine.stock("S1", ["C"]).available["C"] == 0
    other = _submit(engine, "other", 0.0, C=1)
    assert other.node != "S1"  # S1's only C is held
    mine = _submit(engine, "mine", 0.0, hold="q1", C=1)
    assert mine.status == "routed" and mine.node == "S1"
    assert mine.parts[0].eta_at == q.options[0].parts[0].eta_at
    assert engine.readmodels.holds.holds["q1"].status == "used"
    assert engine.stock("S1", ["C"]).available["C"] == 0  # now the order's


def test_a_hold_lapses_at_its_time_and_its_stock_goes_back(engine):
    engine.quote(msgspec.structs.replace(cart(km=0.0, modes="delivery", C=1), quote_id="q1", hold_minutes=1))
    engine.clock.advance_to(T0 + 59)
    engine.expire_due()
    assert engine.stock("S1", ["C"]).available["C"] == 0
    engine.clock.advance_to(T0 + 60)
    assert engine.expire_due() == 1
    assert engine.stock("S1", ["C"]).available["C"] == 1
    assert engine.readmodels.holds.holds["q1"].status == "lapsed"
    late = _submit(engine, "late", 0.0, hold="q1", C=1)  # routed as any other order
    assert late.status == "routed" and late.node == "S1"


def test_a_hold_is_refused_for_another_cart_or_an_unknown_quote_and_nothing_changes(engine):
    engine.quote(msgspec.structs.replace(cart(km=0.0, modes="delivery", C=1), quote_id="q1", hold_minutes=5))
    before = stored(engine)
    with pytest.raises(InvalidInput) as e:
        _submit(engine, "o1", 0.0, hold="q1", C=1, A=1)
    assert e.value.field == "hold"
    with pytest.raises(NotFound) as e:
        _submit(engine, "o2", 0.0, hold="nope", C=1)
    assert e.value.field == "hold"
    assert stored(engine) == before


def test_two_quotes_cannot_hold_the_same_last_unit(engine):
    a, b = engine.quote_batch([msgspec.structs.replace(cart(km=0.0, modes="delivery", C=1), quote_id=q, hold_minutes=5)
                               for q in ("qa", "qb")])
    assert a.hold is not None and b.hold is None and "held for another quote" in b.hold_refused


def test_holds_rebuilt_from_the_store_equal_the_live_read_models(engine):
    engine.quote(msgspec.structs.replace(cart(km=0.0, C=1), quote_id="q1", hold_minutes=5))
    engine.quote(msgspec.structs.replace(cart(km=1.0, A=1), quote_id="q2", hold_minutes=1))
    _submit(engine, "o1", 0.0, hold="q1", C=1)
    engine.clock.advance_to(T0 + 120)
    engine.expire_due()
    rebuilt = ReadModels(engine.network)
    for nid, event in engine.stored_events():
        rebuilt.apply(event, nid)
    assert rebuilt.state()["holds"] == engine.readmodels.state()["holds"]
    assert rebuilt.state()["atp"] == engine.readmodels.state()["atp"]
    assert {q: h.status for q, h in rebuilt.holds.holds.items()} == {"q1": "used", "q2": "lapsed"}
