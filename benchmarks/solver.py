"""`o2o bench solver`: greedy, optimal and exact on batches of 100, 1,000 and
5,000 orders from several instance families (benchmarks/families.py): the
project's clustered city, a uniform city, a dense downtown, promotion-heavy
and capacity-tight batches, each off-peak and at peak, over 600 nodes and
2,000 SKUs; and must-assign generalised assignment problems of types A-E.
Per case: route time (candidates + model building + solving) median and
p99, the same with the decisions' explanations (what the engine pays per
batch), the solver's share, objective gap to exact, and orders filled by each
solver."""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import msgspec
import numpy as np
from tqdm import tqdm

from benchmarks.families import FAMILIES, GAP_TYPES, gap_instance, gap_nodes, network_for, routing_instance
from benchmarks.instances import REGIMES, make_instance
from engine.memory import young_collections_only
from engine.routing.explain import decisions
from engine.routing.greedy import solve_greedy
from engine.routing.mip import solve_mip, solver_output_to_stderr
from engine.routing.optimal import solve_optimal
from engine.routing.repair import compiled_steps
from engine.routing.router import NetworkRouter
from engine.routing.types import SOLVERS, RouterSettings

SIZES = (100, 1000, 5000)
EXACT_GAP_S, EXACT_ROUTING_S = 30.0, 120.0  # exact's time limits unless --exact-seconds
ALL = [*FAMILIES, *(f"gap-{t}" for t in GAP_TYPES)]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("solver", help="greedy vs optimal vs exact on instance families", description=__doc__)
    p.add_argument("--families", nargs="+", default=ALL, choices=ALL, metavar="FAMILY",
                   help=f"default: all ({', '.join(ALL)})")
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="orders per batch (default 100 1000 5000)")
    p.add_argument("--instances", type=int, default=None, help="generated instances per case (default 3)")
    p.add_argument("--repeat", type=int, default=None, help="timed runs per instance and solver (default 5)")
    p.add_argument("--time-limit-ms", type=int, default=RouterSettings().time_limit_ms)
    p.add_argument("--nodes", type=int, default=600, help="nodes of the routing families' city")
    p.add_argument("--skus", type=int, default=2000)
    p.add_argument("--gap-shapes", nargs="+", default=None, metavar="NODESxORDERS",
                   help="GAP families: these shapes (e.g. 10x100) instead of --sizes with nodes = orders / 10")
    p.add_argument("--gap-time-limit", type=float, default=None,
                   help="seconds for optimal on GAP families (default: --time-limit-ms)")
    p.add_argument("--exact-seconds", type=float, default=None,
                   help="time limit of exact (default: 30 s on GAP families, 120 s on routing families, where "
                        "it proves 1,000 orders in under a second and 5,000 in 3-7 s, but finds no answer to "
                        "promo-heavy's 5,000 in 120 s)")
    p.add_argument("--quick", action="store_true", help="100 and 1,000 orders, 2 instances, 3 runs")
    p.add_argument("--out", default="bench-results", help="folder for solver.json and solver.png")
    p.set_defaults(func=run)


