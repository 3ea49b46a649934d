"""`o2o bench quotes`: quote latency at a fixed rate against the big day's
network (570 stores and 30 kitchens, 2,000 SKUs), and the CPU a quote costs.

Starts a nats-server and `o2o serve` on that network (open all day, its
stock and capacity as generated), then drives `o2o.orders.quote` with the
open-loop generator of `o2o bench load` (benchmarks/loadgen.py): carts
and addresses of the scenario's own orders, each quote due at a fixed
time whatever the replies do, latency taken from its due time. Reports
p50/p90/p99/max, errors, and the engine process's CPU per quote (the
machine is shared: wall-clock latency moves with its load, CPU less so).
Then, in this process, the engine alone answers the same carts in batches
of 1, 10, 50 and 200: CPU per quote by batch size, without NATS."""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
from tqdm import tqdm

from benchmarks.load.figures import summary
from benchmarks.load.plan import Plan, demand
from benchmarks.load.processes import drive, engine_served, serve_arguments
from benchmarks.solver import machine
from domain.commands import QuoteOrder
from domain.network import Network, Window
from engine.store.network_file import dump_network

SCENARIO = Path(__file__).resolve().parents[1] / "simulations" / "scenarios" / "big-day.toml"
QUOTE = "o2o.orders.quote"
P99_TARGET_MS = 20.0
BATCHES = (1, 10, 50, 200)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quotes", help="quote latency at a fixed rate on the big day's network, CPU per quote",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=int, default=1000, help="offered quotes/s (default 1000)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of the main run (default 30)")
    p.add_argument("--scenario", default=str(SCENARIO), help="scenario whose network and orders are used")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds a quote may wait for its reply")
    p.add_argument("--quick", action="store_true", help="5 s, and the in-process part on fewer carts")
    p.add_argument("--out", default="bench-results", help="folder for quotes.json")
    # what `o2o serve` is started with (benchmarks/load/processes.py reads these)
    serve_arguments(p)
    p.set_defaults(func=run)


def open_all_day(network: Network) -> Network:
    """The network as generated, open all day: the figures do not depend on the hour the benchmark runs."""
    return msgspec.structs.replace(network, nodes=[msgspec.structs.replace(n, hours=[Window("00:00", "24:00")])
                                                   for n in network.nodes])


def carts(orders: list[Any]) -> list[QuoteOrder]:
    """Each order's cart as a quote: at its address every way (delivery and pickup nearby), a pickup order's at its store."""
    return [QuoteOrder(lines=o.lines, lat=o.lat, lon=o.lon) if o.lat is not None else
            QuoteOrder(lines=o.lines, pickup_node=o.pickup_node, modes="pickup") for o in orders]


def run(args: argparse.Namespace) -> int:
    if args.quick:
        args.seconds = 5.0
    warm = Plan("warm-up", QUOTE, min(args.rate, 500), 3.0)
    main = Plan("main", QUOTE, args.rate, args.seconds)
    n = warm.count + main.count
    print(f"drawing {n:,} carts from {Path(args.scenario).name}", flush=True)
    base, orders = demand(args.scenario, n)
    network = open_all_day(base)
    quotes = carts(orders)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="o2o-bench-quotes-") as tmp:
        folder = Path(tmp)
        network_file = folder / "network.json"
        dump_network(network, network_file)
        runs = over_nats(args, [warm, main], quotes, network_file, folder)
    load_nats = os.getloadavg()
    alone = in_process(network, quotes[: 1000 if args.quick else 4000])
    report = {
        "machine": {**machine(), "load_average_before": load_before, "load_average_after_nats_run": load_nats,
                    "load_average_after": os.getloadavg()},
        "parameters": {"scenario": Path(args.scenario).name, "nodes": len(network.nodes), "skus": len(network.skus),
                       "rate": args.rate, "seconds": args.seconds, "p99_target_ms": P99_TARGET_MS,
                       "window_ms": args.window_ms, "max_batch": args.max_batch, "solver": args.solver},
        "runs": runs,
        "in_process": alone,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "quotes.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    r = runs[-1]
    lat = r["latency_ms"] or {}
    print(f"\n{r['offered_per_s']:,} quotes/s for {r['seconds']:g} s: answered {r['answered']:,}, "
          f"errors {sum(r['errors'].values())}, timeouts {r['timeouts']}; "
          f"p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms (target {P99_TARGET_MS:g}), max {lat.get('max')} ms; "
          f"engine CPU {r['service_cpu_us_per_request']} us per quote; load {load_before[0]:.1f} -> {load_nats[0]:.1f}")
    print("engine alone, CPU per quote by batch size: " +
          ", ".join(f"{b['batch']}: {b['cpu_us_per_quote']} us" for b in alone))
    print(f"wrote {out / 'quotes.json'}")
    ok = not r["errors"] and not r["timeouts"] and lat.get("p99", float("inf")) <= P99_TARGET_MS
    return 0 if ok else 1


def over_nats(args: argparse.Namespace, plans: list[Plan], quotes: list[QuoteOrder], network_file: Path,
              folder: Path) -> list[dict[str, Any]]:
    runs = []
    with engine_served(args, network_file, folder) as (server, proc):
        offset = 0
        with tqdm(total=sum(p.seconds for p in plans), desc="bench quotes", unit="s", mininterval=1.0) as bar:
            for plan in plans:
                batch = quotes[offset:offset + plan.count]
                offset += plan.count
                result, usage = drive(server.url, plan, [msgspec.json.encode(q) for q in batch], args.timeout,
                                      proc.pid, server, folder, bar)
                r = summary(plan, result, usage)
                r.pop("sustained")  # bench load's target (250 ms), not this one's
                r["per_second"] = r["per_second"][:120]
                runs.append(r)
    return runs


def in_process(network: Network, quotes: list[QuoteOrder]) -> list[dict[str, Any]]:
    """CPU per quote of the engine alone (memory store, the clock held at noon), by batch size."""
    from engine.app import Engine
    from engine.clock import SimClock

    engine = Engine(network, clock=SimClock(1_767_225_600.0 + 4 * 3600)).start()
    try:
        engine.quote_batch(quotes[:50])  # warm caches
        out = []
        for size in BATCHES:
            todo = quotes[: max(size * 20, min(len(quotes), 1000))]
            c0, t0 = time.process_time(), time.perf_counter()
            for i in range(0, len(todo), size):
                engine.quote_batch(todo[i:i + size])
            cpu, wall = time.process_time() - c0, time.perf_counter() - t0
            out.append({"batch": size, "quotes": len(todo), "cpu_us_per_quote": round(cpu / len(todo) * 1e6, 1),
                        "wall_us_per_quote": round(wall / len(todo) * 1e6, 1)})
        return out
    finally:
        engine.close()
