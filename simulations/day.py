"""Runs the real engine (aggregates, router, batching rule) over a simulated
day on a simulated clock: no wall-clock waits. Orders are gathered into
micro-batches exactly as the service does (a window from the first order, or
a full batch); nodes accept, decline and report progress; stores sell over
the counter from the same stock and clerks sign customers up; deliveries top
stock up on schedule. A run of several days goes on through the nights;
with a benefit-sharing rule set, each month's period is closed when it ends."""
from __future__ import annotations

import heapq
import math
import random
import time
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

import msgspec
import numpy as np

from domain.commands import (
    AcceptOrder, AdjustStock, CancelOrder, ClosePeriod, DeclineOrder, Line, PublishBenefitRules, ReceiveStock,
    RefundOrder, ReplenishPolicy, ReportProgress, ReturnLine, SellOverCounter, SetSafetyStock, SignUpMember,
    SubmitOrder, SuggestStock,
)
from domain.benefit import period_end, period_of
from domain.errors import DomainError
from domain.network import Network, Node, Sku, Window
from adapters.bootstrap import build_engine
from engine.app import Engine
from engine.config import Config, EngineSettings, StoreSettings
from engine.clock import SimClock
from engine.memory import young_collections_only
from engine.partitions import PartitionMap, partition_map
from engine.routing.partitioned import PartitionedRouter
from engine.routing.router import make_router
from engine.readmodels.orders import held
from simulations.demand import (
    PROMOTION_PRICE, Day, Sale, clock_time, day_bounds, on_day, popularity, surge_orders,
)
from simulations.scenario import (
    Scenario, ScenarioError, Variant, describe, reports_benefit, reports_replenishment, rule_set, rules_of,
    travel_matrix, travel_of,
)

STEP_S = 30.0  # node actions due within the same 30 s are stored together
TICK_S = 1.0  # the service's timer: expiry, and routing again what was declined
TIMER = "timer"  # in a part's plan (a replay's): the service's timer ran then for it; no other is made up for it


@dataclass
class Outcome:
    variant: str
    engine: Engine
    network: Network
    seconds: float
    cpu_seconds: float = 0.0  # this process's CPU: the steadier figure on a shared machine
    replenished: Counter = field(default_factory=Counter)  # (node, sku) -> units bought
    transferred: Counter = field(default_factory=Counter)  # (node, sku) -> units moved in (out: negative)
    report_replenishment: bool = False  # units bought and moved are reported
    pos_sold: Counter = field(default_factory=Counter)
    pos_customers: int = 0
    pos_short: int = 0  # counter customers who found an item missing
    late_cancels: int = 0
    refunds_refused: int = 0  # a return the engine refused (e.g. the rest of a split order still open)
    commands_refused: int = 0  # a replay's recorded commands the engine refused (the replay differs there)
    returned: Counter = field(default_factory=Counter)  # (node, sku) -> units back on a shelf
    opening: dict[str, dict[str, int]] = field(default_factory=dict)
    days: int = 1
    joined: set[str] = field(default_factory=set)  # counter customers signed up during the run
    periods: list[str] = field(default_factory=list)  # the benefit periods (months) the run touches
    rules: str | None = None  # the benefit rule set's version, if one was published
    rules_text: str | None = None  # and what it says, in a line
    report_benefit: bool = False  # members' and benefit figures are reported (simulations/scenario.py)
    routing: dict = field(default_factory=dict)  # batches, route times, hand-overs (engine/routing/partitioned.py)


