"""One self-contained HTML report: the KPI table with changes against the
base, the plots embedded as base64, the busiest nodes, and the scenario."""
from __future__ import annotations

import base64
import html
from pathlib import Path

from simulations.labels import KPIS, change, value, verdict

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1500px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;padding:4px 10px;text-align:right}
th{background:#f4f4f4}th:first-child{text-align:left}.d{font-size:85%;color:#666}.good{color:#1a7f37}.bad{color:#c62828}
figure{margin:1em 0}img{max-width:100%;border:1px solid #eee;margin:.5em 0}pre{background:#f8f8f8;padding:1em;white-space:pre-wrap}
.note{color:#555;max-width:60em}figcaption{color:#555;max-width:70em;font-size:92%}
th.group{text-align:center}th.sub{font-weight:normal;font-size:85%;color:#555}td.first,th.first{border-left:2px solid #bbb}"""


def html_report(path: Path, title: str, description: str, scenario_text: str, kpis: dict[str, dict],
                nodes: dict[str, list[dict]], plots: list[Path]) -> Path:
    names = list(kpis)
    images = "".join(
        f'<figure><img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" alt="{p.stem}">'
        f'<figcaption>{CAPTIONS.get(p.stem, "")}</figcaption></figure>' for p in plots)
    path.write_text(f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{html.escape(title)}</h1><p class="note">{html.escape(description)}</p>
<h2>KPIs by variant</h2>
<p class="note">Changes are against <b>{html.escape(names[0])}</b>; green is better, red worse
(changes of rates in percentage points, pt).</p>
{_kpi_table(kpis)}
<h2>Plots</h2>{images}
<h2>Busiest nodes</h2>
<p class="note">The nodes whose busiest 30-minute slot came closest to capacity in any variant, busiest first:
orders given over the day, the busiest slot's share of the node's capacity, and the on-time rate of what it handed over.</p>
{_node_table(nodes)}
<h2>Scenario</h2><pre>{html.escape(scenario_text)}</pre></body></html>""")
    return path


CAPTIONS = {
    "kpis": "Each panel one KPI: the bar is a variant's change against the first column, labelled with its value "
            "and the change; green better, red worse, grey where neither direction is better.",
    "hourly": "By the hour an order was placed. The first column is the wide grey band, each variant a line over it; "
              "the day's first and last hours may be partial.",
    "map": "Every node where it lies, per variant. Colour: the busiest 30-minute slot's share of the node's capacity "
           "(red: full in some slot); size: orders given; squares are kitchens.",
}


def _kpi_table(kpis: dict[str, dict]) -> str:
    names = list(kpis)
    ref = kpis[names[0]]
    out = "<table><tr><th></th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"
    for k in KPIS:
        if all(kpis[n].get(k.key) is None for n in names):
            continue
        cells = ""
        for n in names:
            v = kpis[n].get(k.key)
            d = change(k, v, ref.get(k.key)) if n != names[0] else ""
            delta = f' <span class="d {verdict(k, v, ref.get(k.key))}">({d})</span>' if d else ""
            cells += f"<td>{value(k, v)}{delta}</td>"
        out += f"<tr><th>{html.escape(k.label)}</th>{cells}</tr>"
    return out + "</table>"


def _node_table(nodes: dict[str, list[dict]], shown: int = 12) -> str:
    names = list(nodes)
    by_id = {n: {r["node"]: r for r in rows} for n, rows in nodes.items()}
    peak = {}
    for rows in nodes.values():
        for r in rows:
            peak[r["node"]] = max(peak.get(r["node"], 0), r["peak_slot_use"] or 0)
    top = sorted(peak, key=lambda k: (-peak[k], k))[:shown]
    subs = ("orders", "busiest slot", "on time")
    out = ('<table><tr><th rowspan="2">node</th>'
           + "".join(f'<th colspan="3" class="first group">{html.escape(n)}</th>' for n in names) + "</tr><tr>"
           + "".join(f'<th class="sub{" first" if i == 0 else ""}">{s}</th>' for _ in names for i, s in enumerate(subs))
           + "</tr>")
    for k in top:
        kind = next(by_id[n][k]["kind"] for n in names if k in by_id[n])
        cells = ""
        for n in names:
            r = by_id[n].get(k)
            if r is None:
                cells += f'<td colspan="3" class="first">{"closed" if k in by_id[names[0]] else "-"}</td>'
                continue
            cells += (f'<td class="first">{r["orders"]:,}</td><td>{_pct(r["peak_slot_use"])}</td>'
                      f'<td>{_pct(r["on_time_rate"], 1)}</td>')
        out += f"<tr><th>{html.escape(k)} ({kind})</th>{cells}</tr>"
    return out + "</table>"


def _pct(v, digits: int = 0) -> str:
    return "-" if v is None else f"{v:.{digits}%}"
