"""`o2o bench load --engines N`: the same open-loop load on a 3-node
JetStream cluster and PostgreSQL, served by 1 engine and then by N, each
owning one computed partition of the network (docs/scale-out.md), with
one relay. All of it shares this machine's cores, so total orders/s
cannot show scaling; what can is the CPU each component spends per 1,000
orders (engines, relay, each nats-server, the PostgreSQL backends, the
generator), lock waits (pg_stat_activity sampled every 0.1 s) and write
conflicts per 1,000 orders. The load generator sends every order to
`o2o.orders.submit` through one server, as a client that knows nothing of
partitions: an engine forwards the orders of partitions it does not own
(their share is reported)."""
from __future__ import annotations

import argparse
import os
import re
import threading
from pathlib import Path
from typing import Any

import msgspec

from benchmarks.load.plan import SUBMIT, Plan
from benchmarks.procstat import cpu_seconds
from benchmarks.scaleout.harness import cluster_on_postgres, stop


def run_engines(args: argparse.Namespace, network_file: Path, orders: list[Any], folder: Path) -> dict:
    """One session per engine count (1, then N): warm-up, then the main run; figures per component."""
    counts = [1, args.engines] if args.engines > 1 else [1]
    store = args.store or os.environ.get("O2O_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
    if not store.startswith("postgres"):
        raise SystemExit("o2o bench load --engines: several engines share a PostgreSQL store (--store postgres://...)")
    out = []
    for n in counts:
        here = folder / f"engines-{n}"
        here.mkdir()
        print(f"{n} engine(s): 3 nats-servers, PostgreSQL, relay", flush=True)
        out.append(_session(args, n, store, network_file, orders, here))
        print(_line(out[-1]), flush=True)
    return {"sessions": out, "cpu_per_1000_ratio": _ratio(out)}


def _session(args: argparse.Namespace, n: int, store_url: str, network_file: Path, orders: list[Any],
             folder: Path) -> dict:
    from benchmarks.load.figures import summary
    from benchmarks.load.processes import drive
    from tqdm import tqdm

    with cluster_on_postgres(folder, store_url, n, ttl=12.0, network=network_file) as setup:
        extra = ("--window-ms", str(args.window_ms), "--max-batch", str(args.max_batch), "--solver", args.solver,
                 "--accept-timeout-s", "86400", *args.serve_args.split())
        setup.start_engines({f"e{i + 1}": setup.engine_argv([f"p{i + 1}"], extra=extra) for i in range(n)})
        url = setup.cluster.urls[0]
        rate = args.rate * (n if args.equal_load else 1)
        warm, main = Plan("warm-up", SUBMIT, 500, 2.0), Plan("main", SUBMIT, rate, args.seconds)
        payloads = [msgspec.json.encode(o) for o in orders]
        subjects = _owner_subjects(network_file, n, orders) if args.partition_aware else None
        w, m = slice(0, warm.count), slice(warm.count, warm.count + main.count)
        with tqdm(total=warm.seconds + main.seconds, desc=f"{n} engine(s)", unit="s") as bar:
            drive(url, warm, payloads[w], args.timeout, setup.procs["e1"].pid, None, folder, bar,
                  subjects[w] if subjects else None)
            pids = _pids(setup)
            before = {k: _cpu(p) for k, p in pids.items()}
            locks = _LockSampler(setup.store).start()
            result, usage = drive(url, main, payloads[m], args.timeout, setup.procs["e1"].pid, None, folder, bar,
                                  subjects[m] if subjects else None)
            locks.stop()
            pids.update({k: p for k, p in _pids(setup).items() if k not in pids})  # backends opened meanwhile
            after = {k: _cpu(p) for k, p in pids.items()}
        run = summary(main, result, usage)
        for name in [k for k in setup.procs if k.startswith("e")]:
            stop(setup.procs[name])
        logs = {k: (folder / f"engine-{k}.log").read_text(errors="replace") for k in setup.procs if k.startswith("e")}
    answered = max(1, run["answered"])
    rate = main.rate
    per_1000 = {k: round((after[k] - before.get(k, 0.0)) * 1000 / answered, 3) for k in after}
    groups = {"engines": [v for k, v in per_1000.items() if k.startswith("e")],
              "relay": per_1000.get("relay", 0.0),
              "nats_servers": [v for k, v in per_1000.items() if k.startswith("nats-")],
              "postgres": round(sum(v for k, v in per_1000.items() if k.startswith("pg-")), 3)}
    conflicts = sum(_count(r"(\d+) write conflicts", t) for t in logs.values())
    forwarded = sum(_count(r"(\d+) requests forwarded", t) for t in logs.values())
    return {"engines": n, "partition_aware_client": bool(args.partition_aware), "offered_per_s": rate, "seconds": args.seconds, "answered": answered,
            "throughput_per_s": run["achieved_per_s"], "p99_ms": run["latency_ms"].get("p99"),
            "errors": run["errors"], "timeouts": run["timeouts"],
            "cpu_s_per_1000": per_1000, "cpu_s_per_1000_by_part": groups,
            "generator_cpu_s_per_1000": round(run["generator_cpu_s"] * 1000 / answered, 3),
            "lock_wait_s_per_1000": round(locks.waiting_s * 1000 / answered, 4),
            "conflicts_per_1000": round(conflicts * 1000 / answered, 3),
            "forwarded_share": round(forwarded / answered, 3), "load_average": os.getloadavg()}


def _owner_subjects(network_file: Path, n: int, orders: list[Any]) -> list[str]:
    """Each order's owner subject, as a client that knows the partition map sends it (no forwarding)."""
    from adapters.partition_routes import owner_subject
    from engine.config import PartitionSettings
    from engine.partitions import partition_map
    from engine.store.network_file import load_network

    pmap = partition_map(load_network(network_file), PartitionSettings(count=n))
    region = {node.id: node.region for node in pmap.network.nodes}
    return [owner_subject(pmap.of_region(region[o.pickup_node] if o.pickup_node else pmap.home_region(o.lat, o.lon)),
                          SUBMIT) for o in orders]


def _pids(setup) -> dict[str, int]:
    pids = {name: p.pid for name, p in setup.procs.items() if p.poll() is None}
    pids.update({f"nats-{setup.cluster.server_name(i)}": pid for i, pid in enumerate(setup.cluster.pids()) if pid})
    pids.update({f"pg-{pid}": pid for pid in _backends(setup.store)})
    return pids


def _backends(store: str) -> list[int]:
    """The PostgreSQL backends connected to the store's database (this machine's: their CPU is read from /proc)."""
    rows = _query(store, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                         "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
    return [r[0] for r in rows]


def _query(store: str, sql: str) -> list[tuple]:
    import psycopg

    from engine.store.urls import store_env

    env = store_env(store)
    with psycopg.connect(dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
                         user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None, autocommit=True,
                         connect_timeout=5) as conn:
        return conn.execute(sql).fetchall()


def _cpu(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:  # gone (a backend closed): what it spent is lost to the figure
        return 0.0


class _LockSampler:
    """Backends waiting on a lock, sampled every `every_s`: their sum x every_s approximates the time waited."""

    def __init__(self, store: str, every_s: float = 0.1):
        self.store, self.every_s = store, every_s
        self.waiting_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "_LockSampler":
        self._thread.start()
        return self

    def _run(self) -> None:
        import psycopg

        from engine.store.urls import store_env

        env = store_env(self.store)
        with psycopg.connect(dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
                             user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None,
                             autocommit=True) as conn:
            while not self._stop.wait(self.every_s):
                (n,) = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                    "AND wait_event_type = 'Lock'").fetchone()
                self.waiting_s += n * self.every_s

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _count(pattern: str, text: str) -> int:
    found = re.findall(pattern, text)
    return int(found[-1]) if found else 0


def _ratio(sessions: list[dict]) -> float | None:
    """An engine's CPU per 1,000 of the orders it served, N engines against 1 (goal: within 10%)."""
    if len(sessions) < 2:
        return None
    one = sum(sessions[0]["cpu_s_per_1000_by_part"]["engines"])
    many = sum(sessions[1]["cpu_s_per_1000_by_part"]["engines"])  # all engines' CPU over all orders
    return round(many / one, 3) if one else None


def _line(s: dict) -> str:
    g = s["cpu_s_per_1000_by_part"]
    return (f"  {s['engines']} engine(s): {s['throughput_per_s']}/s answered, p99 {s['p99_ms']} ms, errors "
            f"{s['errors']}, timeouts {s['timeouts']}; CPU s per 1,000 orders: engines {g['engines']}, relay "
            f"{g['relay']}, nats-servers {g['nats_servers']}, PostgreSQL {g['postgres']}; lock waits "
            f"{s['lock_wait_s_per_1000']} s, conflicts {s['conflicts_per_1000']}, forwarded {s['forwarded_share']:.0%} "
            f"per 1,000 orders (load {s['load_average'][0]:.1f})")
