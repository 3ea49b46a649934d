"""A member: signed up at a node, bound to channel identities, earning and
redeeming points. The node, clerk and dealer of the sign-up are kept because
benefit sharing credits the member's later purchases to them.
Personal data is minimal: a phone number arrives here only as a salted hash.
"""
from __future__ import annotations

import math
from typing import Literal

from eventsourcing.domain import Aggregate, event

from domain import ids
from domain.errors import Conflict, InvalidInput
from domain.quantities import require_positive

SignUpVia = Literal["clerk", "qr", "pos", "online"]
IdentityKind = Literal["app", "wechat", "alipay", "mini_program", "platform"]


def points_earned(value: float, points_per_rmb: float) -> int:
    """Points a purchase of this value earns: whole points, rounded down."""
    return math.floor(value * points_per_rmb)


class Member(Aggregate):
    @staticmethod
    def create_id(member: str, **_: object) -> object:
        return ids.member_id(member)

    @event("SignedUp")
    def __init__(
        self,
        member: str,
        node: str,
        via: SignUpVia,
        at: float,
        clerk: str | None = None,
        dealer: str | None = None,
        phone_hash: str | None = None,
    ) -> None:
        self.member = member
        self.node = node
        self.via = via
        self.clerk = clerk
        self.dealer = dealer
        self.phone_hash = phone_hash
        self.signed_up_at = at
        self.identities: dict[str, str] = {}  # kind -> external id
        self.points = 0
        self.credited: list[str] = []  # refs already credited, for idempotence
        self.redemptions: list[str] = []

    @classmethod
    def sign_up(cls, member: str, node: str, via: SignUpVia, at: float, clerk: str | None = None,
                dealer: str | None = None, phone_hash: str | None = None) -> "Member":
        if not member:
            raise InvalidInput("member", "must not be empty")
        if via not in ("clerk", "qr", "pos", "online"):
            raise InvalidInput("via", f"must be clerk, qr, pos or online, got {via!r}")
        if via == "clerk" and not clerk:
            raise InvalidInput("clerk", "a sign-up by a clerk names the clerk")
        return cls(member=member, node=node, via=via, at=at, clerk=clerk, dealer=dealer, phone_hash=phone_hash)

    def bind(self, kind: IdentityKind, external_id: str, at: float) -> None:
        if not external_id:
            raise InvalidInput("external_id", "must not be empty")
        if self.identities.get(kind) == external_id:
            return  # already bound: binding is idempotent
        if kind in self.identities:
            raise Conflict("kind", f"member already bound to another {kind} identity")
        self._bound(kind=kind, external_id=external_id, at=at)

    def earn(self, points: int, ref: str, at: float) -> bool:
        """Credits points once per ref (an order or a POS sale)."""
        require_positive(points, "points")
        if ref in self.credited:
            return False
        self._earned(points=points, ref=ref, at=at)
        return True

    def redeem(self, points: int, gift: str, ref: str, at: float) -> None:
        require_positive(points, "points")
        if ref in self.redemptions:
            raise Conflict("ref", f"redemption {ref} already recorded")
        if points > self.points:
            raise Conflict("points", f"member holds {self.points} points, cannot redeem {points}")
        self._redeemed(points=points, gift=gift, ref=ref, at=at)

    @event("IdentityBound")
    def _bound(self, kind: str, external_id: str, at: float) -> None:
        self.identities[kind] = external_id

    @event("PointsEarned")
    def _earned(self, points: int, ref: str, at: float) -> None:
        self.points += points
        self.credited.append(ref)

    @event("PointsRedeemed")
    def _redeemed(self, points: int, gift: str, ref: str, at: float) -> None:
        self.points -= points
        self.redemptions.append(ref)
