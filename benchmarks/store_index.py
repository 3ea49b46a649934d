"""What SQLite costs the engine's process per order on the order path, and
how much of it the table's primary key takes (issue 19).

`python -m benchmarks.store_index` runs the engine as `o2o bench engine`
does (the bench's roomy network and orders, batches of --batch) and keeps
the rows of each save. Then it writes those saves again, in the same
order and sizes, into fresh SQLite stores made as the engine makes them
(WAL, the library's synchronous=FULL, the engine's far autocheckpoint and
`o2o serve`'s checkpointer copying the log from its own thread every
0.25 s), one save every --pace-ms (between two saves the engine's thread
routes and applies the next batch, and the caches cool): the insert and
the commit timed in CPU time of the writing thread, the checkpoints as
the rest of the process's CPU, per order. Variants: the library's table
(PRIMARY KEY (originator_id, originator_version)); the same with the
orders' ids hashed, as every order id was before domain.ids.order_id
ordered them by their digits (then each order's rows landed on a page of
their own in that index); the table without the key; other page sizes,
PRAGMAs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.engine import build
from benchmarks.load.plan import SCENARIO, demand, roomy
from benchmarks.solver import machine
from engine.store.wal import BACKSTOP_PAGES, Checkpointer

KEY = ", PRIMARY KEY (originator_id, originator_version)"


def engine_saves(orders: int, batch: int, scenario: str) -> tuple[list[list[tuple[Any, ...]]], str, str]:
    """The rows of each save the engine made for `orders` orders in batches of `batch` (after a warm
    batch of as many), and its recorder's statements creating the table and inserting into it."""
    from domain.ids import plain_hex

    network, cmds = demand(scenario, batch + orders)
    saves: list[list[tuple[Any, ...]]] = []
    with tempfile.TemporaryDirectory(prefix="o2o-store-index-") as tmp:
        engine = build(roomy(network, cmds), f"sqlite:///{tmp}/events.db")
        engine.submit_batch(cmds[:batch])
        recorder = engine.recorder
        insert = recorder.insert_events

        def kept(stored: list[Any], **kwargs: Any) -> Any:
            saves.append([(plain_hex(s.originator_id), s.originator_version, s.topic, bytes(s.state))
                          for s in stored])
            return insert(stored, **kwargs)

        recorder.insert_events = kept
        for i in range(batch, len(cmds), batch):
            engine.submit_batch(cmds[i:i + batch])
        engine.close()
    (create,) = recorder.create_table_statements
    return saves, create, recorder.insert_events_statement


def hashed_order_ids(saves: list[list[tuple[Any, ...]]]) -> list[list[tuple[Any, ...]]]:
    """The saves with each ordered (version-8) order id replaced by a hash of it: ids as random as uuid5's."""
    def h(hex_id: str) -> str:
        return hashlib.sha1(hex_id.encode()).hexdigest()[:32] if hex_id[12] == "8" else hex_id
    return [[(h(a), b, c, d) for a, b, c, d in rows] for rows in saves]


