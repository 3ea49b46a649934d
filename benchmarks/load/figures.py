"""A run's figures: latency percentiles (overall and per second), throughput,
whether the rate was sustained, and the highest rate sustained."""
from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks import loadgen
from benchmarks.load.plan import ECHO, Plan

P99_TARGET_MS = 250.0


def percentiles(latency_s: np.ndarray) -> dict[str, float]:
    xs = latency_s[~np.isnan(latency_s)] * 1000
    if not len(xs):
        return {}
    q = np.percentile(xs, [50, 90, 99, 99.9])
    return {"p50": round(float(q[0]), 1), "p90": round(float(q[1]), 1), "p99": round(float(q[2]), 1),
            "p99.9": round(float(q[3]), 1), "max": round(float(xs.max()), 1)}


def summary(plan: Plan, r: loadgen.Result, usage: dict[str, float]) -> dict[str, Any]:
    latency, code, replies = loadgen.arrays(r)
    ok = int((code == 0).sum())
    errors = {str(c): int(k) for c, k in zip(*np.unique(code[(code != 0) & (code != loadgen.TIMEOUT)],
                                                         return_counts=True))}
    timeouts = int((code == loadgen.TIMEOUT).sum())
    achieved = ok / r.seconds if r.seconds > 0 else 0.0
    lat = percentiles(np.where(code == 0, latency, np.nan))
    good = (not errors and not timeouts and bool(lat) and lat["p99"] <= P99_TARGET_MS
            and achieved >= 0.98 * plan.rate * min(1.0, plan.seconds / r.seconds if r.seconds else 1.0))
    return {
        "name": plan.name, "target": "echo" if plan.subject == ECHO else "engine", "offered_per_s": plan.rate,
        "seconds": plan.seconds, "sent": r.sent, "answered": ok, "errors": errors, "timeouts": timeouts,
        "doubled_replies": int((replies > 1).sum()), "achieved_per_s": round(achieved, 1), "latency_ms": lat,
        "sustained": good, "generator_max_send_lag_ms": round(r.max_send_lag_s * 1000, 1),
        "generator_cpu_s": round(r.cpu_s, 2), "service_cpu_s": round(usage["service_cpu_s"], 2),
        "service_cpu_us_per_request": round(1e6 * usage["service_cpu_s"] / r.sent, 1),
        "service_cpu_us_per_request_by_thread": by_thread(usage, r.sent),
        "nats_server_cpu_s": None if usage["nats_server_cpu_s"] is None else round(usage["nats_server_cpu_s"], 2),
        # the service's child processes (the relay publishing its events): not in the service's own figure
        "relay_cpu_us_per_request": None if usage.get("children_cpu_s") is None
        else round(1e6 * usage["children_cpu_s"] / r.sent, 1),
        # CPU per order depends on it (fixed costs per batch): engine alone, 131 us at 50, 104 at 500
        "orders_per_batch": None if usage.get("orders_per_batch") is None else round(usage["orders_per_batch"], 1),
        "service_rss_bytes": usage["service_rss_bytes"],
        "per_second": per_second(plan.rate, np.where(code == 0, latency, np.nan)),
    }


def by_thread(usage: dict[str, Any], sent: int) -> dict[str, float]:
    """The service's CPU per request by thread (benchmarks.procstat.thread_cpu_seconds),
    most first; "other": what threads that ended during the run used (Linux
    scales each thread's ticks and the process's apart, so within a few per cent)."""
    threads = usage.get("threads_cpu_s") or {}
    out = {k: round(1e6 * s / sent, 1) for k, s in sorted(threads.items(), key=lambda kv: -kv[1]) if s > 0}
    rest = usage["service_cpu_s"] - sum(threads.values())
    if threads and rest * 1e6 / sent >= 0.5:
        out["other"] = round(1e6 * rest / sent, 1)
    return out


def per_second(rate: float, latency_s: np.ndarray) -> list[dict[str, float]]:
    """p50 / p99 / max of the orders due in each second of the run: stalls show as spikes."""
    due = np.arange(len(latency_s)) / rate
    out = []
    for t in range(int(np.ceil(due[-1] + 1e-9)) if len(due) else 0):
        xs = latency_s[(due >= t) & (due < t + 1)]
        xs = xs[~np.isnan(xs)] * 1000
        if len(xs):
            q = np.percentile(xs, [50, 99])
            out.append({"second": t, "p50": round(float(q[0]), 1), "p99": round(float(q[1]), 1),
                        "max": round(float(xs.max()), 1)})
    return out


def sustained(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Highest offered rate sustained, per target, and the engine's share of the echo ceiling."""
    best = {t: max((r["offered_per_s"] for r in runs if r["target"] == t and r["sustained"] and r["name"] != "warm-up"),
                   default=None) for t in ("engine", "echo")}
    ratio = round(best["engine"] / best["echo"], 3) if best["engine"] and best["echo"] else None
    return {"engine_per_s": best["engine"], "echo_per_s": best["echo"], "engine_share_of_echo": ratio}


def repeated(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The main runs (one per fresh engine with --repeat): each one's p99, errors and CPU per order, the worst
    (highest p99; any error or timeout is worse) and the median CPU per order."""
    mains = [r for r in runs if r["name"] == "main"]
    if not mains:
        return None

    def badness(r: dict[str, Any]) -> tuple[int, float]:
        return (sum(r["errors"].values()) + r["timeouts"], (r["latency_ms"] or {}).get("p99", float("inf")))

    worst = max(mains, key=badness)
    return {
        "runs": [{"repeat": r.get("repeat", 1), "p99_ms": (r["latency_ms"] or {}).get("p99"),
                  "errors": sum(r["errors"].values()), "timeouts": r["timeouts"], "sustained": r["sustained"],
                  "service_cpu_us_per_request": r["service_cpu_us_per_request"]} for r in mains],
        "worst": {"repeat": worst.get("repeat", 1), "p99_ms": (worst["latency_ms"] or {}).get("p99"),
                  "errors": sum(worst["errors"].values()), "timeouts": worst["timeouts"]},
        "all_sustained": all(r["sustained"] for r in mains),
        "median_cpu_us_per_request": float(np.median([r["service_cpu_us_per_request"] for r in mains])),
    }
