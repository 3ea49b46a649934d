"""The event publisher in a process of its own (an outbox relay): it reads
what the engine committed from the event store and publishes it to
JetStream, with the same guarantees as in-process publishing (commit
order, none skipped, none twice; see adapters/event_publisher.py).

`o2o serve` starts one for a SQLite or PostgreSQL store, so publishing
(a good share of the engine process's CPU under load: benchmarks/README.md)
runs on another core;
`o2o relay` runs one on its own, e.g. beside several engine processes
sharing one PostgreSQL store. A memory store cannot be read from another
process: there the service publishes in-process.

The relay polls the store: every `poll_ms` while it finds events, and it
stops only after publishing everything stored (SIGTERM/SIGINT)."""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
from typing import Any

from adapters.event_publisher import EventPublisher, ForeignStream
from adapters.nats_connection import connect, connection_options
from adapters.shutdown import stop_on_signals

READY = "relay publishing"


def register(sub: argparse._SubParsersAction) -> None:
    from engine.store.urls import DEFAULT_STORE

    p = sub.add_parser("relay", help="publish the event store's events to JetStream (run by o2o serve)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", default=DEFAULT_STORE, help=f"event store URL (default {DEFAULT_STORE})")
    p.add_argument("--poll-ms", type=float, default=10.0, help="how often the store is read for new events")
    p.add_argument("--exit-with-parent", action="store_true",
                   help="stop (after publishing what is stored) when the process that started it is gone")
    connection_options(p, required=True)
    p.set_defaults(func=lambda a: asyncio.run(relay(a)))


async def relay(args: argparse.Namespace) -> int:
    from engine.store.eventlog import EventLog
    from engine.store.urls import describe

    log = EventLog(args.store)
    nc = await connect(args, args.nats)
    publisher = EventPublisher(nc, log.recorder, asyncio.Event(), poll_s=args.poll_ms / 1000)
    try:
        try:
            await publisher.start()
        except ForeignStream as e:
            print(f"o2o relay: {e}", file=sys.stderr, flush=True)
            return 2
        print(f"{READY} {describe(args.store)} from event {publisher.last + 1}", flush=True)
        stop = stop_on_signals()
        if args.exit_with_parent:
            asyncio.get_running_loop().create_task(_watch_parent(os.getppid(), stop))
        await stop.wait()
        await publisher.stop()
        print(f"relay stopped after event {publisher.last}", flush=True)
    finally:
        await nc.close()
        log.close()
    return 0


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    """An engine killed outright leaves its relay behind: it notices being handed to another parent."""
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    stop.set()


class Relay:
    """A relay child process, for `o2o serve`."""

    def __init__(self, connection_flags: list[str], store: str):
        self.argv = [sys.executable, "-m", "adapters.cli", "relay", "--store", store, "--exit-with-parent",
                     *connection_flags]
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 60.0) -> None:
        """Returns once the relay publishes; raises SystemExit naming the reason if it cannot."""
        self.proc = await asyncio.create_subprocess_exec(*self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except asyncio.TimeoutError:
            line = b""
        if not line.startswith(READY.encode()):
            if self.proc.returncode is None:
                self.proc.kill()
            error = (await self.proc.stderr.read()).decode(errors="replace").strip()
            raise SystemExit(error or f"o2o relay did not start within {timeout:g} s")
        asyncio.get_running_loop().create_task(self._forward(self.proc.stderr), name="relay-log")

    @staticmethod
    async def _forward(stream: Any) -> None:
        while line := await stream.readline():
            sys.stderr.write(line.decode(errors="replace"))

    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self, timeout: float = 30.0) -> None:
        """After the engine stored its last batch: the relay publishes it, then exits."""
        if not self.running():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
