"""The demo's outside world: scripted clerks, customers, channels, stores
and tills that play a lunch-time burst through a running engine service,
all over NATS. Clerks sign members up, channels submit orders by
request/reply (baskets and addresses from the simulations' demand
generator), delivery platforms publish more to the JetStream intake,
stores accept (or decline, and the order is routed again) and report
progress, tills sell over the counter, members redeem points. `o2o demo`
(simulations/cli.py) starts the service and runs `play` against it.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from tqdm import tqdm

from adapters.event_publisher import STREAM as EVENTS_STREAM
from adapters.intake import DURABLE, STREAM as INTAKE_STREAM, publish_orders
from adapters.service import O2OService
from domain import ids
from domain.commands import (
    MAX_LINES, AcceptOrder, BindIdentity, DeclineOrder, GetOrder, GetStatement, GetStock, Line, PublishBenefitRules,
    STEPS, ReceiveStock, RedeemPoints, ReportProgress, SellOverCounter, SignUpMember, SubmitOrder,
)
from domain.benefit import RoleRate, RuleSet, period_of
from domain.network import Network
from engine.app import Engine
from engine.clock import ShiftedClock
from simulations.demand import base_day
from simulations.scenario import Demand, Pos, Scenario

CHANNELS = ["app", "mall", "wechat-mini", "alipay-mini"]  # wait for the answer
PLATFORMS = ["meituan", "eleme"]  # fire and forget through the durable intake
IN_FLIGHT = 50
DECLINE_RATE = 0.08
MEMBER_SHARE = 0.3  # of orders placed by a member signed up in the demo


def lunch_time(tz: str) -> float:
    """Today at 11:45 in the network's time zone."""
    now = datetime.now(ZoneInfo(tz))
    return now.replace(hour=11, minute=45, second=0, microsecond=0).timestamp()


def customer_orders(network: Network, n: int, seed: int, tag: str) -> list[SubmitOrder]:
    """n orders as the simulations' demand generator draws them (baskets by
    popularity, addresses around hot spots, pickup at a store listing the
    basket), with ids of this run's own."""
    s = Scenario(name="demo", seed=seed, demand=Demand(orders=n), pos=Pos(sales_per_store_hour=0.0))
    return [msgspec.structs.replace(cmd, external_id=f"{tag}-{cmd.external_id}") for _, cmd in base_day(s, network).orders]


class Customers:
    """The generator's orders handed out one by one, on the channel asked for,
    some placed by members."""

    def __init__(self, orders: list[SubmitOrder], rng: random.Random, members: list[str]):
        self.orders = iter(orders)
        self.rng = rng
        self.members = members

    def order(self, channel: str) -> SubmitOrder:
        member = self.rng.choice(self.members) if self.members and self.rng.random() < MEMBER_SHARE else None
        return msgspec.structs.replace(next(self.orders), channel=channel, member=member)


class World:
    """The outside world's side of the wire: every call is a NATS request."""

    def __init__(self, nc: Any):
        self.nc = nc
        self.gate = asyncio.Semaphore(IN_FLIGHT)
        self.errors: Counter = Counter()
        self.latencies: dict[str, list[float]] = {}  # seconds from request to reply, per subject

    async def ask(self, subject: str, cmd: Any) -> dict | None:
        """The reply, or None after counting the error by its code."""
        async with self.gate:
            t = time.perf_counter()
            msg = await self.nc.request(subject, msgspec.json.encode(cmd), timeout=15)
            self.latencies.setdefault(subject, []).append(time.perf_counter() - t)
        headers = msg.headers or {}
        if "Nats-Service-Error" in headers:
            self.errors[(subject, headers.get("Nats-Service-Error-Code"))] += 1
            return None
        return msgspec.json.decode(msg.data)


def _next_lunch(engine: Engine, clock: ShiftedClock) -> str:
    """A rerun on the same store plays the next day's lunch: an earlier
    run's orders hold the delivery slots of its own lunch hour."""
    last = max((r.placed_at for r in engine.readmodels.orders.values()), default=0.0)
    start = lunch_time(engine.network.timezone)
    while start <= last:
        start += 86400
    clock.offset = start - time.time()
    return datetime.fromtimestamp(start, ZoneInfo(engine.network.timezone)).strftime("%Y-%m-%d")


