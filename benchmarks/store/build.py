"""The store `o2o bench store` measures: the simulations' big day run by the
real engine on a SQLite store, every save's size recorded; kept for later runs."""
from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from tqdm import tqdm

from benchmarks.procstat import memory_bytes
from engine.store.eventlog import EventLog
from engine.store.network_file import dump_network

SCENARIO = Path(__file__).parents[2] / "simulations" / "scenarios" / "big-day.toml"
SIZE_CLASSES = ((1, 1), (2, 9), (10, 99), (100, 999), (1000, None))


def build(folder: Path, orders: int, nodes: int, skus: int, rebuild: bool) -> dict[str, Any]:
    """Runs the simulated day on a SQLite store in `folder`, or reuses the one
    a previous run built there. Returns its description (kept beside it)."""
    meta = folder / "store.json"
    if meta.exists() and (folder / "events.db").exists() and not rebuild:
        return {**json.loads(meta.read_text()), "reused": True}
    from simulations.demand import base_day
    from simulations.day import simulate, variant_network
    from simulations.variants import network_of
    from simulations.scenario import Generated, NetworkSpec, load_scenario

    folder.mkdir(parents=True, exist_ok=True)
    for f in folder.glob("events.db*"):
        f.unlink()
    s, where = load_scenario(SCENARIO)
    kitchens = max(1, nodes // 20)  # the big day's 30 in 600
    # the big day's city (600 nodes over 40 x 40 km, 12 districts), as dense at any size
    city = Generated(stores=nodes - kitchens, kitchens=kitchens, skus=skus, radius_km=20 * (nodes / 600) ** 0.5,
                     districts=max(1, min(12, nodes // 50)), seed=1000)
    s = msgspec.structs.replace(s, network=NetworkSpec(generate=city),
                                demand=msgspec.structs.replace(s.demand, orders=orders))
    network = network_of(s, where)
    dump_network(variant_network(network, s, None), folder / "network.json")
    day = base_day(s, network)
    saves: list[int] = []
    t0, c0 = time.perf_counter(), time.process_time()
    with _counting_saves(saves), tqdm(total=orders, desc="building the store (simulated day)", unit="order",
                                      unit_scale=True) as bar:
        outcome = simulate(s, network, day, None, f"sqlite:///{folder / 'events.db'}", progress=bar.update)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    events = outcome.engine.last_notification_id()
    outcome.engine.close()
    info = {
        "scenario": SCENARIO.name, "nodes": len(network.nodes), "skus": len(network.skus), "orders": orders,
        "counter_sales": len(day.sales), "events": events, "snapshots": _count_snapshots(folder / "events.db"),
        "bytes": sum(f.stat().st_size for f in folder.glob("events.db*")),
        "build_seconds": round(seconds, 1), "build_cpu_seconds": round(cpu, 1),
        "build_peak_rss_bytes": memory_bytes("VmHWM"),  # the process's peak so far: the simulated day's
        "saves": saves, "save_sizes": _size_summary(saves),
    }
    assert sum(saves) == events, f"recorded saves hold {sum(saves)} events, the store {events}"
    meta.write_text(json.dumps(info))
    return {**info, "reused": False}


@contextmanager
def _counting_saves(saves: list[int]):
    """Records the events of every save the engine makes: each goes through
    EventLog.record once (one transaction)."""
    original = EventLog.record

    def counted(self, events):
        recordings = original(self, events)
        if recordings:
            saves.append(len(recordings))
        return recordings

    EventLog.record = counted
    try:
        yield
    finally:
        EventLog.record = original


def _count_snapshots(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM stored_snapshots").fetchone()[0]


def _size_summary(saves: list[int]) -> dict[str, Any]:
    a = np.array(saves)
    return {"saves": len(a), "median": float(np.median(a)), "p90": float(np.percentile(a, 90)),
            "max": int(a.max()), "by_class": {size_label(c): {"saves": int(m.sum()), "events": int(a[m].sum())}
                                               for c in SIZE_CLASSES for m in [in_size_class(a, c)]}}


def size_label(c: tuple[int, int | None]) -> str:
    lo, hi = c
    return f"{lo}" if lo == hi else f"{lo}+" if hi is None else f"{lo}-{hi}"


def in_size_class(a: np.ndarray, c: tuple[int, int | None]) -> np.ndarray:
    lo, hi = c
    return (a >= lo) & (a <= (hi if hi is not None else a.max()))
