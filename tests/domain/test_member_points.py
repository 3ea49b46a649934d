"""The points lifecycle on the Member aggregate: buckets, pending, FEFO
spending, gift reservations, refunds (reverse and return), expiry; and the
events stored before buckets existed still replay."""
from __future__ import annotations


import msgspec
import pytest
from eventsourcing.persistence import JSONTranscoder, StoredEvent
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from domain.errors import Conflict, InvalidInput, NotFound
from domain.member import Member
from engine.store.mapper import MsgspecMapper

DAY = 86_400.0
MAPPER = MsgspecMapper(transcoder=JSONTranscoder())


def member() -> Member:
    return Member.sign_up(member="M1", node="S1", via="qr", at=0.0)


def names(m: Member) -> list[str]:
    return [type(e).__name__ for e in m.pending_events]


def replayed(events) -> Member:
    """The aggregate rebuilt from its events as stored and read back."""
    m = None
    for e in events:
        m = MAPPER.to_domain_event(MAPPER.to_stored_event(e)).mutate(m)
    return m


def test_earned_points_are_pending_until_their_time_and_then_spendable():
    m = member()
    assert m.earn(50, "order/1", at=10.0, available_at=10.0 + 7 * DAY)
    assert (m.pending(11.0), m.available(11.0), m.points) == (50, 0, 50)
    with pytest.raises(Conflict) as e:
        m.spend(1, "s1", at=11.0)
    assert e.value.field == "points"
    assert (m.pending(10.0 + 7 * DAY), m.balance(10.0 + 7 * DAY)) == (0, 50)


def test_a_repeated_earning_ref_earns_nothing_more():
    m = member()
    assert m.earn(30, "order/1", at=1.0)
    assert not m.earn(99, "order/1", at=2.0)
    assert m.points == 30 and names(m).count("PointsEarned") == 1


def test_spending_takes_the_soonest_to_expire_then_the_oldest_then_points_that_never_expire():
    m = member()
    m.earn(10, "never", at=0.0)
    m.earn(10, "late", at=1.0, expires_at=300.0)
    m.earn(10, "old", at=2.0, expires_at=200.0)
    m.earn(10, "young", at=3.0, expires_at=200.0)
    m.spend(35, "order/9", at=5.0)
    spent = m.pending_events[-1]
    assert type(spent).__name__ == "PointsSpent"
    assert list(spent.buckets.items()) == [("old", 10), ("young", 10), ("late", 10), ("never", 5)]
    assert m.available(5.0) == 5


def test_spending_more_than_available_is_refused_naming_the_field_and_records_nothing():
    m = member()
    m.earn(10, "o1", at=1.0)
    before = len(m.pending_events)
    with pytest.raises(Conflict, match="holds 10 points") as e:
        m.spend(11, "s1", at=2.0, field="points_used")
    assert e.value.field == "points_used" and len(m.pending_events) == before


def test_a_repeated_spend_is_a_no_op_and_a_different_one_under_the_same_ref_is_refused():
    m = member()
    m.earn(10, "o1", at=1.0)
    m.spend(4, "s1", at=2.0)
    m.spend(4, "s1", at=3.0)
    assert m.points == 6 and names(m).count("PointsSpent") == 1
    with pytest.raises(Conflict) as e:
        m.spend(5, "s1", at=3.0)
    assert e.value.field == "ref"


def test_redeem_is_a_fefo_spend_that_names_the_gift():
    m = member()
    m.earn(10, "a", at=1.0)
    m.earn(10, "b", at=2.0, expires_at=100.0)
    m.redeem(12, gift="mug", ref="r1", at=3.0)
    assert m.pending_events[-1].buckets == {"b": 10, "a": 2} and m.spends["r1"].points == 12


def test_points_reserved_for_a_gift_do_not_expire_and_expire_at_the_next_run_once_released():
    m = member()
    m.earn(100, "o1", at=0.0, expires_at=1000.0)
    assert m.reserve(60, "g1", at=10.0, gift="tote", node="S1", sku="GIFT", until=2000.0)
    assert not m.reserve(60, "g1", at=11.0)  # a repeat
    assert m.expire_due(1000.0) == 40
    assert (m.points, m.reserved) == (60, 60)
    m.release("g1", at=2000.0, reason="not collected in time")
    assert m.next_expiry() == 1000.0 and m.available(2000.0) == 0  # back in an expired bucket
    assert m.expire_due(2000.0) == 60 and m.points == 0
    assert [type(e).__name__ for e in m.pending_events].count("PointsExpired") == 2


def test_collecting_a_gift_spends_its_reserved_points_and_collecting_twice_is_refused():
    m = member()
    m.earn(100, "o1", at=0.0)
    m.reserve(30, "g1", at=1.0)
    m.spend_reserved("g1", at=2.0)
    assert (m.points, m.reserved, m.spends["g1"].points) == (70, 0, 30)
    before = len(m.pending_events)
    with pytest.raises(Conflict, match="already collected") as e:
        m.spend_reserved("g1", at=3.0)
    with pytest.raises(Conflict):
        m.release("g1", at=3.0, reason="changed mind")
    with pytest.raises(NotFound):
        m.spend_reserved("nope", at=3.0)
    assert e.value.field == "ref" and len(m.pending_events) == before


