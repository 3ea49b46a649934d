"""`o2o network check|show|plot [FILE]`: validate a network file and summarise
it, list its nodes, or draw them on a map. FILE defaults to the sample city;
the format is in docs/network.md."""
from __future__ import annotations

import argparse
import math
import sys
from collections import Counter

import numpy as np

from domain.network import Network, Node
from engine.store.network_file import SAMPLE_NETWORK, NetworkFileError, load_network


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("network", help="check, show or plot a network file (JSON or TOML)", description=__doc__)
    cmds = p.add_subparsers(dest="network_command", required=True, metavar="ACTION")
    for name, func, text in [("check", run_check, "validate a network file and print a summary"),
                             ("show", run_show, "a table of the nodes: kind, place, hours, capacity, stock"),
                             ("plot", run_plot, "draw the nodes and their delivery radius on a map (PNG)")]:
        c = cmds.add_parser(name, help=text)
        c.add_argument("file", nargs="?", default=str(SAMPLE_NETWORK), help="a .json or .toml file (default: the sample city)")
        c.set_defaults(func=func)
        if name == "plot":
            c.add_argument("--out", default="network.png", help="the PNG to write")
    c = cmds.add_parser("travel-matrix", help="build a travel-matrix file once from a road table service",
                        description="Asks an OSRM- (or Valhalla-) compatible table service for the minutes from "
                                    "every node to every area cell it can reach, and writes the matrix file "
                                    "`o2o serve --travel-matrix` and scenarios read (docs/travel.md).")
    c.add_argument("file", nargs="?", default=str(SAMPLE_NETWORK), help="a .json or .toml file (default: the sample city)")
    c.add_argument("--from-table", required=True, metavar="URL", help="the table service, e.g. http://127.0.0.1:5000")
    c.add_argument("--out", required=True, help="the matrix file (JSON) to write")
    c.add_argument("--cell-m", type=float, default=250.0, help="area cell size in metres (default 250)")
    c.add_argument("--protocol", choices=["osrm", "valhalla"], default="osrm")
    c.add_argument("--profile", default="driving", help="OSRM profile or Valhalla costing (default driving)")
    c.add_argument("--max-locations", type=int, default=100, help="sources + destinations per call (default 100)")
    c.add_argument("--timeout", type=float, default=30.0, help="seconds per call (default 30)")
    c.set_defaults(func=run_travel_matrix)


def _load(path: str) -> Network | None:
    try:
        return load_network(path)
    except NetworkFileError as e:
        print(f"o2o network: {e}", file=sys.stderr)
        return None


def _units(network: Network, node_id: str) -> int:
    return sum(network.stock.get(node_id, {}).values())


def run_check(args: argparse.Namespace) -> int:
    network = _load(args.file)
    if network is None:
        return 2
    kinds = Counter(n.kind for n in network.nodes)
    regions = Counter(n.region for n in network.nodes)
    units = sum(_units(network, n.id) for n in network.nodes)
    price = {s.id: s.price for s in network.skus}
    value = sum(q * price[sku] for lines in network.stock.values() for sku, q in lines.items())
    print(f"{args.file}: valid")
    print(f"  name      {network.name} ({network.timezone}, couriers at {network.speed_kmh:g} km/h)")
    print(f"  nodes     {len(network.nodes)}: " + ", ".join(f"{v} {k}{'s' * (v != 1)}" for k, v in sorted(kinds.items())))
    print(f"  delivery  {sum('delivery' in n.modes for n in network.nodes)} nodes, "
          f"pickup {sum('pickup' in n.modes for n in network.nodes)}")
    print(f"  regions   {len(regions)}: " + ", ".join(f"{r} {v}" for r, v in sorted(regions.items())))
    print(f"  skus      {len(network.skus)}")
    print(f"  stock     {units:,} units worth {value:,.0f} RMB at {len(network.stock)} nodes")
    return 0


def _hours(n: Node) -> str:
    return ",".join("24h" if (w.opens, w.closes) == ("00:00", "24:00") else f"{w.opens}-{w.closes}" for w in n.hours)


