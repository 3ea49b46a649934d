"""One writer process of `o2o bench scaleout`: B-event transactions through
the engine's PostgreSQL recorder (the library's insert: LOCK TABLE ... IN
EXCLUSIVE MODE until COMMIT) from `start_at` for `seconds`; prints one JSON
line with what it wrote, its commit latencies and its CPU time."""
from __future__ import annotations

import json
import os
import sys
import time
import uuid

import numpy as np


def main(store: str, batch: int, seconds: float, start_at: float, state_bytes: int) -> None:
    from eventsourcing.persistence import StoredEvent

    from engine.store.eventlog import EventLog

    log = EventLog(store, env={"CREATE_TABLE": "false"})  # the tables are made by the parent, once
    recorder = log.recorder
    state = json.dumps({"pad": "x" * max(0, state_bytes - 12)}).encode()
    # an aggregate per transaction-slot: a batch touches `batch` aggregates, one new version each, as a
    # micro-batch of orders does (every order its own aggregate)
    ids = [uuid.uuid4() for _ in range(batch)]
    version = 0
    latencies: list[float] = []
    time.sleep(max(0.0, start_at - time.time()))
    c0 = time.process_time()
    t_end = time.perf_counter() + seconds
    while (t0 := time.perf_counter()) < t_end:
        version += 1
        recorder.insert_events([StoredEvent(i, version, "bench.scaleout:Written", state) for i in ids])
        latencies.append(time.perf_counter() - t0)
    cpu = time.process_time() - c0
    log.close()
    lat = np.array(latencies) * 1000
    print(json.dumps({"pid": os.getpid(), "transactions": len(latencies), "events": len(latencies) * batch,
                      "cpu_seconds": round(cpu, 3), "p50_ms": round(float(np.percentile(lat, 50)), 2),
                      "p99_ms": round(float(np.percentile(lat, 99)), 2)}), flush=True)


if __name__ == "__main__":
    store, batch, seconds, start_at, size = sys.argv[1:6]
    main(store, int(batch), float(seconds), float(start_at), int(size))
