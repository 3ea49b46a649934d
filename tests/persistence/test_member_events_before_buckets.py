"""A store written before points had buckets (PointsEarned and
PointsRedeemed at class_version 1) opens with today's code: the read
models and the Member aggregate reach the same balance as then."""
from __future__ import annotations

import msgspec
from eventsourcing.persistence import StoredEvent

from domain import ids
from domain.commands import GetMember, SignUpMember
from engine.app import Engine
from engine.clock import SimClock
from tests.engine.network_fixture import small_network

T = 1_700_000_000.0


def v1(member: str, version: int, event: str, **state) -> StoredEvent:
    """Exactly what the code before buckets stored: no class_version, no new fields."""
    data = msgspec.json.encode({"timestamp": "2023-11-14T22:13:20Z", **state})
    return StoredEvent(originator_id=ids.member_id(member), originator_version=version,
                       topic=f"domain.member:Member.{event}", state=data)


def test_a_store_with_points_earned_and_redeemed_before_buckets_replays_to_the_same_balance(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    engine = Engine(small_network(), clock=SimClock(T), store=url).start()
    engine.sign_up(SignUpMember(member="m1", node="S1"))
    engine.recorder.insert_events([
        v1("m1", 2, "PointsEarned", points=40, ref="order/1", at=T + 10),
        v1("m1", 3, "PointsEarned", points=10, ref="pos/S2/p1", at=T + 20),
        v1("m1", 4, "PointsRedeemed", points=45, gift="mug", ref="r1", at=T + 30),
    ])
    engine.close()

    again = Engine(small_network(), clock=SimClock(T + 60), store=url).start()
    try:
        reply = again.handle(GetMember(member="m1"))
        assert (reply.points, reply.available, reply.pending, reply.owed) == (5, 5, 0, 0)
        assert [(b.ref, b.left, b.expires_at) for b in reply.buckets] == [("pos/S2/p1", 5, None)]
        member = again.log.repository.get(ids.member_id("m1"))
        assert member.points == 5 and member.spends["r1"].buckets == {"order/1": 40, "pos/S2/p1": 5}
        assert again.readmodels.kpis()["points_liability"] == 5
    finally:
        again.close()
