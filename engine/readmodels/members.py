"""Members: where and by whom each signed up, the identities bound to them
and their points; sign-ups per node. Fed by the Member events."""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable
from uuid import UUID

from domain.member import Member


class MemberView:
    def __init__(self) -> None:
        self.members: dict[str, dict[str, Any]] = {}  # member -> node, clerk, dealer, points, identities
        self.member_ids: dict[UUID, str] = {}  # aggregate id -> member
        self.signups: Counter[str] = Counter()  # node -> members signed up there

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        return {
            Member.SignedUp: self._signed_up,
            Member.IdentityBound: self._identity_bound,
            Member.PointsEarned: self._earned,
            Member.PointsRedeemed: self._redeemed,
        }

    def _signed_up(self, e: Any) -> None:
        self.members[e.member] = {"node": e.node, "clerk": e.clerk, "dealer": e.dealer, "points": 0, "identities": {}}
        self.member_ids[e.originator_id] = e.member
        self.signups[e.node] += 1

    def _identity_bound(self, e: Any) -> None:
        self.members[self.member_ids[e.originator_id]]["identities"][e.kind] = e.external_id

    def _earned(self, e: Any) -> None:
        self.members[self.member_ids[e.originator_id]]["points"] += e.points

    def _redeemed(self, e: Any) -> None:
        self.members[self.member_ids[e.originator_id]]["points"] -= e.points