def test_reversing_takes_back_what_the_ref_earned_at_most_once_over_partial_refunds():
    m = member()
    m.earn(100, "order/1", at=0.0)
    m.earn(50, "order/2", at=1.0)
    assert m.reverse_earned("order/1", 30, at=2.0) == 30
    assert m.reverse_earned("order/1", 100, at=3.0) == 70
    assert m.reverse_earned("order/1", 1, at=4.0) == 0
    assert m.points == 50
    with pytest.raises(NotFound) as e:
        m.reverse_earned("order/9", 1, at=5.0)
    assert e.value.field == "ref"


def test_a_reversal_beyond_the_balance_is_owed_when_allowed_and_later_earnings_pay_it_back():
    m = member()
    m.earn(100, "order/1", at=0.0)
    m.spend(80, "s1", at=1.0)
    assert m.reverse_earned("order/1", 100, at=2.0, allow_negative=True) == 100
    assert (m.owed, m.points, m.balance(2.0)) == (80, -80, -80)
    with pytest.raises(Conflict, match="80 owed"):
        m.spend(1, "s2", at=3.0)
    m.earn(50, "order/2", at=4.0)
    assert (m.owed, m.points, m.buckets["order/2"].left) == (30, -30, 0)
    m.earn(50, "order/3", at=5.0)
    assert (m.owed, m.points, m.balance(5.0)) == (0, 20, 20)


def test_a_reversal_beyond_the_balance_is_written_off_when_negative_balances_are_not_allowed():
    m = member()
    m.earn(100, "order/1", at=0.0)
    m.spend(80, "s1", at=1.0)
    assert m.reverse_earned("order/1", 100, at=2.0, allow_negative=False) == 20
    reversed_ = m.pending_events[-1]
    assert (reversed_.points, reversed_.short, reversed_.owed) == (100, 80, 0)
    assert (m.owed, m.points) == (0, 0)
    assert m.reverse_earned("order/1", 100, at=3.0, allow_negative=False) == 0


def test_spent_points_return_to_their_original_buckets_last_taken_first_with_their_expiry():
    m = member()
    m.earn(10, "soon", at=0.0, expires_at=100.0)
    m.earn(10, "later", at=0.0, expires_at=500.0)
    m.spend(15, "order/5", at=1.0)  # soon 10, later 5
    assert m.return_spent("order/5", 5, at=2.0) == 5
    assert m.pending_events[-1].buckets == {"later": 5}
    assert m.expire_due(100.0) == 0
    assert m.return_spent("order/5", 99, at=200.0) == 10
    assert m.buckets["soon"].left == 10 and m.available(200.0) == 10  # back in an expired bucket: not spendable
    assert m.expire_due(200.0) == 10 and m.points == 10
    assert m.return_spent("order/5", 1, at=300.0) == 0


def test_bad_earnings_are_refused_naming_the_field():
    m = member()
    with pytest.raises(InvalidInput) as e:
        m.earn(0, "o1", at=1.0)
    assert e.value.field == "points"
    with pytest.raises(InvalidInput) as e:
        m.earn(5, "o1", at=10.0, available_at=20.0, expires_at=15.0)
    assert e.value.field == "expires_at"
    with pytest.raises(InvalidInput) as e:
        m.earn(5, "o1", at=10.0, available_at=5.0)
    assert e.value.field == "available_at"
    assert m.points == 0 and names(m) == ["SignedUp"]


def _v1(event: str, originator, version: int, state: dict) -> StoredEvent:
    """An event as the code before buckets stored it (class_version 1, no new fields)."""
    state = {"timestamp": "2026-11-01T00:00:00Z", **state}
    return StoredEvent(originator_id=originator, originator_version=version,
                       topic=f"domain.member:Member.{event}", state=msgspec.json.encode(state))


def test_points_earned_and_redeemed_as_stored_before_buckets_replay_to_the_same_balance():
    signed_up = member().collect_events()[0]
    stored = [MAPPER.to_stored_event(signed_up)]
    oid = signed_up.originator_id
    stored += [_v1("PointsEarned", oid, 2, {"points": 30, "ref": "order/1", "at": 10.0}),
               _v1("PointsEarned", oid, 3, {"points": 20, "ref": "pos/S1/p1", "at": 20.0}),
               _v1("PointsRedeemed", oid, 4, {"points": 40, "gift": "mug", "ref": "r1", "at": 30.0})]
    m = None
    for s in stored:
        m = MAPPER.to_domain_event(s).mutate(m)
    assert m.points == 10 and m.balance(30.0) == 10
    assert m.spends["r1"].buckets == {"order/1": 30, "pos/S1/p1": 10}  # the oldest first, as then
    assert m.buckets["order/1"].expires_at is None and m.buckets["pos/S1/p1"].available_at == 20.0
    m.spend(10, "s2", at=40.0)
    assert m.points == 0


