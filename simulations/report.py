"""One self-contained HTML report: the KPI table with changes against the
base, the plots embedded as base64, the busiest nodes, members and benefit
sharing (when the scenario has them), and the scenario."""
from __future__ import annotations

import base64
import html
from collections import Counter, defaultdict
from pathlib import Path

from domain.benefit import ROLES
from simulations import replications
from simulations.labels import BENEFIT, KPIS, Kpi, change, value, verdict

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1500px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;padding:4px 10px;text-align:right}
th{background:#f4f4f4}th:first-child{text-align:left}.d{font-size:85%;color:#666}.good{color:#1a7f37}.bad{color:#c62828}
figure{margin:1em 0}img{max-width:100%;border:1px solid #eee;margin:.5em 0}pre{background:#f8f8f8;padding:1em;white-space:pre-wrap}
.note{color:#555;max-width:60em}figcaption{color:#555;max-width:70em;font-size:92%}
th.group{text-align:center}th.sub{font-weight:normal;font-size:85%;color:#555}td.first,th.first{border-left:2px solid #bbb}"""


def html_report(path: Path, title: str, description: str, scenario_text: str, kpis: dict[str, dict],
                nodes: dict[str, list[dict]], plots: list[Path], benefit: dict[str, dict] | None = None,
                summary: dict | None = None) -> Path:
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
{_replications_section(summary) if summary else ""}
<h2>Plots</h2>{images}
<h2>Busiest nodes</h2>
<p class="note">The nodes whose busiest 30-minute slot came closest to capacity in any variant, busiest first:
orders given over the run, the busiest slot's share of the node's capacity, and the on-time rate of what it handed over.</p>
{_node_table(nodes)}
{_benefit_section(kpis, benefit) if benefit else ""}
<h2>Scenario</h2><pre>{html.escape(scenario_text)}</pre></body></html>""")
    return path


CAPTIONS = {
    "kpis": "Each panel one KPI: the bar is a variant's change against the first column, labelled with its value "
            "and the change; green better, red worse, grey where neither direction is better.",
    "hourly": "By the hour an order was placed. The first column is the wide grey band, each variant a line over it; "
              "the day's first and last hours may be partial.",
    "benefit": "Benefit accrued over the run per variant: by role, by dealer, and for the ten stores credited most "
               "(the store's own share, not its clerks' or manager's). RMB.",
    "map": "Every node where it lies, per variant. Colour: the busiest 30-minute slot's share of the node's capacity "
           "(red: full in some slot); size: orders given; squares are kitchens.",
}


def _kpi_table(kpis: dict[str, dict], shown: list[Kpi] = KPIS) -> str:
    names = list(kpis)
    ref = kpis[names[0]]
    out = "<table><tr><th></th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"
    for k in shown:
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


def _replications_section(summary: dict, shown: list[Kpi] = KPIS) -> str:
    """Each KPI's mean and 95% interval over the seeds, and each variant's paired
    difference against the base: significant ones (the interval excludes 0) bold and starred."""
    names, seeds = summary["variants"], summary["seeds"]
    out = (f'<h2>Over {summary["replications"]} replications</h2><p class="note">Seeds {seeds[0]} to {seeds[-1]}, '
           f'every variant with the same customers per seed (the table above and the plots are seed {seeds[0]}\'s). '
           f'Mean [95% interval, Student t]; for a variant, then its paired difference against '
           f'<b>{html.escape(names[0])}</b> [interval]. <b>Bold, *</b>: significant, the interval excludes 0 '
           f'(green better, red worse).</p><table><tr><th></th>'
           + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>")
    for k in shown:
        row = summary["kpis"].get(k.key)
        if not row:
            continue
        cells = ""
        for n in names:
            c = row.get(n)
            if c is None:
                cells += "<td>-</td>"
                continue
            d = c.get("diff")
            diff = ""
            if d is not None:
                text = html.escape(replications.shown_diff(k.key, d))
                text = f"<b>{text}</b>" if d["significant"] else text
                diff = f'<br><span class="d {replications.verdict(k.key, d)}">{text}</span>'
            cells += f"<td>{html.escape(replications.shown(k.key, c))}{diff}</td>"
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


def party_totals(statements: list[dict]) -> dict[str, int]:
    """Each party's total over the run's periods (minor units)."""
    out: Counter = Counter()
    for row in statements:
        out[row["party"]] += row["total"]
    return dict(out)


def _money(v: int | None) -> str:
    return "-" if v is None else f"{v / 100:,.2f}"


def _benefit_section(kpis: dict[str, dict], benefit: dict[str, dict], shown: int = 12, per_role: int = 5) -> str:
    names = list(kpis)
    totals = {n: party_totals(benefit.get(n, {}).get("statements", [])) for n in names}
    rules = "".join(f"<li><b>{html.escape(n)}</b>: {html.escape(benefit.get(n, {}).get('rules') or 'none')}</li>"
                    for n in names)
    everyone = {p for t in totals.values() for p in t}
    dealers = sorted(p for p in everyone if p.startswith("dealer:"))
    top = []
    for role in ROLES:  # dealers are all in the table above; the others' best-paid few, role by role
        if role != "dealer":
            mine = [p for p in everyone if p.startswith(f"{role}:")]
            top += sorted(mine, key=lambda p: (-max(t.get(p, 0) for t in totals.values()), p))[:per_role]
    return f"""<h2>Members and benefit sharing</h2>
<p class="note">Members signed up before the run and by clerks at the tills during it; what members bought online
and at the counter; what the benefit statements (o2o.benefit.statement, every period of the run) credit, role by
role. Money in RMB; changes against <b>{html.escape(names[0])}</b>. The rule set each variant published:</p>
<ul class="note">{rules}</ul>
{_kpi_table(kpis, BENEFIT)}
<h3>What each dealer is credited</h3>
{_party_table(names, totals, dealers)}
<h3>Parties credited most, role by role</h3>
<p class="note">The {per_role} clerks, managers, stores (and regions) credited most in any variant, over all periods
of the run.</p>
{_party_table(names, totals, top)}
<h3>Statements per period</h3>
{_period_table(names, benefit)}
<h3>Members signed up per node and clerk</h3>
<p class="note">In <b>{html.escape(names[0])}</b> (every variant sees the same customers; a closed store's move to
another). The {shown} nodes that signed up most, with their clerks.</p>
{_signup_table(benefit.get(names[0], {}).get("signups", []), shown)}"""


def _party_table(names: list[str], totals: dict[str, dict[str, int]], parties: list[str]) -> str:
    if not parties:
        return '<p class="note">None.</p>'
    out = "<table><tr><th>party</th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"
    ref = totals[names[0]]
    for p in parties:
        cells = ""
        for n in names:
            v, r = totals[n].get(p), ref.get(p)
            d = f' <span class="d">({"+" if (v or 0) > (r or 0) else "−"}{_money(abs((v or 0) - (r or 0)))})</span>' \
                if n != names[0] and (v or 0) != (r or 0) else ""
            cells += f"<td>{_money(v)}{d}</td>"
        out += f"<tr><th>{html.escape(p)}</th>{cells}</tr>"
    return out + "</table>"


def _period_table(names: list[str], benefit: dict[str, dict]) -> str:
    rows: dict[str, dict[str, list]] = defaultdict(dict)
    for n in names:
        for r in benefit.get(n, {}).get("statements", []):
            cell = rows[r["period"]].setdefault(n, [0, 0, 0, r["closed"]])
            cell[0] += 1
            cell[1] += r["lines"]
            cell[2] += r["total"]
    if not rows:
        return '<p class="note">No statements: no member bought within a rule set\'s window.</p>'
    subs = ("parties", "lines", "total", "")
    out = ('<table><tr><th rowspan="2">period</th>'
           + "".join(f'<th colspan="4" class="first group">{html.escape(n)}</th>' for n in names) + "</tr><tr>"
           + "".join(f'<th class="sub{" first" if i == 0 else ""}">{s}</th>' for _ in names for i, s in enumerate(subs))
           + "</tr>")
    for period in sorted(rows):
        cells = ""
        for n in names:
            c = rows[period].get(n)
            cells += ('<td colspan="4" class="first">-</td>' if c is None else
                      f'<td class="first">{c[0]:,}</td><td>{c[1]:,}</td><td>{_money(c[2])}</td>'
                      f'<td>{"closed" if c[3] else "open"}</td>')
        out += f"<tr><th>{period}</th>{cells}</tr>"
    return out + "</table>"


def _signup_table(rows: list[dict], shown: int) -> str:
    by_node: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_node[r["node"]].append(r)
    if not by_node:
        return '<p class="note">No members.</p>'
    top = sorted(by_node, key=lambda k: (-sum(r["members"] for r in by_node[k]), k))[:shown]
    out = ("<table><tr><th>node</th><th>members</th><th>before the run</th><th>at a till during it</th>"
           "<th style=\"text-align:left\">by clerk (before + at a till)</th></tr>")
    for k in top:
        rs = by_node[k]
        clerks = ", ".join(f"{html.escape(r['clerk'] or 'no clerk')} {r['before']} + {r['joined']}"
                           for r in sorted(rs, key=lambda r: (-r["members"], r["clerk"])))
        out += (f"<tr><th>{html.escape(k)}</th><td>{sum(r['members'] for r in rs):,}</td>"
                f"<td>{sum(r['before'] for r in rs):,}</td><td>{sum(r['joined'] for r in rs):,}</td>"
                f'<td style="text-align:left">{clerks}</td></tr>')
    total = sum(r["members"] for r in rows)
    return out + f'</table><p class="note">{total:,} members at {len(by_node)} nodes, {len(rows)} clerks in all.</p>'
