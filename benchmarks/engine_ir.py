"""Instructions per order of the engine alone, under valgrind's callgrind:
the figure a machine shared with other work does not move (CPU time does).

`python -m benchmarks.engine_ir` runs the engine as `o2o bench engine`
builds it (the bench's roomy network and orders, SQLite, the collector as
`o2o serve` sets it) under `valgrind --tool=callgrind`: a warm batch, then
N orders in batches, the counters zeroed before them and dumped after
(`callgrind_control`); per order = the dump's instructions / N. The
router's anytime loops run until a wall-clock deadline, and valgrind slows
them about 50-fold, so here the routing modules (and engine.memory's timed
collections) read a clock that moves 1 ms per reading (what they do then
is the same from run to run). Hash seeds
are fixed. `--code DIR` measures another checkout (say a `git worktree` of
the commit before a change) with this interpreter, side by side with this
one. A few CPU minutes per run; figures in benchmarks/README.md (issue 19).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path


class _StepClock:
    """Stands in for the `time` module in the routing modules: perf_counter
    moves 1 ms each time it is read."""

    def __init__(self) -> None:
        self.t = 0.0

    def perf_counter(self) -> float:
        self.t += 0.001
        return self.t

    def __getattr__(self, name: str):  # anything else from the real module
        import time

        return getattr(time, name)


def _callgrind(what: str) -> None:
    """Zeroes (start) or dumps (stop) this process's callgrind counters."""
    flag = ["-z"] if what == "start" else ["-d", "measured"]
    subprocess.run(["callgrind_control", *flag, str(os.getpid())], check=True, capture_output=True)


def child(orders: int, batch: int, warm: int, complete: bool = False, retain_hours: float | None = None) -> None:
    """The measured process: a warm batch, then `orders` orders in batches
    (with `complete`, each routed order then taken to hand-over, as `o2o bench
    engine --complete` does)."""
    import importlib

    clock = _StepClock()
    for name in ("optimal", "flow", "repair", "partitioned"):
        try:
            module = importlib.import_module(f"engine.routing.{name}")
        except ImportError:
            continue
        if hasattr(module, "time"):
            module.time = clock
    import engine.memory  # its young collections by time too: at valgrind's pace one would follow every batch

    engine.memory.time = clock
    from benchmarks.engine import one_run, take_to_hand_over
    from benchmarks.load.plan import SCENARIO, demand, roomy

    network, cmds = demand(str(SCENARIO), warm + orders)
    with tempfile.TemporaryDirectory(prefix="o2o-engine-ir-") as tmp:
        one_run(roomy(network, cmds), cmds, batch, f"sqlite:///{tmp}/events.db", warm=warm, mark=_callgrind,
                each=take_to_hand_over if complete else None,
                settings=None if retain_hours is None else {"retain_finished_hours": retain_hours})


def start(code: Path, orders: int, batch: int, warm: int, out: Path, extra: list[str] = ()) -> subprocess.Popen:
    """One child run under callgrind in the checkout `code`, started (`extra`: the child's other flags)."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(code)}
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m",
           "benchmarks.engine_ir", "--child", "--orders", str(orders), "--batch", str(batch), "--warm", str(warm),
           *extra]
    return subprocess.Popen(cmd, cwd=code, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def measured(run: subprocess.Popen, out: Path) -> int:
    """Instructions between the zero and the dump of a child run, once it ends."""
    _, stderr = run.communicate()
    if run.returncode != 0:
        raise SystemExit(f"callgrind run failed ({run.returncode}):\n{stderr[-3000:]}")
    for line in Path(f"{out}.1").read_text(errors="replace").splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise SystemExit(f"no summary in {out}.1")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=1000, help="orders measured (default 1,000)")
    p.add_argument("--batch", type=int, default=200, help="orders per submit_batch (default 200)")
    p.add_argument("--warm", type=int, default=200, help="orders submitted first, in one batch (default 200)")
    p.add_argument("--code", action="append", default=[], help="also measure this checkout (repeatable)")
    p.add_argument("--keep", default="", help="folder to keep the callgrind files in (for callgrind_annotate)")
    p.add_argument("--complete", action="store_true",
                   help="take every routed order to hand-over after its batch (counted per order)")
    p.add_argument("--retain-hours", type=float, default=None,
                   help="engine.retain_finished_hours (default: the configured 72)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.orders, args.batch, args.warm, args.complete, args.retain_hours)
        return 0
    extra = [*(["--complete"] if args.complete else []),
             *([] if args.retain_hours is None else ["--retain-hours", str(args.retain_hours)])]
    codes = [Path(__file__).resolve().parents[1], *(Path(c).resolve() for c in args.code)]
    with tempfile.TemporaryDirectory(prefix="o2o-engine-ir-") as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        outs = [folder / f"callgrind.{k}" for k in range(len(codes))]
        runs = [start(code, args.orders, args.batch, args.warm, out, extra) for code, out in zip(codes, outs)]
        for code, run, out in zip(codes, runs, outs):
            ir = measured(run, out)
            print(f"{code}: {ir / args.orders:,.0f} Ir per order ({ir:,} over {args.orders:,} orders in batches "
                  f"of {args.batch}, after a warm batch of {args.warm})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
