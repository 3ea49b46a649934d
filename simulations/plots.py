"""PNG plots of a simulation's results: KPIs by variant, orders / fill rate /
on-time rate by hour, and per-node utilisation on a map of the nodes."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

# (key, title, format) of the KPIs drawn as bars
BARS = [("fill_rate", "fill rate", "{:.1%}"), ("on_time_rate", "on-time rate", "{:.1%}"),
        ("handover_min_mean", "minutes to hand-over (mean)", "{:.1f}"),
        ("handover_min_p95", "minutes to hand-over (p95)", "{:.1f}"),
        ("delivery_cost_per_order", "delivery cost per order (RMB)", "{:.2f}"), ("kitchen_share", "served by kitchens", "{:.1%}"),
        ("stockouts_online", "orders lost to stock-outs", "{:,.0f}"), ("reroutes", "reroutes", "{:,.0f}"),
        ("nodes_full_in_a_slot", "nodes full in some slot", "{:,.0f}"),
        ("stockouts_pos", "counter customers short", "{:,.0f}")]
BASE, OTHER = "#9e9e9e", "#1f77b4"


def draw(out: Path, kpis: dict[str, dict], nodes: dict[str, list[dict]], hourly: dict[str, list[dict]]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    return [kpi_bars(out / "kpis.png", kpis), by_hour(out / "hourly.png", hourly), node_map(out / "map.png", nodes)]


def kpi_bars(path: Path, kpis: dict[str, dict]) -> Path:
    """One panel per KPI, a bar per variant; the first (the base) in grey and
    each variant labelled with its change against it."""
    names = list(kpis)
    shown = [b for b in BARS if any(kpis[n].get(b[0]) is not None for n in names)]
    cols = 5
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.3 * rows + 0.6), squeeze=False)
    for ax, (key, title, fmt) in zip(axes.ravel(), shown):
        values = [kpis[n].get(key) for n in names]
        heights = [v or 0 for v in values]
        bars = ax.bar(range(len(names)), heights, color=[BASE] + [OTHER] * (len(names) - 1))
        ref = values[0]
        labels = []
        for i, v in enumerate(values):
            text = "-" if v is None else fmt.format(v)
            if i and v is not None and ref is not None and v != ref:
                delta = v - ref
                text += "\n(" + ("+" if delta > 0 else "−") + fmt.format(abs(delta)) + ")"
            labels.append(text)
        ax.bar_label(bars, labels, fontsize=7, padding=2)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(len(names)), names, rotation=25, ha="right", fontsize=8)
        ax.set_ylim(0, max(heights) * 1.3 if max(heights) > 0 else 1)
        ax.tick_params(axis="y", labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    for ax in axes.ravel()[len(shown):]:
        ax.axis("off")
    fig.suptitle(f"KPIs by variant (grey: {names[0]}; changes against it in brackets)", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def by_hour(path: Path, hourly: dict[str, list[dict]]) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.4))
    panels = [("orders", "Orders placed per hour", "orders"), ("fill_rate", "Fill rate by hour placed", "fill rate"),
              ("on_time_rate", "On-time rate by hour placed", "on-time rate")]
    busy = [h for rows in hourly.values() for h, r in enumerate(rows) if r["orders"]]
    first, last = (min(busy), max(busy)) if busy else (0, 23)
    for i, (name, rows) in enumerate(hourly.items()):
        hours = [r["hour"] for r in rows]
        style = dict(marker=".", label=name, color=BASE if i == 0 else None, lw=2.5 if i == 0 else 1.5,
                     zorder=1 if i == 0 else 2)
        for ax, (key, _, _) in zip(axes, panels):
            ax.plot(hours, [r.get(key) if r.get(key) is not None else float("nan") for r in rows], **style)
    for ax, (key, title, label) in zip(axes, panels):
        ax.set(title=title, xlabel="hour of day", ylabel=label, xlim=(first - 0.5, last + 0.5))
        ax.set_xticks(range(first, last + 1, 2 if last - first > 12 else 1))
        ax.grid(alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        if key != "orders":
            low = min((r[key] for rows in hourly.values() for r in rows if r.get(key) is not None), default=0)
            ax.set_ylim(max(0, min(low, 0.9) - 0.05), 1.01)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def node_map(path: Path, nodes: dict[str, list[dict]]) -> Path:
    """Per variant, every node where it lies: colour = its busiest slot's share
    of capacity, size = orders it was given; kitchens are squares; nodes a
    variant added are ringed, nodes it closed are crosses."""
    names = list(nodes)
    base_ids = {r["node"] for r in nodes[names[0]]}
    everywhere = {r["node"]: r for rows in nodes.values() for r in rows}
    lats = [r["lat"] for r in everywhere.values()]
    mid = math.cos(math.radians(sum(lats) / len(lats))) if lats else 1.0
    most = max((r["orders"] for r in everywhere.values()), default=1) or 1
    scale = 260 * min(1.0, (60 / max(len(nodes[names[0]]), 1)) ** 0.5)  # smaller markers in a crowded city
    cols = min(3, len(names))
    rows_n = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(max(5.6 * cols, 10), 5.2 * rows_n + 0.8), squeeze=False)
    sc = None
    for ax, name in zip(axes.ravel(), names):
        rows = nodes[name]
        here = {r["node"] for r in rows}
        for kind, marker in (("store", "o"), ("kitchen", "s")):
            part = [r for r in rows if r["kind"] == kind]
            if not part:
                continue
            sc = ax.scatter([r["lon"] for r in part], [r["lat"] for r in part],
                            c=[min(r["peak_slot_use"] or 0, 1.0) for r in part], cmap="RdYlGn_r", vmin=0, vmax=1,
                            s=[8 + scale * r["orders"] / most for r in part], marker=marker,
                            edgecolors="black" if kind == "kitchen" else "none", linewidths=0.8, zorder=3)
        added = [r for r in rows if r["node"] not in base_ids]
        ax.scatter([r["lon"] for r in added], [r["lat"] for r in added], s=420, facecolors="none",
                   edgecolors="#1f77b4", linewidths=2, zorder=4)
        closed = [everywhere[k] for k in base_ids - here]
        ax.scatter([r["lon"] for r in closed], [r["lat"] for r in closed], marker="x", s=70, c="black", zorder=4)
        ax.set_title(name, fontsize=10)
        ax.set_aspect(1 / mid)  # a degree of longitude is shorter than one of latitude
        ax.tick_params(labelsize=7)
        ax.locator_params(nbins=4)
        ax.set_xlabel("longitude", fontsize=8)
        ax.set_ylabel("latitude", fontsize=8)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    legend = [Line2D([], [], marker="o", ls="", color="grey", label="store"),
              Line2D([], [], marker="s", ls="", color="grey", markeredgecolor="black", label="kitchen"),
              Line2D([], [], marker="o", ls="", markerfacecolor="none", markeredgecolor="#1f77b4", markersize=12,
                     markeredgewidth=2, label="added by the variant"),
              Line2D([], [], marker="x", ls="", color="black", label="closed by the variant")]
    fig.legend(handles=legend, loc="lower center", ncol=4, fontsize=9, frameon=False)
    fig.suptitle("Node utilisation: colour = busiest slot's share of capacity, size = orders given", fontsize=12)
    fig.tight_layout(rect=(0, 0.05, 0.9, 0.97))
    if sc is not None:
        cax = fig.add_axes((0.92, 0.25, 0.015, 0.5))
        fig.colorbar(sc, cax=cax, label="busiest slot's share of capacity")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