def run_show(args: argparse.Namespace) -> int:
    network = _load(args.file)
    if network is None:
        return 2
    header = ("id", "kind", "name", "region", "lat", "lon", "modes", "radius", "hours", "cap/slot", "prep",
              "RMB/km", "skus", "units", "dealer")
    rows = [(n.id, n.kind, n.name, n.region, f"{n.lat:.4f}", f"{n.lon:.4f}",
             "+".join(m[0].upper() for m in n.modes), f"{n.delivery_radius_km:.1f} km" if "delivery" in n.modes else "-",
             _hours(n), f"{n.capacity_per_slot}/{n.slot_minutes}m", f"{n.prep_minutes:g}m", f"{n.cost_per_km:g}",
             str(len(network.stock.get(n.id, {}))), str(_units(network, n.id)), n.dealer or "-")
            for n in network.nodes]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    numeric = {4, 5, 9, 10, 11, 12, 13}
    for r in [header, *rows]:
        print("  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    print(f"{len(network.nodes)} nodes; modes D = delivery, P = pickup")
    return 0


def run_plot(args: argparse.Namespace) -> int:
    network = _load(args.file)
    if network is None:
        return 2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba
    from matplotlib.lines import Line2D
    from matplotlib.patches import Ellipse

    # Degrees per km differ along the two axes; the radius circles are ellipses in degrees.
    lat0 = sum(n.lat for n in network.nodes) / max(len(network.nodes), 1)
    km_lat, km_lon = 1 / 110.57, 1 / (111.32 * math.cos(math.radians(lat0)))
    colour = {"store": "tab:blue", "kitchen": "tab:red"}
    fig, ax = plt.subplots(figsize=(9, 9))
    for n in network.nodes:
        kitchen = n.kind == "kitchen"
        if "delivery" in n.modes:
            ax.add_patch(Ellipse((n.lon, n.lat), 2 * n.delivery_radius_km * km_lon, 2 * n.delivery_radius_km * km_lat,
                                 facecolor=to_rgba(colour[n.kind], 0.12 if kitchen else 0.05),
                                 edgecolor=to_rgba(colour[n.kind], 0.5 if kitchen else 0.15), lw=1 if kitchen else 0.5))
        ax.plot(n.lon, n.lat, "s" if kitchen else ("o" if "delivery" in n.modes else "^"), color=colour[n.kind],
                markersize=9 if kitchen else 4)
        if kitchen:
            ax.annotate(n.id, (n.lon, n.lat), xytext=(6, 6), textcoords="offset points", fontsize=9, color="tab:red")
    counts = Counter(n.kind for n in network.nodes)
    ax.legend(handles=[Line2D([], [], marker="o", ls="", color="tab:blue", label=f"store ({counts['store']})"),
                       Line2D([], [], marker="^", ls="", color="tab:blue", label="store, pickup only"),
                       Line2D([], [], marker="s", ls="", color="tab:red", label=f"central kitchen ({counts['kitchen']})")],
              loc="upper right")
    ax.set_title(f"{network.name}: nodes and delivery areas")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_aspect(km_lon / km_lat)
    ax.autoscale_view()
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f"wrote {args.out}")
    return 0


def run_travel_matrix(args: argparse.Namespace) -> int:
    from adapters.travel_table import TableError, TableService, build_matrix
    from engine.store.travel_file import dump_travel_matrix
    from engine.travel import Grid

    network = _load(args.file)
    if network is None:
        return 2
    if not 50 <= args.cell_m <= 5000 or args.max_locations < 2 or args.timeout <= 0:
        print("o2o network travel-matrix: --cell-m is 50..5000, --max-locations >= 2, --timeout > 0", file=sys.stderr)
        return 2
    service = TableService(Grid.around(network, args.cell_m), args.from_table, args.protocol, args.profile,
                           timeout_s=args.timeout, max_locations=args.max_locations)
    try:
        matrix = build_matrix(network, service,
                              lambda done, of: print(f"\r{done:,} / {of:,} cells", end="", file=sys.stderr, flush=True))
    except TableError as e:
        print(f"\no2o network travel-matrix: {e}", file=sys.stderr)
        return 1
    dump_travel_matrix(matrix, args.out, network=network.name, source=args.from_table)
    known = int((~np.isnan(matrix.minutes())).sum())
    g = matrix.grid
    print(f"\nwrote {args.out}: {len(matrix.node_ids)} nodes x {g.rows} x {g.cols} cells of {args.cell_m:g} m, "
          f"{known:,} times known, {service.calls:,} calls")
    return 0
