"""Replies the engine gives, built from the read models."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

import msgspec

from domain.benefit import LedgerLine, RuleSet

from domain.errors import NotFound
from engine.readmodels.benefit import BenefitView
from engine.readmodels.orders import OrderRecord


class PartReply(msgspec.Struct, frozen=True):
    node: str
    lines: dict[str, int]
    eta_at: datetime
    status: str


class LossReply(msgspec.Struct, frozen=True):
    node: str
    reason: str


class Decision(msgspec.Struct, frozen=True):
    """What the router decided the first time it saw the order."""

    outcome: str  # routed | rejected
    parts: list[PartReply]
    lost: list[LossReply]
    reason: str | None
    explanation: str


class OrderMoneyReply(msgspec.Struct, frozen=True):
    """Minor units of the network's currency."""

    paid: int
    refunded: int
    kept: int
    points_used: int
    points_returned: int
    refunds: list[str]  # refund ids


class OrderReply(msgspec.Struct, frozen=True):
    order_id: str
    channel: str
    external_id: str
    status: str
    mode: str
    promised_at: datetime
    node: str | None  # the node serving it (the first one when split)
    parts: list[PartReply]
    explanation: str
    cost: dict[str, dict[str, float]]
    lost: list[LossReply]
    reason: str | None = None
    repeat: bool = False  # a resubmission: nothing new was stored
    first_decision: Decision | None = None
    money: OrderMoneyReply | None = None  # None: placed before amounts were recorded
    window_start: datetime | None = None  # booked for a later slot: hand-over between these ...
    window_end: datetime | None = None
    due_at: datetime | None = None  # ... routed, its stock reserved, at this time


class StockReply(msgspec.Struct, frozen=True):
    node: str
    on_hand: dict[str, int]
    available: dict[str, int]


class SaleReply(msgspec.Struct, frozen=True):
    """A counter sale's money, in minor units."""

    node: str
    sale_id: str
    paid: int
    refunded: int
    kept: int
    points_used: int
    points_returned: int
    refunds: list[str]


class BucketReply(msgspec.Struct, frozen=True):
    """The points one purchase earned that the member still holds."""

    ref: str  # what earned them: order/<id>, pos/<node>/<sale>
    earned: int
    left: int  # not spent, reserved or expired
    reserved: int
    available_at: datetime  # pending before
    expires_at: datetime | None  # None: never


class GiftReply(msgspec.Struct, frozen=True):
    """A gift waiting at a store, its points reserved."""

    ref: str
    gift: str
    points: int
    node: str | None
    sku: str | None
    until: datetime | None  # released if not collected by then


class MemberReply(msgspec.Struct, frozen=True):
    member: str
    node: str
    points: int  # the balance: available now less owed (negative while more is owed)
    identities: dict[str, str] = {}
    available: int = 0  # can be spent now, before what is owed
    pending: int = 0  # earned, not yet available
    reserved: int = 0  # held for gifts picked up at a store
    owed: int = 0  # taken back by refunds beyond what the member held; later earnings pay it back
    buckets: list[BucketReply] = []  # soonest to expire first
    gifts: list[GiftReply] = []
    clerk: str | None = None  # the origin in force (node above, clerk): who benefit sharing credits
    via: str | None = None  # how the member signed up: clerk, qr, pos, online
    signed_up_at: datetime | None = None  # the attribution window runs from this day


def member_reply(member: str, m: dict, now: float) -> MemberReply:
    """A member's read-model record as seen at `now` (pending and expiring by the engine's clock)."""
    available = pending = 0
    buckets = []
    for ref, b in m["buckets"].items():
        if not b["left"] and not b["held"]:
            continue
        expires = b["expires_at"]
        if b["left"] and (expires is None or expires > now):
            if b["available_at"] <= now:
                available += b["left"]
            else:
                pending += b["left"]
        buckets.append(BucketReply(ref=ref, earned=b["earned"], left=b["left"], reserved=b["held"],
                                   available_at=ts(b["available_at"]), expires_at=ts(expires) if expires else None))
    buckets.sort(key=lambda r: (r.expires_at is None, r.expires_at or r.available_at, r.available_at))
    gifts = [GiftReply(ref=ref, gift=h["gift"], points=h["points"], node=h["node"], sku=h["sku"],
                       until=ts(h["until"]) if h["until"] is not None else None) for ref, h in m["holds"].items()]
    return MemberReply(member=member, node=m["node"], points=available - m["owed"], identities=dict(m["identities"]),
                       available=available, pending=pending, reserved=sum(g.points for g in gifts), owed=m["owed"],
                       buckets=buckets, gifts=gifts, clerk=m["clerk"], via=m.get("via"),
                       signed_up_at=ts(m["signed_up_at"]) if m.get("signed_up_at") is not None else None)


class ErrorReply(msgspec.Struct, frozen=True):
    code: int
    field: str
    reason: str