async def _morning_delivery(world: World, engine: Engine) -> None:
    """The warehouse tops every shelf back up to its opening stock (a rerun
    on the same store starts from what the last one sold)."""
    deliveries = []
    for node, opening in engine.network.stock.items():
        on_hand = (await world.ask("o2o.stock.get", GetStock(node)) or {}).get("on_hand", {})
        lines = [Line(sku, qty - on_hand.get(sku, 0)) for sku, qty in sorted(opening.items())
                 if qty > on_hand.get(sku, 0)]
        deliveries += [ReceiveStock(node, lines[i:i + MAX_LINES], ref="morning delivery")
                       for i in range(0, len(lines), MAX_LINES)]
    if deliveries:
        await _gather(deliveries, lambda cmd: world.ask("o2o.stock.receive", cmd), "morning delivery")


async def play(engine: Engine, service: O2OService, nc: Any, clock: ShiftedClock, orders: int = 300,
               intake: int = 100, seed: int = 1) -> dict[str, Any]:
    """The lunch-time burst, played against the running service; prints what happened."""
    network = engine.network
    day = _next_lunch(engine, clock)
    print(f"service      o2o-engine: {len(network.nodes)} nodes, {len(network.skus)} SKUs, "
          f"the store holds {engine.last_notification_id()} events")
    print(f"clock        lunch time on {day} ({network.timezone})\n")
    world = World(nc)
    await _benefit_rules(world, engine, clock)
    await _morning_delivery(world, engine)
    report = await _play(world, network, orders, intake, seed)
    await _published(nc, engine, service)
    _summary(engine, report, service)
    return report


async def _benefit_rules(world: World, engine: Engine, clock: ShiftedClock) -> None:
    """The chain's benefit-sharing rules (docs/benefit.md), published once per
    store: the members' purchases credit the clerk, manager, store and dealer
    that signed them up."""
    if engine.readmodels.benefit.versions:
        return
    await world.ask(  # in force a second from now: a version never takes effect backwards
        "o2o.benefit.rules.publish", PublishBenefitRules(rules=RuleSet(
        version="demo-R1", effective_from=clock.now() + 1.0, window_months=3, hold_days=7, vacant_to={"manager": "store"},
        roles={"clerk": RoleRate(200), "manager": RoleRate(100), "store": RoleRate(300), "dealer": RoleRate(200)})))


