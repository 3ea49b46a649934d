"""`o2o bench store`: the event store under the engine's own events.

1. Build: the simulations' big day (600 nodes x 2,000 SKUs, orders in
   micro-batches, nodes accepting and reporting progress, counter sales,
   replenishment) runs the real engine on a SQLite store; every save's size
   is recorded. The store is kept and reused by later runs (--rebuild).
2. Writes: the stored events are saved again into an empty store on each
   backend, in the engine's own saves (events/s per save size, the snapshots
   the library takes after them timed apart) and at fixed batch sizes.
3. Replay: a fresh process opens the engine over each store as on a restart
   (the read models rebuilt from every stored event), then loads every node
   inventory with snapshots and without; its peak memory is recorded.
"""
# The package, one module per part: build (the simulated day's store and its
# save sizes), stores (empty SQLite and PostgreSQL stores), writes, replay
# (fetch and decode rates; restarts in fresh processes, which run restart.py),
# results (the targets, the table and the plot).
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
from tqdm import tqdm

from benchmarks.procstat import memory_bytes
from benchmarks.store.build import build
from benchmarks.store.replay import replay
from benchmarks.store.results import plot, table, targets
from benchmarks.store.stores import check_postgres, drop_schemas, new_store
from benchmarks.store.writes import SNAPSHOT_INTERVAL, fixed_count, writes
from domain.errors import InvalidInput

ORDERS = 130_000  # the big day's online orders: 125,000 stored 973,646 events, this passes 1,000,000
QUICK_ORDERS = 10_000  # about 80,000 events: enough for a replay rate, the whole run in about a minute
QUICK_NODES, QUICK_SKUS = 200, 500
POSTGRES = "postgres://postgres@127.0.0.1:5432/test"
BATCH_SIZES = (1, 10, 100, 1000)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("store", help="event-store writes and replay on SQLite and PostgreSQL",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, help=f"online orders in the simulated day (default {ORDERS:,}; "
                                              f"--quick {QUICK_ORDERS:,})")
    p.add_argument("--backends", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    p.add_argument("--postgres", default=POSTGRES, help="server and database; the benchmark makes (and drops) "
                                                        "schemas of its own")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES),
                   help="fixed batch sizes for writes (events per save)")
    p.add_argument("--write-sample", type=int, default=100_000,
                   help="events written at each fixed batch size (fewer for small batches)")
    p.add_argument("--repeat", type=int, help="engine restarts per store and snapshot setting "
                                                          "(the median is reported; --quick 1)")
    p.add_argument("--nodes", type=int, help=f"nodes in the generated city (default 600; --quick {QUICK_NODES})")
    p.add_argument("--skus", type=int, help=f"SKUs in the generated city (default 2,000; --quick {QUICK_SKUS})")
    p.add_argument("--quick", action="store_true", help=f"a city of {QUICK_NODES} nodes x {QUICK_SKUS} SKUs, "
                                                        f"{QUICK_ORDERS:,} orders, one restart each")
    p.add_argument("--rebuild", action="store_true", help="build the SQLite store again even if one is kept")
    p.add_argument("--keep", action="store_true", help="keep the PostgreSQL schemas written (they are dropped)")
    p.add_argument("--store-dir", default=str(Path(tempfile.gettempdir()) / "o2o-bench-store"),
                   help="where the built store is kept for later runs (about 1 GB at full size)")
    p.add_argument("--out", default="bench-results", help="folder for store.json and store.png")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        orders, nodes, skus, repeat = _check(args)
    except InvalidInput as e:
        print(f"o2o bench store: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    folder = Path(args.store_dir) / f"{nodes}x{skus}-{orders}"
    load_before = os.getloadavg()
    t_run, c_run = time.perf_counter(), time.process_time()
    built = build(folder, orders, nodes, skus, args.rebuild)
    report: dict[str, Any] = {
        "parameters": {"orders": orders, "nodes": nodes, "skus": skus, "quick": args.quick, "repeat": repeat,
                       "backends": args.backends,
                       "batch_sizes": args.batch_sizes, "write_sample": args.write_sample,
                       "snapshot_interval": SNAPSHOT_INTERVAL, "page": 2000},
        "store": built, "writes": {}, "replay": {},
    }
    schemas: list[str] = []
    try:
        fixed = sum(fixed_count(built["events"], args.write_sample, b) for b in args.batch_sizes)
        # per backend: the engine's saves, the fixed batches, then passes over the store (fetch, decode, restarts)
        total = len(args.backends) * (built["events"] * (3 + 2 * repeat) + fixed)
        with tqdm(total=total, desc="store bench", unit="event", unit_scale=True) as bar:
            source = f"sqlite:///{folder / 'events.db'}"
            for backend in args.backends:
                new = new_store(backend, folder, args.postgres, schemas)
                report["writes"][backend] = writes(source, new, built["saves"], args.batch_sizes, args.write_sample,
                                                   lambda: new_store(backend, folder, args.postgres, schemas), bar)
                # SQLite replays the engine's own store; PostgreSQL the copy the writes made
                replayed = source if backend == "sqlite" else new
                report["replay"][backend] = replay(replayed, folder / "network.json", repeat, bar)
    finally:
        if not args.keep:
            drop_schemas(args.postgres, schemas)
        for f in folder.glob("written-*.db*"):
            f.unlink()
    from benchmarks.solver import machine  # OR-Tools: not in the replay processes, which import this module

    report["machine"] = {**machine(), "load_average_before": load_before, "load_average_after": os.getloadavg()}
    # this process: the build (when not reused), the writes and the fetches; the restarts run in their own
    report["bench_process"] = {"seconds": round(time.perf_counter() - t_run, 1),
                               "cpu_seconds": round(time.process_time() - c_run, 1), "peak_rss_bytes": memory_bytes("VmHWM")}
    report["targets"] = targets(report)
    out.mkdir(parents=True, exist_ok=True)
    (out / "store.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    table(report)
    plot(report, out / "store.png")
    print(f"\nwrote {out / 'store.json'} and {out / 'store.png'}")
    return 0


def _check(args: argparse.Namespace) -> tuple[int, int, int, int]:
    """Orders, nodes, SKUs and restarts, once the options are known to be usable."""
    orders = args.orders if args.orders is not None else (QUICK_ORDERS if args.quick else ORDERS)
    nodes = args.nodes if args.nodes is not None else (QUICK_NODES if args.quick else 600)
    skus = args.skus if args.skus is not None else (QUICK_SKUS if args.quick else 2000)
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    for name, value, least in (("--orders", orders, 1), ("--nodes", nodes, 2), ("--skus", skus, 1),
                               ("--repeat", repeat, 1), ("--batch-sizes", min(args.batch_sizes), 1),
                               ("--write-sample", args.write_sample, 1)):
        if value < least:
            raise InvalidInput(name, f"must be at least {least}, got {value}")
    if "postgres" in args.backends:
        check_postgres(args.postgres)
    return orders, nodes, skus, repeat
