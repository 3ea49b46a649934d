"""`o2o benefit statement`: benefit-sharing statements of a period, from an event store.

Read-only: replays the stored events into the read models and writes, per
party, a CSV of the statement's lines and a readable HTML statement (the
balance carried in, each line with its purchase, rate and rule version,
the total, what is payable and what was paid), plus index.html and
summary.csv over all parties. Money in the network's currency, times in
its time zone.
"""
from __future__ import annotations

import argparse
import csv
import html
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from adapters.cli_state import rebuild
from domain.benefit import PERIOD_ID
from domain.errors import DomainError
from engine.clock import parse_time
from engine.replies import StatementReply, statement_replies
from engine.store.network_file import SAMPLE_NETWORK
from engine.store.urls import DEFAULT_STORE

LINE_FIELDS = ("at", "purchase", "source", "sku", "role", "base", "bp", "version", "amount", "payable_at", "cites")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("benefit", help="benefit-sharing statements from an event store (CSV and HTML)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    s = verbs.add_parser("statement", help="write a period's statements, one party's or every party's")
    s.add_argument("--store", default=DEFAULT_STORE, help=f"event store URL (default {DEFAULT_STORE})")
    s.add_argument("--network", default=str(SAMPLE_NETWORK), help="network file the store was run with")
    s.add_argument("--period", required=True, help="the period, in the network's time zone: 2026-03 (or 2026-03-H2, 2026-Q1)")
    s.add_argument("--party", action="append", help="only this party, e.g. store:S001 or clerk:c7 (repeatable)")
    s.add_argument("--out", required=True, help="folder to write the statements into")
    s.add_argument("--at", help="what is payable as of this time (ISO 8601 or epoch seconds; default now)")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not re.fullmatch(PERIOD_ID, args.period):
        print(f"o2o benefit: period: expected a month, half month or quarter like 2026-03, 2026-03-H2, 2026-Q1; "
              f"got {args.period!r}", file=sys.stderr)
        return 2
    try:
        now = time.time() if args.at is None else parse_time(args.at, "at")
        views, _ = rebuild(args.store, args.network)
        found = [s for party in args.party or [None]
                 for s in statement_replies(views.benefit, args.period, party, now).statements]
    except (DomainError, FileNotFoundError) as e:
        print(f"o2o benefit: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net = views.network
    fmt = Format(net.currency, net.minor_units, net.timezone)
    for s in found:
        name = file_name(s.party)
        write_csv(out / f"{name}.csv", s, fmt)
        (out / f"{name}.html").write_text(statement_html(s, fmt, net.name), encoding="utf-8")
    write_summary(out / "summary.csv", found, fmt)
    (out / "index.html").write_text(index_html(args.period, found, fmt, net.name), encoding="utf-8")
    total = sum(s.total for s in found)
    print(f"{len(found)} statements for {args.period} in {out}/ (index.html, summary.csv, a CSV and an HTML "
          f"per party); accrued {fmt.money(total)} {net.currency}")
    return 0


class Format:
    def __init__(self, currency: str, minor_units: int, timezone: str) -> None:
        self.currency, self.unit, self.zone = currency, 10 ** minor_units, ZoneInfo(timezone)
        self.digits = minor_units

    def money(self, minor: int) -> str:
        sign = "-" if minor < 0 else ""
        major, minor_part = divmod(abs(minor), self.unit)
        return f"{sign}{major:,}.{minor_part:0{self.digits}d}" if self.digits else f"{sign}{major:,}"

    def time(self, t: float | None) -> str:
        return datetime.fromtimestamp(t, self.zone).strftime("%Y-%m-%d %H:%M") if t is not None else ""


def file_name(party: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", party)


def line_rows(s: StatementReply, fmt: Format) -> list[dict[str, str]]:
    return [{"at": fmt.time(line.at), "purchase": line.root, "source": line.source, "sku": line.sku or "(per order)",
             "role": line.role, "base": fmt.money(line.base), "bp": str(line.bp), "version": line.version,
             "amount": fmt.money(line.amount), "payable_at": fmt.time(line.payable_at), "cites": line.cites or ""}
            for line in s.lines]


def write_csv(path: Path, s: StatementReply, fmt: Format) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, LINE_FIELDS)
        w.writeheader()
        w.writerows(line_rows(s, fmt))


SUMMARY_FIELDS = ("party", "period", "status", "opening", "accrued", "closing", "payable", "paid", "reference", "lines")


def summary_row(s: StatementReply, fmt: Format) -> dict[str, str]:
    return {"party": s.party, "period": s.period, "status": s.status, "opening": fmt.money(s.opening),
            "accrued": fmt.money(s.total), "closing": fmt.money(s.closing), "payable": fmt.money(s.payable),
            "paid": fmt.money(s.paid), "reference": s.reference or "", "lines": str(len(s.lines))}


def write_summary(path: Path, found: list[StatementReply], fmt: Format) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, SUMMARY_FIELDS)
        w.writeheader()
        w.writerows(summary_row(s, fmt) for s in found)


STYLE = """body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;width:100%;margin:1em 0} th,td{padding:.35em .6em;border-bottom:1px solid #ddd}
th{text-align:left;background:#f4f4f4} td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.neg{color:#b00020} .totals td{font-weight:600;border-top:2px solid #888}
.badge{display:inline-block;padding:.1em .6em;border-radius:1em;background:#eee;font-size:.85em}
.paid{background:#d7f5dd} .closed{background:#dde8ff} .draft{background:#fff3c4}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1.2em} dt{color:#666}"""


def _num(v: str, raw: int) -> str:
    return f'<td class="n{" neg" if raw < 0 else ""}">{html.escape(v)}</td>'


def statement_html(s: StatementReply, fmt: Format, network: str) -> str:
    e = html.escape
    rows = []
    for line, row in zip(s.lines, line_rows(s, fmt)):
        rows.append("<tr>" + "".join(f"<td>{e(row[k])}</td>" for k in ("at", "purchase", "sku", "role"))
                    + _num(row["base"], line.base) + f'<td class="n">{line.bp / 100:g}%</td>'
                    + f"<td>{e(line.version)}</td>" + _num(row["amount"], line.amount)
                    + f"<td>{e(row['payable_at'])}</td><td>{e(row['cites'])}</td></tr>")
    if not rows:
        rows.append('<tr><td colspan="10">no lines in this period</td></tr>')
    c = fmt.currency
    return f"""<!doctype html><html lang="en"><meta charset="utf-8">
<title>Benefit statement {e(s.party)} {e(s.period)}</title><style>{STYLE}</style>
<h1>Benefit statement: {e(s.party)}</h1>
<p class="sub">{e(network)} &middot; period {e(s.period)} &middot; <span class="badge {s.status}">{s.status}</span></p>
<dl><dt>Opening balance</dt><dd>{fmt.money(s.opening)} {c}{' (carried: a negative balance is never paid out)' if s.opening < 0 else ''}</dd>
<dt>Accrued in the period</dt><dd>{fmt.money(s.total)} {c}</dd>
<dt>Closing balance</dt><dd>{fmt.money(s.closing)} {c}</dd>
<dt>Payable now</dt><dd>{fmt.money(s.payable)} {c}</dd>
<dt>Paid</dt><dd>{fmt.money(s.paid)} {c}{f' on {fmt.time(s.paid_at)}, reference {e(s.reference)}' if s.reference else ''}</dd></dl>
<table><tr><th>time</th><th>purchase</th><th>SKU</th><th>role</th><th class="n">base</th><th class="n">rate</th>
<th>rules</th><th class="n">amount</th><th>payable from</th><th>cites</th></tr>
{''.join(rows)}
<tr class="totals"><td colspan="7">total of {len(s.lines)} lines</td>{_num(fmt.money(s.total), s.total)}<td colspan="2"></td></tr>
</table>
<p class="sub">Amounts in {c}. A line with "cites" arrived after its own period closed and is booked here.</p>
"""


def index_html(period: str, found: list[StatementReply], fmt: Format, network: str) -> str:
    e = html.escape
    rows = "".join(
        f'<tr><td><a href="{file_name(s.party)}.html">{e(s.party)}</a></td>'
        f'<td><span class="badge {s.status}">{s.status}</span></td>' + _num(fmt.money(s.opening), s.opening)
        + _num(fmt.money(s.total), s.total) + _num(fmt.money(s.closing), s.closing)
        + _num(fmt.money(s.payable), s.payable) + _num(fmt.money(s.paid), s.paid) + f'<td class="n">{len(s.lines)}</td></tr>'
        for s in sorted(found, key=lambda s: (-s.total, s.party)))
    total = sum(s.total for s in found)
    return f"""<!doctype html><html lang="en"><meta charset="utf-8">
<title>Benefit statements {e(period)}</title><style>{STYLE}</style>
<h1>Benefit statements, {e(period)}</h1>
<p class="sub">{e(network)} &middot; {len(found)} parties &middot; accrued {fmt.money(total)} {fmt.currency}</p>
<table><tr><th>party</th><th>status</th><th class="n">opening</th><th class="n">accrued</th><th class="n">closing</th>
<th class="n">payable</th><th class="n">paid</th><th class="n">lines</th></tr>{rows}
<tr class="totals"><td colspan="3">all parties</td>{_num(fmt.money(total), total)}<td colspan="4"></td></tr></table>
"""
