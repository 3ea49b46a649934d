"""Results on disk: KPIs as JSON and CSV, PNG plots, and one self-contained
HTML report (plots embedded) with the tables and the scenario itself."""
from __future__ import annotations

import base64
import csv
import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SHOWN = ["orders", "fill_rate", "on_time_rate", "handover_min_mean", "handover_min_p95", "delivery_cost",
         "split_rate", "stockouts_online", "stockouts_pos", "reroutes", "capacity_use", "nodes_full_in_a_slot",
         "kitchen_share",
         "average_order_value"]


def write(out: Path, scenario_text: str, kpis: dict[str, dict], nodes: dict[str, list[dict]],
          hourly: dict[str, list[dict]]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "kpis.json").write_text(json.dumps({"variants": kpis, "nodes": nodes, "hourly": hourly}, indent=1))
    _csv(out / "kpis.csv", [{"variant": v, **k} for v, k in kpis.items()])
    _csv(out / "nodes.csv", [{"variant": v, **row} for v, rows in nodes.items() for row in rows])
    _csv(out / "hourly.csv", [{"variant": v, **row} for v, rows in hourly.items() for row in rows])
    plots = [_kpi_plot(out / "kpis.png", kpis), _hourly_plot(out / "hourly.png", hourly), _map_plot(out / "map.png", nodes)]
    _html(out / "report.html", scenario_text, kpis, plots)
    return plots + [out / "report.html"]


def _csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        path.write_text("")
        return
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _kpi_plot(path: Path, kpis: dict[str, dict]) -> Path:
    names = list(kpis)
    shown = ["fill_rate", "on_time_rate", "kitchen_share", "nodes_full_in_a_slot", "handover_min_mean", "delivery_cost",
             "stockouts_online", "reroutes"]
    fig, axes = plt.subplots(2, 4, figsize=(15, 6.5))
    for ax, key in zip(axes.ravel(), shown):
        values = [kpis[n].get(key) or 0 for n in names]
        bars = ax.bar(range(len(names)), values, color=["tab:grey"] + ["tab:blue"] * (len(names) - 1))
        ax.set_title(key.replace("_", " "))
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
        ax.bar_label(bars, fmt="%.3g", fontsize=7)
    fig.suptitle(f"KPIs by variant (grey: {names[0]})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _hourly_plot(path: Path, hourly: dict[str, list[dict]]) -> Path:
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(14, 4.5))
    for name, rows in hourly.items():
        hours = [r["hour"] for r in rows]
        a1.plot(hours, [r["orders"] for r in rows], marker=".", label=name)
        a2.plot(hours, [r["fill_rate"] if r["fill_rate"] is not None else float("nan") for r in rows], marker=".",
                label=name)
    a1.set(title="Orders placed per hour", xlabel="hour of day", ylabel="orders")
    a2.set(title="Fill rate by hour placed", xlabel="hour of day", ylabel="fill rate", ylim=(0, 1.02))
    for ax in (a1, a2):
        ax.set_xticks(range(0, 24, 2))
    a1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _map_plot(path: Path, nodes: dict[str, list[dict]]) -> Path:
    names = list(nodes)
    cols = min(3, len(names))
    rows_n = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(5 * cols, 4.6 * rows_n), squeeze=False)
    for ax, name in zip(axes.ravel(), names):
        rows = nodes[name]
        use = [min(r["peak_slot_use"] or 0, 1.0) for r in rows]
        sc = ax.scatter([r["lon"] for r in rows], [r["lat"] for r in rows], c=use, cmap="RdYlGn_r", vmin=0, vmax=1,
                        s=[30 + r["orders"] / 3 for r in rows],
                        marker="o", edgecolors=["black" if r["kind"] == "kitchen" else "none" for r in rows])
        ax.set_title(f"{name}: busiest slot (size = orders)", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.locator_params(nbins=4)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    fig.colorbar(sc, ax=axes.ravel().tolist(), shrink=0.6, label="busiest slot's share of capacity")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _html(path: Path, scenario_text: str, kpis: dict[str, dict], plots: list[Path]) -> None:
    names = list(kpis)
    ref = names[0]  # the base (or the recorded day): changes are shown against it
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = ""
    for key in SHOWN:
        cells = ""
        for n in names:
            v = kpis[n].get(key)
            b = kpis[ref].get(key)
            delta = ""
            if n != ref and isinstance(v, (int, float)) and isinstance(b, (int, float)) and v != b:
                delta = f' <span class="d">({v - b:+.3g})</span>'
            cells += f"<td>{'-' if v is None else f'{v:.4g}' if isinstance(v, float) else v}{delta}</td>"
        body += f"<tr><th>{key.replace('_', ' ')}</th>{cells}</tr>"
    images = "".join(
        f'<figure><img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" alt="{p.stem}"></figure>'
        for p in plots)
    path.write_text(f"""<!doctype html><html><head><meta charset="utf-8"><title>o2o simulation</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}} th{{background:#f4f4f4}}
.d{{color:#666;font-size:85%}} img{{max-width:100%}} pre{{background:#f8f8f8;padding:1em;overflow:auto}}</style>
</head><body><h1>Simulation report</h1>
<h2>KPIs by variant</h2><table><tr><th></th>{head}</tr>{body}</table>
<h2>Plots</h2>{images}
<h2>Scenario</h2><pre>{html.escape(scenario_text)}</pre></body></html>""")
