"""One self-contained HTML report: the KPI table with changes against the
base, the plots embedded as base64, the busiest nodes, and the scenario."""
from __future__ import annotations

import base64
import html
from pathlib import Path

# (key, label, format, better): better is +1 when higher is better, -1 when lower is, 0 when neither
ROWS = [
    ("orders", "orders", "{:,}", 0), ("fill_rate", "fill rate", "{:.2%}", 1),
    ("on_time_rate", "on-time rate", "{:.2%}", 1), ("handover_min_mean", "minutes to hand-over, mean", "{:.1f}", -1),
    ("handover_min_p95", "minutes to hand-over, p95", "{:.1f}", -1), ("distance_km", "delivery distance (km)", "{:,.0f}", 0),
    ("delivery_cost", "delivery cost (RMB)", "{:,.0f}", 0),
    ("delivery_cost_per_order", "delivery cost per order routed (RMB)", "{:.2f}", -1), ("split_rate", "split rate", "{:.2%}", 0),
    ("stockouts_online", "orders lost to stock-outs", "{:,}", -1), ("rejected", "orders rejected, all causes", "{:,}", -1),
    ("stockouts_pos", "counter customers short of an item", "{:,}", -1), ("reroutes", "reroutes", "{:,}", -1),
    ("capacity_use", "capacity use over the day", "{:.1%}", 0), ("nodes_full_in_a_slot", "nodes full in some slot", "{:,}", -1),
    ("kitchen_share", "served by kitchens", "{:.1%}", 0), ("average_order_value", "average order value (RMB)", "{:.2f}", 0),
    ("pos_sales", "counter sales", "{:,}", 0),
]
STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1500px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;padding:4px 10px;text-align:right}
th{background:#f4f4f4}th:first-child{text-align:left}.d{font-size:85%;color:#666}.good{color:#1a7f37}.bad{color:#c62828}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}pre{background:#f8f8f8;padding:1em;white-space:pre-wrap}
.note{color:#555;max-width:60em}"""


def html_report(path: Path, title: str, description: str, scenario_text: str, kpis: dict[str, dict],
                nodes: dict[str, list[dict]], plots: list[Path]) -> Path:
    names = list(kpis)
    images = "".join(
        f'<figure><img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" alt="{p.stem}"></figure>'
        for p in plots)
    path.write_text(f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{html.escape(title)}</h1><p class="note">{html.escape(description)}</p>
<h2>KPIs by variant</h2>
<p class="note">Changes are against <b>{html.escape(names[0])}</b>; green is better, red worse.</p>
{_kpi_table(kpis)}
<h2>Plots</h2>{images}
<h2>Busiest nodes</h2>
<p class="note">The nodes whose busiest 30-minute slot came closest to capacity in any variant:
orders given over the day / busiest slot's share of capacity / on-time rate of what they handed over.</p>
{_node_table(nodes)}
<h2>Scenario</h2><pre>{html.escape(scenario_text)}</pre></body></html>""")
    return path


def _fmt(fmt: str, v) -> str:
    return "-" if v is None else fmt.format(v)


def _kpi_table(kpis: dict[str, dict]) -> str:
    names = list(kpis)
    ref = kpis[names[0]]
    out = "<table><tr><th></th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"
    for key, label, fmt, better in ROWS:
        if all(kpis[n].get(key) is None for n in names):
            continue
        cells = ""
        for n in names:
            v, b = kpis[n].get(key), ref.get(key)
            delta = ""
            if n != names[0] and isinstance(v, (int, float)) and isinstance(b, (int, float)) and v != b:
                tone = "" if not better else ("good" if (v - b) * better > 0 else "bad")
                sign = "+" if v > b else "−"
                delta = f' <span class="d {tone}">({sign}{_fmt(fmt, abs(v - b))})</span>'
            cells += f"<td>{_fmt(fmt, v)}{delta}</td>"
        out += f"<tr><th>{label}</th>{cells}</tr>"
    return out + "</table>"


def _node_table(nodes: dict[str, list[dict]], shown: int = 12) -> str:
    names = list(nodes)
    by_id = {n: {r["node"]: r for r in rows} for n, rows in nodes.items()}
    peak = {}
    for rows in nodes.values():
        for r in rows:
            peak[r["node"]] = max(peak.get(r["node"], 0), r["peak_slot_use"] or 0)
    top = sorted(peak, key=lambda k: (-peak[k], k))[:shown]
    out = "<table><tr><th>node</th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"
    for k in top:
        kind = next(by_id[n][k]["kind"] for n in names if k in by_id[n])
        cells = ""
        for n in names:
            r = by_id[n].get(k)
            absent = "closed" if k in by_id[names[0]] else "-"
            cells += f"<td>{absent}</td>" if r is None else (
                f"<td>{r['orders']} / {_fmt('{:.0%}', r['peak_slot_use'])} / {_fmt('{:.0%}', r['on_time_rate'])}</td>")
        out += f"<tr><th>{html.escape(k)} ({kind})</th>{cells}</tr>"
    return out + "</table>"