# -- a property: any sequence keeps the books ---------------------------
refs = st.sampled_from(["o1", "o2", "o3", "o4", "o5"])


class MemberPoints(RuleBasedStateMachine):
    """Random earnings, spends, reservations, refunds, expiry and time;
    after every step the points add up, reserved points are intact, and the
    replayed aggregate equals the live one."""

    @initialize(allow_negative=st.booleans())
    def start(self, allow_negative):
        self.m = member()
        self.events = list(self.m.collect_events())
        self.now = 0.0
        self.allow_negative = allow_negative
        self.flow = {"earned": 0, "spent": 0, "expired": 0, "reversed": 0, "returned": 0}
        self.n = 0

    def record(self):
        new = self.m.collect_events()
        for e in new:
            kind = type(e).__name__
            if kind == "PointsEarned":
                self.flow["earned"] += e.points
            elif kind in ("PointsSpent", "PointsRedeemed", "ReservedPointsSpent"):
                self.flow["spent"] += e.points
            elif kind == "PointsExpired":
                self.flow["expired"] += e.points
            elif kind == "PointsReversed":
                self.flow["reversed"] += e.points - e.short
            elif kind == "PointsReturned":
                self.flow["returned"] += e.points
        self.events += new
        return new

    def attempt(self, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except (Conflict, NotFound, InvalidInput):
            assert not self.m.pending_events, "a refused command recorded an event"
            return None

    @rule(ref=refs, points=st.integers(1, 50), pending=st.sampled_from([0.0, 1.0, 5.0]),
          life=st.sampled_from([None, 3.0, 10.0, 20.0]))
    def earn(self, ref, points, pending, life):
        available = self.now + pending
        self.m.earn(points, ref, self.now, available, None if life is None else available + life)
        self.record()

    @rule(points=st.integers(1, 60))
    def spend(self, points):
        self.n += 1
        usable = {k: (b.expires_at is None, b.expires_at or 0.0, b.earned_at) for k, b in self.m.buckets.items()
                  if b.left > 0 and b.available_at <= self.now and not b.expired_by(self.now)}
        self.attempt(self.m.spend, points, f"s{self.n}", self.now)
        for e in self.record():
            used = list(e.buckets)
            assert sum(e.buckets.values()) == points
            worst = max(usable[k] for k in used)
            assert all(usable[k] >= worst for k in usable if k not in used), "not FEFO"
            assert all(self.m.buckets[k].left == 0 for k in used[:-1])

    @rule(points=st.integers(1, 40))
    def reserve(self, points):
        self.n += 1
        self.attempt(self.m.reserve, points, f"g{self.n}", self.now, until=self.now + 5)
        self.record()

    @precondition(lambda self: self.m.holds)
    @rule(data=st.data(), collect=st.booleans())
    def close_reservation(self, data, collect):
        ref = data.draw(st.sampled_from(sorted(self.m.holds)))
        if collect:
            self.m.spend_reserved(ref, self.now)
        else:
            self.m.release(ref, self.now, "cancelled")
        self.record()

    @rule(ref=refs, points=st.integers(1, 60))
    def refund_earning(self, ref, points):
        self.attempt(self.m.reverse_earned, ref, points, self.now, allow_negative=self.allow_negative)
        self.record()

    @precondition(lambda self: self.m.spends)
    @rule(data=st.data(), points=st.integers(1, 60))
    def refund_spend(self, data, points):
        ref = data.draw(st.sampled_from(sorted(self.m.spends)))
        self.m.return_spent(ref, points, self.now)
        self.record()

    @rule(seconds=st.sampled_from([0.5, 1.0, 4.0, 12.0]))
    def time_passes(self, seconds):
        self.now += seconds
        held = {k: b.held for k, b in self.m.buckets.items()}
        self.m.expire_due(self.now)
        self.record()
        assert {k: b.held for k, b in self.m.buckets.items()} == held, "reserved points expired"
        assert self.m.next_expiry() is None or self.m.next_expiry() > self.now

    @invariant()
    def points_are_earned_less_spent_expired_and_reversed_plus_returned(self):
        f = self.flow
        assert self.m.points == f["earned"] - f["spent"] - f["expired"] - f["reversed"] + f["returned"]

    @invariant()
    def no_bucket_goes_below_zero_and_nothing_is_owed_unless_allowed(self):
        assert all(b.left >= 0 and b.held >= 0 for b in self.m.buckets.values())
        if not self.allow_negative:
            assert self.m.owed == 0 and self.m.points >= 0
        assert self.m.reserved == sum(b.held for b in self.m.buckets.values())

    @invariant()
    def replay_equals_live(self):
        again = replayed(self.events)
        for name in ("buckets", "spends", "holds", "closed", "owed"):
            assert getattr(again, name) == getattr(self.m, name), name


MemberPoints.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                                          suppress_health_check=[HealthCheck.too_slow])
test_member_points_state_machine = MemberPoints.TestCase