def variant_network(base: Network, s: Scenario, v: Variant | None) -> Network:
    nodes = [_managed(n, s) for n in base.nodes]
    skus = list(base.skus)
    stock = {k: dict(lines) for k, lines in base.stock.items()}
    if s.stock.depth == "popularity":
        stock = _by_popularity(stock, *popularity(s, base))
    if v is not None:
        closed = set(v.close_stores)
        unknown = closed - {n.id for n in nodes}
        if unknown:
            raise ScenarioError(f"$.variants[{s.variants.index(v)}].close_stores", f"unknown node(s) {sorted(unknown)}")
        nodes = [n for n in nodes if n.id not in closed]
        stock = {k: lines for k, lines in stock.items() if k not in closed}
        template = next((n for n in base.nodes if n.kind == "kitchen"), None)
        for k in v.add_kitchens:
            nodes.append(Node(id=k.id, name=f"new kitchen {k.id}", kind="kitchen", lat=k.lat, lon=k.lon,
                              modes=["delivery"], delivery_radius_km=k.radius_km, hours=[Window("06:00", "22:00")],
                              capacity_per_slot=k.capacity_per_slot, prep_minutes=8.0, cost_per_km=2.0,
                              operating_cost=1.5, region="new"))
            stock[k.id] = dict(base.stock.get(template.id, {})) if template else {}
        if v.capacity_factor:
            nodes = [msgspec.structs.replace(n, capacity_per_slot=max(1, round(n.capacity_per_slot * v.capacity_factor)))
                     for n in nodes]
    add = v.safety_stock_add if v is not None and v.safety_stock_add is not None else s.stock.safety_stock_add
    if add:
        skus = [msgspec.structs.replace(k, safety_stock=k.safety_stock + add) for k in skus]
    for p in s.demand.promotions:
        if p.sku not in {k.id for k in skus}:
            skus.append(Sku(id=p.sku, name=f"promotion {p.sku}", price=PROMOTION_PRICE))
        for n in nodes:
            stock.setdefault(n.id, {})[p.sku] = p.stock_per_node
    for sku, units in (v.stock_per_node.items() if v is not None else ()):
        if sku not in {k.id for k in skus}:
            raise ScenarioError(f"$.variants[{s.variants.index(v)}].stock_per_node", f"unknown SKU {sku!r}")
        for n in nodes:
            stock.setdefault(n.id, {})[sku] = units
    return msgspec.structs.replace(base, nodes=nodes, skus=skus, stock=stock)


def variant_partitions(network: Network, s: Scenario, v: Variant | None) -> PartitionMap | None:
    """The partitions a variant routes in (over its own network), or None: global routing."""
    if v is None or v.partitions is None:
        return None
    try:
        return partition_map(network, v.partitions)
    except DomainError as e:
        raise ScenarioError(f"$.variants[{s.variants.index(v)}].partitions", e.reason) from None


def _managed(n: Node, s: Scenario) -> Node:
    """A store the network names no manager for gets one for a share of stores (a hash picks them)."""
    share = s.network.managers
    if not share or n.kind != "store" or n.manager is not None:
        return n
    if zlib.crc32(f"{s.seed}/manager/{n.id}".encode()) % 10_000 >= share * 10_000:
        return n
    return msgspec.structs.replace(n, manager=f"{n.id}-mgr")


def _by_popularity(stock: dict[str, dict[str, int]], ranked: list[str], share: np.ndarray) -> dict[str, dict[str, int]]:
    """Each node's units spread over the SKUs it carries in proportion to their popularity."""
    rank = {k: j for j, k in enumerate(ranked)}
    out = {}
    for node, lines in stock.items():
        carried = [k for k, q in lines.items() if q > 0 and k in rank]
        w = share[[rank[k] for k in carried]]
        units = np.maximum(2, np.floor(sum(lines[k] for k in carried) * w / w.sum())) if carried else []
        out[node] = {**lines, **{k: int(u) for k, u in zip(carried, units)}}
    return out


@dataclass(frozen=True)
class Routed:
    """A part just routed to a node, as node behaviour sees it."""

    order: str
    name: str  # the order's channel/external id
    node: str
    mode: str
    eta_at: float  # the router's expected hand-over
    at: float  # when it was routed
    fill: float  # share of the node's slot capacity taken, this part included
    prep_minutes: float
    lines: dict[str, int] = field(default_factory=dict)  # the part's


