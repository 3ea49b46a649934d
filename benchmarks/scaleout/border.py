"""`o2o bench border`: how many orders are border orders (candidates in
more than one partition) when a scenario's network is cut into 2..K
computed partitions (engine/partitions.py), area-weighted over the delivery
disks and demand-weighted over the scenario's delivery orders of the day.
Pickup orders name their store: they always have one partition."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import msgspec

from domain.errors import DomainError
from engine.config import PartitionSettings
from engine.partitions import border_share, computed_map, order_border_share

SCENARIOS = ["simulations/scenarios/ordinary-day.toml", "simulations/scenarios/big-day.toml"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("border", help="share of border orders per number of partitions, by area and by demand",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenarios", nargs="*", default=SCENARIOS, help="scenario files (default: ordinary and big day)")
    p.add_argument("--max-partitions", type=int, default=6, help="cut into 2..this many (at most the regions)")
    p.add_argument("--slack", type=float, default=PartitionSettings().slack)
    p.add_argument("--grid-km", type=float, default=PartitionSettings().grid_km)
    p.add_argument("--out", default="bench-results", help="folder for border.json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from simulations.demand import base_day
    from simulations.scenario import load_scenario
    from simulations.variants import network_of

    report = {"load_average_before": os.getloadavg(), "scenarios": []}
    try:
        for path in args.scenarios:
            scenario, folder = load_scenario(path)
            network = network_of(scenario, folder)
            orders = [cmd for _, cmd in base_day(scenario, network).orders if cmd.mode == "delivery"]
            lats, lons = [o.lat for o in orders], [o.lon for o in orders]
            regions = len({n.region for n in network.nodes})
            rows = []
            for k in range(2, min(args.max_partitions, regions) + 1):
                t0 = time.process_time()
                pmap = computed_map(network, k, args.slack, args.grid_km)
                cut_s = time.process_time() - t0
                area, demand = border_share(pmap, args.grid_km), order_border_share(pmap, lats, lons)
                rows.append({"partitions": k, "nodes": [p.nodes for p in pmap.partitions],
                             "regions": [list(p.regions) for p in pmap.partitions],
                             "area_share": round(area.share, 4), "order_share": round(demand.share, 4),
                             "orders_with_candidates": demand.points, "partitions_per_order": round(demand.mean_partitions, 3),
                             "cut_cpu_s": round(cut_s, 2)})
                print(f"{scenario.name:<14} {k} partitions (nodes {'/'.join(str(p.nodes) for p in pmap.partitions)}): "
                      f"border area {area.share:6.1%}  border orders {demand.share:6.1%} of {demand.points:,} "
                      f"delivery orders with a candidate  (cut in {cut_s:.1f} s CPU)", flush=True)
            report["scenarios"].append({"scenario": scenario.name, "nodes": len(network.nodes), "regions": regions,
                                        "delivery_orders": len(orders), "rows": rows})
    except DomainError as e:
        print(f"o2o bench border: {e}", file=sys.stderr)
        return 2
    from benchmarks.solver import machine

    report["machine"] = {**machine(), "load_average_after": os.getloadavg()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "border.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    print(f"wrote {out / 'border.json'}")
    return 0
