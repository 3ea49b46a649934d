"""The replay process of `o2o bench store`: the engine opened over a store as
on a restart, then every node inventory loaded; prints its figures as JSON.

    python -m benchmarks.store.restart NETWORK_FILE STORE_URL yes|no
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from benchmarks.procstat import memory_bytes
from domain import ids
from engine.app import Engine, EngineSettings
from engine.store.network_file import load_network


def restart(network_file: str, url: str, snapshots: bool) -> dict[str, Any]:
    """In a fresh process: the engine opened over the store (read models
    rebuilt from every event), then every node inventory loaded."""
    network = load_network(network_file)
    rss_before = memory_bytes("VmHWM")  # the interpreter and the modules
    settings = EngineSettings(inventory_snapshot_interval=EngineSettings().inventory_snapshot_interval if snapshots else 0)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    engine = Engine(network, settings, store=url)
    tc, c0 = time.perf_counter(), time.process_time()
    engine.start()  # the read models rebuilt from every event
    catch_up_seconds, catch_up_cpu_seconds = time.perf_counter() - tc, time.process_time() - c0
    opened = time.perf_counter() - t0
    rss_open = memory_bytes("VmRSS")
    t1, c1 = time.perf_counter(), time.process_time()
    versions = [engine.store.get(ids.inventory_id(n.id)).version for n in network.nodes]
    loaded, loaded_cpu = time.perf_counter() - t1, time.process_time() - c1
    events = engine.readmodels.last_notification_id
    engine.close()
    return {
        "events": events, "load_average": round(load, 2), "open_seconds": round(opened, 4),
        "catch_up_seconds": round(catch_up_seconds, 4),
        "catch_up_cpu_seconds": round(catch_up_cpu_seconds, 4),
        "catch_up_events_per_s": round(events / catch_up_seconds),
        "catch_up_events_per_cpu_s": round(events / catch_up_cpu_seconds),
        "inventories": len(versions), "inventory_events": int(sum(versions)),
        "inventories_seconds": round(loaded, 4), "inventories_cpu_seconds": round(loaded_cpu, 4),
        "startup_seconds": round(opened + loaded, 4),
        "peak_rss_bytes_before_open": rss_before, "rss_bytes_after_catch_up": rss_open,
        "rss_bytes_with_inventories": memory_bytes("VmRSS"), "peak_rss_bytes": memory_bytes("VmHWM"),
    }


if __name__ == "__main__":  # the replay process: network file, store URL, snapshots yes/no
    print(json.dumps(restart(sys.argv[1], sys.argv[2], sys.argv[3] == "yes")))