PartPlan = Callable[[Routed], list[tuple[float, Any]]]


def simulated_parts(s: Scenario) -> PartPlan:
    """Node behaviour drawn from the scenario: for a part routed to a node,
    the node's decision, its progress and maybe the customer's cancellation,
    as (time, command). Work starts when the node accepts; a busy node runs
    late; a delivery waits for its courier. The same draws for the same order
    and node in every variant (a generator seeded by the order's name, which
    no change of how ids are made moves, and the node)."""
    b = s.behaviour

    def plan(p: Routed) -> list[tuple[float, Any]]:
        rng = random.Random(f"{s.seed}/{p.name}/{p.node}")
        # always the same five draws, so a change of parameters moves no other draw
        u_accept, u_decline, u_cancel = rng.random(), rng.random(), rng.random()
        z_prep, u_courier = rng.gauss(0.0, 1.0), rng.random()
        u_refund, u_whole, u_restock, u_after = rng.random(), rng.random(), rng.random(), rng.random()
        oid, node = p.order, p.node
        at = p.at - math.log1p(-u_accept) * b.accept_minutes * 60
        if u_decline < b.decline_share:
            return [(at, DeclineOrder(order_id=oid, node=node, reason="too busy"))]
        out: list[tuple[float, Any]] = [(at, AcceptOrder(order_id=oid, node=node))]
        if u_cancel < b.cancel_share:
            return out + [(at + 60, CancelOrder(order_id=oid, reason="customer cancelled"))]
        late = (at - p.at) + b.busy_delay * p.prep_minutes * 60 * min(p.fill, 1.0) ** 2
        late += z_prep * b.prep_spread_minutes * 60
        if p.mode == "delivery":
            late -= math.log1p(-u_courier) * b.courier_wait_minutes * 60
        hand = max(p.eta_at + late, at + 180)
        picked = at + (hand - at) / 2
        ready, done = ("ready", "collected") if p.mode == "pickup" else ("dispatched", "delivered")
        out += [(picked, ReportProgress(order_id=oid, step="picked", node=node)),
                (max(hand - 120, picked + 30), ReportProgress(order_id=oid, step=ready, node=node)),
                (hand, ReportProgress(order_id=oid, step=done, node=node))]
        if u_refund < b.refund_share and p.lines:
            sku = min(p.lines)
            lines = [] if u_whole < b.refund_whole_share else [ReturnLine(sku, 1)]
            back = dict(return_to=node) if u_restock < b.restock_share else dict(write_off=True)
            out.append((hand - math.log1p(-u_after) * b.refund_after_minutes * 60,
                        RefundOrder(order_id=oid, refund_id=f"rf-{node}", reason="returned", lines=lines, **back)))
        return out

    return plan


