"""A finished order's record leaves memory `retain_finished_hours` after it
finished, and is read back from the store whenever it is asked for: its
status, a later refund, a repeat of its submission. So do counter sales'
records (read back for a refund) and ended holds'. What the engine answers
does not change."""
from __future__ import annotations

import msgspec
import pytest

from domain.commands import Line, SubmitOrder
from domain.errors import Conflict
from engine.app import Engine, EngineSettings
from engine.clock import SimClock
from tests.engine.network_fixture import at_km, small_network
from tests.engine.test_money import hand_over, refund, refund_sale, sell

T0 = 1_700_000_000.0
HOUR = 3600.0


def order(ext: str, qty: int = 1) -> SubmitOrder:
    lat, lon = at_km(0.0)
    return SubmitOrder(channel="app", external_id=ext, lines=[Line("A", qty)], lat=lat, lon=lon)


def engine_on(url: str, clock: SimClock, hours: float | None = 1.0) -> Engine:
    return Engine(small_network(), EngineSettings(retain_finished_hours=hours), clock=clock, store=url).start()


def stored(engine: Engine) -> int:
    return engine.recorder.max_notification_id() or 0


def stock(engine: Engine) -> dict[str, int]:
    return {n.id: engine.stock(n.id, ["A"]).available["A"] for n in engine.network.nodes}


def same(a, b) -> bool:
    return msgspec.json.encode(a) == msgspec.json.encode(b)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request, tmp_path):
    """The stores a record is read back from: SQLite and PostgreSQL."""
    return request.getfixturevalue("postgres_url") if request.param == "postgres" else f"sqlite:///{tmp_path}/events.db"


def finish_two_hours_apart(engine: Engine, clock: SimClock) -> tuple[str, object]:
    """o1 handed over, then o2 handed over two hours later: o1's record is past a 1-h retention."""
    first = engine.submit(order("o1"))
    hand_over(engine, first.order_id)
    done = engine.order_status(first.order_id)
    clock.advance_to(clock.now() + 2 * HOUR)
    second = engine.submit(order("o2"))
    hand_over(engine, second.order_id)
    return first.order_id, done


def test_a_finished_order_leaves_memory_after_the_retention_and_its_status_is_read_back(url):
    clock = SimClock(T0)
    engine = engine_on(url, clock)
    o1, done = finish_two_hours_apart(engine, clock)
    assert done.status == "completed"
    assert o1 not in engine.readmodels.orders and engine.readmodels.order_view.retired == 1
    assert same(engine.order_status(o1), done)
    assert o1 not in engine.readmodels.orders  # a status query brings nothing back into memory
    engine.close()


def test_without_a_retention_every_order_stays(url):
    clock = SimClock(T0)
    engine = engine_on(url, clock, hours=None)
    o1, _ = finish_two_hours_apart(engine, clock)
    assert o1 in engine.readmodels.orders and engine.readmodels.order_view.retired == 0
    engine.close()


def test_an_open_order_and_a_recently_finished_one_stay(url):
    clock = SimClock(T0)
    engine = engine_on(url, clock)
    still_open = engine.submit(order("open")).order_id
    o1, _ = finish_two_hours_apart(engine, clock)
    o2 = engine.order_of("app", "o2")
    assert still_open in engine.readmodels.orders and str(o2) in engine.readmodels.orders
    engine.close()


def test_a_repeat_of_an_order_that_left_memory_gets_its_first_answer_and_stores_nothing(url):
    repeat_after_retirement(url)


def test_the_same_on_the_in_memory_store():  # whose recorder raised no IntegrityError there (its message failed)
    repeat_after_retirement("memory:")


def repeat_after_retirement(url: str) -> None:
    clock = SimClock(T0)
    engine = engine_on(url, clock)
    o1, done = finish_two_hours_apart(engine, clock)
    assert o1 not in engine.readmodels.orders
    before, available = stored(engine), stock(engine)
    again = engine.submit(order("o1"))
    assert again.repeat and same(msgspec.structs.replace(again, repeat=False), done)
    assert stored(engine) == before and stock(engine) == available
    engine.close()


def test_a_refund_after_the_record_left_counts_from_the_stored_order_and_replays_alike(url):
    clock = SimClock(T0)
    engine = engine_on(url, clock)
    first = engine.submit(order("o1", qty=2))
    hand_over(engine, first.order_id)
    clock.advance_to(clock.now() + 2 * HOUR)
    hand_over(engine, engine.submit(order("o2")).order_id)
    assert first.order_id not in engine.readmodels.orders
    one = engine.handle(refund(first.order_id, "r-1", {"A": 1}, write_off=True))
    assert one.money.refunded == one.money.paid // 2 and one.money.kept == one.money.paid - one.money.refunded
    two = engine.handle(refund(first.order_id, "r-2", write_off=True))
    assert two.money.refunded == two.money.paid and two.money.refunds == ["r-1", "r-2"]
    clock.advance_to(clock.now() + 2 * HOUR)
    hand_over(engine, engine.submit(order("o3")).order_id)  # the refunds' record leaves again
    assert first.order_id not in engine.readmodels.orders
    before = stored(engine)
    assert same(engine.handle(refund(first.order_id, "r-2", write_off=True)), two)  # a repeat: nothing stored
    assert stored(engine) == before
    live = {ext: engine.order_status(str(engine.order_of("app", ext))) for ext in ("o1", "o2")}
    engine.close()
    for hours in (1.0, None):  # the store replayed with and without a retention answers the same
        rebuilt = engine_on(url, clock, hours)
        assert all(same(rebuilt.order_status(str(rebuilt.order_of("app", ext))), r) for ext, r in live.items())
        rebuilt.close()