_UTC = timezone.utc
_fromtimestamp = datetime.fromtimestamp
_TS: dict[float, datetime] = {}  # recent times: every order of a batch is promised by the same few


def ts(t: float) -> datetime:
    """`datetime.fromtimestamp(t, tz=utc)`, remembered: it costs about as much
    as building the rest of a reply part (benchmarks/README.md, issue 19)."""
    d = _TS.get(t)
    if d is None:
        if len(_TS) >= 4096:
            _TS.clear()
        d = _TS[t] = _fromtimestamp(t, _UTC)
    return d


# "%.1f" and "%.0f" of the cost terms an explanation shows, remembered: a
# float's formatting is about 2,000 instructions, its lookup a tenth of that,
# and the terms are rounded, so the same values come back (distances, ETAs,
# totals). Zero is not looked up: 0.0 and -0.0 are one key but two texts.
_ONE: dict[float, str] = {}
_NONE: dict[float, str] = {}


def _figure(x: float, fmt: str, memo: dict[float, str]) -> str:
    """`fmt % x`, from `memo` where it was made before."""
    s = memo.get(x) if x else None
    if s is None:
        s = fmt % x
        if x:
            if len(memo) >= 16_384:
                memo.clear()
            memo[x] = s
    return s


def _routed_to(node: str, c: dict[str, float]) -> str:
    get = c.get
    return "%s (%s km, ETA %s%s min, cost %s)" % (node, _figure(get("distance_km", 0), "%.1f", _ONE),
                                                  "~" if get("straight_line") else "",
                                                  _figure(get("eta_min", 0), "%.0f", _NONE),
                                                  _figure(get("total", 0), "%.1f", _ONE))


def explain(parts: dict[str, dict[str, float]], lost: list[dict[str, str]], reason: str | None) -> str:
    # %-formats and lists, not generators of f-strings: a third less per fresh order's reply
    if not parts:
        text = f"not served: {reason}" if reason else "waiting for a node"
    elif len(parts) == 1:  # most orders: one part
        (node, c), = parts.items()
        text = "routed to " + _routed_to(node, c)
    else:
        text = "routed to " + "; ".join([_routed_to(node, c) for node, c in parts.items()])
    if lost:
        shown = ", ".join([x["node"] + ": " + x["reason"] for x in lost[:3]])
        text += f"; passed over {shown} and {len(lost) - 3} more" if len(lost) > 3 else f"; passed over {shown}"
    return text


def order_reply(r: OrderRecord, repeat: bool = False) -> OrderReply:
    # structs made by position (in their fields' order): keywords cost msgspec a name lookup each
    rparts, rcost = r.parts, r.cost
    if len(rparts) == 1:  # most orders: one part
        (n, p), = rparts.items()
        parts = [PartReply(p.node, p.lines, ts(p.eta_at), p.status)]
        cost = {n: rcost[n]} if n in rcost else {}
    else:
        parts = [PartReply(p.node, p.lines, ts(p.eta_at), p.status) for p in rparts.values()]
        cost = {n: rcost[n] for n in rparts if n in rcost}
    rlost = r.lost
    lost = [LossReply(x["node"], x["reason"]) for x in rlost] if rlost else []
    explanation = explain(cost, rlost, r.reason)
    if r.window_start is not None:
        return _booked_reply(r, parts, cost, lost, explanation, repeat)
    status = r.status
    if r.reroutes == 0 and (status == "routed" or status == "rejected"):  # as first decided (a fresh order's reply)
        first = Decision(status, parts, lost, r.reason, explanation)
    else:
        first = first_decision(r)
    paid = r.paid
    return OrderReply(
        r.order_id, r.channel, r.external_id, status, r.mode, ts(r.promised_at), parts[0].node if parts else None,
        parts, explanation, cost, lost, r.reason, repeat, first,
        None if paid is None else OrderMoneyReply(paid, r.refunded, paid - r.refunded, r.points_used,
                                                  r.points_returned, list(r.refunds)),
    )


def _booked_reply(r: OrderRecord, parts: list[PartReply], cost: dict, lost: list[LossReply], explanation: str,
                  repeat: bool) -> OrderReply:
    """The reply for an order booked for a later slot (kept apart: the reply to an order for now is on the hot path)."""
    window = f"{ts(r.window_start).isoformat()} to {ts(r.window_end).isoformat()}"
    node = parts[0].node if parts else None
    if r.status == "booked":
        node = r.booked_nodes[0] if r.booked_nodes else None
        explanation = (f"booked at {', '.join(r.booked_nodes or [])} for {window}; "
                       f"routed and its stock reserved at {ts(r.due_at).isoformat()}")
    elif parts:
        explanation = f"{explanation}; booked for {window}"
    return OrderReply(
        order_id=r.order_id, channel=r.channel, external_id=r.external_id, status=r.status, mode=r.mode,
        promised_at=ts(r.promised_at), node=node, parts=parts, explanation=explanation, cost=cost, lost=lost,
        reason=r.reason, repeat=repeat, first_decision=first_decision(r),
        money=None if r.paid is None else OrderMoneyReply(
            paid=r.paid, refunded=r.refunded, kept=r.paid - r.refunded, points_used=r.points_used,
            points_returned=r.points_returned, refunds=list(r.refunds)),
        window_start=ts(r.window_start), window_end=ts(r.window_end), due_at=ts(r.due_at),
    )


