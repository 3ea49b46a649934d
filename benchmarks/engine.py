"""`o2o bench engine`: what an order costs the engine alone, in process.

The same orders as `o2o bench load` (the simulations' demand generator on
the scenario's roomy network), submitted straight to `Engine.submit_batch`
in fixed batches on a fresh SQLite store: no NATS, no event loop, no
threads. The garbage collector runs as in `o2o serve` (engine.memory:
what was built at start frozen, no full collections), so the figure is
what the served engine pays. CPU microseconds per order (this process's
CPU time), the median of --repeat runs, each on a fresh engine and store. The figure to compare
before and after a change on the order path; bench load gives the
process's whole cost. Each batch's wall time is reported too (median, p99,
max): what a stall in the engine's thread costs the orders of its batch.
With --complete every routed order is also taken to hand-over after its
batch, so the figure is an order's whole life, and what a finished order
leaves behind (its record, until --retain-hours) weighs on the next."""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.load.plan import SCENARIO, demand, roomy
from benchmarks.solver import machine


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("engine", help="CPU per order of the engine alone (no NATS), in fixed batches",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=20_000, help="orders per run (default 20,000)")
    p.add_argument("--batch", type=int, default=200, help="orders per submit_batch (default 200)")
    p.add_argument("--repeat", type=int, default=3, help="runs, each on a fresh engine (default 3)")
    p.add_argument("--complete", action="store_true",
                   help="take every routed order to hand-over after its batch (counted in the CPU per order)")
    p.add_argument("--retain-hours", type=float, default=None,
                   help="engine.retain_finished_hours (default: the configured 72; the bench's orders finish in seconds)")
    p.add_argument("--scenario", default=str(SCENARIO), help="scenario whose network and demand are used")
    p.add_argument("--out", default="bench-results", help="folder for engine.json")
    p.set_defaults(func=run)


def build(network: Any, store: str, engine: dict[str, Any] | None = None) -> Any:
    """The engine as the benches run it: no order waits long enough for a node's answer to expire.
    `engine`: other engine settings (config.EngineSettings' fields)."""
    from adapters.bootstrap import build_engine
    from engine.config import Config

    settings = {"accept_timeout_s": 86_400.0, **(engine or {})}
    return build_engine(Config().with_overrides({"engine": settings, "store": {"url": store}}), network=network)


def one_run(network: Any, orders: list[Any], batch: int, store: str, warm: int = 0,
            mark: Any = None, each: Any = None, settings: dict[str, Any] | None = None) -> dict[str, float]:
    """The orders after the first `warm` (submitted first in one batch, not timed) in
    batches; `mark("start")` and `mark("stop")` are called around them (benchmarks.engine_ir,
    benchmarks.held), `each(engine, batch, replies)` after each batch (benchmarks.held);
    `settings`: engine settings over the bench's."""
    from engine.memory import kept_long_lived

    engine = build(network, store, settings)
    collector = _Collections()
    with kept_long_lived():  # as `o2o serve` does once its engine is up
        try:
            if warm:
                engine.submit_batch(orders[:warm])
                orders = orders[warm:]
            if mark:
                mark("start")
            gc.callbacks.append(collector)
            batches = []  # each batch's wall time: a stall (a checkpoint, a collection) holds every order of it
            progress = []  # (orders done, CPU so far) after each batch
            cpu_start, wall = time.process_time(), time.perf_counter()
            for i in range(0, len(orders), batch):
                began = time.perf_counter()
                chunk = orders[i:i + batch]
                replies = engine.submit_batch(chunk)
                if each is not None:
                    each(engine, chunk, replies)
                batches.append(time.perf_counter() - began)
                progress.append((min(i + batch, len(orders)), time.process_time()))
            cpu, wall = time.process_time() - cpu_start, time.perf_counter() - wall
            if mark:
                mark("stop")
        finally:
            if collector in gc.callbacks:  # (a failed batch must not leave it timing the caller's collections)
                gc.callbacks.remove(collector)
            engine.close()
    n = max(len(orders), 1)
    return {"cpu_us_per_order": round(cpu / n * 1e6, 1), "wall_us_per_order": round(wall / n * 1e6, 1),
            "gc_us_per_order": round(collector.seconds / n * 1e6, 1), "gc_collections": collector.count,
            "gc_longest_ms": round(collector.longest * 1e3, 1),
            "cpu_us_per_order_by_fifth": by_fifth(progress, cpu_start),
            "batch_ms": {"median": round(statistics.median(batches) * 1e3, 1) if batches else 0.0,
                         "p99": round(float(np.percentile(batches, 99)) * 1e3, 1) if batches else 0.0,
                         "max": round(max(batches, default=0.0) * 1e3, 1)}}


