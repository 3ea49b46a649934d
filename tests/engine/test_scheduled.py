"""Orders for a later slot: booked against the slot's hours and capacity,
routed with their stock reserved at their lead time or rejected then with
the reason; a slot's capacity is never exceeded by booked and immediate
orders together."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from domain.commands import AdjustStock, CancelOrder, DeclineOrder, Line, SubmitOrder
from domain.errors import DomainError, InvalidInput
from domain.network import Window
from domain.order import Order
from engine.app import Engine
from engine.clock import SimClock
from engine.readmodels import ReadModels
from engine.scheduling import ScheduleSettings
from tests.engine.network_fixture import at_km, small_network

SH = ZoneInfo("Asia/Shanghai")
NODES = ("S1", "S2", "S3", "K1")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


def network(capacity: dict[str, int] | None = None, stock: dict | None = None, always_open: tuple[str, ...] = ()):
    """The small town, every node open 09:00-22:00 local (but those always open)."""
    net = small_network(stock)
    cap = capacity or {}
    return msgspec.structs.replace(net, nodes=[
        msgspec.structs.replace(n, hours=[Window("00:00", "24:00") if n.id in always_open else Window("09:00", "22:00")],
                                capacity_per_slot=cap.get(n.id, n.capacity_per_slot))
        for n in net.nodes])


def engine_at(when: datetime, **kw) -> tuple[Engine, SimClock]:
    clock = SimClock(when.timestamp())
    return Engine(network(**kw), clock=clock).start(), clock


def order(external_id: str, km: float = 0.2, start: datetime | None = None, minutes: int = 30, sku: str = "A",
          qty: int = 1, **kw) -> SubmitOrder:
    lat, lon = at_km(km)
    window = {} if start is None else {"window_start": start, "window_end": start + timedelta(minutes=minutes)}
    return SubmitOrder(channel="app", external_id=external_id, lines=[Line(sku, qty)], lat=lat, lon=lon, **window, **kw)


def events(engine: Engine, cls: type) -> list:
    return [e for _, e in engine.stored_events() if isinstance(e, cls)]


def test_an_order_for_a_later_slot_is_booked_holding_no_stock_and_routed_with_its_stock_at_its_lead_time():
    engine, clock = engine_at(local(2026, 3, 20, 10, 0))
    atp = engine.stock("S1", ["A"]).available["A"]
    reply = engine.submit(order("w1", start=local(2026, 3, 21, 12, 0)))
    assert (reply.status, reply.node, reply.parts) == ("booked", "S1", [])
    assert reply.due_at == local(2026, 3, 21, 11, 15) and reply.promised_at == local(2026, 3, 21, 12, 30)
    assert engine.stock("S1", ["A"]).available["A"] == atp  # nothing reserved yet
    assert engine.readmodels.to_route == {}  # not waiting for routing: waiting for its time

    clock.advance_to(local(2026, 3, 21, 11, 14, 59).timestamp())
    assert engine.expire_due() == 0
    clock.advance_to(local(2026, 3, 21, 11, 15).timestamp())
    assert engine.expire_due() == 1
    reply = engine.order_status(reply.order_id)
    assert (reply.status, reply.node) == ("routed", "S1")
    assert local(2026, 3, 21, 12, 0) <= reply.parts[0].eta_at <= local(2026, 3, 21, 12, 30)  # handed over in its window
    assert engine.stock("S1", ["A"]).available["A"] == atp - 1
    assert engine.expire_due() == 0  # routed once


def test_an_order_placed_while_closed_is_booked_for_the_first_slot_after_opening_when_the_customer_allows_it():
    engine, clock = engine_at(local(2026, 3, 20, 22, 40))
    refused = engine.submit(order("now"))
    assert refused.status == "rejected" and "closed" in refused.reason
    reply = engine.submit(order("later", later_ok=True))
    assert reply.status == "booked"
    assert (reply.window_start, reply.window_end) == (local(2026, 3, 21, 9, 0), local(2026, 3, 21, 9, 30))
    assert reply.due_at == local(2026, 3, 21, 8, 15)
    clock.advance_to(local(2026, 3, 21, 8, 15).timestamp())
    assert engine.expire_due() == 1
    assert engine.order_status(reply.order_id).status == "routed"  # routed while still closed, for its slot


def test_an_order_an_open_node_cannot_serve_is_booked_for_when_a_closed_one_that_can_opens():
    engine, _ = engine_at(local(2026, 3, 20, 22, 40), stock={"S1": {"C": 1}, "K1": {"A": 5}}, always_open=("K1",))
    refused = engine.submit(order("now", sku="C"))
    assert refused.status == "rejected" and "S1 closed" in refused.reason  # K1, open, has no C
    reply = engine.submit(order("later", sku="C", later_ok=True))
    assert (reply.status, reply.node, reply.window_start) == ("booked", "S1", local(2026, 3, 21, 9, 0))
    nowhere = engine.submit(order("none", sku="B", later_ok=True))  # no node has any B: nothing to wait for
    assert nowhere.status == "rejected" and "no stock of SKU B" in nowhere.reason


def test_a_window_starting_within_the_lead_time_is_booked_and_routed_at_once():
    engine, _ = engine_at(local(2026, 3, 20, 11, 40))
    reply = engine.submit(order("soon", start=local(2026, 3, 20, 12, 0)))
    assert reply.status == "routed" and reply.window_start == local(2026, 3, 20, 12, 0)
    assert [type(e).__name__ for e in events(engine, Order.Event)][-2:] == ["Booked", "Routed"]


@pytest.mark.parametrize("change, field", [
    ({"window_start": datetime(2026, 3, 21, 12, 0)}, "window_start"),  # no offset
    ({"window_end": None}, "window_end"),  # only a start: the missing end is named
    ({"window_start": None}, "window_start"),
    ({"window_end": local(2026, 3, 21, 11, 0)}, "window_end"),  # ends before it starts
    ({"window_start": local(2026, 3, 20, 8, 0), "window_end": local(2026, 3, 20, 8, 30)}, "window_end"),  # passed
    ({"window_start": local(2026, 3, 28, 12, 0), "window_end": local(2026, 3, 28, 12, 30)}, "window_start"),  # horizon
    ({"promise_minutes": 60}, "promise_minutes"),
    ({"later_ok": True}, "later_ok"),
])
def test_a_bad_window_is_refused_naming_its_field_and_changes_nothing(change, field):
    engine, _ = engine_at(local(2026, 3, 20, 10, 0))
    cmd = msgspec.structs.replace(order("bad", start=local(2026, 3, 21, 12, 0)), **change)
    before = engine.last_notification_id()
    with pytest.raises(InvalidInput) as e:
        engine.submit(cmd)
    assert e.value.field == field
    assert engine.last_notification_id() == before


def test_the_window_fields_are_decoded_from_iso_times_with_their_offset():
    cmd = msgspec.json.decode(b'{"type": "submit_order", "channel": "app", "external_id": "x", "lines": [{"sku": "A",'
                              b' "qty": 1}], "lat": 31.2, "lon": 121.4, "window_start": "2026-03-21T12:00:00+08:00",'
                              b' "window_end": "2026-03-21T12:30:00+08:00"}', type=SubmitOrder)
    assert cmd.window_start == local(2026, 3, 21, 12, 0)


def test_a_slot_full_of_bookings_sends_the_next_booking_elsewhere_and_a_cancellation_frees_it():
    engine, _ = engine_at(local(2026, 3, 20, 10, 0), capacity={"S1": 1})
    slot = local(2026, 3, 21, 12, 0)
    first = engine.submit(order("w1", start=slot))
    second = engine.submit(order("w2", start=slot))
    assert (first.node, second.node) == ("S1", "S2")
    assert "S1" in {x.node for x in second.lost}
    engine.cancel(CancelOrder(order_id=first.order_id))
    assert engine.submit(order("w3", start=slot)).node == "S1"


def test_orders_for_now_in_a_booked_slot_find_its_capacity_taken():
    engine, clock = engine_at(local(2026, 3, 20, 10, 0), capacity={"S1": 1})
    booked = engine.submit(order("w1", start=local(2026, 3, 20, 12, 0)))
    assert booked.node == "S1"
    clock.advance_to(local(2026, 3, 20, 11, 16).timestamp())
    engine.expire_due()  # w1 routed at its lead time: it still counts in 12:00's slot, not in 11:00's
    assert engine.submit(order("now-1")).node == "S1"  # 11:16: S1's slot has room
    clock.advance_to(local(2026, 3, 20, 12, 5).timestamp())
    reply = engine.submit(order("now-2"))
    assert reply.node != "S1" and {"node": "S1", "reason": "capacity full"} in [msgspec.to_builtins(x) for x in reply.lost]


def test_a_booking_that_cannot_be_kept_is_rejected_at_its_lead_time_with_the_reason():
    engine, clock = engine_at(local(2026, 3, 20, 10, 0), stock={"S1": {"C": 1}})
    reply = engine.submit(order("w1", start=local(2026, 3, 21, 12, 0), sku="C"))
    assert reply.status == "booked"
    engine.handle(AdjustStock(node="S1", sku="C", delta=-1, reason="damaged"))
    clock.advance_to(local(2026, 3, 21, 11, 15).timestamp())
    assert engine.expire_due() == 1
    reply = engine.order_status(reply.order_id)
    assert reply.status == "rejected"
    assert reply.reason.startswith("the booked slot 2026-03-21T04:00:00+00:00 to 2026-03-21T04:30:00+00:00 cannot be kept")
    assert "no stock of SKU C" in reply.reason
    assert events(engine, Order.Rejected)[-1].at == local(2026, 3, 21, 11, 15).timestamp()  # told 45 min ahead


def test_a_booked_order_declined_after_its_lead_time_is_routed_again_for_its_slot():
    engine, clock = engine_at(local(2026, 3, 20, 21, 0))
    reply = engine.submit(order("w1", start=local(2026, 3, 21, 9, 0)))
    clock.advance_to(local(2026, 3, 21, 8, 15).timestamp())
    engine.expire_due()
    engine.decline(DeclineOrder(order_id=reply.order_id, reason="no picker yet"))
    engine.route_pending()  # 08:15, every node closed: planned for 09:00 all the same
    again = engine.order_status(reply.order_id)
    assert again.status == "routed" and again.node not in (None, "S1")


def test_read_models_rebuilt_from_the_store_equal_the_live_ones_with_booked_orders():
    engine, clock = engine_at(local(2026, 3, 20, 21, 0), capacity={"S1": 1})
    engine.submit(order("w1", start=local(2026, 3, 21, 9, 0)))
    cancelled = engine.submit(order("w2", start=local(2026, 3, 21, 9, 0)))
    engine.cancel(CancelOrder(order_id=cancelled.order_id))
    engine.submit(order("l1", later_ok=True, km=2.0))
    clock.advance_to(local(2026, 3, 21, 8, 20).timestamp())
    engine.expire_due()
    views = ReadModels(engine.network)
    for nid, event in engine.stored_events():
        views.apply(event, nid)
    assert views.state() == engine.readmodels.state()


# -- the property: slot capacity --------------------------------------------
def held_per_slot(engine: Engine) -> dict[tuple[str, int], int]:
    """What each node holds per slot, from the orders as they stand: an order
    booked for a later slot counts in its window's slot at the nodes booked or
    routed to before it; any other part in the slot it was routed in."""
    seconds = {n.id: n.slot_minutes * 60 for n in engine.network.nodes}
    out: dict[tuple[str, int], int] = {}
    for r in engine.readmodels.orders.values():
        if r.status in ("cancelled", "rejected"):
            continue
        counted = [(n, r.window_start) for n in r.booked_nodes or []] if r.status == "booked" else [
            (p.node, r.window_start if r.window_start is not None and p.routed_at < r.window_start else p.routed_at)
            for p in r.parts.values()]
        for node, t in counted:
            key = (node, int(t // seconds[node]))
            out[key] = out.get(key, 0) + 1
    return out


class SlotMachine(RuleBasedStateMachine):
    """Orders for now, for later slots and for after opening, cancellations,
    declines and time passing (the timers run) in random order."""

    def __init__(self):
        super().__init__()
        self.engine, self.clock = engine_at(local(2026, 3, 20, 20, 0), capacity={"S1": 1, "S2": 2, "S3": 1, "K1": 2},
                                            stock={n: {"A": 30, "B": 30, "C": 3} for n in NODES})
        self.n = 0
        self.ids: list[str] = []

    def _refusable(self, call) -> None:
        """A random step may be refused: then it names its field and stores nothing."""
        before = self.engine.recorder.max_notification_id()
        try:
            call()
        except DomainError as err:
            assert err.field and err.reason and self.engine.recorder.max_notification_id() == before, err

    def _submit(self, cmd: SubmitOrder) -> None:
        self._refusable(lambda: self.ids.append(self.engine.submit(cmd).order_id))

    @rule(km=st.floats(0, 4), sku=st.sampled_from("ABC"), later_ok=st.booleans())
    def order_now(self, km, sku, later_ok):
        self.n += 1
        self._submit(order(f"n{self.n}", km=km, sku=sku, later_ok=later_ok))

    @rule(km=st.floats(0, 4), sku=st.sampled_from("ABC"), slot=st.integers(0, 40), minutes=st.sampled_from([15, 30, 60]))
    def order_for_later(self, km, sku, slot, minutes):
        self.n += 1
        start = datetime.fromtimestamp(self.clock.now() // 900 * 900 + slot * 900, SH)
        self._submit(order(f"w{self.n}", km=km, sku=sku, start=start, minutes=minutes))

    @rule(pick=st.integers(0, 1000))
    def cancel(self, pick):
        if self.ids:
            self._refusable(lambda: self.engine.cancel(CancelOrder(order_id=self.ids[pick % len(self.ids)])))

    @rule(pick=st.integers(0, 1000))
    def decline(self, pick):
        if self.ids:
            self._refusable(lambda: self.engine.decline(DeclineOrder(order_id=self.ids[pick % len(self.ids)])))
            self.engine.route_pending()

    @rule(minutes=st.integers(1, 300))
    def time_passes(self, minutes):
        self.clock.advance_to(self.clock.now() + minutes * 60)
        self.engine.expire_due()
        self.engine.route_pending()

    @invariant()
    def no_slot_holds_more_than_its_capacity(self):
        capacity = {n.id: n.capacity_per_slot for n in self.engine.network.nodes}
        for (node, slot), n in held_per_slot(self.engine).items():
            assert n <= capacity[node], (node, slot, n)

    @invariant()
    def every_booking_due_was_routed_with_its_stock_or_refused(self):
        now = self.clock.now()
        assert not [r.external_id for r in self.engine.readmodels.orders.values()
                    if r.status == "booked" and r.due_at <= now]


TestSlotCapacity = pytest.mark.slow(SlotMachine.TestCase)  # 30 random sequences of 25 steps: about 10 s
TestSlotCapacity.settings = settings(max_examples=30, stateful_step_count=25, deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow])
