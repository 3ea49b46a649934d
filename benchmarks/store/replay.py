"""Replay: fetch and decode rates in this process, then the engine's restart
in fresh processes (benchmarks/store/restart.py), with snapshots and without."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from engine.store.eventlog import EventLog


def replay(url: str, network: Path, repeat: int, bar) -> dict[str, Any]:
    """Fetch and decode rates in this process (where replay time goes), then
    the engine's restart in fresh processes, with snapshots and without,
    `repeat` times each (alternating): the median run by catch-up time is
    reported, with every run's rate."""
    log = EventLog(url)
    try:
        out = {"fetch": _rate(_fetched(log))}
        bar.update(out["fetch"]["events"])
        out["fetch_and_decode"] = _rate(log.stored_events())
        bar.update(out["fetch"]["events"])
    finally:
        log.close()
    runs: dict[str, list[dict[str, Any]]] = {"with_snapshots": [], "without_snapshots": []}
    for _ in range(repeat):
        for key in runs:
            snapshots = "yes" if key == "with_snapshots" else "no"
            cmd = [sys.executable, "-m", "benchmarks.store.restart", str(network), url, snapshots]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"replay process failed ({done.returncode}):\n{done.stderr[-3000:]}")
            runs[key].append(json.loads(done.stdout.splitlines()[-1]))
            bar.update(runs[key][-1]["events"])
    for key, xs in runs.items():
        median = sorted(xs, key=lambda x: x["catch_up_seconds"])[len(xs) // 2]
        out[key] = {**median, "runs": len(xs), "catch_up_events_per_s_runs": [x["catch_up_events_per_s"] for x in xs],
                    "catch_up_events_per_cpu_s_runs": [x["catch_up_events_per_cpu_s"] for x in xs],
                    "catch_up_events_per_cpu_s_median": int(np.median([x["catch_up_events_per_cpu_s"] for x in xs])),
                    "load_average_runs": [x["load_average"] for x in xs],
                    "startup_seconds_runs": [x["startup_seconds"] for x in xs],
                    "peak_rss_bytes_max": max(x["peak_rss_bytes"] for x in xs)}
    return out


def _fetched(log: EventLog, page: int = 2000) -> Iterator[Any]:
    """The rows a replay reads, undecoded."""
    start = 1
    while rows := log.recorder.notification_rows(start, page):
        yield from rows
        start = rows[-1][0] + 1


def _rate(items: Iterator[Any]) -> dict[str, Any]:
    t0, c0 = time.perf_counter(), time.process_time()
    n = sum(1 for _ in items)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"events": n, "seconds": round(seconds, 4), "cpu_seconds": round(cpu, 4),
            "events_per_s": round(n / seconds) if seconds else None,
            "events_per_cpu_s": round(n / cpu) if cpu else None}
