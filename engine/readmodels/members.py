"""Members: where and by whom each signed up, the identities bound to them
and their points (buckets, reserved gifts, owed); sign-ups per node; the
points outstanding (the liability) and owed over all members; and what the
timer needs cheaply: when each member's next points expire and when each
gift reserved for pickup is due back. Fed by the Member events."""
from __future__ import annotations

import heapq
from collections import Counter
from typing import Any, Callable, Hashable
from uuid import UUID

from domain.member import Member, fefo


class DueTimes:
    """Keys with a due time: `due(now)` lists those due, soonest first, in
    O(log n) each. Lazy: a key set again or dropped leaves its old entry in
    the heap, skipped when it surfaces."""

    def __init__(self) -> None:
        self.at: dict[Hashable, float] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._n = 0

    def set(self, key: Hashable, t: float | None) -> None:
        if t is None:
            self.at.pop(key, None)
            return
        if self.at.get(key) == t:
            return
        self.at[key] = t
        self._n += 1
        heapq.heappush(self._heap, (t, self._n, key))

    def due(self, now: float) -> list[Hashable]:
        heap, out = self._heap, []
        while heap and heap[0][0] <= now:
            t, n, key = heapq.heappop(heap)
            if self.at.get(key) == t and key not in out:
                out.append(key)
        for key in out:  # still due until an event says otherwise (a failed run leaves them due)
            self._n += 1
            heapq.heappush(heap, (self.at[key], self._n, key))
        return out


class MemberView:
    def __init__(self) -> None:
        # member -> node, clerk, dealer, identities, points (all held, net of owed), owed, buckets, holds
        self.members: dict[str, dict[str, Any]] = {}
        self.member_ids: dict[UUID, str] = {}  # aggregate id -> member
        self.signups: Counter[str] = Counter()  # node -> members signed up there
        self.clerk_signups: Counter[str] = Counter()  # "node/clerk" -> members the clerk signed up
        self.signed_up: dict[str, tuple[str, str]] = {}  # member -> how (clerk, qr, pos, online) and where
        self.liability = 0  # points held by all members, pending and reserved included
        self.owed = 0  # points owed by all members
        self.expiring = DueTimes()  # member -> when their next points expire
        self.pickups = DueTimes()  # (member, ref) -> when the reserved gift is released if not collected

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        return {
            Member.SignedUp: self._signed_up,
            Member.IdentityBound: self._identity_bound,
            Member.Rebound: self._rebound,
            Member.PointsEarned: self._earned,
            Member.PointsRedeemed: self._redeemed,
            Member.PointsSpent: self._spent,
            Member.PointsReserved: self._reserved,
            Member.ReservedPointsSpent: self._reserved_spent,
            Member.PointsReleased: self._released,
            Member.PointsReversed: self._reversed,
            Member.PointsReturned: self._returned,
            Member.PointsExpired: self._expired,
        }

    def _member(self, e: Any) -> tuple[str, dict[str, Any]]:
        name = self.member_ids[e.originator_id]
        return name, self.members[name]

    def _move(self, e: Any, buckets: dict[str, int], left: int = 0, held: int = 0) -> None:
        """Adds `left` / `held` times each bucket's points; keeps the totals and the next expiry."""
        name, m = self._member(e)
        change = 0
        for k, n in buckets.items():
            b = m["buckets"][k]
            b["left"] += left * n
            b["held"] += held * n
            change += (left + held) * n
        m["points"] += change
        self.liability += change
        self._next_expiry(name, m)

    def _next_expiry(self, name: str, m: dict[str, Any]) -> None:
        times = [b["expires_at"] for b in m["buckets"].values() if b["left"] > 0 and b["expires_at"] is not None]
        self.expiring.set(name, min(times) if times else None)

    def _signed_up(self, e: Any) -> None:
        self.members[e.member] = {"node": e.node, "clerk": e.clerk, "dealer": e.dealer, "points": 0, "identities": {},
                                  "owed": 0, "buckets": {}, "holds": {}, "via": e.via, "signed_up_at": e.at}
        self.member_ids[e.originator_id] = e.member
        self.signups[e.node] += 1
        if e.clerk:
            self.clerk_signups[f"{e.node}/{e.clerk}"] += 1
        self.signed_up[e.member] = (e.via, e.node)

    def _rebound(self, e: Any) -> None:
        _, m = self._member(e)
        m["node"], m["clerk"], m["dealer"] = e.node, e.clerk, e.dealer

    def _identity_bound(self, e: Any) -> None:
        self.members[self.member_ids[e.originator_id]]["identities"][e.kind] = e.external_id

    def _earned(self, e: Any) -> None:
        name, m = self._member(e)
        m["buckets"][e.ref] = {"earned": e.points, "left": 0, "held": 0, "earned_at": e.at,
                               "available_at": e.available_at, "expires_at": e.expires_at}
        m["owed"] -= e.repaid
        self.owed -= e.repaid
        m["points"] += e.repaid  # paid back: the debt shrinks by what the bucket is short of
        self._move(e, {e.ref: e.points - e.repaid}, left=1)

    def _redeemed(self, e: Any) -> None:
        buckets = e.buckets
        if buckets is None:  # a v1 event: the buckets FEFO took then
            m = self._member(e)[1]
            buckets = fefo([(k, b["left"], b["expires_at"], b["earned_at"]) for k, b in m["buckets"].items()
                            if b["left"] > 0 and b["available_at"] <= e.at
                            and (b["expires_at"] is None or b["expires_at"] > e.at)], e.points)
        self._move(e, buckets, left=-1)

    def _spent(self, e: Any) -> None:
        self._move(e, e.buckets, left=-1)

    def _reserved(self, e: Any) -> None:
        name, m = self._member(e)
        self._move(e, e.buckets, left=-1, held=1)
        m["holds"][e.ref] = {"points": e.points, "gift": e.gift, "node": e.node, "sku": e.sku, "until": e.until}
        self.pickups.set((name, e.ref), e.until)

    def _close_hold(self, e: Any) -> None:
        name, m = self._member(e)
        del m["holds"][e.ref]
        self.pickups.set((name, e.ref), None)

    def _reserved_spent(self, e: Any) -> None:
        self._move(e, e.buckets, held=-1)
        self._close_hold(e)

    def _released(self, e: Any) -> None:
        self._move(e, e.buckets, left=1, held=-1)
        self._close_hold(e)

    def _reversed(self, e: Any) -> None:
        m = self._member(e)[1]
        m["owed"] += e.owed
        m["points"] -= e.owed
        self.owed += e.owed
        self._move(e, e.taken, left=-1)

    def _returned(self, e: Any) -> None:
        self._move(e, e.buckets, left=1)

    def _expired(self, e: Any) -> None:
        self._move(e, {e.bucket: e.points}, left=-1)
