"""`o2o bench scaleout`: the insert ceiling of the shared events table
(issue 16, docs/scale-out.md). With W = 1, 2, 4 writer processes, each
writes B-event transactions through the engine's PostgreSQL recorder for
the same S seconds, starting together; into one shared table (as several
engines on one store) and, for comparison, into a table each (a schema
each). Tables are new for every run. Meanwhile the parent samples
pg_stat_activity for backends waiting on a lock (the recorder's LOCK TABLE).

Reports events/s and transactions/s (all writers together), commit p50/p99
per writer, the writers' CPU seconds per 1,000 events, and the mean number
of writers waiting on the lock. The PostgreSQL server runs on the same
machine: on 2 cores it competes with the writers.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from benchmarks.store.stores import _pg, check_postgres, drop_schemas, new_store
from domain.errors import InvalidInput

POSTGRES = "postgres://postgres@127.0.0.1:5432/test"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scaleout", help="insert ceiling of the shared events table with 1, 2, 4 writer processes",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--writers", type=int, nargs="+", default=[1, 2, 4], help="writer processes per run")
    p.add_argument("--batch", type=int, nargs="+", default=[50], help="events per transaction")
    p.add_argument("--seconds", type=float, default=10.0, help="each run's length")
    p.add_argument("--state-bytes", type=int, default=300, help="size of each event's stored state")
    p.add_argument("--tables", nargs="+", choices=["shared", "own"], default=["shared", "own"],
                   help="one shared table, or a table per writer")
    p.add_argument("--postgres", default=POSTGRES, help="server and database (no schema: the bench makes its own)")
    p.add_argument("--repeat", type=int, default=1,
                   help="rounds; the runs of a round are interleaved so load from elsewhere falls on all alike, "
                        "and each setting's median round is reported")
    p.add_argument("--quick", action="store_true", help="2 s runs")
    p.add_argument("--out", default="bench-results", help="folder for scaleout.json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        for name in ("writers", "batch"):
            if min(getattr(args, name)) < 1:
                raise InvalidInput(f"--{name}", "expected int >= 1")
        if args.repeat < 1:
            raise InvalidInput("--repeat", "expected int >= 1")
        if args.seconds <= 0:
            raise InvalidInput("--seconds", "expected a number > 0")
        check_postgres(args.postgres)
    except InvalidInput as e:
        print(f"o2o bench scaleout: {e}", file=sys.stderr)
        return 2
    seconds = 2.0 if args.quick else args.seconds
    load_before = os.getloadavg()
    commit = commit_ms(args.postgres)
    print(f"a bare one-row INSERT + COMMIT from this process: p50 {commit['p50']} ms, p99 {commit['p99']} ms "
          f"(the WAL flush every transaction waits for)", flush=True)
    runs: list[dict] = []
    settings = [(b, t, w) for b in args.batch for t in args.tables for w in args.writers]
    for round_ in range(args.repeat):
        for batch, tables, w in settings:
            result = one_run(args.postgres, tables, w, batch, seconds, args.state_bytes)
            runs.append({**result, "round": round_ + 1, "load_average": os.getloadavg()[0]})
            _line(result, f"round {round_ + 1}  ")
    medians = []
    for batch, tables, w in settings:
        mine = sorted((r for r in runs if (r["batch"], r["tables"], r["writers"]) == (batch, tables, w)),
                      key=lambda r: r["events_per_s"])
        medians.append({**mine[len(mine) // 2], "all_events_per_s": [r["events_per_s"] for r in mine]})
    if args.repeat > 1:
        print("\nmedian round of each:")
        for m in medians:
            _line(m, "")
    from benchmarks.solver import machine

    report: dict[str, Any] = {
        "parameters": {"writers": args.writers, "batch": args.batch, "seconds": seconds,
                       "state_bytes": args.state_bytes, "tables": args.tables},
        "machine": {**machine(), "load_average_before": load_before, "load_average_after": os.getloadavg(),
                    "postgres": _server_version(args.postgres), "bare_commit_ms": commit},
        "medians": medians, "runs": runs,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaleout.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    print(f"\nwrote {out / 'scaleout.json'} (commit {report['machine']['git_commit']}, load "
          f"{load_before[0]:.1f} before, {report['machine']['load_average_after'][0]:.1f} after)")
    return 0


def _line(r: dict, head: str) -> None:
    print(f"{head}{r['tables']:>6} table(s)  writers {r['writers']}  batch {r['batch']:>4}:  {r['events_per_s']:>8,} "
          f"events/s  {r['transactions_per_s']:>7,} tx/s  p50 {r['p50_ms']:>6} ms  p99 {r['p99_ms']:>6} ms  lock "
          f"waiters {r['lock_waiters_mean']:.2f}  writer CPU {r['writer_cpu_s_per_1000_events']} s/1,000 events",
          flush=True)


def one_run(postgres: str, tables: str, writers: int, batch: int, seconds: float, state_bytes: int) -> dict:
    from engine.store.eventlog import EventLog

    schemas: list[str] = []
    folder = Path(tempfile.gettempdir())
    try:
        stores = [new_store("postgres", folder, postgres, schemas) for _ in range(1 if tables == "shared" else writers)]
        for store in stores:  # tables made by one process: several at once fail ('tuple concurrently updated')
            EventLog(store).close()
        start_at = time.time() + 2.0 + 0.2 * writers  # every writer imported and connected by then
        procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.scaleout.writer", stores[i % len(stores)],
                                   str(batch), str(seconds), str(start_at), str(state_bytes)],
                                  stdout=subprocess.PIPE, text=True) for i in range(writers)]
        waiters = _sample_lock_waits(postgres, schemas, start_at, seconds)
        results = []
        for p in procs:
            out, _ = p.communicate(timeout=seconds + 120)
            if p.returncode != 0:
                raise SystemExit(f"o2o bench scaleout: a writer failed ({p.returncode})")
            results.append(msgspec.json.decode(out.strip().splitlines()[-1]))
    finally:
        drop_schemas(postgres, schemas)
    events = sum(r["events"] for r in results)
    tx = sum(r["transactions"] for r in results)
    return {"tables": tables, "writers": writers, "batch": batch, "seconds": seconds, "events": events,
            "events_per_s": round(events / seconds), "transactions_per_s": round(tx / seconds),
            "p50_ms": round(sorted(r["p50_ms"] for r in results)[len(results) // 2], 2),
            "p99_ms": max(r["p99_ms"] for r in results),
            "writer_cpu_s_per_1000_events": round(sum(r["cpu_seconds"] for r in results) / events * 1000, 4),
            "lock_waiters_mean": waiters, "per_writer": results}


def _sample_lock_waits(postgres: str, schemas: list[str], start_at: float, seconds: float) -> float:
    """Mean number of this run's backends waiting on a lock, sampled every 50 ms during the run."""
    samples: list[int] = []
    like = [f"%{s}%" for s in schemas]

    def sample() -> None:
        with _pg(postgres) as conn:
            time.sleep(max(0.0, start_at - time.time()))
            end = time.time() + seconds
            while time.time() < end:
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                   "AND query LIKE ANY(%s)", (like,)).fetchone()
                samples.append(row[0])
                time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t.join(seconds + start_at - time.time() + 30)
    return round(sum(samples) / len(samples), 3) if samples else 0.0


def commit_ms(postgres: str, n: int = 200) -> dict[str, float]:
    """Latency of a one-row INSERT + COMMIT into a logged table: the floor under every writer's transaction."""
    schemas: list[str] = []
    try:
        new_store("postgres", Path(tempfile.gettempdir()), postgres, schemas)
        with _pg(postgres) as conn:
            conn.autocommit = False
            conn.execute(f"CREATE TABLE {schemas[0]}.probe (x int)")
            conn.commit()
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                conn.execute(f"INSERT INTO {schemas[0]}.probe VALUES (1)")
                conn.commit()
                times.append((time.perf_counter() - t0) * 1000)
    finally:
        drop_schemas(postgres, schemas)
    times.sort()
    return {"p50": round(times[n // 2], 2), "p99": round(times[int(n * 0.99)], 2)}


def _server_version(postgres: str) -> str:
    with _pg(postgres) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]
