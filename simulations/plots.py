"""PNG plots of a simulation's results: KPIs by variant, orders / fill rate /
on-time rate by hour, per-node utilisation on a map of the nodes, and the
benefit each variant's rule set credits (by role, dealer and store)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

from simulations.labels import KPIS, change, value, verdict  # noqa: E402

BASE = "#9e9e9e"
DASHES = ["-", "--", "-.", ":"]  # variants that coincide still show each line
TONE = {"good": "#2e7d32", "bad": "#c62828", "": "#607d8b"}  # better, worse, neither


def draw(out: Path, kpis: dict[str, dict], nodes: dict[str, list[dict]], hourly: dict[str, list[dict]],
         benefit: dict[str, dict] | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    pngs = [kpi_changes(out / "kpis.png", kpis), by_hour(out / "hourly.png", hourly), node_map(out / "map.png", nodes)]
    if benefit and any(b["statements"] for b in benefit.values()):
        pngs.append(benefit_paid(out / "benefit.png", kpis, benefit))
    return pngs


def kpi_changes(path: Path, kpis: dict[str, dict]) -> Path:
    """One panel per KPI: each variant's change against the first (the base),
    green where better, red where worse, labelled with its value. Bars of
    near-equal values from zero would hide the changes a planner looks for.
    A run without variants gets the day's figures as tiles."""
    names = list(kpis)
    shown = [k for k in KPIS if k.plotted and any(kpis[n].get(k.key) is not None for n in names)]
    if len(names) == 1:
        return _tiles(path, names[0], kpis[names[0]], shown)
    base, others = names[0], names[1:]
    cols = min(3, len(shown))  # the report shows a plot about 1,300 px wide: at 100 dpi, 13 inches
    rows = math.ceil(len(shown) / cols)
    height = 0.42 * len(others) + 1.4
    fig, axes = plt.subplots(rows, cols, figsize=(3.9 * cols + 1.4, height * rows + 0.7), squeeze=False, sharey=True)
    for ax, k in zip(axes.ravel(), shown):
        ref = kpis[base].get(k.key)
        values = [kpis[n].get(k.key) for n in others]
        deltas = [(v - ref) * (100 if "%" in k.fmt else 1) if v is not None and ref is not None else 0 for v in values]
        y = range(len(others))
        bars = ax.barh(y, deltas, color=[TONE[verdict(k, v, ref)] for v in values], height=0.6)
        ax.bar_label(bars, [_bar_text(k, v, ref) for v in values], fontsize=8, padding=3)
        reach = max((abs(d) for d in deltas), default=0) or 1
        ax.set_xlim(-reach * 3.4, reach * 3.4)  # room for the labels either side
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(f"{k.label}\n{base}: {value(k, ref)}", fontsize=9)
        ax.set_xlabel("change, percentage points" if "%" in k.fmt else "change", fontsize=7.5)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_yticks(list(y), others, fontsize=8.5)
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="x", alpha=0.25)
    axes[0][0].invert_yaxis()  # variants top to bottom in the scenario's order (the axes share y)
    for ax in axes.ravel()[len(shown):]:
        ax.axis("off")
    fig.suptitle(f"Change of each KPI against {base} (green: better, red: worse, grey: neither is better)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _bar_text(k, v, ref) -> str:
    if v == ref:
        return f"{value(k, v)}  (same)"
    if v is None or ref is None:  # e.g. a recorded day does not know its counter customers who went short
        return f"{value(k, v)}  (no comparison)"
    return f"{value(k, v)}  ({change(k, v, ref)})"


def _tiles(path: Path, name: str, kpis: dict, shown: list) -> Path:
    """The figures as tiles on one axes (ten subplots cost a second on a busy machine)."""
    cols = 5
    rows = math.ceil(len(shown) / cols)
    fig, ax = plt.subplots(figsize=(2.6 * cols, 1.4 * rows + 0.5))
    for i, k in enumerate(shown):
        x, y = i % cols, rows - 1 - i // cols
        ax.add_patch(Rectangle((x + 0.04, y + 0.06), 0.92, 0.88, fill=False, edgecolor="#dddddd"))
        ax.text(x + 0.5, y + 0.58, value(k, kpis.get(k.key)), ha="center", va="center", fontsize=20, weight="bold")
        ax.text(x + 0.5, y + 0.22, k.label, ha="center", va="center", fontsize=8.5, color="#444")
    ax.set(xlim=(0, cols), ylim=(0, rows))
    ax.axis("off")
    fig.suptitle(f"The day's KPIs: {name}", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def by_hour(path: Path, hourly: dict[str, list[dict]]) -> Path:
    """The base as a wide grey band, each variant a thin line over it: a
    variant equal to the base still shows, and so does the base."""
    fig, axes = plt.subplots(1, 3, figsize=(13.2, 4.4))
    panels = [("orders", "Orders placed per hour", "orders"), ("fill_rate", "Fill rate by hour placed", "fill rate"),
              ("on_time_rate", "On-time rate by hour placed", "on-time rate (of completed)")]
    busy = [h for rows in hourly.values() for h, r in enumerate(rows) if r["orders"]]
    first, last = (min(busy), max(busy)) if busy else (0, 23)
    for i, (name, rows) in enumerate(hourly.items()):
        rows = [r for r in rows if first <= r["hour"] <= last]
        style = (dict(color=BASE, lw=6, alpha=0.6, solid_capstyle="round", zorder=1) if i == 0
                 else dict(marker=".", lw=1.6, zorder=2, ls=DASHES[(i - 1) % len(DASHES)]))
        for ax, (key, _, _) in zip(axes, panels):
            ax.plot([r["hour"] for r in rows], [r[key] if r.get(key) is not None else float("nan") for r in rows],
                    label=name, **style)
    for ax, (key, title, label) in zip(axes, panels):
        ax.set(title=title, xlabel="hour of day", ylabel=label, xlim=(first - 0.5, last + 0.5))
        ax.set_xticks(range(first, last + 1, 2 if last - first > 12 else 1))
        ax.grid(alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        if key == "orders":
            ax.set_ylim(bottom=0)
        else:
            low = min((r[key] for rows in hourly.values() for r in rows if r.get(key) is not None), default=0)
            ax.set_ylim(max(0, min(low, 0.9) - 0.02), 1.005)
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
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
    side = 4.3 if len(names) > 1 else 8.5  # one map alone gets the room a crowded city needs
    fig, axes = plt.subplots(rows_n, cols, figsize=(max((side + 0.4) * cols, 10), side * rows_n + 0.8), squeeze=False)
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
        full = sum(1 for r in rows if (r["peak_slot_use"] or 0) >= 1)
        ax.set_title(f"{name}: {full} of {len(rows)} nodes full in some slot", fontsize=10)
        ax.set_aspect(1 / mid)  # a degree of longitude is shorter than one of latitude
        ax.tick_params(labelsize=7)
        ax.locator_params(nbins=4)
        ax.set_xlabel("longitude", fontsize=8)
        ax.set_ylabel("latitude", fontsize=8)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    legend = [Line2D([], [], marker="o", ls="", color="grey", label="store"),
              Line2D([], [], marker="s", ls="", color="grey", markeredgecolor="black", label="kitchen")]
    if len(everywhere) > len(base_ids):
        legend.append(Line2D([], [], marker="o", ls="", markerfacecolor="none", markeredgecolor="#1f77b4",
                             markersize=12, markeredgewidth=2, label="added by the variant"))
    if any(base_ids - {r["node"] for r in rows} for rows in nodes.values()):
        legend.append(Line2D([], [], marker="x", ls="", color="black", label="closed by the variant"))
    fig.legend(handles=legend, loc="lower center", ncol=4, fontsize=9, frameon=False)
    fig.suptitle("Node utilisation: colour = busiest slot's share of capacity, size = orders given", fontsize=12)
    fig.tight_layout(rect=(0, 0.05, 0.9, 0.97))
    if sc is not None:
        cax = fig.add_axes((0.92, 0.25, 0.015, 0.5))
        fig.colorbar(sc, cax=cax, label="busiest slot's share of capacity")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def benefit_paid(path: Path, kpis: dict[str, dict], benefit: dict[str, dict], stores: int = 10) -> Path:
    """Grouped bars, one colour per variant: accrued per role, per dealer, and
    for the stores credited most (their own share), in major units."""
    names = list(kpis)
    totals = {n: {} for n in names}
    for n in names:
        for r in benefit.get(n, {}).get("statements", []):
            totals[n][r["party"]] = totals[n].get(r["party"], 0) + r["total"]
    roles = [r for r in ("clerk", "manager", "store", "dealer", "region")
             if any(kpis[n].get(f"benefit_{r}") for n in names)]
    dealers = sorted({p for t in totals.values() for p in t if p.startswith("dealer:")})
    every_store = {p for t in totals.values() for p in t if p.startswith("store:")}
    top = sorted(every_store, key=lambda p: (-max(t.get(p, 0) for t in totals.values()), p))[:stores]
    panels = [("By role", roles, lambda n, r: kpis[n].get(f"benefit_{r}") or 0),
              ("By dealer", [d.split(":", 1)[1] for d in dealers], lambda n, d: totals[n].get(f"dealer:{d}", 0)),
              (f"The {len(top)} stores credited most (store's share)", [s.split(":", 1)[1] for s in top],
               lambda n, s: totals[n].get(f"store:{s}", 0))]
    fig, axes = plt.subplots(1, 3, figsize=(13.2, 4.8))
    width = 0.8 / len(names)
    colours = [BASE] + [f"C{i}" for i in range(len(names) - 1)]
    for ax, (title, keys, get) in zip(axes, panels):
        for i, n in enumerate(names):
            xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(keys))]
            ax.bar(xs, [get(n, k) / 100 for k in keys], width, color=colours[i], label=n)
        ax.set_xticks(range(len(keys)), keys, rotation=45 if len(keys) > 5 else 0, ha="right" if len(keys) > 5 else "center",
                      fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("accrued (RMB)", fontsize=8)
        ax.tick_params(axis="y", labelsize=7.5)
        ax.grid(axis="y", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.95), ncol=min(len(labels), 6), fontsize=9,
               frameon=False)
    fig.suptitle("Benefit accrued over the run, per variant's rule set", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
