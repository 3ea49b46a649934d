"""`o2o bench travel`: what each travel-time source costs the router per batch.

One batch of 1,000 delivery orders (the solver benchmark's generator:
orders around the stores, peak capacity) is built into its assignment
problem (`engine.routing.candidates.build`: distances, reach, stock, ETA,
cost, the K cheapest) again and again with each source:

- straight: km at the network's speed (the default);
- matrix: a synthetic road matrix (simulations/roads.py) in memory;
- table warm: the HTTP table client (adapters/travel_table.py) with every
  cell of the batch in its cache;
- table cold: the same client with an empty cache, so every distinct cell
  of the batch is asked of the stand-in service (adapters/table_standin.py,
  a process of its own: its CPU is reported apart).

CPU milliseconds of this process per build (the median of --repeat), on
the sample city and on the 600-node benchmark city.
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.procstat import cpu_seconds
from benchmarks.solver import machine


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("travel", help="CPU per 1,000-order batch build for each travel-time source",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=1000, help="orders per batch (default 1,000)")
    p.add_argument("--repeat", type=int, default=15, help="builds per source (default 15; cold: a third)")
    p.add_argument("--cell-m", type=float, default=500.0, help="matrix and table cell size in metres (default 500)")
    p.add_argument("--quick", action="store_true", help="the sample city only")
    p.add_argument("--out", default="bench-results", help="folder for travel.json")
    p.set_defaults(func=run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_ms(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.process_time()
        fn()
        out.append((time.process_time() - t) * 1000)
    return out


def one_city(name: str, network, orders: int, repeat: int, cell_m: float, url: str, server_pid: int) -> dict:
    from adapters.travel_table import TableService
    from benchmarks.instances import make_instance
    from engine.routing.candidates import NodeArrays, build
    from engine.routing.types import RouterSettings
    from engine.travel import STRAIGHT_LINE, Grid, TravelMatrix
    from simulations.roads import road_minutes

    inst = make_instance(orders, "peak", seed=0, network=network)
    settings = RouterSettings()
    grid = Grid.around(network, cell_m)
    ids = [n.id for n in network.nodes]
    matrix = TravelMatrix(grid, ids, road_minutes(network, grid))

    def table(**kw) -> TableService:
        return TableService(grid, url, timeout_s=30, **kw)

    warm = table()
    sources = {"straight": STRAIGHT_LINE, "matrix": matrix, "table warm": warm}
    arrays = {k: NodeArrays.of(network, src) for k, src in sources.items()}
    build(inst.orders, inst.state, settings, arrays["table warm"])  # fills the warm cache
    rows: dict[str, dict] = {}
    for k in sources:
        build(inst.orders, inst.state, settings, arrays[k])  # once before timing
        ms = _cpu_ms(lambda: build(inst.orders, inst.state, settings, arrays[k]), repeat)
        rows[k] = {"cpu_ms": round(statistics.median(ms), 2), "runs": len(ms)}
    cold_ms, server_ms, calls = [], [], []
    for _ in range(max(1, repeat // 3)):
        cold = table()
        nodes = NodeArrays.of(network, cold)
        before = cpu_seconds(server_pid)
        t = time.process_time()
        build(inst.orders, inst.state, settings, nodes)
        cold_ms.append((time.process_time() - t) * 1000)
        server_ms.append((cpu_seconds(server_pid) - before) * 1000)
        calls.append(cold.calls)
    rows["table cold"] = {"cpu_ms": round(statistics.median(cold_ms), 2), "runs": len(cold_ms),
                          "server_cpu_ms": round(statistics.median(server_ms), 2), "calls": calls[0],
                          "cells": int(len(set(grid.cells(*zip(*[(o.lat, o.lon) for o in inst.orders])).tolist())))}
    return {"city": name, "nodes": len(network.nodes), "orders": orders, "cell_m": cell_m, "sources": rows}


def run(args: argparse.Namespace) -> int:
    from benchmarks.instances import make_network
    from engine.store.network_file import load_sample

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "adapters.table_standin", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}"
        results = [one_city("sample city", load_sample(), args.orders, args.repeat, args.cell_m, url, server.pid)]
        if not args.quick:
            results.append(one_city("bench city", make_network(1000), args.orders, args.repeat, args.cell_m, url,
                                    server.pid))
    finally:
        server.terminate()
        server.wait(10)
    out = {"machine": machine(), "results": results}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "travel.json").write_text(json.dumps(out, indent=2))
    print(f"CPU ms per build of a {args.orders:,}-order batch (median), cells of {args.cell_m:g} m")
    print(f"{'city':<12} {'nodes':>5}  " + "  ".join(f"{k:>10}" for k in results[0]["sources"]) + "  (cold: server CPU, calls)")
    for r in results:
        s = r["sources"]
        print(f"{r['city']:<12} {r['nodes']:>5}  " + "  ".join(f"{v['cpu_ms']:>10.1f}" for v in s.values())
              + f"  ({s['table cold']['server_cpu_ms']:.0f} ms, {s['table cold']['calls']} calls)")
    return 0