def first_decision(r: OrderRecord) -> Decision | None:
    f = r.first
    if f is None:
        return None
    fparts = f.parts  # the Routed event's own parts (engine/readmodels/orders.py); none for a rejection
    cost = {p.node: p.cost for p in fparts}
    return Decision(
        outcome=f.outcome,
        parts=[PartReply(node=p.node, lines=p.lines, eta_at=ts(p.eta_at), status="routed") for p in fparts],
        lost=[LossReply(**x) for x in f.lost],
        reason=f.reason,
        explanation=explain(cost, f.lost, f.reason),
    )


class QuotePart(msgspec.Struct, frozen=True):
    node: str
    lines: dict[str, int]
    eta_at: datetime  # delivered (delivery) or ready (pickup) by then
    distance_km: float
    cost: float  # the router's cost terms' total


class QuoteOption(msgspec.Struct, frozen=True):
    """One way to serve the cart: one node, or parts at several (a split)."""

    mode: Literal["delivery", "pickup"]
    node: str  # the first part's node
    parts: list[QuotePart]
    eta_at: datetime  # when the last part is there
    promised_at: datetime  # what a submit now would promise: the window is from eta_at to this
    split: bool = False
    best: bool = False  # what a submit of this cart now would get (of its mode; pickup: at this node)
    window_start: datetime | None = None  # booked for this slot (asked for, or later_ok while closed); else now
    window_end: datetime | None = None


class Shortage(msgspec.Struct, frozen=True):
    node: str
    sku: str
    wanted: int
    available: int


class HoldReply(msgspec.Struct, frozen=True):
    """Stock set aside for the quote's best option: a submit with `hold` set to the quote id uses it."""

    node: str
    lines: dict[str, int]
    expires_at: datetime


class QuoteReply(msgspec.Struct, frozen=True):
    quote_id: str
    at: datetime
    options: list[QuoteOption]  # the best first; pickup options nearest first
    short: list[Shortage]  # nearby nodes that cannot promise a line of the cart
    reason: str | None = None  # why no option, when there is none
    hold: HoldReply | None = None  # asked for (hold_minutes) and made
    hold_refused: str | None = None  # asked for and not made: why


class NodeStock(msgspec.Struct, frozen=True):
    node: str
    kind: str
    distance_km: float
    available: int
    modes: list[str]


class StockNearby(msgspec.Struct, frozen=True):
    sku: str
    nodes: list[NodeStock]  # nearest first


class BenefitRulesReply(msgspec.Struct, frozen=True):
    versions: list[RuleSet]  # every version published, oldest first


class StatementReply(msgspec.Struct, frozen=True):
    """A party's benefit statement for a period (minor units): the balance
    carried in (only a negative one carries), its lines and their total."""

    party: str
    period: str
    lines: list[LedgerLine]
    total: int  # the sum of the lines: accrued in the period
    closed: bool = False  # a closed period's statement never changes
    opening: int = 0  # a negative balance carried from the party's statement before
    closing: int = 0  # opening + total
    status: Literal["draft", "closed", "paid"] = "draft"
    payable: int = 0  # what could be paid now: the opening and the lines past their hold days (never negative)
    paid: int = 0
    paid_at: float | None = None
    reference: str | None = None  # the payment's


class StatementsReply(msgspec.Struct, frozen=True):
    period: str
    statements: list[StatementReply]


def statement_replies(view: BenefitView, period: str, party: str | None, now: float) -> StatementsReply:
    """Statements of a period as they stand at `now`: one party's (an empty
    one in a period without lines of its own or a balance carried in), or
    every party's with either."""
    if party is not None and party not in view.periods:
        raise NotFound("party", f"no statement of {party!r}: unknown party")
    closed = period in view.closed
    out = []
    for who in [party] if party is not None else view.parties_in(period):
        s = view.statements.get((who, period))
        opening = view.opening(who, period)
        lines, total, paid = (list(s.lines), s.total, s.paid) if s is not None else ([], 0, 0)
        payable = 0 if paid else max(0, opening + sum(line.amount for line in lines if line.payable_at <= now))
        out.append(StatementReply(
            party=who, period=period, lines=lines, total=total, closed=closed, opening=opening,
            closing=opening + total, status="paid" if paid else "closed" if closed else "draft", payable=payable,
            paid=paid, paid_at=s.paid_at if s is not None else None, reference=s.reference if s is not None else None))
    return StatementsReply(period=period, statements=out)
