"""`o2o network check FILE` validates a network file and summarises it;
`o2o network plot FILE --out map.png` draws the nodes and their delivery areas."""
from __future__ import annotations

import argparse
import sys
from collections import Counter

from engine.network_file import SAMPLE_NETWORK, NetworkFileError, load_network


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("network", help="check or plot a network file (JSON or TOML)")
    cmds = p.add_subparsers(dest="network_command", required=True, metavar="ACTION")
    check = cmds.add_parser("check", help="validate a network file and print a summary")
    check.add_argument("file", nargs="?", default=str(SAMPLE_NETWORK))
    check.set_defaults(func=run_check)
    plot = cmds.add_parser("plot", help="draw the nodes and their delivery radius on a map (PNG)")
    plot.add_argument("file", nargs="?", default=str(SAMPLE_NETWORK))
    plot.add_argument("--out", default="network.png")
    plot.set_defaults(func=run_plot)


def _load(path: str):
    try:
        return load_network(path)
    except NetworkFileError as e:
        print(f"o2o network: {e}", file=sys.stderr)
        return None


def run_check(args: argparse.Namespace) -> int:
    network = _load(args.file)
    if network is None:
        return 2
    kinds = Counter(n.kind for n in network.nodes)
    regions = Counter(n.region for n in network.nodes)
    units = sum(sum(lines.values()) for lines in network.stock.values())
    print(f"{args.file}: valid")
    print(f"  name      {network.name} ({network.timezone})")
    print(f"  nodes     {len(network.nodes)}: " + ", ".join(f"{v} {k}s" for k, v in sorted(kinds.items())))
    print("  regions   " + ", ".join(f"{r} {v}" for r, v in sorted(regions.items())))
    print(f"  skus      {len(network.skus)}")
    print(f"  stock     {units} units at {len(network.stock)} nodes")
    return 0


def run_plot(args: argparse.Namespace) -> int:
    network = _load(args.file)
    if network is None:
        return 2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(9, 9))
    km_lon = 1 / (111.32 * np.cos(np.radians(np.mean([n.lat for n in network.nodes]))))
    for n in network.nodes:
        kitchen = n.kind == "kitchen"
        if "delivery" in n.modes:
            ax.add_patch(matplotlib.patches.Ellipse(
                (n.lon, n.lat), 2 * n.delivery_radius_km * km_lon, 2 * n.delivery_radius_km / 110.57,
                alpha=0.06 if not kitchen else 0.12, color="tab:red" if kitchen else "tab:blue"))
        ax.plot(n.lon, n.lat, "s" if kitchen else "o", color="tab:red" if kitchen else "tab:blue",
                markersize=9 if kitchen else 4)
    ax.set_title(f"{network.name}: {sum(n.kind == 'store' for n in network.nodes)} stores (blue), "
                 f"{sum(n.kind == 'kitchen' for n in network.nodes)} kitchens (red), delivery areas shaded")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_aspect(km_lon * 110.57)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0