def _timed(router: NetworkRouter, inst, repeat: int):
    """Route time (wall and CPU: the machine may be shared), the same with the
    explanations (all the engine pays per batch) and the solver's own time, per run."""
    route, cpu, engine, solve = [], [], [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        batch, solution = router.plan(inst.orders, inst.state)
        route.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        decisions(batch, solution)
        engine.append(time.perf_counter() - t0)
        t1 = time.perf_counter()
        router.solve(batch.problem)
        solve.append(time.perf_counter() - t1)
    return batch, solution, route, cpu, engine, solve


@young_collections_only()  # as the engine runs (engine/memory.py): a full collection took 25 ms of a GAP solve
def run(args: argparse.Namespace) -> int:
    sizes = args.sizes or ([100, 1000] if args.quick else list(SIZES))
    n_inst = args.instances or (2 if args.quick else 3)
    repeat = args.repeat or (3 if args.quick else 5)
    routers = {s: NetworkRouter(RouterSettings(solver=s, time_limit_ms=args.time_limit_ms))
               for s in SOLVERS}
    # exact with a time limit (the router's own exact has none: a batch it cannot solve would hold the bench)
    routers["exact"].solve = lambda p: solve_mip(p, time_limit_s=_exact_limit(args, routing=True))
    cases: list[tuple] = []
    for family in args.families:
        if family.startswith("gap-"):
            shapes = [tuple(map(int, x.lower().split("x"))) for x in args.gap_shapes] if args.gap_shapes \
                else [(gap_nodes(n), n) for n in sizes]
            cases += [(family, n, "must-assign", m) for m, n in shapes]
        else:
            cases += [(family, n, regime, None) for n in sizes for regime in REGIMES]
    if any(f.startswith("gap-") for f in args.families):
        compiled_steps()  # the tabu search's compiled steps loaded (about a second) before anything is timed
    load_before = os.getloadavg()
    results = []
    networks: dict[str, object] = {}
    with tqdm(total=len(cases) * n_inst, desc="solver bench", unit="instance") as bar, solver_output_to_stderr():
        for family, n, regime, m in cases:
            if family.startswith("gap-"):
                results.append(_gap_case(family[4:], n, m, n_inst, repeat, args, bar))
                continue
            shape = FAMILIES[family].shape
            if shape not in networks:
                networks[shape] = network_for(shape, nodes=args.nodes, skus=args.skus)
                warm = make_instance(min(100, n), "peak", seed=99, network=networks[shape])
                for router in routers.values():
                    router.route(warm.orders, warm.state)  # first calls load solvers and build the node arrays: not timed
            results.append(_case(family, n, regime, n_inst, repeat, networks[shape], routers, bar,
                                 _exact_limit(args, routing=True)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"machine": {**machine(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
              "time_limit_ms": args.time_limit_ms, "gap_time_limit_s": _gap_limit(args),
              "exact_seconds_on_gap": _exact_limit(args, routing=False),
              "exact_seconds_on_routing": _exact_limit(args, routing=True), "cases": results}
    (out / "solver.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    _table(results)
    _plot(results, out / "solver.png")
    print(f"\nwrote {out / 'solver.json'} and {out / 'solver.png'}")
    return 0


def _exact_limit(args, routing: bool) -> float:
    return args.exact_seconds if args.exact_seconds is not None else EXACT_ROUTING_S if routing else EXACT_GAP_S


def _gap_limit(args) -> float:
    return args.gap_time_limit if args.gap_time_limit is not None else args.time_limit_ms / 1000


def _case(family: str, n: int, regime: str, n_inst: int, repeat: int, network, routers: dict[str, NetworkRouter],
          bar, exact_limit: float) -> dict:
    """One family, batch size and regime: every solver on n_inst generated instances."""
    times = {s: ([], [], [], []) for s in routers}
    gaps, filled, objective = [], {s: [] for s in routers}, {s: [] for s in routers}
    proven, exact_status = [], []
    for seed in range(n_inst):
        inst = routing_instance(family, n, regime, seed, network)
        for name, router in routers.items():
            batch, solution, *runs = _timed(router, inst, 1 if name == "exact" else repeat)
            for kept, measured in zip(times[name], runs):
                kept.extend(measured)
            filled[name].append(solution.filled)
            objective[name].append(solution.objective)
            if name == "optimal":
                proven.append(solution.status == "optimal")
        exact_status.append(solution.status)  # exact ran last
        exact = objective["exact"][-1]
        if np.isfinite(exact):  # (no answer in its time: no gap; one not proven: the gap to its best answer)
            gaps.append((objective["optimal"][-1] - exact) / abs(exact) if exact else 0.0)
        bar.update()
    answered = [i for i, v in enumerate(objective["exact"]) if np.isfinite(v)]
    exact_gain = np.mean([filled["exact"][i] - filled["greedy"][i] for i in answered]) if answered else 0.0
    optimal_gain = np.mean([filled["optimal"][i] - filled["greedy"][i] for i in answered]) if answered else 0.0
    return {
        "family": family, "orders": n, "regime": regime, "instances": n_inst,
        "route_ms": {s: _stats(times[s][0]) for s in routers},
        "route_cpu_ms": {s: _stats(times[s][1]) for s in routers},
        "with_explanations_ms": {s: _stats(times[s][2]) for s in routers},
        "solve_ms": {s: _stats(times[s][3]) for s in routers},
        "optimal_proven": float(np.mean(proven)), "exact_time_limit_s": exact_limit,
        "exact_status": {x: exact_status.count(x) for x in sorted(set(exact_status))},
        "gap_to_exact": {"mean": float(np.mean(gaps)), "max": float(np.max(gaps))} if gaps else None,
        "optimal_worse_than_greedy": int(sum(o > g + 1e-6 * max(1.0, abs(g))
                                             for o, g in zip(objective["optimal"], objective["greedy"]))),
        "filled": {s: _mean_filled(filled[s], answered if s == "exact" else None) for s in routers},
        "share_of_exact_fill_gain": float(optimal_gain / exact_gain) if exact_gain > 0 else None,
        "greedy_gap_to_exact": float(np.mean([(objective["greedy"][i] - objective["exact"][i])
                                              / abs(objective["exact"][i]) for i in answered])) if answered else None,
    }


def _mean_filled(filled: list[int], only: list[int] | None) -> float | None:
    """Orders filled, mean over the instances (exact's: over those it answered; None if none)."""
    if only is None:
        return float(np.mean(filled))
    return float(np.mean([filled[i] for i in only])) if only else None


def _gap_case(kind: str, n: int, m: int, n_inst: int, repeat: int, args, bar) -> dict:
    """Must-assign generalised assignment: solve time (there are no
    candidates to build); exact has a time limit, so its best answer and
    the best bound anyone proved are both reported."""
    limit = _gap_limit(args)
    solvers = {"greedy": solve_greedy, "optimal": lambda p: solve_optimal(p, limit),
               "exact": lambda p: solve_mip(p, time_limit_s=_exact_limit(args, routing=False))}
    times = {s: ([], []) for s in solvers}
    placed = {s: [] for s in solvers}
    objective = {s: [] for s in solvers}
    status = {s: [] for s in solvers}
    bounds = []
    for seed in range(n_inst):
        problem = gap_instance(kind, n, seed + 1, m)
        for name, solve in solvers.items():
            for _ in range(1 if name == "exact" or limit >= 1 and name == "optimal" else repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                solution = solve(problem)
                times[name][0].append(time.perf_counter() - t0)
                times[name][1].append(time.process_time() - c0)
            placed[name].append(solution.filled)
            objective[name].append(solution.objective)
            status[name].append(solution.status)
            if name == "optimal":
                opt_bound = solution.bound
        exact_bound = solution.bound  # exact ran last
        bounds.append(max(b for b in (opt_bound, exact_bound, -np.inf) if b is not None))
        bar.update()
    o, e = np.array(objective["optimal"]), np.array(objective["exact"])
    both = np.isfinite(o) & np.isfinite(e)
    return {
        "family": f"gap-{kind}", "orders": n, "nodes": m, "regime": "must-assign", "instances": n_inst,
        "optimal_time_limit_s": limit, "exact_time_limit_s": _exact_limit(args, routing=False),
        "route_ms": {s: _stats(times[s][0]) for s in solvers},
        "route_cpu_ms": {s: _stats(times[s][1]) for s in solvers},
        "status": {s: {x: status[s].count(x) for x in sorted(set(status[s]))} for s in solvers},
        "optimal_proven": float(np.mean([x == "optimal" for x in status["optimal"]])),
        "objective": {s: [None if not np.isfinite(v) else v for v in objective[s]] for s in solvers},
        "best_bound": [None if not np.isfinite(b) else b for b in bounds],
        # exact's best answer may be worse than optimal's (it has no start and a time limit): gap below 0
        "gap_to_exact": {"mean": float(np.mean((o - e)[both] / np.abs(e[both]))), "max": float(np.max((o - e)[both] / np.abs(e[both])))}
        if both.any() else None,
        "gap_to_bound": {"mean": float(np.mean(_gap(o, bounds))), "max": float(np.max(_gap(o, bounds)))},
        "optimal_worse_than_greedy": int(sum(a > g + 1e-6 * max(1.0, abs(g)) for a, g in zip(o, objective["greedy"]) if np.isfinite(g))),
        "filled": {s: float(np.mean(placed[s])) for s in solvers},
    }


def _gap(values: np.ndarray, bounds: list[float]) -> np.ndarray:
    b = np.array(bounds)
    return np.where(np.isfinite(values) & np.isfinite(b), (values - b) / np.maximum(1.0, np.abs(b)), np.inf)


def _stats(xs: list[float]) -> dict[str, float]:
    a = np.array(xs) * 1000
    return {"median": round(float(np.median(a)), 2), "p99": round(float(np.percentile(a, 99)), 2), "runs": len(a)}


def machine() -> dict[str, object]:
    from importlib.metadata import version

    import ortools

    libraries = {name: version(name) for name in ("eventsourcing", "msgspec", "nats-py", "psycopg")}
    return {"cores": os.cpu_count(), "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "python": platform.python_version(), "platform": platform.platform(),
            "python_executable": sys.executable, "python_shared_library": _libpython(),
            "ortools": ortools.__version__, "numpy": np.__version__, **libraries, "git_commit": _git_commit(),
            "python_loop_s": python_loop_s()}


def _libpython() -> str | None:
    """The shared libpython the interpreter runs from, None if it is linked into the executable:
    builds differ (Debian's 3.11, linked in, ran the engine with 9% fewer instructions an order
    than pyenv's shared one: benchmarks/README.md, issue 19)."""
    try:
        with open("/proc/self/maps") as maps:
            return next((line.split()[-1] for line in maps if "/libpython" in line), None)
    except OSError:
        return None


def python_loop_s() -> float:
    """CPU seconds of a fixed pure-Python loop (sum of squares below 10**6), best of 3: how fast this
    machine runs Python now. The same code's CPU per order moved 20-25% from one machine (or hour) to
    the next (benchmarks/README.md, issue 19); this says which kind of machine a figure came from."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        sum(i * i for i in range(10**6))
        best = min(best, time.process_time() - start)
    return round(best, 4)


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
    print(f"\n{'case':<30} {'route ms: greedy':>16} {'optimal (median/p99, cpu)':>27} {'+expl.':>7} {'exact':>7} "
          f"{'gap max':>8} {'filled greedy/optimal/exact':>28} {'gain':>6} {'proven':>7}")
    for r in results:
        t, cpu = r["route_ms"], r["route_cpu_ms"]
        gain = r.get("share_of_exact_fill_gain")
        gap = r["gap_to_exact"]
        name = f"{r['family']} {r['regime']} {r['orders']}" + (f" ({r['nodes']} nodes)" if "nodes" in r else "")
        explained = r["with_explanations_ms"]["optimal"]["median"] if "with_explanations_ms" in r else None
        print(f"{name:<30} {t['greedy']['median']:>16.1f} "
              f"{t['optimal']['median']:>12.1f}/{t['optimal']['p99']:<6.0f}{cpu['optimal']['median']:>8.1f} "
              f"{'-' if explained is None else format(explained, '.1f'):>7} {t['exact']['median']:>7.0f} "
              f"{'-' if gap is None else format(gap['max'] * 100, '.3f') + '%':>8} "
              f"{r['filled']['greedy']:>14.0f}/{r['filled']['optimal']:.0f}/"
              f"{'-' if r['filled']['exact'] is None else format(r['filled']['exact'], '.0f')}"
              f"{'-' if gain is None else f'{gain * 100:.0f}%':>8} {r['optimal_proven'] * 100:>6.0f}%")
        if r.get("exact_status", {"optimal": 0}).keys() != {"optimal"} and "gap_to_bound" not in r:
            print(f"{'':<30} exact in its {r['exact_time_limit_s']:g} s: {r['exact_status']} (the gap is to its "
                  "best answer where it found one)")
        if "gap_to_bound" in r:
            print(f"{'':<30} optimal to the best bound: max {r['gap_to_bound']['max'] * 100:.3f}%; "
                  f"status optimal {r['status']['optimal']}, exact {r['status']['exact']}")


def _plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    routing = [r for r in results if r["regime"] in REGIMES]
    for i, family in enumerate(dict.fromkeys(r["family"] for r in routing)):
        colour = f"C{i}"
        for regime, style in (("off-peak", "-"), ("peak", "--")):
            rows = [r for r in routing if r["family"] == family and r["regime"] == regime]
            x = [r["orders"] for r in rows]
            ax1.plot(x, [r["route_ms"]["optimal"]["median"] for r in rows], style, color=colour, marker="o",
                     label=f"{family} {regime}")
            ax2.plot(x, [(r["filled"]["optimal"] - r["filled"]["greedy"]) / r["orders"] * 100 for r in rows], style,
                     color=colour, marker="o", label=f"{family} {regime}")
    ax1.scatter([1000, 1000], [50, 150], marker="x", color="black", zorder=5, label="targets at 1,000 (off-peak, peak)")
    ax1.set(xscale="log", yscale="log", xlabel="orders per batch", ylabel="optimal's route time, median (ms)",
            title="Time to route a batch (candidates + model + solve)")
    ax2.set(xscale="log", xlabel="orders per batch", ylabel="orders filled: optimal - greedy (% of the batch)",
            title="What optimal fills beyond greedy")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
