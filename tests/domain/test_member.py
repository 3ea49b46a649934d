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
