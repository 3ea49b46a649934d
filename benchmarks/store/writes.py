"""Writes: the stored events saved again in the engine's own saves (with the
snapshots the library takes after them timed apart) and at fixed batch sizes."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks.store.build import SIZE_CLASSES, in_size_class, size_label
from domain.inventory import NodeInventory
from engine.app import EngineSettings
from engine.store.aggregates import record_events
from engine.store.eventlog import EventLog

SNAPSHOT_INTERVAL = EngineSettings().inventory_snapshot_interval


def writes(source: str, target: str, saves: list[int], sizes: list[int], sample: int, fresh, bar) -> dict[str, Any]:
    """The stored events saved again into `target` in the engine's own saves,
    then `sample` events from the middle of the store at each fixed batch size
    into fresh stores."""
    log = EventLog(source)
    events = (e for _, e in log.stored_events())
    writer = EventLog(target, snapshots=True)
    per_save, snap_s, n_snap = [], 0.0, 0
    c0 = time.process_time()
    try:
        for size in saves:
            batch = [next(events) for _ in range(size)]
            t0 = time.perf_counter()
            record_events(writer, batch)
            t1 = time.perf_counter()
            # what Application.save does next for the aggregates it saved
            for e in batch:
                if isinstance(e, NodeInventory.Event) and e.originator_version % SNAPSHOT_INTERVAL == 0:
                    writer.take_snapshot(e.originator_id, e.originator_version)
                    n_snap += 1
            snap_s += time.perf_counter() - t1
            per_save.append(t1 - t0)
            bar.update(size)
    finally:
        writer.close()
    cpu = time.process_time() - c0  # this process only: PostgreSQL's server works apart
    # from the middle of the day: the store opens with every node's whole assortment (5 KB events)
    total = sum(saves)
    first = max(0, min(total // 2, total - sample)) + 1
    head = [e for _, e in log.stored_events(first, stop=first + sample - 1)]
    log.close()
    a, t = np.array(saves), np.array(per_save)
    engine_saves = {
        "events": int(a.sum()), "seconds": round(float(t.sum()), 2),
        "events_per_s": round(a.sum() / t.sum()), "cpu_seconds_with_snapshots": round(cpu, 2),
        "snapshots": n_snap, "snapshot_seconds": round(snap_s, 2),
        "events_per_s_with_snapshots": round(a.sum() / (t.sum() + snap_s)),
        "by_class": {size_label(c): {"saves": int(m.sum()), "events": int(a[m].sum()),
                                 "events_per_s": round(a[m].sum() / t[m].sum()) if m.any() else None,
                                 "save_ms_median": round(float(np.median(t[m])) * 1000, 3) if m.any() else None}
                     for c in SIZE_CLASSES for m in [in_size_class(a, c)]},
    }
    fixed = {}
    for size in sizes:
        n = fixed_count(len(head), sample, size)
        fixed[str(size)] = _write_fixed(fresh(), head[:n], size)
        bar.update(n)
    return {"engine_saves": engine_saves, "fixed": fixed}


def fixed_count(events: int, sample: int, size: int) -> int:
    """Events written at a fixed batch size: small batches are slow, so fewer of them."""
    return min(events, sample, max(2_000, 200 * size))


def _write_fixed(target: str, events: list[Any], size: int) -> dict[str, Any]:
    writer = EventLog(target)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, len(events), size):
            record_events(writer, events[i:i + size])
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        writer.close()
    return {"events": len(events), "saves": -(-len(events) // size), "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu, 3), "events_per_s": round(len(events) / seconds),
            "save_ms": round(seconds / -(-len(events) // size) * 1000, 3)}
