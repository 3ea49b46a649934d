"""Counterfactual replay: the orders, counter sales, deliveries and other
commands recorded in an engine's event store (a simulation's or `o2o
serve`'s), at their recorded times, against a changed network or router.
Orders decided together in the record are routed together. Where the replay
routes a part to the node that served it in the record, that node behaves
as recorded (same delays after routing; at the recorded moment itself, the
service's timer too); elsewhere it behaves as the scenario's defaults say."""
from __future__ import annotations

import bisect
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import msgspec

from domain import ids
from domain.commands import (
    AcceptOrder, AdjustStock, BindIdentity, CancelOrder, ClosePeriod, CountStock, DeclineOrder, Discount, Line,
    PublishBenefitRules, RedeemPoints, RefundOrder, ReportProgress, ReturnLine, SetSafetyStock, SignUpMember,
    SubmitOrder,
)
from domain.network import Network
from domain.order import made_by_engine
from engine.store.eventlog import EventLog
from engine.readmodels import ReadModels
from simulations.demand import Day, Sale
from simulations.day import TIMER, Outcome, PartPlan, Routed, nearest, simulate, simulated_parts
from engine.config import Batching
from simulations.scenario import Scenario

STEPS = {"Picked": "picked", "ReadyForPickup": "ready", "Dispatched": "dispatched"}


@dataclass
class Recorded:
    day: Day
    deliveries: list[tuple[float, str, dict[str, int]]]
    routed_at: dict[tuple[str, str], float]  # (order, node) -> when the record routed it there
    actions: dict[tuple[str, str], list[tuple[float, Any]]] = field(default_factory=lambda: defaultdict(list))
    cancels: dict[str, float] = field(default_factory=dict)
    refunds: dict[tuple[str, str], list[tuple[float, Any]]] = field(default_factory=lambda: defaultdict(list))
    decided: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # order -> routed or rejected at
    expired: dict[tuple[str, str], float] = field(default_factory=dict)
    commands: list[tuple[float, Any]] = field(default_factory=list)  # the rest the record tells, at their times
    first: float = 0.0
    last: float = 0.0
    batches: set[float] = field(default_factory=set)  # when batches of new orders were routed
    places: dict[str, tuple[float, float]] = field(default_factory=dict)  # the recorded network's nodes
    booked: dict[str, float] = field(default_factory=dict)  # order -> the due time the record booked it with


