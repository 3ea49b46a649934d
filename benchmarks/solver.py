"""`o2o bench solver`: greedy, optimal and exact on realistic batches
(benchmarks/instances.py) of 100, 1,000 and 5,000 orders over 600 nodes and
2,000 SKUs, off-peak and peak. Per case: route time (candidates + model
building + solving) median and p99, the solver's share, objective gap to
the exact optimum, and orders filled by each solver."""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import msgspec
import numpy as np
from tqdm import tqdm

from benchmarks.instances import REGIMES, make_instance, make_network
from engine.routing.mip import solver_output_to_stderr
from engine.routing.router import NetworkRouter
from engine.routing.types import RouterSettings

SIZES = (100, 1000, 5000)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("solver", help="greedy vs optimal vs exact on realistic batches", description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    p.add_argument("--instances", type=int, default=3, help="generated instances per case")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per instance and solver")
    p.add_argument("--time-limit-ms", type=int, default=RouterSettings().time_limit_ms)
    p.add_argument("--quick", action="store_true", help="100 and 1,000 orders, 2 instances, 3 runs")
    p.add_argument("--out", default="bench-results", help="folder for solver.json and solver.png")
    p.set_defaults(func=run)


def _timed(router: NetworkRouter, inst, repeat: int):
    """Route time (wall and CPU: the machine may be shared) and the solver's own time, per run."""
    route, cpu, solve = [], [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        batch, solution = router.plan(inst.orders, inst.state)
        route.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        t1 = time.perf_counter()
        router.solve(batch.problem)
        solve.append(time.perf_counter() - t1)
    return batch, solution, route, cpu, solve


def run(args: argparse.Namespace) -> int:
    sizes = [100, 1000] if args.quick else args.sizes
    n_inst, repeat = (2, 3) if args.quick else (args.instances, args.repeat)
    network = make_network()
    routers = {s: NetworkRouter(RouterSettings(solver=s, time_limit_ms=args.time_limit_ms))
               for s in ("greedy", "optimal", "exact")}
    warm = make_instance(100, "peak", seed=99, network=network)
    for router in routers.values():
        router.route(warm.orders, warm.state)  # first calls load solvers and build the node arrays: not timed
    cases = [(n, regime) for n in sizes for regime in REGIMES]
    load_before = os.getloadavg()
    with tqdm(total=len(cases) * n_inst, desc="solver bench", unit="instance") as bar, solver_output_to_stderr():
        results = [_case(n, regime, n_inst, repeat, network, routers, bar) for n, regime in cases]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"machine": {**machine(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
              "time_limit_ms": args.time_limit_ms, "cases": results}
    (out / "solver.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    _table(results)
    _plot(results, out / "solver.png")
    print(f"\nwrote {out / 'solver.json'} and {out / 'solver.png'}")
    return 0


def _case(n: int, regime: str, n_inst: int, repeat: int, network, routers: dict[str, NetworkRouter], bar) -> dict:
    """One batch size and regime: every solver on n_inst generated instances."""
    times = {s: ([], [], []) for s in routers}
    gaps, filled, objective = [], {s: [] for s in routers}, {s: [] for s in routers}
    proven = []
    for seed in range(n_inst):
        inst = make_instance(n, regime, seed=seed, network=network)
        for name, router in routers.items():
            batch, solution, *runs = _timed(router, inst, 1 if name == "exact" else repeat)
            for kept, measured in zip(times[name], runs):
                kept.extend(measured)
            filled[name].append(sum(1 for p in solution.parts if p))
            objective[name].append(solution.objective)
            if name == "optimal":
                proven.append(solution.status == "optimal")
        exact = objective["exact"][-1]
        gaps.append((objective["optimal"][-1] - exact) / abs(exact) if exact else 0.0)
        bar.update()
    exact_gain = np.mean(filled["exact"]) - np.mean(filled["greedy"])
    return {
        "orders": n, "regime": regime, "instances": n_inst,
        "route_ms": {s: _stats(times[s][0]) for s in routers},
        "route_cpu_ms": {s: _stats(times[s][1]) for s in routers},
        "solve_ms": {s: _stats(times[s][2]) for s in routers},
        "optimal_proven": float(np.mean(proven)),
        "gap_to_exact": {"mean": float(np.mean(gaps)), "max": float(np.max(gaps))},
        "filled": {s: float(np.mean(filled[s])) for s in routers},
        "share_of_exact_fill_gain": float((np.mean(filled["optimal"]) - np.mean(filled["greedy"])) / exact_gain)
        if exact_gain > 0 else None,
        "greedy_gap_to_exact": float(np.mean([(g - e) / abs(e) for g, e in zip(objective["greedy"], objective["exact"])])),
    }


def _stats(xs: list[float]) -> dict[str, float]:
    a = np.array(xs) * 1000
    return {"median": round(float(np.median(a)), 2), "p99": round(float(np.percentile(a, 99)), 2), "runs": len(a)}


def machine() -> dict[str, object]:
    from importlib.metadata import version

    import ortools

    libraries = {name: version(name) for name in ("eventsourcing", "msgspec", "nats-py", "psycopg")}
    return {"cores": os.cpu_count(), "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "python": platform.python_version(), "platform": platform.platform(),
            "ortools": ortools.__version__, "numpy": np.__version__, **libraries, "git_commit": _git_commit()}


def _git_commit() -> str | None:
    """The commit measured, marked dirty when the tree has changes."""
    import subprocess

    here = Path(__file__).parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _table(results: list[dict]) -> None:
    print(f"\n{'case':<16} {'route ms: greedy':>16} {'optimal (median/p99, cpu)':>27} {'exact':>7} "
          f"{'gap max':>8} {'filled greedy/optimal/exact':>28} {'gain':>6}")
    for r in results:
        t, cpu = r["route_ms"], r["route_cpu_ms"]
        gain = r["share_of_exact_fill_gain"]
        print(f"{r['regime'] + ' ' + str(r['orders']):<16} {t['greedy']['median']:>16.1f} "
              f"{t['optimal']['median']:>12.1f}/{t['optimal']['p99']:<6.0f}{cpu['optimal']['median']:>8.1f} "
              f"{t['exact']['median']:>7.0f} {r['gap_to_exact']['max'] * 100:>7.3f}% "
              f"{r['filled']['greedy']:>14.0f}/{r['filled']['optimal']:.0f}/{r['filled']['exact']:.0f}"
              f"{'-' if gain is None else f'{gain * 100:.0f}%':>8}")


def _plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for regime, style in (("off-peak", "-"), ("peak", "--")):
        rows = [r for r in results if r["regime"] == regime]
        x = [r["orders"] for r in rows]
        # exact drawn thin over optimal: where they coincide both stay visible
        for solver, colour, width in (("greedy", "tab:grey", 2), ("optimal", "tab:blue", 4), ("exact", "tab:red", 1.2)):
            ax1.plot(x, [r["route_ms"][solver]["median"] for r in rows], style, color=colour, marker="o",
                     linewidth=width, label=f"{solver} {regime}")
            ax2.plot(x, [r["filled"][solver] / r["orders"] * 100 for r in rows], style, color=colour, marker="o",
                     linewidth=width, label=f"{solver} {regime}")
    ax1.scatter([1000, 1000], [50, 250], marker="x", color="black", zorder=5, label="targets at 1,000 (off-peak, peak)")
    ax1.set(xscale="log", yscale="log", xlabel="orders per batch", ylabel="route time, median (ms)",
            title="Time to route a batch (candidates + model + solve)")
    ax2.set(xscale="log", xlabel="orders per batch", ylabel="orders filled (%)", title="Orders filled")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
