"""`o2o bench store`'s results: the targets met or not, the table printed and
the plot (store.png)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

REPLAY_TARGET = 100_000  # events/s
MEMORY_TARGET = 1 << 30  # bytes


def targets(report: dict[str, Any]) -> dict[str, Any]:
    """The issue's event-store targets, met or not. They are set for 1,000,000
    events at 600 nodes x 2,000 SKUs: `full_size` says whether this run was."""
    s = report["store"]
    out = {}
    for backend, r in report["replay"].items():
        rate, cpu_rate = r["with_snapshots"]["catch_up_events_per_s"], r["with_snapshots"]["catch_up_events_per_cpu_s"]
        rss = max(r["with_snapshots"]["peak_rss_bytes_max"], r["without_snapshots"]["peak_rss_bytes_max"])
        out[backend] = {"full_size": s["events"] >= 1_000_000 and s["nodes"] >= 600 and s["skus"] >= 2000,
                        "replay_events_per_s": rate, "replay_events_per_cpu_s": cpu_rate,
                        "replay_target": REPLAY_TARGET, "replay_met": rate >= REPLAY_TARGET,
                        "peak_rss_bytes": rss, "memory_target_bytes": MEMORY_TARGET, "memory_met": rss < MEMORY_TARGET}
    return out


def table(report: dict[str, Any]) -> None:
    s = report["store"]
    print(f"\nstore: {s['events']:,} events ({s['nodes']} nodes x {s['skus']} SKUs, {s['orders']:,} orders, "
          f"{s['snapshots']:,} snapshots), built in {s['build_seconds']:,} s"
          f"{' (reused)' if s['reused'] else ''}")
    for backend, w in report["writes"].items():
        e = w["engine_saves"]
        classes = ", ".join(f"{k}: {v['events_per_s']:,}" for k, v in e["by_class"].items() if v["events_per_s"])
        fixed = ", ".join(f"{k}: {v['events_per_s']:,}" for k, v in w["fixed"].items())
        print(f"{backend:<9} writes, engine's saves: {e['events_per_s']:,} events/s "
              f"({e['events_per_s_with_snapshots']:,} with {e['snapshots']:,} snapshots); by save size {classes}")
        print(f"{'':<9} writes, fixed batch sizes: {fixed} events/s")
    for backend, r in report["replay"].items():
        for key in ("with_snapshots", "without_snapshots"):
            x = r[key]
            print(f"{backend:<9} restart {key.replace('_', ' '):<17}: read models {x['catch_up_events_per_s']:,} "
                  f"events/s ({x['catch_up_seconds']:.2f} s; {x['catch_up_events_per_cpu_s']:,} per CPU second), "
                  f"{x['inventories']} inventories from {x['inventory_events']:,} versions in "
                  f"{x['inventories_seconds']:.2f} s, peak RSS {x['peak_rss_bytes'] / 2**20:,.0f} MiB "
                  f"(load {x['load_average']})")
        print(f"{'':<9} fetch only {r['fetch']['events_per_s']:,} events/s; fetch + decode "
              f"{r['fetch_and_decode']['events_per_s']:,} events/s")
    b = report["bench_process"]
    print(f"bench process: {b['seconds']:,} s, {b['cpu_seconds']:,} s CPU, peak RSS {b['peak_rss_bytes'] / 2**20:,.0f} MiB")
    for backend, t in report["targets"].items():
        size = "" if t["full_size"] else " (the targets are set for 1,000,000 events at 600 x 2,000: not this run)"
        print(f"{backend:<9} replay {t['replay_events_per_s']:,} events/s (target {t['replay_target']:,}: "
              f"{'met' if t['replay_met'] else 'MISSED'}), peak RSS {t['peak_rss_bytes'] / 2**20:,.0f} MiB "
              f"(target 1,024: {'met' if t['memory_met'] else 'MISSED'}){size}")


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4.8))
    for backend, w in report["writes"].items():
        sizes = [int(k) for k in w["fixed"]]
        ax1.plot(sizes, [v["events_per_s"] for v in w["fixed"].values()], marker="o", label=f"{backend}, fixed batches")
        e = w["engine_saves"]
        ax1.axhline(e["events_per_s"], linestyle="--", color=ax1.lines[-1].get_color(),
                    label=f"{backend}, the engine's own saves (median {report['store']['save_sizes']['median']:g} "
                          f"events)")
    ax1.set(xscale="log", yscale="log", xlabel="events per save", ylabel="events/s", title="Writes")
    ax1.legend(fontsize=8)
    labels, wall, cpu, read_s, inv_s = [], [], [], [], []
    for backend, r in report["replay"].items():
        for key, short in (("with_snapshots", "snapshots"), ("without_snapshots", "no snapshots")):
            x = r[key]
            labels.append(f"{backend}\n{short}")
            wall.append(x["catch_up_events_per_s"])
            cpu.append(x["catch_up_events_per_cpu_s"])
            read_s.append(x["open_seconds"])
            inv_s.append(x["inventories_seconds"])
    at = np.arange(len(labels))
    ax2.bar(at - 0.2, wall, 0.4, label="per second (wall)")
    ax2.bar(at + 0.2, cpu, 0.4, label="per CPU second")
    ax2.axhline(REPLAY_TARGET, color="black", linestyle=":", label=f"target {REPLAY_TARGET:,} events/s")
    loads = [x["load_average"] for r in report["replay"].values() for x in (r["with_snapshots"], r["without_snapshots"])]
    ax2.set(xticks=at, xticklabels=labels, ylabel="events/s",
            title=f"Read models rebuilt on restart ({report['store']['events']:,} events; load {min(loads)}-{max(loads)})")
    ax2.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax2.legend(fontsize=8, loc="lower center", framealpha=0.9)
    ax3.bar(at, read_s, label="engine opened (read models rebuilt)")
    ax3.bar(at, inv_s, bottom=read_s, label="every node's inventory loaded")
    ax3.set(xticks=at, xticklabels=labels, ylabel="seconds", title="Restart")
    ax3.legend(fontsize=8, loc="lower center", framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
