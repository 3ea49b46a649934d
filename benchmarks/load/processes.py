"""The child processes of `o2o bench load`: the engine (`o2o serve`) or the
echo responder started and waited for, and the load generator driven."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import msgspec
from tqdm import tqdm

from adapters.embedded_nats import EmbeddedNats
from benchmarks import loadgen
from benchmarks.load.plan import SUBMIT, Plan
from benchmarks.procstat import children, cpu_seconds, memory_bytes, thread_cpu_seconds
from engine.config import Batching
from engine.routing.types import SOLVERS, RouterSettings


def start(args: list[str], log: Path, ready: str, timeout: float = 120,
          env: dict[str, str] | None = None) -> subprocess.Popen:
    """A child Python process, once its log says `ready` (extra environment variables in `env`)."""
    proc = subprocess.Popen([sys.executable, *args], stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, **env} if env else None)
    deadline = time.monotonic() + timeout
    while ready not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{' '.join(args[:3])} did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    return proc


def _cpu_since(pid: int, before: float) -> float:
    try:
        return cpu_seconds(pid) - before
    except OSError:  # it ended during the run: what it used is not known
        return 0.0


def srv_stats(url: str) -> dict | None:
    """The service's $SRV STATS (the first engine to answer); None where none answers."""
    import nats

    from adapters.service import NAME

    async def ask() -> dict:
        nc = await nats.connect(url)
        try:
            return json.loads((await nc.request(f"$SRV.STATS.{NAME}", b"", timeout=2.0)).data)
        finally:
            await nc.close()

    try:
        return asyncio.run(ask())
    except Exception:  # noqa: BLE001 (none answered: the figures it gives are left out)
        return None


def endpoint_data(url: str, endpoint: str) -> dict | None:
    """An endpoint's `data` in $SRV STATS (None from an engine that gives none)."""
    stats = srv_stats(url) or {}
    return next((e.get("data") for e in stats.get("endpoints", []) if e.get("name") == endpoint), None)


def batches(url: str) -> tuple[int, int] | None:
    """(micro-batches, orders in them) so far, from the submit endpoint's $SRV
    STATS data (the first engine to answer); None where none says."""
    data = endpoint_data(url, "submit")
    return (data["batches"], data["orders"]) if data else None


def serve_arguments(p: argparse.ArgumentParser, more: str = "more options for o2o serve") -> None:
    """The options `start_engine` starts `o2o serve` with."""
    p.add_argument("--window-ms", type=float, default=Batching().window_ms)
    p.add_argument("--max-batch", type=int, default=Batching().max_batch)
    p.add_argument("--solver", choices=SOLVERS, default=RouterSettings().solver)
    p.add_argument("--serve-args", default="", help=more)


def start_engine(args: argparse.Namespace, url: str, store: str, network: Path, log: Path) -> subprocess.Popen:
    # nodes never accept in this benchmark: no part may expire and be routed again mid-run
    return start(["-m", "adapters.cli", "serve", "--nats", url, "--store", store, "--network", str(network),
                   "--window-ms", str(args.window_ms), "--max-batch", str(args.max_batch), "--solver", args.solver,
                   "--accept-timeout-s", "86400", *args.serve_args.split()], log, "serving on")


@contextlib.contextmanager
def engine_served(args: argparse.Namespace, network: Path, folder: Path) -> Iterator[tuple[EmbeddedNats, subprocess.Popen]]:
    """An embedded nats-server and `o2o serve` on a fresh SQLite store in `folder`, stopped after."""
    server = EmbeddedNats(folder / "nats", log_file=str(folder / "nats.log")).start()
    proc = None
    try:
        print("starting o2o serve on the network", flush=True)
        proc = start_engine(args, server.url, f"sqlite:///{folder}/events.db", network, folder / "serve.log")
        yield server, proc
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        server.stop()


def drive(url: str, plan: Plan, payloads: list[bytes], timeout: float, pid: int, server: EmbeddedNats | None,
          folder: Path, bar: tqdm, subjects: list[str] | None = None) -> tuple[loadgen.Result, dict[str, float]]:
    """One run: the generator in its own process; the service's and the server's CPU measured around it.
    `subjects`: one per payload, instead of the plan's subject."""
    pfile, rfile = folder / "payloads.bin", folder / "result.bin"
    loadgen.write_payloads(str(pfile), payloads, subjects)
    rfile.unlink(missing_ok=True)
    nats_pid = server.proc.pid if server and server.proc else None
    cpu0, threads0 = cpu_seconds(pid), thread_cpu_seconds(pid)
    nats0 = cpu_seconds(nats_pid) if nats_pid else 0.0
    kids = {k: cpu_seconds(k) for k in children(pid)}  # the relay: the service's own, on another core
    batched = batches(url) if plan.subject == SUBMIT else None
    t0 = time.perf_counter()
    gen = subprocess.Popen([sys.executable, "-m", "benchmarks.loadgen", "--url", url, "--subject", plan.subject,
                            "--payloads", str(pfile), "--rate", str(plan.rate), "--timeout", str(timeout),
                            "--out", str(rfile)], stderr=(folder / "loadgen.log").open("ab"))
    shown = 0.0
    while gen.poll() is None:
        time.sleep(0.25)
        now = min(plan.seconds, max(0.0, time.perf_counter() - t0 - 1.0))  # about a second to load and connect
        bar.update(now - shown)
        shown = now
    bar.update(plan.seconds - shown)
    if gen.returncode != 0:
        raise RuntimeError(f"load generator failed: {(folder / 'loadgen.log').read_text()[-2000:]}")
    wall = time.perf_counter() - t0
    threads = thread_cpu_seconds(pid)
    usage = {"service_cpu_s": cpu_seconds(pid) - cpu0,
             "threads_cpu_s": {k: s - threads0.get(k, 0.0) for k, s in threads.items()},
             "nats_server_cpu_s": (cpu_seconds(nats_pid) - nats0) if nats_pid else None,
             "children_cpu_s": sum(_cpu_since(k, c) for k, c in kids.items()) if kids else None,
             "wall_s": wall, "service_rss_bytes": memory_bytes("VmRSS", pid)}
    after = batches(url) if batched else None
    if after and after[0] > batched[0]:  # the orders of the run's micro-batches, on average
        usage["orders_per_batch"] = (after[1] - batched[1]) / (after[0] - batched[0])
    return msgspec.msgpack.decode(rfile.read_bytes(), type=loadgen.Result), usage
