import pytest

from domain.errors import Conflict, InvalidInput
from domain.member import Member


def member() -> Member:
    return Member.sign_up(member="M1", node="S1", via="clerk", clerk="C7", dealer="D2", at=0.0)


def test_sign_up_keeps_who_to_credit_later():
    m = member()
    assert (m.node, m.clerk, m.dealer, m.points) == ("S1", "C7", "D2", 0)


def test_a_clerk_sign_up_must_name_the_clerk():
    with pytest.raises(InvalidInput) as e:
        Member.sign_up(member="M1", node="S1", via="clerk", at=0.0)
    assert e.value.field == "clerk"


def test_points_are_earned_once_per_reference():
    m = member()
    assert m.earn(30, ref="order/1", at=1.0)
    assert not m.earn(30, ref="order/1", at=2.0)
    assert m.points == 30


def test_redeeming_more_points_than_held_is_refused_and_changes_nothing():
    m = member()
    m.earn(10, ref="o1", at=1.0)
    with pytest.raises(Conflict, match="holds 10 points"):
        m.redeem(11, gift="mug", ref="r1", at=2.0)
    assert m.points == 10
    m.redeem(10, gift="mug", ref="r1", at=2.0)
    assert m.points == 0


def test_an_identity_kind_binds_once_and_rebinding_the_same_id_is_harmless():
    m = member()
    m.bind("wechat", "wx-1", at=1.0)
    m.bind("wechat", "wx-1", at=2.0)
    assert len([e for e in m.pending_events if type(e).__name__ == "IdentityBound"]) == 1
    with pytest.raises(Conflict):
        m.bind("wechat", "wx-2", at=3.0)


def test_points_earned_triggered_directly_store_what_the_event_method_stored():
    """Member.PointsEarned is triggered directly (domain/trigger.py): c09545f's bytes, and a replay."""
    from engine.store.eventlog import EventLog

    mapper = EventLog("memory:").mapper
    mem = Member(member="m1", node="S1", via="qr", at=1.0, clerk=None, dealer=None, phone_hash=None, manager=None,
                 region=None)
    stored = [mapper.to_stored_event(e) for e in mem.collect_events()]
    mem.earn(40, "order/x/S1", 2.0, available_at=5.0, expires_at=100.0)
    mem.earn(10, "pos/S1/p1", 3.0)
    earned = [mapper.to_stored_event(e) for e in mem.collect_events()]
    assert [(s.topic, s.state[s.state.index(b'",') + 2:]) for s in earned] == [
        ("domain.member:Member.PointsEarned", b'"points":40,"ref":"order/x/S1","at":2.0,"available_at":5.0,'
                                              b'"expires_at":100.0,"repaid":0,"class_version":2}'),
        ("domain.member:Member.PointsEarned", b'"points":10,"ref":"pos/S1/p1","at":3.0,"available_at":3.0,'
                                              b'"expires_at":null,"repaid":0,"class_version":2}')]
    copy = None
    for s in stored + earned:
        copy = mapper.to_domain_event(s).mutate(copy)
    state = lambda m: {k: v for k, v in vars(m).items() if k not in ("_created_on", "_modified_on")}  # noqa: E731
    assert state(copy) == state(mem) and copy.buckets["order/x/S1"].left == 40 and copy.version == 3


def test_points_spent_triggered_directly_store_what_the_event_method_stored():
    """Member.PointsSpent is triggered directly too: b8a2b92's bytes, and a replay."""
    from engine.store.eventlog import EventLog

    log = EventLog("memory:")
    mem = Member.sign_up(member="m-1", node="S1", via="clerk", at=1000.0, clerk="c1")
    mem.earn(40, "order/1", 1001.0, expires_at=90000.0)
    mem.earn(30, "order/2", 1002.0)
    mem.spend(50, "order/3", 1003.0)
    mem.spend(50, "order/3", 1003.0)  # a repeat: nothing
    log.save(mem)
    rows = list(log.recorder.select_notifications(1, 10))
    assert [(n.topic, n.state[n.state.index(b'"points"'):]) for n in rows if n.topic.endswith("Spent")] == [
        ("domain.member:Member.PointsSpent", b'"points":50,"ref":"order/3","at":1003.0,"buckets":{"order/1":40,'
                                             b'"order/2":10}}')]
    again = log.repository.get(mem.id)
    assert again.version == 4 and {k: b.left for k, b in again.buckets.items()} == {"order/1": 0, "order/2": 20}
    assert again.spends == mem.spends
