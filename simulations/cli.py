"""`o2o simulate SCENARIO.toml --out DIR`: runs the base day and every
variant of a scenario through the real engine on a simulated clock, then
writes KPIs (JSON, CSV), plots and an HTML report to DIR."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from domain.errors import DomainError
from engine.store.network_file import SAMPLE_NETWORK, load_network
from engine.routing.types import SOLVERS, RouterSettings
from simulations import plots, replay, results
from simulations.report import html_report
from simulations.run import simulate
from simulations.runner import run_scenario
from engine.config import Batching

SCENARIOS = Path(__file__).parent / "scenarios"
replay_doc = replay.__doc__


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="what-if simulation of a day: a base and its variants",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", help=f"scenario file (TOML); shipped ones are in {SCENARIOS}")
    p.add_argument("--out", default="simulation-results")
    p.add_argument("--jobs", type=int, default=1, help="variants run at once, each in a process of its own "
                   "(the results are the same; use the machine's cores)")
    p.set_defaults(func=run)

    r = sub.add_parser("replay", help="replay a recorded day against a changed network or router",
                       description=replay_doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--events", required=True, help="the event store URL (sqlite:///..., postgres://...)")
    r.add_argument("--network", default=str(SAMPLE_NETWORK), help="the network to replay against")
    r.add_argument("--recorded-network", help="the network the day was recorded with (default: --network)")
    r.add_argument("--solver", choices=SOLVERS, help="replay with another solver")
    r.add_argument("--window-ms", type=float, help="replay with another batch window")
    r.add_argument("--out", default="replay-results")
    r.set_defaults(func=run_replay)


def run_replay(args: argparse.Namespace) -> int:
    try:
        network = load_network(args.network)
        recorded_network = load_network(args.recorded_network) if args.recorded_network else network
        rec, views, events = replay.read(args.events, recorded_network)
    except (DomainError, FileNotFoundError) as e:
        print(f"o2o replay: {e}", file=sys.stderr)
        return 2
    if not rec.day.orders:
        print(f"o2o replay: no orders recorded in {args.events}", file=sys.stderr)
        return 2
    router = RouterSettings(solver=args.solver) if args.solver else None
    batching = Batching(window_ms=args.window_ms) if args.window_ms else None
    s = replay.replay_scenario(router, batching)
    first = min([rec.first] + [x.at for x in rec.day.sales] + [d[0] for d in rec.deliveries])
    with tqdm(total=len(rec.day.orders), desc="replay", unit="order") as bar:
        outcome = simulate(s, network, rec.day, None, "memory:", progress=bar.update,
                           parts=replay.plan_for(rec, s), deliveries=rec.deliveries, bounds=(first, rec.last + 1))
    kpis = {"recorded": results.kpis_of(views, recorded_network, None, events), "replayed": results.kpis(outcome)}
    nodes = {"recorded": results.nodes_of(views, recorded_network), "replayed": results.nodes(outcome)}
    hourly = {"recorded": results.hourly_of(views, recorded_network), "replayed": results.hourly(outcome)}
    described = f"events: {args.events}\nnetwork: {args.network}\nrecorded network: {args.recorded_network or args.network}\n" \
                f"solver: {args.solver or 'as configured'}\nwindow_ms: {args.window_ms or 'as configured'}\n"
    files = write_all(Path(args.out), f"Replay of {args.events}",
                      "The recorded day, and the same orders, counter sales and deliveries replayed at their "
                      "recorded times against the network and router given.", described, kpis, nodes, hourly)
    _summary(kpis)
    outcome.engine.close()
    print(f"\nwrote {', '.join(str(f) for f in files)}")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        s, variants = run_scenario(args.scenario, jobs=args.jobs)
    except DomainError as e:
        print(f"o2o simulate: {e}", file=sys.stderr)
        return 2
    kpis, nodes, hourly = ({v.name: getattr(v, key) for v in variants} for key in ("kpis", "nodes", "hourly"))
    breaks, seconds = {v.name: v.breaks for v in variants}, {v.name: v.seconds for v in variants}
    files = write_all(Path(args.out), f"Simulation: {s.name}", s.description, Path(args.scenario).read_text(),
                      kpis, nodes, hourly)
    _summary(kpis)
    cpu = {v.name: v.cpu_seconds for v in variants}
    print(f"{'run seconds (CPU)':<25}" + "".join(f"{f'{seconds[n]} ({cpu[n]})':>15}" for n in kpis))
    broken = {k: v for k, v in breaks.items() if v}
    for name, lines in broken.items():
        print(f"conservation broken in {name}: {lines[:3]}", file=sys.stderr)
    if not broken:
        print("stock conserved in every variant (end = start + replenished - sold online - sold at the counter)")
    print(f"\nwrote {', '.join(str(f) for f in files)}")
    return 1 if broken else 0


def write_all(out: Path, title: str, description: str, text: str, kpis: dict, nodes: dict, hourly: dict) -> list[Path]:
    tables = results.write(out, kpis, nodes, hourly)
    pngs = plots.draw(out, kpis, nodes, hourly)
    return tables + pngs + [html_report(out / "report.html", title, description, text, kpis, nodes, pngs)]


def _summary(kpis: dict[str, dict]) -> None:
    names = list(kpis)
    keys = ["orders", "fill_rate", "on_time_rate", "handover_min_mean", "handover_min_p95", "delivery_cost_per_order",
            "kitchen_share", "stockouts_online", "stockouts_pos", "reroutes", "nodes_full_in_a_slot"]
    print("\n" + f"{'':<25}" + "".join(f"{n[:14]:>15}" for n in names))
    for key in keys:
        cells = "".join(f"{_fmt(kpis[n][key]):>15}" for n in names)
        print(f"{key:<25}{cells}")


def _fmt(v) -> str:
    if v is None:
        return "-"
    return str(v) if isinstance(v, int) else format(v, ".4g")
