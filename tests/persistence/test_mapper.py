"""The msgspec mapper gives back exactly the events (and snapshots) it stored."""
from __future__ import annotations

import json
from datetime import datetime
from uuid import UUID

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import JSONTranscoder, MapperDeserialisationError

from domain.inventory import NodeInventory
from domain.member import Member
from domain.order import Loss, Order, RoutedPart
from engine.store.mapper import MsgspecMapper

T = 1_700_000_000.0


def mapper() -> MsgspecMapper:
    return MsgspecMapper(transcoder=JSONTranscoder())


def roundtrip(event):
    m = mapper()
    return m.to_domain_event(m.to_stored_event(event))


def an_order() -> Order:
    order = Order.place(channel="app", external_id="x1", lines={"A": 2}, value=10.0, mode="delivery",
                        lat=31.2, lon=121.4, promised_at=T + 2700, at=T, member="m1")
    part = RoutedPart(node="S1", lines={"A": 2}, eta_at=T + 1200, cost={"total": 4.5, "distance_km": 1.2})
    order.route([part], [Loss(node="S2", reason="no stock of SKU A")], T + 1)
    order.accept("S1", T + 5)
    return order


def test_every_event_of_an_order_comes_back_equal_with_its_structs_and_types():
    for event in an_order().collect_events():
        back = roundtrip(event)
        assert type(back) is type(event)
        assert vars(back) == vars(event)
        assert isinstance(back.originator_id, UUID) and isinstance(back.timestamp, datetime)
    routed = [e for e in an_order().collect_events() if type(e).__name__ == "Routed"][0]
    back = roundtrip(routed)
    assert isinstance(back.parts[0], RoutedPart) and isinstance(back.lost[0], Loss)


def test_inventory_and_member_events_come_back_equal():
    inv = NodeInventory(node_id="S1", at=T)
    inv.receive({"A": 5, "B": 2}, ref="po-1", at=T)
    inv.reserve("o1", {"A": 2}, T)
    inv.sell_over_counter("sale-1", {"B": 1}, T)
    member = Member.sign_up(member="m1", node="S1", via="clerk", at=T, clerk="c7", dealer=None, phone_hash="ab")
    member.earn(30, ref="order/1", at=T)
    for event in inv.collect_events() + member.collect_events():
        assert vars(roundtrip(event)) == vars(event)


def test_a_snapshot_of_an_inventory_rebuilds_the_same_aggregate():
    inv = NodeInventory(node_id="S1", at=T)
    inv.receive({"A": 5}, ref="po-1", at=T)
    inv.reserve("o1", {"A": 2}, T)
    inv.collect_events()
    back = roundtrip(Snapshot.take(inv)).mutate(None)
    assert vars(back) == vars(inv)
    assert back.atp("A") == 3


def test_a_corrupt_stored_event_raises_a_deserialisation_error_naming_it():
    m = mapper()
    stored = m.to_stored_event(NodeInventory(node_id="S1", at=T).collect_events()[0])
    broken = type(stored)(stored.originator_id, stored.originator_version, stored.topic, b'{"node_id": 5}')
    with pytest.raises(MapperDeserialisationError, match="Opened"):
        m.to_domain_event(broken)


def test_snapshots_round_trip_through_an_application_store():
    class App(Application):
        snapshotting_intervals = {NodeInventory: 2}

        def construct_mapper(self):
            return self.factory.mapper(transcoder=self.construct_transcoder(), mapper_class=MsgspecMapper)

    app = App()
    inv = NodeInventory(node_id="S1", at=T)
    for i in range(5):
        inv.receive({"A": 1}, ref=f"po-{i}", at=T)
    app.save(inv)
    assert app.snapshots is not None and list(app.snapshots.get(inv.id))
    again = app.repository.get(inv.id)
    assert vars(again) == vars(inv)


class Thing(Aggregate):
    class Made(Aggregate.Created):
        name: str
        colour: str
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict) -> None:
            state["colour"] = "grey"  # version 1 had no colour

    @event(Made)
    def __init__(self, name: str, colour: str) -> None:
        self.name, self.colour = name, colour


def test_an_event_stored_by_an_older_class_version_is_upcast_and_a_current_one_kept():
    m = mapper()
    stored = m.to_stored_event(Thing(name="box", colour="red").collect_events()[0])
    assert json.loads(stored.state)["class_version"] == 2
    assert m.to_domain_event(stored).colour == "red"
    old = {k: v for k, v in json.loads(stored.state).items() if k not in ("colour", "class_version")}
    back = m.to_domain_event(type(stored)(stored.originator_id, 1, stored.topic, json.dumps(old).encode()))
    assert (back.name, back.colour) == ("box", "grey")
    assert "class_version" not in vars(back)