def test_a_replay_keeps_only_what_the_retention_keeps(url):
    clock = SimClock(T0)
    engine = engine_on(url, clock)
    finish_two_hours_apart(engine, clock)
    live = set(engine.readmodels.orders)
    engine.close()
    rebuilt = engine_on(url, clock)
    assert set(rebuilt.readmodels.orders) == live and rebuilt.readmodels.order_view.retired == 1
    rebuilt.close()


def test_used_and_lapsed_holds_leave_memory_after_the_retention():
    from tests.engine.test_quotes import cart

    clock = SimClock(T0)
    engine = engine_on("memory:", clock)
    holds = engine.readmodels.holds
    for q, minutes in (("used", 5), ("lapsed", 1)):
        engine.quote(msgspec.structs.replace(cart(km=0.0, modes="delivery", A=1), quote_id=q, hold_minutes=minutes))
    lat, lon = at_km(0.0)
    engine.submit(SubmitOrder(channel="app", external_id="o1", lines=[Line("A", 1)], lat=lat, lon=lon, hold="used"))
    clock.advance_to(T0 + 60)
    engine.expire_due()
    assert (holds.holds["used"].status, holds.holds["lapsed"].status) == ("used", "lapsed")
    clock.advance_to(T0 + 2 * HOUR)
    engine.quote(msgspec.structs.replace(cart(km=0.0, modes="delivery", A=1), quote_id="later", hold_minutes=1))
    clock.advance_to(T0 + 2 * HOUR + 60)
    engine.expire_due()  # "later" lapses two hours after the others ended: they leave
    assert set(holds.holds) == {"later"} and holds.holds["later"].status == "lapsed" and len(holds._ids) == 1


def test_a_counter_sale_leaves_memory_and_a_later_refund_counts_from_the_stored_sale(url):
    clock = SimClock(T0)
    engine = engine_on(url, clock)
    sell(engine, "p1", [Line("A", 2, unit_price=450)], paid=900)
    clock.advance_to(T0 + 2 * HOUR)
    sell(engine, "p2", [Line("A", 1)])
    assert set(engine.readmodels.sales) == {"S1/p2"}
    one = engine.handle(refund_sale("p1", "r-1", {"A": 1}, write_off=True))
    assert (one.paid, one.refunded, one.kept, one.refunds) == (900, 450, 450, ["r-1"])
    two = engine.handle(refund_sale("p1", "r-2", write_off=True))
    assert (two.refunded, two.kept, two.refunds) == (900, 0, ["r-1", "r-2"])
    clock.advance_to(T0 + 4 * HOUR)
    sell(engine, "p3", [Line("A", 1)])  # the refunds' record leaves again
    assert "S1/p1" not in engine.readmodels.sales
    before = stored(engine)
    assert engine.handle(refund_sale("p1", "r-2", write_off=True)) == two and stored(engine) == before  # a repeat
    live = engine.readmodels.state()["sales"]
    engine.close()
    rebuilt = engine_on(url, clock)  # the same sales leave and come back in a replay
    assert rebuilt.readmodels.state()["sales"] == live
    rebuilt.close()


def test_a_sale_resent_after_its_record_and_the_nodes_window_left_is_refused_and_stores_nothing(url):
    """A new sale is not looked up in the store (engine/handlers.py `sell`): one resent after its
    record left memory meets its stored self at the save, and the run after it reads the store."""
    clock = SimClock(T0)
    engine = engine_on(url, clock)
    sell(engine, "p1", [Line("A", 1)])
    clock.advance_to(T0 + 3 * 24 * HOUR)  # past the node's two days and the hour's retention
    sell(engine, "p2", [Line("A", 1)])  # the node forgets p1; its record leaves
    assert "S1/p1" not in engine.readmodels.sales
    before, on_hand, conflicts = stored(engine), stock(engine), engine.store.conflicts
    with pytest.raises(Conflict, match="already recorded"):
        sell(engine, "p1", [Line("A", 1)])
    assert stored(engine) == before and stock(engine) == on_hand
    assert engine.store.conflicts == conflicts + 1
    sell(engine, "p3", [Line("A", 1)])  # and the next sale is not read from the store again
    assert engine.store.conflicts == conflicts + 1 and stored(engine) > before
    engine.close()