def write(saves: list[list[tuple[Any, ...]]], table: str, insert: str, page_size: int, pace_s: float,
          pragmas: tuple[str, ...] = ()) -> dict[str, float]:
    """The saves written again into a fresh store, one every `pace_s` (the engine's thread does the rest of
    an order's work between them) with the service's checkpointer (engine/store/wal.py) copying the log
    from its own thread: CPU seconds of the insert and the commit (this thread) and of the checkpoints
    (the rest of the process's CPU: nothing else runs meanwhile); the rows the store holds."""
    with tempfile.TemporaryDirectory(prefix="o2o-store-index-") as tmp:
        path = f"{tmp}/events.db"
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute(f"PRAGMA page_size={page_size}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        for pragma in pragmas:
            conn.execute(f"PRAGMA {pragma}")
        conn.execute(table)
        batches = [[(a, b, c, bytearray(d)) for a, b, c, d in rows] for rows in saves]
        cpu = {"insert": 0.0, "commit": 0.0}
        clock = time.thread_time
        log_bytes = 0
        checkpointer = Checkpointer(path)
        process = time.process_time()
        for rows in batches:
            t0 = clock()
            conn.execute("BEGIN")
            conn.executemany(insert, rows)
            t1 = clock()
            conn.execute("COMMIT")
            cpu["insert"] += t1 - t0
            cpu["commit"] += clock() - t1
            log_bytes = max(log_bytes, os.path.getsize(f"{path}-wal"))
            if pace_s:
                time.sleep(pace_s)
        checkpointer.close()
        cpu["checkpoint"] = time.process_time() - process - cpu["insert"] - cpu["commit"]
        size = os.path.getsize(path)
        (written,) = conn.execute("SELECT count(*) FROM stored_events").fetchone()
        conn.close()
    return {**cpu, "db_bytes": size, "log_bytes_max": log_bytes, "rows": written}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=60_000, help="orders the engine routes and stores (default 60,000)")
    p.add_argument("--batch", type=int, default=150, help="orders per batch (default 150, as at 5,000/s)")
    p.add_argument("--pace-ms", type=float, default=25.0,
                   help="ms between saves (default 25: the engine's thread busy with the rest of 150 orders at 5,000/s)")
    p.add_argument("--rounds", type=int, default=3, help="each variant written this often, interleaved (default 3)")
    p.add_argument("--page-sizes", type=int, nargs="+", default=[4096, 2048, 8192])
    p.add_argument("--pragma", nargs="*", default=["cache_size=-262144", "mmap_size=1073741824"],
                   help="a variant of the keyed table per PRAGMA (default: a 256 MiB page cache; a 1 GiB map)")
    p.add_argument("--scenario", default=str(SCENARIO))
    p.add_argument("--out", default="bench-results", help="folder for store-index.json")
    args = p.parse_args(argv)
    print(f"routing and storing {args.orders:,} orders in batches of {args.batch} ...", flush=True)
    saves, keyed, insert = engine_saves(args.orders, args.batch, args.scenario)
    if KEY not in keyed:
        raise SystemExit(f"benchmarks.store_index: the library's table is no longer keyed as measured: {keyed}")
    unkeyed = keyed.replace(KEY, "")
    n_orders, n_rows = args.orders, sum(len(s) for s in saves)
    print(f"{len(saves):,} saves, {n_rows:,} rows ({n_rows / n_orders:.2f} per order)", flush=True)
    ps = args.page_sizes[0]
    variants = [("primary key", keyed, ps, (), saves),
                ("primary key, order ids hashed", keyed, ps, (), hashed_order_ids(saves)),
                ("no key", unkeyed, ps, (), saves)]
    variants += [(f"primary key, pages of {p}", keyed, p, (), saves) for p in args.page_sizes[1:]]
    variants += [(f"primary key, {pragma}", keyed, ps, (pragma,), saves) for pragma in args.pragma]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in variants}
    for r in range(args.rounds):
        for name, table, page_size, pragmas, rows in variants:
            runs[name].append(write(rows, table, insert, page_size, args.pace_ms / 1000, pragmas))
    results = []
    print(f"\n{'table':40s} {'insert':>7s} {'commit':>7s} {'ckpt':>7s} {'total':>7s}  us CPU per order "
          f"(median of {args.rounds})")
    for name, table, page_size, pragmas, _ in variants:
        med = {k: statistics.median(run[k] for run in runs[name]) / n_orders * 1e6
               for k in ("insert", "commit", "checkpoint")}
        total = statistics.median(sum(run[k] for k in ("insert", "commit", "checkpoint")) for run in runs[name])
        med["total"] = total / n_orders * 1e6
        results.append({"variant": name, "page_size": page_size, "keyed": table is keyed, "pragmas": list(pragmas),
                        "us_per_order": {k: round(v, 2) for k, v in med.items()},
                        "runs": runs[name]})
        print(f"{name:40s} {med['insert']:7.1f} {med['commit']:7.1f} {med['checkpoint']:7.1f} {med['total']:7.1f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine(), "orders": n_orders, "batch": args.batch, "rows": n_rows,
              "pace_ms": args.pace_ms, "rounds": args.rounds, "results": results}
    (out / "store-index.json").write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out / 'store-index.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
