"""What an order keeps in the engine's memory, by the line that made it
(issue 19: an order costs more the more the engine holds).

`python -m benchmarks.held` runs the engine as `o2o bench engine` does
(the bench's roomy network and orders, batches of --batch, after a warm
batch), with tracemalloc on from the warm batch to the end: the bytes and
objects still allocated after --orders orders, per order, in all and by
line. --complete takes each routed order through acceptance to hand-over
(delivered or collected) before the next batch, so the figures are what a
finished order leaves behind rather than an open one; with --retain-hours
that short, what it leaves once its record has left memory. Caches bounded by
size (order ids, keys: tens of thousands of entries) count here as if
they grew for ever; over a long run they do not.
"""
from __future__ import annotations

import argparse
import gc
import json
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

from benchmarks.engine import one_run, take_to_hand_over
from benchmarks.load.plan import SCENARIO, demand, roomy


def held(orders: int, batch: int, complete: bool, scenario: str, top: int = 25,
         retain_hours: float | None = None) -> dict[str, Any]:
    """Bytes and objects left allocated per order (in all and by line) after `orders` orders."""
    network, cmds = demand(scenario, batch + orders)
    snapshots: list[tracemalloc.Snapshot] = []
    completed = 0

    def mark(when: str) -> None:  # around the measured orders: what the engine holds before and after them
        gc.collect()
        if when == "start":
            tracemalloc.start(1)
        snapshots.append(tracemalloc.take_snapshot())

    def finish(engine: Any, chunk: list[Any], replies: list[Any]) -> None:
        nonlocal completed
        completed += take_to_hand_over(engine, chunk, replies)

    with tempfile.TemporaryDirectory(prefix="o2o-held-") as tmp:
        try:
            one_run(roomy(network, cmds), cmds, batch, f"sqlite:///{tmp}/events.db", warm=batch, mark=mark,
                    each=finish if complete else None,
                    settings={"retain_finished_hours": retain_hours} if retain_hours is not None else None)
        finally:
            tracemalloc.stop()
    before, after = snapshots
    lines = after.compare_to(before, "lineno")
    root = str(Path(__file__).resolve().parent.parent) + "/"
    return {
        "orders": orders, "batch": batch, "complete": complete, "parts_completed": completed,
        "retain_hours": retain_hours,
        "bytes_per_order": round(sum(s.size_diff for s in lines) / orders, 1),
        "objects_per_order": round(sum(s.count_diff for s in lines) / orders, 2),
        "by_line": [{"where": str(s.traceback).replace(root, ""), "bytes": round(s.size_diff / orders, 1),
                     "objects": round(s.count_diff / orders, 2)} for s in lines[:top]],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=20_000, help="orders measured (default 20,000)")
    p.add_argument("--batch", type=int, default=125, help="orders per submit_batch (default 125)")
    p.add_argument("--complete", action="store_true", help="take every routed order to hand-over")
    p.add_argument("--retain-hours", type=float, default=None,
                   help="engine.retain_finished_hours (default: the configured 72); the bench's orders finish in seconds")
    p.add_argument("--scenario", default=str(SCENARIO))
    p.add_argument("--top", type=int, default=25, help="lines shown (default 25)")
    p.add_argument("--out", default="", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    r = held(args.orders, args.batch, args.complete, args.scenario, args.top, args.retain_hours)
    kind = "completed" if args.complete else "open"
    print(f"{r['bytes_per_order']:,} bytes and {r['objects_per_order']} objects held per {kind} order "
          f"({args.orders:,} orders in batches of {args.batch}); by the line that made them:")
    for x in r["by_line"]:
        print(f"{x['bytes']:9.1f} B {x['objects']:6.2f}  {x['where']}")
    if args.out:
        Path(args.out).write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
