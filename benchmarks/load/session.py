"""One session of `o2o bench load`: an engine (or the echo responder), the
runs against it and, for an engine, the zero-loss check after."""
from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import Any

import msgspec
from tqdm import tqdm

from adapters.embedded_nats import EmbeddedNats
from benchmarks import loadgen
from benchmarks.load.check import zero_loss
from benchmarks.load.figures import summary
from benchmarks.load.jetstream import events_caught_up, intake_burst
from benchmarks.load.plan import ECHO, SUBMIT, Plan, Session
from benchmarks.load.processes import drive, start, start_engine
from benchmarks.procstat import memory_bytes


def session(args: argparse.Namespace, plans: list[Plan], orders: list[Any], n_intake: int, network_file: Path,
             folder: Path, bar: tqdm) -> Session:
    """One engine (or the echo responder) and the runs against it; for an engine, the zero-loss check after."""
    is_engine = plans[0].subject == SUBMIT
    store = args.store or f"sqlite:///{folder}/events.db"
    server = None if args.nats else EmbeddedNats(folder / "nats", log_file=str(folder / "nats.log")).start()
    url = args.nats or server.url
    proc = None
    try:
        proc = (start_engine(args, url, store, network_file, folder / "serve.log") if is_engine else
                start(["-m", "benchmarks.echo", "--url", url, "--subject", ECHO], folder / "echo.log", "echo ready"))
        runs: list[dict[str, Any]] = []
        sent: list[tuple[Any, loadgen.Result | None]] = []  # orders of each engine run and what they heard
        offset = 0
        stop_sweep = False
        for plan in plans:
            if plan.name in ("sweep", "echo") and stop_sweep:
                bar.update(plan.seconds)
                continue
            bar.set_postfix_str(f"{plan.name} {plan.rate:,}/s")
            if is_engine:
                batch = orders[offset:offset + plan.count]
                offset += plan.count
            else:
                batch = [orders[i % len(orders)] for i in range(plan.count)]
            result, usage = drive(url, plan, [msgspec.json.encode(o) for o in batch], args.timeout, proc.pid,
                                   server, folder, bar)
            r = summary(plan, result, usage)
            runs.append(r)
            if is_engine:
                sent.append((batch, result))
            if plan.name in ("sweep", "echo") and not r["sustained"]:
                stop_sweep = True  # higher rates would only fail the same way
        if not is_engine:
            return Session(runs=runs, store=store)
        intake = None
        if n_intake:
            batch = orders[offset:offset + n_intake]
            intake = intake_burst(url, batch)
            sent.append((batch, None))
        events = events_caught_up(url, store)
        peak = memory_bytes("VmHWM", proc.pid)
        proc.send_signal(signal.SIGKILL)  # what was answered must be stored already
        proc.wait()
        return Session(runs=runs, store=store, intake=intake, events=events, engine_peak_rss_bytes=peak,
                       zero_loss=zero_loss(store, sent))
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        if server:
            server.stop()
