"""Order ids by name: a store whose orders were placed under the uuid5 ids
of before still finds them by their names, and two names sharing an id
(a collision of domain.ids.order_id) refuse the second, storing nothing."""
from __future__ import annotations

from uuid import UUID

import pytest

from domain import ids
from domain.commands import CancelOrder, GetOrder, Line, SubmitOrder
from domain.errors import Conflict
from engine.app import Engine
from engine.clock import SimClock
from tests.engine.network_fixture import at_km, small_network

T0 = 1_700_000_000.0


def order(ext: str, **lines: int) -> SubmitOrder:
    lat, lon = at_km(0.0)
    return SubmitOrder(channel="app", external_id=ext, lines=[Line(s, q) for s, q in lines.items()], lat=lat, lon=lon)


def before(channel: str, external_id: str) -> UUID:
    """How every order id was made before the ordered scheme."""
    return ids.named(f"order/{channel}/{external_id}")


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_orders_stored_under_their_old_ids_are_found_by_their_names(store, request, tmp_path, monkeypatch):
    url = request.getfixturevalue("postgres_url") if store == "postgres" else f"sqlite:///{tmp_path}/events.db"
    with monkeypatch.context() as old_code:
        old_code.setattr(ids, "order_id", before)
        first = Engine(small_network(), clock=SimClock(T0), store=url).start()
        placed = {ext: first.submit(order(ext, A=1)) for ext in ("o1", "o2", "o-a")}
        first.close()
    assert placed["o1"].order_id == str(before("app", "o1")) != str(ids.order_id("app", "o1"))
    assert placed["o-a"].order_id == str(ids.order_id("app", "o-a"))  # no digits at its end: the same id as then

    again = Engine(small_network(), clock=SimClock(T0 + 60), store=url).start()
    try:
        stored = again.last_notification_id()
        repeat = again.submit(order("o1", A=1))
        assert repeat.repeat and repeat.order_id == placed["o1"].order_id
        assert again.last_notification_id() == stored  # nothing placed twice
        # what the gateway and the channel adapters send: the id the name has now
        now = str(ids.order_id("app", "o2"))
        assert again.handle(GetOrder(order_id=now)).order_id == placed["o2"].order_id
        assert again.cancel(CancelOrder(order_id=now)).status == "cancelled"
        assert [type(e).__name__ for e in again.log.events.get(UUID(placed["o2"].order_id))][-1] == "Cancelled"
        fresh = again.submit(order("o3", A=1))
        assert UUID(fresh.order_id) == ids.order_id("app", "o3") and UUID(fresh.order_id).version == 8
    finally:
        again.close()

    third = Engine(small_network(), clock=SimClock(T0 + 120), store=url).start()  # and after another restart
    try:
        assert third.submit(order("o2", A=1)).order_id == placed["o2"].order_id
        assert third.order_of("app", "o3") == ids.order_id("app", "o3")
    finally:
        third.close()


def test_a_second_name_with_the_first_ones_id_is_refused_and_stores_nothing(monkeypatch):
    same = ids.order_id("app", "o1")
    monkeypatch.setattr(ids, "order_id", lambda channel, external_id: same)
    engine = Engine(small_network(), clock=SimClock(T0)).start()
    try:
        engine.submit(order("o1", A=1))
        stored = engine.last_notification_id()
        results = engine.submit_batch([order("o9", A=1), order("o1", A=1)])
        assert isinstance(results[0], Conflict) and results[0].field == "external_id"
        assert "app/o1" in str(results[0])
        assert results[1].repeat  # the order the id is: a repeat, as ever
        assert engine.last_notification_id() == stored
    finally:
        engine.close()
