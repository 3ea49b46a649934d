"""Replications: a scenario's base and variants run once per seed (common
random numbers: replication r of every variant sees the same customers and
node behaviour), then each KPI's mean with a 95% confidence interval
(Student t over the replications) and the paired difference of each
variant against the base, with its own interval; a difference is
significant when its interval excludes 0. Written as replications.json and
replications.csv; the report and the command show them."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import msgspec
from scipy import stats

from simulations.labels import KPIS, Kpi, change, value

CONFIDENCE = 0.95


def interval(xs: list[float]) -> dict:
    """Mean and the Student t interval around it (none from fewer than 2 values)."""
    n = len(xs)
    if not n:
        return {"n": 0, "mean": None, "low": None, "high": None}
    mean = math.fsum(xs) / n
    if n < 2:
        return {"n": n, "mean": mean, "low": None, "high": None}
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf((1 + CONFIDENCE) / 2, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "low": mean - half, "high": mean + half}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def summarise(seeds: list[int], runs: list[dict[str, dict]]) -> dict:
    """runs[r][variant] is replication r's KPIs. Per KPI and variant: the mean
    and its interval; per variant but the base: the paired difference (over
    the replications where both have a value) and whether it is significant."""
    names = list(runs[0])
    base = names[0]
    keys = [k for k, v in runs[0][base].items() if _number(v) or v is None]
    out: dict[str, dict] = {}
    for key in keys:
        row = {}
        for name in names:
            values = [r[name].get(key) for r in runs]
            if not any(_number(v) for v in values):
                continue
            cell = interval([v for v in values if _number(v)])
            if name != base:
                pairs = [(r[name].get(key), r[base].get(key)) for r in runs]
                d = interval([a - b for a, b in pairs if _number(a) and _number(b)])
                d["significant"] = d["low"] is not None and (d["low"] > 0 or d["high"] < 0)
                cell["diff"] = d
            row[name] = cell
        if row:
            out[key] = row
    return {"replications": len(runs), "seeds": seeds, "confidence": CONFIDENCE, "base": base, "variants": names,
            "kpis": out, "runs": [{"seed": s, "kpis": r} for s, r in zip(seeds, runs)]}


def write(out: Path, summary: dict) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    js, cs = out / "replications.json", out / "replications.csv"
    js.write_text(json.dumps(summary, indent=1, sort_keys=False) + "\n")
    with cs.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kpi", "variant", "n", "mean", "low", "high", "diff_n", "diff_mean", "diff_low", "diff_high",
                    "significant"])
        for key, row in summary["kpis"].items():
            for name, c in row.items():
                d = c.get("diff", {})
                w.writerow([key, name, c["n"], c["mean"], c["low"], c["high"], d.get("n", ""), d.get("mean", ""),
                            d.get("low", ""), d.get("high", ""), d.get("significant", "")])
    return [js, cs]


LABELS = {k.key: k for k in KPIS}


def _kpi(key: str) -> Kpi:
    """The KPI's label; a count's mean gets a decimal."""
    k = LABELS.get(key) or Kpi(key, key, "{:,.4g}", 0)
    return msgspec.structs.replace(k, fmt="{:,.1f}") if k.fmt == "{:,}" else k


def shown(key: str, c: dict) -> str:
    """"95.94% [95.71%, 96.17%]": a mean and its interval as the KPI is shown."""
    k = _kpi(key)
    if c["low"] is None:
        return value(k, c["mean"])
    return f"{value(k, c['mean'])} [{value(k, c['low'])}, {value(k, c['high'])}]"


def signed(key: str, d: float | None) -> str:
    """A difference as the KPI's changes are shown ("+0.61 pt"); 0 when none."""
    return "-" if d is None else (change(_kpi(key), d, 0.0) or "0")


def shown_diff(key: str, d: dict) -> str:
    """"+0.61 pt [+0.32 pt, +0.90 pt] *", the star marking a significant one."""
    if d["low"] is None:
        return signed(key, d["mean"])
    star = " *" if d["significant"] else ""
    return f"{signed(key, d['mean'])} [{signed(key, d['low'])}, {signed(key, d['high'])}]{star}"


def verdict(key: str, d: dict) -> str:
    """"good" or "bad" for a significant difference in a direction that is better or worse, else ""."""
    k = _kpi(key)
    if not d.get("significant") or not k.better:
        return ""
    return "good" if d["mean"] * k.better > 0 else "bad"