@young_collections_only()
def simulate(s: Scenario, base: Network, day: Day, v: Variant | None, store: str,
             progress: Callable[[int], None] = lambda n: None, parts: PartPlan | None = None,
             deliveries: list[tuple[float, str, dict[str, int]]] | None = None,
             bounds: tuple[float, float] | None = None, commands: list[tuple[float, Any]] = (),
             step_s: float = STEP_S, due_timer: Callable[[str, float], float | None] = lambda oid, due: None) -> Outcome:
    """One variant's day. A replay passes the recorded node behaviour (`parts`),
    the recorded deliveries, the recorded day's bounds, the other commands
    recorded (sign-ups, benefit rules, stock counts ..., at their times),
    step_s 0: node actions at their own times, not gathered per 30 s, and
    `due_timer`: when the record's timer routed a booked order due (None: a
    tick after its due time, as the service's would find it)."""
    started, cpu = time.perf_counter(), time.process_time()
    name = v.name if v else "base"
    network = variant_network(base, s, v)
    router = (v.router if v and v.router else s.router)
    batching = (v.batching if v and v.batching else s.batching)
    plan = parts or simulated_parts(s)
    days = [on_day(s, d) for d in range(s.days)]
    t0, t1 = bounds or (day_bounds(s, network)[0], day_bounds(days[-1], network)[1])
    # members signed up before the run: at its start, or evenly over the days before it (the clock starts there)
    before = s.members.signed_up_over_days * 86_400.0 if day.signups and bounds is None else 0.0
    clock = SimClock(t0 - before)
    # every order's record kept: the KPIs are read from them at the end
    config = Config(engine=EngineSettings(router=router, retain_finished_hours=None),
                    store=StoreSettings(url=store.format(variant=name)))
    routed = PartitionedRouter(make_router(router, travel_of(s, v)), variant_partitions(network, s, v))
    roads = travel_matrix(s.roads) if s.roads else None  # the couriers' true minutes, whatever the router assumes
    places: dict[str, tuple[float, float]] = {}  # order -> delivery place, when roads are simulated
    engine = build_engine(config, network=network, clock=clock, router=routed)
    out = Outcome(name, engine, network, 0.0, opening={k: dict(x) for k, x in network.stock.items()},
                  days=len(days), report_benefit=reports_benefit(s), report_replenishment=reports_replenishment(s))
    policy = msgspec.structs.replace(v.replenish, deliveries=list(s.stock.replenish_at)) if v and v.replenish else None
    spec = rules_of(s, v)
    if spec is not None:  # in force from the clock's start, before any member signs up
        rules = rule_set(spec, name, t0 - before)
        engine.handle(PublishBenefitRules(rules=rules))
        out.rules, out.rules_text = rules.version, describe(rules)
    nodes = {n.id: n for n in network.nodes}
    open_ids = set(nodes)
    stores_open = [n for n in network.nodes if n.kind == "store"] or network.nodes

    def at_open_store(cmd: SignUpMember) -> SignUpMember:
        """A sign-up at a store the variant closed is made at the nearest open store, by its first clerk."""
        if cmd.node in open_ids:
            return cmd
        gone = next(n for n in base.nodes if n.id == cmd.node)
        near = nearest(stores_open, gone.lat, gone.lon)
        return msgspec.structs.replace(cmd, node=near.id, clerk=f"{near.id}-clerk1")

    for i, cmd in enumerate(day.signups):  # at a store a variant closed: at the first open node, as before
        clock.advance_to(t0 - before + before * i / len(day.signups))  # (the router favours a member's node)
        engine.sign_up(cmd if cmd.node in open_ids else msgspec.structs.replace(cmd, node=min(open_ids)))
    clock.advance_to(t0)
    target = _stock_matrix(engine, out.opening)
    pickup_ids = [n for n in network.nodes if "pickup" in n.modes]

    orders = list(day.orders)
    for i, surge in enumerate(v.surges if v else []):
        for d in range(len(days)):
            orders += surge_orders(s, base, surge, i, d, day.members_at)
    orders.sort(key=lambda x: x[0])

    heap: list[tuple[float, int, str, Any]] = []
    seq = 0

    def push(t: float, kind: str, item: Any = None) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (t, seq, kind, item))

    for t, cmd in orders:
        if cmd.mode == "pickup" and cmd.pickup_node not in open_ids:  # its store is closed: the nearest open one
            if cmd.lat is not None and cmd.lon is not None:  # a replayed order carries the store's location
                lat, lon = cmd.lat, cmd.lon
            else:
                gone = next(n for n in base.nodes if n.id == cmd.pickup_node)
                lat, lon = gone.lat, gone.lon
            near = nearest(pickup_ids, lat, lon)
            cmd = msgspec.structs.replace(cmd, pickup_node=near.id)
        push(t, "order", cmd)
    for t, cmd in day.joined:  # before the sale at the same moment: the new member pays as one
        push(t, "signup", at_open_store(cmd))
    for sale in day.sales:
        if sale.node in open_ids:
            push(sale.at, "sale", sale)
    for t, cmd in commands:
        push(t, "command", cmd)
    if deliveries is None:
        for today in days:
            for hhmm in s.stock.replenish_at:
                t = clock_time(today, network, hhmm)
                if t0 <= t < t1:
                    push(t, "replenish")
    else:
        for t, node, lines in deliveries:
            if node in open_ids:
                push(t, "delivery", (node, lines))
    closes: list[tuple[float, str]] = []
    if out.rules is not None:  # each month's benefit period closes when it ends, up to the last day's midnight
        out.periods = sorted({period_of(clock_time(x, network, "12:00"), network.timezone) for x in days})
        last = clock_time(on_day(s, len(days)), network, "00:00")
        closes = [(period_end(p, network.timezone), p) for p in out.periods
                  if period_end(p, network.timezone) <= last]
        for t, period in closes:
            if t < t1:
                push(t, "close", period)
    timeout = engine.settings.accept_timeout_s

    def tick_after(t: float) -> None:
        """The service's timer ticks every second; the simulation ticks only when one would find work."""
        push((t // TICK_S + 1) * TICK_S, "timer")

    batch: list[SubmitOrder] = []
    deadline: float | None = None
    steps: dict[float, list] = defaultdict(list)
    scheduled: set[tuple[str, str]] = set()
    timed: set[tuple[str, str]] = set()  # parts whose plan says when the timer ran (TIMER)
    watching: set[str] = set()  # orders that may be routed again
    booked: set[str] = set()  # booked orders whose due time has its timer

    def schedule(order_ids: list[str], now: float) -> None:
        for oid in order_ids:
            r = engine.readmodels.orders.get(oid)
            if r is None:
                continue
            if r.status in ("placed", "booked"):
                watching.add(oid)
            if r.status == "booked" and oid not in booked:  # routed, its stock reserved, by the timer at its due time
                booked.add(oid)
                t = due_timer(oid, r.due_at)
                if t is None:
                    tick_after(r.due_at - 1e-6)
                else:
                    push(t, "timer")
            for node, part in r.parts.items():
                if part.status != "routed" or (oid, node) in scheduled:
                    continue
                scheduled.add((oid, node))
                n = nodes[node]
                slot, used = engine.readmodels.slot_used.get(node, (-1, 0))
                fill = used / max(n.capacity_per_slot, 1) if slot == int(now // (n.slot_minutes * 60)) else 0.0
                eta = part.eta_at
                if roads is not None and r.mode == "delivery" and oid in places:
                    eta += _road_shift(roads, node, places[oid], n.prep_minutes, r.cost.get(node, {}))
                name = f"{r.channel}/{r.external_id}"
                cmds = plan(Routed(oid, name, node, r.mode, eta, now, fill, n.prep_minutes, part.lines))
                answer = min((_bucket(t, step_s) for t, c in cmds if isinstance(c, (AcceptOrder, DeclineOrder))),
                             default=math.inf)
                if any(c is TIMER for _, c in cmds):
                    timed.add((oid, node))
                elif answer > now + timeout:  # the part expires before the engine hears of the node's answer
                    tick_after(now + timeout)
                for t, cmd in cmds:
                    if cmd is TIMER:
                        if t < math.inf:
                            push(t, "timer")
                    elif isinstance(cmd, (CancelOrder, RefundOrder)):
                        push(t, "cancel", cmd)
                    else:
                        add_step(t, cmd)
                        if isinstance(cmd, DeclineOrder):
                            watching.add(oid)

    def add_step(t: float, cmd: Any) -> None:
        bucket = _bucket(t, step_s)
        if bucket not in steps:
            push(bucket, "steps", bucket)
        steps[bucket].append(cmd)

    def flush(at: float) -> None:
        nonlocal batch, deadline
        clock.advance_to(max(at, clock.now()))
        cmds, batch, deadline = batch, [], None
        watching.update(engine.readmodels.to_route)  # declined or expired: routed again in this batch
        results = engine.submit_batch(cmds)
        if roads is not None:
            places.update((r.order_id, (c.lat, c.lon)) for c, r in zip(cmds, results)
                          if not isinstance(r, DomainError) and c.lat is not None)
        progress(len(cmds))
        ids = [r.order_id for r in results if not isinstance(r, DomainError)]
        schedule(ids + sorted(watching), clock.now())

    while heap:
        t, n, kind, item = heapq.heappop(heap)
        if deadline is not None and (deadline < t or (deadline == t and kind != "order")):
            flush(deadline)  # a batch closing now is routed before what else happens now
            heapq.heappush(heap, (t, n, kind, item))  # what the batch set off before t goes first
            continue
        if t >= t1:
            break
        clock.advance_to(max(t, clock.now()))
        if kind == "order":
            if not batch:
                deadline = batching.closes_at(t)
            batch.append(item)
            if batching.full(len(batch)):
                flush(t)
        elif kind == "steps":
            cmds = steps.pop(item)
            refused = engine.node_steps(cmds)
            if any(isinstance(c, DeclineOrder) and e is None and (c.order_id, c.node) not in timed
                   for c, e in zip(cmds, refused)):
                tick_after(t)
        elif kind == "timer":
            engine.expire_due()
            watching.update(engine.readmodels.to_route)
            if engine.readmodels.to_route:
                engine.route_pending()
            schedule(sorted(watching), clock.now())
            watching.intersection_update(k for k in watching if engine.readmodels.orders[k].status in ("placed", "booked"))
        elif kind == "sale":
            _sell(engine, out, item)
        elif kind == "command":
            try:
                engine.handle(item)
            except DomainError:
                out.commands_refused += 1
        elif kind == "signup":
            engine.sign_up(item)
            out.joined.add(item.member)
        elif kind == "close":
            engine.handle(ClosePeriod(period=item))
        elif kind == "cancel":
            try:
                before = held(engine.readmodels.orders[item.order_id]) if isinstance(item, RefundOrder) and item.return_to else None
                engine.handle(item)
                if before is not None:  # goods back on the node's shelf
                    after = held(engine.readmodels.orders[item.order_id])
                    out.returned.update({(item.return_to, k): q - after.get(k, 0) for k, q in before.items()})
            except DomainError:
                if isinstance(item, CancelOrder):
                    out.late_cancels += 1  # handed over already: the customer was too late
                else:
                    out.refunds_refused += 1
        elif kind == "replenish":
            _replenish(engine, out, target, policy)
        elif kind == "delivery":
            node, lines = item
            engine.receive(ReceiveStock(node=node, lines=[Line(k, q) for k, q in lines.items()], ref="replayed delivery"))
            out.replenished.update({(node, k): q for k, q in lines.items()})
    if batch:
        flush(clock.now())
    for t, period in closes:
        if t >= t1:  # the last day's month ends at its midnight
            clock.advance_to(max(t, clock.now()))
            engine.handle(ClosePeriod(period=period))
    out.seconds, out.cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    out.routing = routed.stats.as_dict()
    return out


def _road_shift(roads: Any, node: str, place: tuple[float, float], prep: float, cost: dict[str, float]) -> float:
    """Seconds the couriers' true road time adds to the router's ETA (negative: saves)."""
    true = roads.minutes_of(node, *place)
    if true is None or "eta_min" not in cost:
        return 0.0
    return (prep + true - cost["eta_min"]) * 60


def nearest(nodes: list[Node], lat: float, lon: float) -> Node:
    """The node nearest to a place (a closed store's stand-in)."""
    return min(nodes, key=lambda n: (n.lat - lat) ** 2 + (n.lon - lon) ** 2)


def _bucket(t: float, step_s: float = STEP_S) -> float:
    """When a node action due at t is stored: the next whole 30 s (a recorded step time stays put); step_s 0: at t."""
    return -(-(t - 1e-6) // step_s) * step_s if step_s else t


def _sell(engine: Engine, out: Outcome, sale: Sale) -> None:
    """A counter customer buys what is on the shelf (unreserved) and goes
    without the rest: a sale missing an item counts as a counter stock-out."""
    view = engine.readmodels.atp
    i = view.node_index[sale.node]
    lines = {k: q for k, q in sale.lines.items() if view.on_hand[i, view.sku_index[k]] - view.reserved[i, view.sku_index[k]] >= q}
    out.pos_customers += 1
    if len(lines) < len(sale.lines):
        out.pos_short += 1
        engine.readmodels.demand.record_pos_short(sale.node, {k: q for k, q in sale.lines.items() if k not in lines},
                                                  sale.at)
    if lines:
        engine.sell(SellOverCounter(node=sale.node, sale_id=f"pos-{out.pos_customers}",
                                    lines=[Line(k, q) for k, q in lines.items()], member=sale.member))
        out.pos_sold.update({(sale.node, k): q for k, q in lines.items()})


def _stock_matrix(engine: Engine, stock: dict[str, dict[str, int]]) -> np.ndarray:
    view = engine.readmodels.atp
    m = np.zeros_like(view.on_hand)
    for node, lines in stock.items():
        for sku, q in lines.items():
            m[view.node_index[node], view.sku_index[sku]] = q
    return m


def _replenish(engine: Engine, out: Outcome, target: np.ndarray, policy: ReplenishPolicy | None = None) -> None:
    """Tops every node up to its starting stock; with a policy, brings what
    the engine suggests instead, once it knows a day of demand."""
    if policy is not None:
        suggested = engine.handle(SuggestStock(policy=policy))
        if suggested.history_days:
            _apply(engine, out, suggested)
            return
    view = engine.readmodels.atp
    gap = target - view.on_hand
    for i in np.flatnonzero((gap > 0).any(axis=1)):
        node = view.node_ids[i]
        top_up = {view.sku_ids[j]: int(gap[i, j]) for j in np.flatnonzero(gap[i] > 0)}
        engine.receive(ReceiveStock(node=node, lines=[Line(k, q) for k, q in top_up.items()], ref="replenishment"))
        out.replenished.update({(node, k): q for k, q in top_up.items()})


def _apply(engine: Engine, out: Outcome, suggested: Any) -> None:
    """Transfers (an adjustment out of the source, a receipt at the destination) and purchases, in one transaction."""
    cmds: list[Any] = []
    arriving: dict[str, dict[str, int]] = defaultdict(dict)
    for t in suggested.transfers:
        cmds.append(AdjustStock(node=t.from_node, sku=t.sku, delta=-t.qty, reason=f"transfer to {t.to_node}"))
        arriving[t.to_node][t.sku] = arriving[t.to_node].get(t.sku, 0) + t.qty
    cmds += [ReceiveStock(node=node, lines=[Line(k, q) for k, q in sorted(lines.items())], ref="transfer")
             for node, lines in sorted(arriving.items())]
    buying: dict[str, dict[str, int]] = defaultdict(dict)
    for p in suggested.purchases:
        buying[p.node][p.sku] = p.qty
    cmds += [ReceiveStock(node=node, lines=[Line(k, q) for k, q in sorted(lines.items())], ref="replenishment")
             for node, lines in sorted(buying.items())]
    reserved: dict[str, dict[str, int]] = defaultdict(dict)
    for r in suggested.reserves:
        reserved[r.node][r.sku] = r.qty
    cmds += [SetSafetyStock(node=node, levels=dict(sorted(levels.items()))) for node, levels in sorted(reserved.items())]
    if not cmds:
        return
    refused = [e for e in engine.handle_many(cmds) if e is not None]
    if refused:  # the suggestion was made from the same read models a moment before: a bug
        raise RuntimeError(f"a replenishment suggestion was refused: {refused[0]}")
    for t in suggested.transfers:
        out.transferred[(t.from_node, t.sku)] -= t.qty
        out.transferred[(t.to_node, t.sku)] += t.qty
    for p in suggested.purchases:
        out.replenished[(p.node, p.sku)] += p.qty
