"""A member: signed up at a node, bound to channel identities, earning and
spending points. The node, clerk and dealer of the sign-up are kept because
benefit sharing credits the member's later purchases to them.
Personal data is minimal: a phone number arrives here only as a salted hash.

Points live in buckets, one per earning (its ref: an order, a POS sale),
each with the time it becomes spendable (pending before) and its own
expiry. Spending takes the soonest-to-expire points first (FEFO: soonest
expiry, then oldest, then points that never expire) and records which
buckets it used, so a refund can give them back to those buckets with
their original expiry. Points reserved for a gift picked up at a store
do not expire while reserved; released, they go back to their buckets,
and points whose bucket expired meanwhile expire at the next expiry run.

A refund takes back what its purchase earned (`reverse_earned`): from its
own bucket first, then from the member's other points (FEFO); what is
still missing is owed (a negative balance) when the engine allows it, and
later earnings pay it back first; when it is not allowed, the rest is
written off and recorded as `short` in the event. Owed points also block
spending: a member can spend what is available less what is owed.

Times are epoch seconds given by the engine; nothing here reads a clock.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

import msgspec
from eventsourcing.domain import Aggregate, Snapshot, event

from domain import ids
from domain.errors import Conflict, InvalidInput, NotFound
from domain.quantities import require_positive
from domain.trigger import trigger

SignUpVia = Literal["clerk", "qr", "pos", "online"]
IdentityKind = Literal["app", "wechat", "alipay", "mini_program", "platform"]



@dataclass(frozen=True)
class Origin:
    """Who brought the member in, from `since` on: benefit sharing credits them."""

    since: float
    node: str
    clerk: str | None
    dealer: str | None
    reason: str = "signed up"
    manager: str | None = None  # "" for nobody; None: not recorded (the network's is used)
    region: str | None = None


# (bucket id, points in it, expires_at, earned_at): what FEFO orders
Candidate = tuple[str, int, "float | None", float]


def fefo(candidates: Iterable[Candidate], points: int) -> dict[str, int]:
    """Which buckets give `points`, soonest expiry first, then the oldest,
    then those that never expire (ties: the order given). Takes what there
    is if there is not enough: the caller checks first."""
    order = sorted(candidates, key=lambda c: (c[2] is None, c[2] or 0.0, c[3]))
    out: dict[str, int] = {}
    for bucket, left, _, _ in order:
        if points <= 0:
            break
        n = min(left, points)
        if n > 0:
            out[bucket] = n
            points -= n
    return out


@dataclass
class Bucket:
    """The points one earning gave. `left` can still be spent (once
    available) or expire; `held` is reserved for gifts and never expires."""

    earned: int
    earned_at: float
    available_at: float
    expires_at: float | None
    left: int
    held: int = 0
    reversed: int = 0  # of `earned`, taken back by refunds (wherever the points were taken from)

    def expired_by(self, at: float) -> bool:
        return self.expires_at is not None and self.expires_at <= at


@dataclass
class Spend:
    points: int
    buckets: dict[str, int]  # in the FEFO order they were taken
    returned: dict[str, int] = field(default_factory=dict)


@dataclass
class Hold:
    """Points reserved for a gift, and where it waits."""

    points: int
    buckets: dict[str, int]
    gift: str
    node: str | None
    sku: str | None
    until: float | None


# what a snapshot's JSON holds as plain lists and dicts (Member.Snapshot)
_SNAPSHOT_TYPES: dict[str, Any] = {"origins": list[Origin], "buckets": dict[str, Bucket], "spends": dict[str, Spend],
                                   "holds": dict[str, Hold]}


class Member(Aggregate):
    @staticmethod
    def create_id(member: str, **_: object) -> object:
        return ids.member_id(member)

    class Snapshot(Snapshot):
        """A member's state at a version. Stored as JSON, its origins, buckets,
        spends and holds come back as the dataclasses they were: a member
        with a long history loads from its last snapshot, not from every
        purchase it made (benchmarks/README.md, nineteenth round)."""

        def mutate(self, _: None) -> "Member":
            member = super().mutate(None)
            state = member.__dict__
            for name, kind in _SNAPSHOT_TYPES.items():
                state[name] = msgspec.convert(state[name], kind)
            return member  # type: ignore[return-value]

    class SignedUp(Aggregate.Created):
        member: str
        node: str
        via: SignUpVia
        at: float
        clerk: str | None
        dealer: str | None
        phone_hash: str | None
        manager: str | None  # the origin as the network had it: "" for nobody; None: not recorded (before v2)
        region: str | None

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict) -> None:
            state["manager"] = state["region"] = None

    @event(SignedUp)
    def __init__(
        self,
        member: str,
        node: str,
        via: SignUpVia,
        at: float,
        clerk: str | None = None,
        dealer: str | None = None,
        phone_hash: str | None = None,
        manager: str | None = None,
        region: str | None = None,
    ) -> None:
        self.member = member
        self.node = node
        self.via = via
        self.clerk = clerk
        self.dealer = dealer
        self.phone_hash = phone_hash
        self.signed_up_at = at
        self.origins = [Origin(at, node, clerk, dealer, manager=manager, region=region)]  # then each rebinding's
        self.identities: dict[str, str] = {}  # kind -> external id
        self.buckets: dict[str, Bucket] = {}  # earning ref -> its bucket, in the order earned
        self.spends: dict[str, Spend] = {}  # spend or redemption ref -> what it took
        self.holds: dict[str, Hold] = {}  # open gift reservations
        self.closed: dict[str, str] = {}  # reservation ref -> "collected" | "released"
        self.owed = 0

    @classmethod
    def sign_up(cls, member: str, node: str, via: SignUpVia, at: float, clerk: str | None = None,
                dealer: str | None = None, phone_hash: str | None = None, manager: str | None = None,
                region: str | None = None) -> "Member":
        if not member:
            raise InvalidInput("member", "must not be empty")
        if via not in ("clerk", "qr", "pos", "online"):
            raise InvalidInput("via", f"must be clerk, qr, pos or online, got {via!r}")
        if via == "clerk" and not clerk:
            raise InvalidInput("clerk", "a sign-up by a clerk names the clerk")
        return cls(member=member, node=node, via=via, at=at, clerk=clerk, dealer=dealer, phone_hash=phone_hash,
                   manager=manager, region=region)

    def bind(self, kind: IdentityKind, external_id: str, at: float) -> None:
        if not external_id:
            raise InvalidInput("external_id", "must not be empty")
        if self.identities.get(kind) == external_id:
            return  # already bound: binding is idempotent
        if kind in self.identities:
            raise Conflict("kind", f"member already bound to another {kind} identity")
        self._bound(kind=kind, external_id=external_id, at=at)

    def rebind(self, node: str, clerk: str | None, dealer: str | None, reason: str, at: float,
               manager: str | None = None, region: str | None = None) -> bool:
        """Moves the member's origin from `at` on, never before; False if it is already this origin."""
        if not reason.strip():
            raise InvalidInput("reason", "a rebinding says why")
        now = self.origins[-1]
        if (now.node, now.clerk, now.dealer, now.manager, now.region) == (node, clerk, dealer, manager, region):
            return False
        if at < now.since:
            raise Conflict("at", "a rebinding takes effect from now on, never before the origin in force")
        self._rebound(node=node, clerk=clerk, dealer=dealer, reason=reason, at=at, manager=manager, region=region)
        return True

    @event("Rebound")
    def _rebound(self, node: str, clerk: str | None, dealer: str | None, reason: str, at: float,
                 manager: str | None = None, region: str | None = None) -> None:
        self.origins.append(Origin(at, node, clerk, dealer, reason, manager, region))
        self.node, self.clerk, self.dealer = node, clerk, dealer

    def origin_at(self, at: float) -> Origin:
        """The origin in force at `at` (the sign-up's for anything before a rebinding)."""
        for origin in reversed(self.origins):
            if origin.since <= at:
                return origin
        return self.origins[0]

    # -- queries -------------------------------------------------------
    @property
    def points(self) -> int:
        """Every point the member holds, pending and reserved included, less what is owed:
        earned - spent - expired - reversed + returned."""
        return sum(b.left + b.held for b in self.buckets.values()) - self.owed

    def available(self, at: float) -> int:
        """Points that could be spent at `at` (before what is owed)."""
        return sum(b.left for b in self.buckets.values() if b.available_at <= at and not b.expired_by(at))

    def balance(self, at: float) -> int:
        """Available now less what is owed; negative while a debt is larger."""
        return self.available(at) - self.owed

    def spendable(self, at: float) -> int:
        return max(self.balance(at), 0)

    def pending(self, at: float) -> int:
        return sum(b.left for b in self.buckets.values() if b.available_at > at and not b.expired_by(at))

    @property
    def reserved(self) -> int:
        return sum(h.points for h in self.holds.values())

    def next_expiry(self) -> float | None:
        """When the next points expire (reserved points do not)."""
        times = [b.expires_at for b in self.buckets.values() if b.left > 0 and b.expires_at is not None]
        return min(times) if times else None

    def _usable(self, at: float, but: str | None = None, pending: bool = False) -> list[Candidate]:
        return [(k, b.left, b.expires_at, b.earned_at) for k, b in self.buckets.items()
                if b.left > 0 and k != but and not b.expired_by(at) and (pending or b.available_at <= at)]

    def _take(self, points: int, at: float, field: str, what: str) -> dict[str, int]:
        can = self.spendable(at)
        if points > can:
            owed = f" ({self.owed} owed)" if self.owed else ""
            raise Conflict(field, f"member holds {can} points available now{owed}, cannot {what} {points}")
        return fefo(self._usable(at), points)

    # -- commands ------------------------------------------------------
    def earn(self, points: int, ref: str, at: float, available_at: float | None = None,
             expires_at: float | None = None) -> bool:
        """A bucket of its own, once per ref (an order part, a POS sale); False on a repeat.
        Pending until `available_at`; what is owed is paid back from it first."""
        require_positive(points, "points")
        if not ref:
            raise InvalidInput("ref", "must not be empty")
        available_at = at if available_at is None else available_at
        if available_at < at:
            raise InvalidInput("available_at", "points cannot be available before they are earned")
        if expires_at is not None and expires_at <= available_at:
            raise InvalidInput("expires_at", "points must expire after they become available")
        if ref in self.buckets:
            return False
        self._earned(points=points, ref=ref, at=at, available_at=available_at, expires_at=expires_at,
                     repaid=min(self.owed, points))
        return True

    def spend(self, points: int, ref: str, at: float, field: str = "points") -> None:
        """FEFO over the available buckets; a repeat of `ref` with the same points does nothing."""
        require_positive(points, field)
        if self._repeat(ref, points):
            return
        trigger(self, self.PointsSpent, points=points, ref=ref, at=at, buckets=self._take(points, at, field, "spend"))

    def redeem(self, points: int, gift: str, ref: str, at: float) -> None:
        """Points for a gift sent to the member: a spend that names the gift."""
        require_positive(points, "points")
        if self._repeat(ref, points):
            return
        self._redeemed(points=points, gift=gift, ref=ref, at=at, buckets=self._take(points, at, "points", "redeem"))

    def reserve(self, points: int, ref: str, at: float, gift: str = "", node: str | None = None,
                sku: str | None = None, until: float | None = None) -> bool:
        """Points held (FEFO) for a gift picked up at `node` by `until`; they do not
        expire while held. False on a repeat of `ref` with the same points."""
        require_positive(points, "points")
        held = self.holds.get(ref)
        if held is not None and held.points == points:
            return False
        if self._repeat(ref, points):  # raises for any other use of the ref
            return False
        self._reserved(points=points, ref=ref, at=at, buckets=self._take(points, at, "points", "reserve"),
                       gift=gift, node=node, sku=sku, until=until)
        return True

    def spend_reserved(self, ref: str, at: float) -> Hold:
        """The gift is collected: its reserved points are spent (a spend under the same ref)."""
        hold = self._hold(ref)
        self._reserved_spent(ref=ref, points=hold.points, buckets=dict(hold.buckets), at=at)
        return hold

    def release(self, ref: str, at: float, reason: str) -> Hold:
        """Cancelled or not collected: the points go back to their buckets."""
        hold = self._hold(ref)
        self._released(ref=ref, points=hold.points, buckets=dict(hold.buckets), reason=reason, at=at)
        return hold

    def reverse_earned(self, ref: str, points: int, at: float, allow_negative: bool = True) -> int:
        """Takes back up to `points` of what `ref` earned (never more than earned and not yet
        reversed, over every call): from its bucket, then the member's other points (FEFO,
        pending ones too, never reserved ones); the rest is owed if `allow_negative`, else
        written off (`short` in the event). Returns the points taken, owed included."""
        require_positive(points, "points")
        bucket = self.buckets.get(ref)
        if bucket is None:
            raise NotFound("ref", f"no points were earned under {ref!r}")
        n = min(points, bucket.earned - bucket.reversed)
        if n == 0:
            return 0
        taken: dict[str, int] = {}
        own = min(n, bucket.left)
        if own:
            taken[ref] = own
        taken.update(fefo(self._usable(at, but=ref, pending=True), n - own))
        rest = n - sum(taken.values())
        owed, short = (rest, 0) if allow_negative else (0, rest)
        self._reversed(ref=ref, points=n, taken=taken, owed=owed, short=short, at=at)
        return n - short

    def return_spent(self, ref: str, points: int, at: float) -> int:
        """Gives back up to `points` of what `ref` spent, to the buckets it took them from
        (the last taken first) with their own expiry. Returns the points given back."""
        require_positive(points, "points")
        spend = self.spends.get(ref)
        if spend is None:
            raise NotFound("ref", f"no points were spent under {ref!r}")
        n = min(points, spend.points - sum(spend.returned.values()))
        if n == 0:
            return 0
        back: dict[str, int] = {}
        for bucket, used in reversed(list(spend.buckets.items())):
            k = min(n - sum(back.values()), used - spend.returned.get(bucket, 0))
            if k > 0:
                back[bucket] = k
        self._returned(ref=ref, points=n, buckets=back, at=at)
        return n

    def expire_due(self, at: float) -> int:
        """Expires the unreserved points of every bucket due by `at`, one event per
        bucket. Returns the points expired."""
        total = 0
        for ref, b in list(self.buckets.items()):
            if b.left > 0 and b.expired_by(at):
                total += b.left
                self._expired(bucket=ref, points=b.left, at=at)
        return total

    def _repeat(self, ref: str, points: int) -> bool:
        """True if `ref` already spent these points; raises if the ref is in use otherwise."""
        if not ref:
            raise InvalidInput("ref", "must not be empty")
        spend = self.spends.get(ref)
        if spend is not None and spend.points == points and ref not in self.closed:
            return True
        if spend is not None or ref in self.holds or ref in self.closed:
            raise Conflict("ref", f"ref {ref} is already used for {self._used_for(ref)}")
        return False

    def _used_for(self, ref: str) -> str:
        if ref in self.holds:
            return f"a reservation of {self.holds[ref].points} points"
        if ref in self.closed:
            return f"a gift redemption, {self.closed[ref]}"
        return f"a spend of {self.spends[ref].points} points"

    def _hold(self, ref: str) -> Hold:
        hold = self.holds.get(ref)
        if hold is None:
            if ref in self.closed:
                raise Conflict("ref", f"the redemption {ref} was already {self.closed[ref]}")
            raise NotFound("ref", f"no points are reserved under {ref!r}")
        return hold

    # -- events --------------------------------------------------------
    @event("IdentityBound")
    def _bound(self, kind: str, external_id: str, at: float) -> None:
        self.identities[kind] = external_id

    class PointsEarned(Aggregate.Event):
        """v1 (before buckets) had points, ref and at: available at once, never expiring."""

        class_version = 2
        points: int
        ref: str
        at: float
        available_at: float
        expires_at: float | None
        repaid: int  # of these points, what paid back points owed

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["available_at"] = state["at"]
            state["expires_at"] = None
            state["repaid"] = 0

        def apply(self, member: "Member") -> None:
            # triggered directly (domain/trigger.py): every member's purchase earns (the same stored JSON)
            member.owed -= self.repaid
            member.buckets[self.ref] = Bucket(earned=self.points, earned_at=self.at, available_at=self.available_at,
                                              expires_at=self.expires_at, left=self.points - self.repaid)

    def _earned(self, points: int, ref: str, at: float, available_at: float, expires_at: float | None,
                repaid: int) -> None:
        trigger(self, self.PointsEarned, points=points, ref=ref, at=at, available_at=available_at,
                expires_at=expires_at, repaid=repaid)

    class PointsRedeemed(Aggregate.Event):
        """v1 did not record the buckets (None after the upcast): they are worked out
        by FEFO as they were then (every bucket available, none expiring: oldest first)."""

        class_version = 2
        points: int
        gift: str
        ref: str
        at: float
        buckets: dict[str, int] | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["buckets"] = None

    @event(PointsRedeemed)
    def _redeemed(self, points: int, gift: str, ref: str, at: float, buckets: dict[str, int] | None) -> None:
        if buckets is None:
            buckets = fefo(self._usable(at), points)
        self._spend(ref, points, buckets)

    class PointsSpent(Aggregate.Event):
        # triggered directly (domain/trigger.py): points used at a checkout, online or at the counter (the same
        # stored JSON)
        points: int
        ref: str
        at: float
        buckets: dict[str, int]

        def apply(self, member: "Member") -> None:
            member._spend(self.ref, self.points, self.buckets)

    def _spend(self, ref: str, points: int, buckets: dict[str, int]) -> None:
        for k, n in buckets.items():
            self.buckets[k].left -= n
        self.spends[ref] = Spend(points=points, buckets=dict(buckets))

    @event("PointsReserved")
    def _reserved(self, points: int, ref: str, at: float, buckets: dict[str, int], gift: str, node: str | None,
                  sku: str | None, until: float | None) -> None:
        for k, n in buckets.items():
            b = self.buckets[k]
            b.left -= n
            b.held += n
        self.holds[ref] = Hold(points=points, buckets=dict(buckets), gift=gift, node=node, sku=sku, until=until)

    @event("ReservedPointsSpent")
    def _reserved_spent(self, ref: str, points: int, buckets: dict[str, int], at: float) -> None:
        for k, n in buckets.items():
            self.buckets[k].held -= n
        del self.holds[ref]
        self.spends[ref] = Spend(points=points, buckets=dict(buckets))
        self.closed[ref] = "collected"

    @event("PointsReleased")
    def _released(self, ref: str, points: int, buckets: dict[str, int], reason: str, at: float) -> None:
        for k, n in buckets.items():
            b = self.buckets[k]
            b.held -= n
            b.left += n
        del self.holds[ref]
        self.closed[ref] = "released"

    @event("PointsReversed")
    def _reversed(self, ref: str, points: int, taken: dict[str, int], owed: int, short: int, at: float) -> None:
        for k, n in taken.items():
            self.buckets[k].left -= n
        self.buckets[ref].reversed += points
        self.owed += owed

    @event("PointsReturned")
    def _returned(self, ref: str, points: int, buckets: dict[str, int], at: float) -> None:
        spend = self.spends[ref]
        for k, n in buckets.items():
            self.buckets[k].left += n
            spend.returned[k] = spend.returned.get(k, 0) + n

    @event("PointsExpired")
    def _expired(self, bucket: str, points: int, at: float) -> None:
        self.buckets[bucket].left -= points