def read(store: str, network: Network) -> tuple[Recorded, ReadModels, int]:
    """The record of a day, and its read models rebuilt from the store."""
    node_of = {ids.inventory_id(n.id): n.id for n in network.nodes}
    orders, sales, deliveries = [], [], []
    routed_at: dict[tuple[str, str], float] = {}
    rec = Recorded(Day(orders, sales), deliveries, routed_at, places={n.id: (n.lat, n.lon) for n in network.nodes})
    views = ReadModels(network)
    log = EventLog(store)
    members: dict[Any, str] = {}  # member aggregate id -> the member's key
    placed: dict[str, tuple[int, Any]] = {}  # order -> its index in `orders`, and its Placed event
    opened: dict[Any, float] = {}  # inventory aggregate id -> when it opened (with the network's safety stock)
    events = 0
    try:
        for nid, e in log.stored_events():
            views.apply(e, nid)
            events += 1
            kind, oid = type(e).__qualname__.split(".")[-1], str(e.originator_id)
            at = getattr(e, "at", None)
            if at is not None and kind not in ("Opened",):
                rec.last = max(rec.last, at)
            if kind == "Placed":
                rec.first = at if not orders else min(rec.first, at)
                placed[oid] = (len(orders), e)
                orders.append((at, SubmitOrder(
                    channel=e.channel, external_id=e.external_id, mode=e.mode, lat=e.lat, lon=e.lon,
                    pickup_node=e.pickup_node, promise_minutes=round((e.promised_at - at) / 60), member=e.member,
                    **_paid_as(e.money, e.lines))))
            elif kind == "Routed":
                rec.decided[oid].append(at)
                for p in e.parts:
                    routed_at[(oid, p.node)] = at
            elif kind in ("Rejected", "Shorted"):
                rec.decided[oid].append(at)
            elif kind == "Booked" and oid in placed:
                rec.booked[oid] = e.due_at
                i, p = placed[oid]
                orders[i] = (orders[i][0], _as_booked(orders[i][1], p, e))
            elif kind == "Expired":
                rec.expired[(oid, e.node)] = at
            elif kind == "Accepted":
                rec.actions[(oid, e.node)].append((at, AcceptOrder(order_id=oid, node=e.node)))
            elif kind == "Declined":
                rec.actions[(oid, e.node)].append((at, DeclineOrder(order_id=oid, node=e.node, reason=e.reason)))
            elif kind in STEPS:
                rec.actions[(oid, e.node)].append((at, ReportProgress(order_id=oid, step=STEPS[kind], node=e.node)))
            elif kind == "HandedOver":
                r = views.orders[oid]
                step = "collected" if r.mode == "pickup" else "delivered"
                rec.actions[(oid, e.node)].append((at, ReportProgress(order_id=oid, step=step, node=e.node)))
            elif kind == "Cancelled":
                rec.cancels[oid] = at
            elif kind == "Refunded" and not made_by_engine(e.refund_id) and e.lines:
                r = views.orders[oid]
                node = next((n for n, part in r.parts.items() if set(e.lines) & set(part.lines)), None)
                whole = e.fingerprint.startswith("[]|")  # asked for all that was left
                rec.refunds[(oid, node)].append((at, RefundOrder(
                    order_id=oid, refund_id=e.refund_id, reason=e.reason, return_to=e.return_to,
                    write_off=e.write_off, lines=[] if whole else [ReturnLine(k, q) for k, q in e.lines.items()])))
            elif kind == "SoldOverCounter" and e.originator_id in node_of:
                sales.append(Sale(at, node_of[e.originator_id], dict(e.lines)))
            elif kind == "Made" and e.member and sales and sales[-1].node == e.node:  # the sale's money, same commit
                sales[-1] = Sale(sales[-1].at, e.node, sales[-1].lines, e.member)
            elif kind == "SignedUp":
                members[e.originator_id] = e.member
                rec.commands.append((at, SignUpMember(member=e.member, node=e.node, via=e.via, clerk=e.clerk)))
            elif kind == "IdentityBound":
                rec.commands.append((at, BindIdentity(members[e.originator_id], e.kind, e.external_id)))
            elif kind == "PointsRedeemed":
                rec.commands.append((at, RedeemPoints(members[e.originator_id], e.points, e.gift, e.ref)))
            elif kind == "Published":
                rec.commands.append((at, PublishBenefitRules(e.rules)))
            elif kind == "PeriodClosed":
                rec.commands.append((at, ClosePeriod(e.period)))
            elif kind == "Adjusted" and e.originator_id in node_of:
                rec.commands.append((at, AdjustStock(node_of[e.originator_id], e.sku, e.delta, e.reason)))
            elif kind == "Opened" and e.originator_id in node_of:
                opened[e.originator_id] = e.at
            elif kind == "SafetyStockSet" and e.originator_id in node_of and e.at != opened.get(e.originator_id):
                rec.commands.append((at, SetSafetyStock(node_of[e.originator_id], dict(e.levels))))  # a reserve set
            elif kind == "Counted" and e.originator_id in node_of:
                rec.commands.append((at, CountStock(node_of[e.originator_id], e.sku, e.counted)))
            elif kind == "Received" and e.ref != "opening stock" and e.originator_id in node_of:
                deliveries.append((at, node_of[e.originator_id], dict(e.lines)))
    finally:
        log.close()
    orders.sort(key=lambda x: x[0])
    rec.batches = {t for t, _ in orders}
    for times in rec.decided.values():
        times.sort()
    rec.commands.sort(key=lambda x: x[0])
    return rec, views, events


def _as_booked(cmd: SubmitOrder, placed: Any, booked: Any) -> SubmitOrder:
    """The submit of an order the record booked: one promised by the end of
    the slot it was booked for asked for that window; another allowed the
    first slot after opening (booked as it was placed while its nodes were
    closed). A window already begun when asked for was never booked: such an
    order is replayed as one promised in the recorded minutes."""
    if booked.at == placed.at and booked.window_end == placed.promised_at:
        return msgspec.structs.replace(
            cmd, promise_minutes=None, window_start=datetime.fromtimestamp(booked.window_start, timezone.utc),
            window_end=datetime.fromtimestamp(booked.window_end, timezone.utc))
    return msgspec.structs.replace(cmd, later_ok=True)