async def _play(world: World, network: Network, orders: int, intake: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    tag = f"demo{int(time.time())}"  # a rerun on the same store places new orders
    report: dict[str, Any] = {}
    members = await _sign_up(world, network, rng, tag, report)
    customers = Customers(customer_orders(network, orders + intake, seed, tag), rng, members)
    replies = await _submit(world, customers, orders, report)
    replies += await _intake(world, customers, intake, report)
    report["decisions"] = replies
    await _store_work(world, replies, rng, report)
    await _counter_sales(world, network, rng, members, tag, report)
    await _redeem(world, members, tag, report)
    report["errors"] = world.errors
    return report


async def _sign_up(world: World, network: Network, rng: random.Random, tag: str, report: dict) -> list[str]:
    """Clerks sign customers up in their stores; some bind their WeChat."""
    stores = [n.id for n in network.nodes if n.kind == "store"]
    members = [f"{tag}-m{i}" for i in range(40)]

    async def one(member: str) -> bool:
        node = rng.choice(stores)
        signed = await world.ask("o2o.members.signup", SignUpMember(
            member=member, node=node, via=rng.choice(["clerk", "qr", "pos"]), clerk=f"{node}-clerk{rng.randint(1, 3)}"))
        if signed and rng.random() < 0.5:
            await world.ask("o2o.members.bind", BindIdentity(member=member, kind="wechat", external_id=f"wx-{member}"))
        return signed is not None

    done = await _gather(members, one, "members")
    report["members"] = sum(done)
    return [m for m, ok in zip(members, done) if ok]


async def _submit(world: World, customers: Customers, n: int, report: dict) -> list[dict]:
    """Shop and mini-program back ends submit and wait for the decision."""
    orders = [customers.order(customers.rng.choice(CHANNELS)) for _ in range(n)]
    replies = await _gather(orders, lambda cmd: world.ask("o2o.orders.submit", cmd), "orders (request/reply)")
    report["latencies"] = sorted(world.latencies.get("o2o.orders.submit", []))
    return [r for r in replies if r]


async def _intake(world: World, customers: Customers, n: int, report: dict) -> list[dict]:
    """Delivery platforms publish to JetStream and move on; one message is
    sent twice, as a platform retrying after a lost ack would."""
    js = world.nc.jetstream()
    orders = [customers.order(customers.rng.choice(PLATFORMS)) for _ in range(n)]
    acks = await publish_orders(js, orders + orders[:1])
    report["intake"] = len(orders)
    report["intake_duplicates"] = sum(1 for a in acks if a.duplicate)
    with tqdm(total=len(orders), desc="orders (JetStream intake)", unit="order") as bar:
        while True:  # the engine acknowledges a message once its batch is stored
            info = await js.consumer_info(INTAKE_STREAM, DURABLE)
            bar.n = len(orders) - min(len(orders), info.num_pending + info.num_ack_pending)
            bar.refresh()
            if info.num_pending == 0 and info.num_ack_pending == 0:
                break
            await asyncio.sleep(0.05)

    async def status(cmd: SubmitOrder) -> dict | None:
        return await world.ask("o2o.orders.status", GetOrder(str(ids.order_id(cmd.channel, cmd.external_id))))

    return [r for r in await asyncio.gather(*(status(c) for c in orders)) if r]


async def _store_work(world: World, replies: list[dict], rng: random.Random, report: dict) -> None:
    """Each node accepts what was routed to it or declines it; the engine
    routes a declined part again and the new node takes it. Accepted orders
    go all the way, as a lunch hour does."""
    counts: Counter = Counter()
    declined: set[str] = set()

    async def work(order_id: str, mode: str, node: str, may_decline: bool) -> None:
        if may_decline and rng.random() < DECLINE_RATE:
            if await world.ask("o2o.orders.decline", DeclineOrder(order_id, node, reason="too busy")):
                counts["declined"] += 1
                declined.add(order_id)
            return
        if await world.ask("o2o.orders.accept", AcceptOrder(order_id, node)) is None:
            return
        counts["accepted"] += 1
        if rng.random() < 0.6:
            for step in STEPS[mode]:
                await world.ask("o2o.orders.progress", ReportProgress(order_id, step, node))

    parts = [(r["order_id"], r["mode"], p["node"]) for r in replies if r["status"] == "routed" for p in r["parts"]]
    await _gather(parts, lambda x: work(*x, may_decline=True), "store work")
    again = await _routed_again(world, sorted(declined))
    counts["routed_again"] = len(again)
    await _gather(again, lambda x: work(*x, may_decline=False), "routed again")
    report["store_work"] = counts


async def _routed_again(world: World, order_ids: list[str], timeout: float = 10.0) -> list[tuple[str, str, str]]:
    """The declined orders' new parts, once the service's timer has routed them."""
    deadline = time.monotonic() + timeout
    while True:
        now = [r for r in await asyncio.gather(*(world.ask("o2o.orders.status", GetOrder(o)) for o in order_ids)) if r]
        if all(r["status"] != "placed" for r in now) or time.monotonic() > deadline:
            return [(r["order_id"], r["mode"], p["node"]) for r in now for p in r["parts"] if p["status"] == "routed"]
        await asyncio.sleep(0.2)


async def _counter_sales(world: World, network: Network, rng: random.Random, members: list[str], tag: str,
                         report: dict) -> None:
    """Tills sell from the same stock the online orders take from."""
    stores = [n.id for n in network.nodes if n.kind == "store"]
    shelf = {node: sorted(s for s, q in stock.items() if q > 0) for node, stock in network.stock.items()}

    async def one(i: int) -> bool:
        node = rng.choice(stores)
        sku = rng.choice(shelf.get(node) or [s.id for s in network.skus])
        sale = SellOverCounter(node=node, sale_id=f"{tag}-pos{i}", lines=[Line(sku, rng.randint(1, 3))],
                               member=rng.choice(members) if members and rng.random() < 0.4 else None)
        return await world.ask("o2o.pos.sale", sale) is not None

    report["pos_sales"] = sum(await _gather(list(range(40)), one, "POS sales"))


async def _redeem(world: World, members: list[str], tag: str, report: dict) -> None:
    """Members with enough points take a gift."""
    redeemed = 0
    for member in members:
        m = await world.ask("o2o.members.get", {"member": member})
        if m and m["points"] >= 20:
            if await world.ask("o2o.members.redeem", RedeemPoints(member, 20, gift="tote bag", ref=f"{tag}-{member}")):
                redeemed += 1
    report["redeemed"] = redeemed


async def _gather(items: list, fn: Any, desc: str) -> list:
    with tqdm(total=len(items), desc=desc, unit="req") as bar:
        async def one(item: Any) -> Any:
            try:
                return await fn(item)
            finally:
                bar.update()

        return await asyncio.gather(*(one(i) for i in items))


async def _published(nc: Any, engine: Engine, service: O2OService, timeout: float = 10.0) -> None:
    """Waits until the event stream holds every stored event and the
    publisher has had the stream's ack for the last of them."""
    js = nc.jetstream()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stored = engine.last_notification_id()
        info = await js.stream_info(EVENTS_STREAM)
        acked = service.publisher.last if service.publisher else stored
        if info.state.last_seq and info.state.messages >= stored and acked >= stored:
            return
        await asyncio.sleep(0.05)


def _pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


def _summary(engine: Engine, report: dict, service: O2OService) -> None:
    kpis = engine.readmodels.kpis()
    replies = report["decisions"]
    kinds = {n.id: n.kind for n in engine.network.nodes}
    first = [r["first_decision"] or {"outcome": r["status"], "parts": r["parts"], "reason": r["reason"]}
             for r in replies]
    outcomes = Counter(d["outcome"] for d in first)
    by_kind = Counter(kinds[p["node"]] for d in first for p in d["parts"])
    split = sum(1 for d in first if len(d["parts"]) > 1)
    work = report["store_work"]
    lat = report["latencies"]
    print("\nwhat happened")
    print(f"  orders       {len(replies)} decided: {report.get('intake', 0)} came through the JetStream intake "
          f"({report.get('intake_duplicates', 0)} repeat dropped by Nats-Msg-Id), the rest by request/reply")
    print(f"  decisions    routed {outcomes.get('routed', 0)} (split over two nodes or more: {split}), "
          f"rejected {outcomes.get('rejected', 0)}")
    print("  served by    " + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())))
    if lat:
        print(f"  reply time   p50 {_pct(lat, 0.5):.0f} ms, p99 {_pct(lat, 0.99):.0f} ms "
              f"({len(lat)} submits, {IN_FLIGHT} in flight, micro-batches of {service.worker.batching.window_ms:.0f} ms)")
    print(f"  store work   accepted {work['accepted']}, declined {work['declined']} "
          f"(parts routed again to another node: {work['routed_again']})")
    print(f"  counter      {report['pos_sales']} POS sales from the same stock")
    print(f"  members      {report['members']} signed up in stores, {report['redeemed']} redeemed points")
    example = next((r for r in replies if r["status"] != "rejected" and r["explanation"]), None)
    if example:
        print(f"  example      {example['external_id']}: {example['explanation']}")
    rejected = next((d for d in first if d["outcome"] == "rejected"), None)
    if rejected:
        print(f"  a rejection  {rejected['reason']}")
    if report["errors"]:
        print("  refused      " + ", ".join(f"{subject} {code}: {n}" for (subject, code), n in report["errors"].items()))
    published = service.publisher.last if service.publisher else 0
    print(f"  events       {engine.last_notification_id()} stored, {published} published on o2o.events.> "
          f"(stream {EVENTS_STREAM})")
    print("\nKPIs from the read models (whole store)")
    print(f"  orders {kpis['orders']}: " + ", ".join(f"{k} {v}" for k, v in kpis["orders_by_status"].items()))
    print(f"  fill rate {_share(kpis['fill_rate'])}, on time {_share(kpis['on_time_rate'])}, "
          f"split {_share(kpis['split_rate'])}, kitchen share {_share(kpis['kitchen_share'])}, "
          f"reroutes {kpis['reroutes']}")
    aov, net = kpis["average_order_value"], engine.network

    def money(minor: int) -> str:
        return f"{minor / 10 ** net.minor_units:,.{net.minor_units}f} {net.currency}"

    print(f"  average order value {money(aov)}" if aov is not None else "  no order completed yet",
          f"| POS {kpis['pos_sales']} sales, {kpis['pos_units']} units "
          f"| members signed up {sum(kpis['members_by_node'].values())}")
    print(f"  revenue kept online {money(kpis['online_revenue'])} (refunded {money(kpis['online_refunds'])}), "
          f"at the counter {money(kpis['pos_revenue'])}; points members hold {kpis['points_liability']:,}")
    period = period_of(engine.clock.now(), net.timezone)
    statements = engine.handle(GetStatement(period=period)).statements
    if statements:
        by_role = Counter({})
        for st in statements:
            by_role[st.party.split(":")[0]] += st.total
        top = max(statements, key=lambda st: st.total)
        print(f"  benefit {period}: {money(sum(by_role.values()))} credited to {len(statements)} parties ("
              + ", ".join(f"{role} {money(v)}" for role, v in by_role.items()) + f"); top {top.party} {money(top.total)}")


def _share(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"