def completing(cmds: list[Any], replies: list[Any]) -> tuple[list[Any], int]:
    """The commands taking each routed order of a batch to hand-over at every node it was routed to,
    and how many parts they complete."""
    from domain import ids
    from domain.commands import STEPS, AcceptOrder, ReportProgress

    out: list[Any] = []
    parts = 0
    for cmd, reply in zip(cmds, replies):
        if getattr(reply, "status", None) != "routed":
            continue
        oid = str(ids.order_id(cmd.channel, cmd.external_id))
        for part in reply.parts:
            parts += 1
            out.append(AcceptOrder(order_id=oid, node=part.node))
            out.extend(ReportProgress(order_id=oid, step=step, node=part.node) for step in STEPS[cmd.mode])
    return out, parts


def take_to_hand_over(engine: Any, chunk: list[Any], replies: list[Any]) -> int:
    """Each routed order of a batch taken to hand-over; how many parts that completed."""
    steps, parts = completing(chunk, replies)
    errors = [e for e in engine.handle_many(steps) if e is not None]
    if errors:
        raise RuntimeError(f"taking orders to hand-over failed: {errors[:3]}")
    return parts


def by_fifth(progress: list[tuple[int, float]], start: float) -> list[float]:
    """CPU us per order in each fifth of the orders (at the batches closest
    after each fifth's end): an order costs more the more the store and the
    open orders already hold (benchmarks/README.md)."""
    if not progress:
        return []
    total, out, done, cpu = progress[-1][0], [], 0, start
    for k in range(1, 6):
        n, at = next(p for p in progress if p[0] >= total * k // 5)
        if n > done:
            out.append(round((at - cpu) / (n - done) * 1e6, 1))
            done, cpu = n, at
    return out


class _Collections:
    """The collector's time (wall: it holds the one thread) as gc.callbacks report it."""

    def __init__(self) -> None:
        self.seconds, self.count, self.longest, self._start = 0.0, 0, 0.0, 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            took = time.perf_counter() - self._start
            self.seconds, self.count, self.longest = self.seconds + took, self.count + 1, max(self.longest, took)


def run(args: argparse.Namespace) -> int:
    network, orders = demand(args.scenario, args.orders)
    network = roomy(network, orders)
    runs = []
    for k in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="o2o-bench-engine-") as tmp:
            load = Path("/proc/loadavg").read_text().split()[0]
            r = one_run(network, orders, args.batch, f"sqlite:///{tmp}/events.db",
                        each=take_to_hand_over if args.complete else None,
                        settings={"retain_finished_hours": args.retain_hours} if args.retain_hours else None)
            r["load_before"] = float(load)
            runs.append(r)
            print(f"run {k + 1}: {r['cpu_us_per_order']} us CPU per order, {r['wall_us_per_order']} us wall, "
                  f"collector {r['gc_us_per_order']} us in {r['gc_collections']} collections (longest "
                  f"{r['gc_longest_ms']} ms), batches median / p99 / max {r['batch_ms']['median']} / "
                  f"{r['batch_ms']['p99']} / {r['batch_ms']['max']} ms, by fifth of the orders "
                  f"{' / '.join(str(x) for x in r['cpu_us_per_order_by_fifth'])} us (load {load})", flush=True)
    report = {"machine": machine(), "orders": args.orders, "batch": args.batch, "scenario": args.scenario,
              "complete": args.complete, "retain_hours": args.retain_hours,
              "runs": runs, "median_cpu_us_per_order": statistics.median(r["cpu_us_per_order"] for r in runs)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "engine.json").write_text(json.dumps(report, indent=2))
    print(f"engine alone: median {report['median_cpu_us_per_order']} us CPU per order over {args.repeat} runs "
          f"of {args.orders} orders in batches of {args.batch} (a fixed Python loop in "
          f"{report['machine']['python_loop_s']} s: solver.python_loop_s); wrote {out / 'engine.json'}")
    return 0