def _paid_as(money: Any, lines: dict[str, int]) -> dict[str, Any]:
    """An order's recorded money as the command's fields (points are a
    member's, and members are not replayed: their value is left out)."""
    if money is None:
        return {"lines": [Line(k, q) for k, q in lines.items()]}
    out = []
    for sku, m in money.lines.items():
        unit = -(-m.gross // m.qty)  # lines of one SKU at several prices were merged: round up, the rest off
        out.append(Line(sku, m.qty, unit_price=unit, discount=m.discount + unit * m.qty - m.gross))
    return {"lines": out, "discounts": [Discount(money.discounts)] if money.discounts else [],
            "delivery_fee": money.delivery_fee}


def recorded_parts(rec: Recorded, fallback: PartPlan) -> PartPlan:
    """The recorded behaviour of a node for an order, shifted to when the replay routed it there."""

    def plan(p: Routed) -> list[tuple[float, Any]]:
        oid, key = p.order, (p.order, p.node)
        if key not in rec.routed_at:  # the record never sent it there: default behaviour
            return fallback(p)
        recorded = rec.actions.get(key, []) + rec.refunds.get(key, [])  # none: expired
        shift = p.at - rec.routed_at[key]
        out = [(t + shift, cmd) for t, cmd in recorded]
        if oid in rec.cancels:
            out.append((rec.cancels[oid] + shift, CancelOrder(order_id=oid, reason="customer cancelled")))
        if shift == 0:  # routed when the record did: the timer ran for it when the record's did
            out.append((_timer_after(rec, key), TIMER))
        return out

    return plan


def _timer_after(rec: Recorded, key: tuple[str, str]) -> float:
    """When the service's timer routed the order again after this part was
    declined or expired: its next decision, unless a batch of new orders made
    it (that batch routes it); inf if none did."""
    ended = [t for t, c in rec.actions.get(key, []) if isinstance(c, DeclineOrder)] + (
        [rec.expired[key]] if key in rec.expired else [])
    if not ended:
        return math.inf
    decided = rec.decided.get(key[0], [])
    i = bisect.bisect_left(decided, min(ended))
    if i == len(decided) or decided[i] in rec.batches:
        return math.inf
    return decided[i]


def replay_scenario(router=None, batching=None) -> Scenario:
    """Default node behaviour (for parts the record cannot tell), and the changed router or batching.
    A recorded order's time is when the engine took its batch in, so by default the
    replay batches orders recorded at the same moment together (window 0)."""
    changes: dict[str, Any] = {"batching": Batching(window_ms=0.0)}
    if router is not None:
        changes["router"] = router
    if batching is not None:
        changes["batching"] = batching
    return msgspec.structs.replace(Scenario(name="replay"), **changes)


def plan_for(rec: Recorded, s: Scenario) -> PartPlan:
    return recorded_parts(rec, simulated_parts(s))


def run(rec: Recorded, s: Scenario, network: Network, store: str = "memory:",
        progress: Callable[[int], None] = lambda n: None) -> Outcome:
    """The recorded day replayed from its first recorded command to its last
    recorded event (nothing after it: the record does not know what came next)."""
    first = min([rec.first] + [x.at for x in rec.day.sales] + [d[0] for d in rec.deliveries]
                + [t for t, _ in rec.commands[:1]])
    return simulate(s, network, rec.day, None, store, progress=progress, parts=plan_for(rec, s),
                    deliveries=rec.deliveries, bounds=(first, math.nextafter(rec.last, math.inf)),
                    commands=_commands_for(network, rec), step_s=0.0, due_timer=_due_timer(rec))


def _due_timer(rec: Recorded) -> Callable[[str, float], float | None]:
    """When the service's timer routed a booked order at its due time: the
    record's first decision then, if the replay booked it due when the record
    did; else None (the simulation's own tick after its due time)."""

    def when(oid: str, due_at: float) -> float | None:
        if rec.booked.get(oid) != due_at:
            return None
        decided = rec.decided.get(oid, [])
        i = bisect.bisect_left(decided, due_at)
        return decided[i] if i < len(decided) else None

    return when


def _commands_for(network: Network, rec: Recorded) -> list[tuple[float, Any]]:
    """The recorded commands as the replayed network can take them: a sign-up
    at a node it lacks is made at the nearest store (by its first clerk, as a
    simulation's variant that closes a store does); stock counted or adjusted
    at such a node is left out."""
    nodes = {n.id for n in network.nodes}
    stores = [n for n in network.nodes if n.kind == "store"] or network.nodes
    out = []
    for t, cmd in rec.commands:
        node = getattr(cmd, "node", None)
        if node is None or node in nodes:
            out.append((t, cmd))
        elif isinstance(cmd, SignUpMember):
            near = nearest(stores, *rec.places[node])
            out.append((t, msgspec.structs.replace(cmd, node=near.id, clerk=f"{near.id}-clerk1")))
    return out
