"""A sign-up stored before it recorded the origin's manager and region
(Member.SignedUp at class_version 1) replays, and benefit sharing then
takes them from the network; a sign-up recorded since keeps the manager of
its time even when the network's changes."""
from __future__ import annotations

import msgspec
from eventsourcing.persistence import StoredEvent

from domain import ids
from domain.commands import Line, PublishBenefitRules, SellOverCounter, SignUpMember
from engine.app import Engine
from engine.clock import SimClock
from tests.engine.test_benefit_semantics import R1, T0, network


def signed_up_v1(member: str) -> StoredEvent:
    """Exactly what the code before v2 stored: no manager, no region, no class_version."""
    state = {"timestamp": "2026-03-01T00:00:00Z", "originator_topic": "domain.member:Member", "member": member,
             "node": "S1", "via": "clerk", "at": T0, "clerk": "c7", "dealer": "dealer-1", "phone_hash": None}
    return StoredEvent(originator_id=ids.member_id(member), originator_version=1,
                       topic="domain.member:Member.SignedUp", state=msgspec.json.encode(state))


def test_an_old_sign_up_replays_and_is_credited_to_the_networks_manager(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    engine = Engine(network(), clock=SimClock(T0), store=url).start()
    engine.handle(PublishBenefitRules(rules=R1))
    engine.recorder.insert_events([signed_up_v1("old")])
    engine.close()
    again = Engine(network(), clock=SimClock(T0 + 60), store=url).start()
    try:
        assert again.readmodels.members["old"]["clerk"] == "c7"
        again.sell(SellOverCounter(node="S2", sale_id="p1", lines=[Line("A", 1, unit_price=10000)], member="old"))
        parties = {party for party, _ in again.readmodels.benefit.statements}
        assert parties == {"clerk:c7", "manager:mgr-S1", "store:S1", "dealer:dealer-1"}
    finally:
        again.close()


def test_the_manager_of_the_sign_up_is_credited_after_the_network_names_another(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    engine = Engine(network(), clock=SimClock(T0), store=url).start()
    engine.handle(PublishBenefitRules(rules=R1))
    engine.sign_up(SignUpMember(member="m1", node="S1", via="clerk", clerk="c7"))
    engine.close()
    moved = msgspec.structs.replace(network(), nodes=[
        msgspec.structs.replace(n, manager="mgr-new") if n.id == "S1" else n for n in network().nodes])
    again = Engine(moved, clock=SimClock(T0 + 60), store=url).start()
    try:
        again.sell(SellOverCounter(node="S2", sale_id="p1", lines=[Line("A", 1, unit_price=10000)], member="m1"))
        assert {party for party, _ in again.readmodels.benefit.statements} >= {"manager:mgr-S1"}
        assert "manager:mgr-new" not in {party for party, _ in again.readmodels.benefit.statements}
    finally:
        again.close()
