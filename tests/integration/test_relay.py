"""The event relay `o2o serve` runs beside the engine: killed, it is started
again and the stream still holds every stored event once, in order; an
engine killed outright does not leave it running."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time

import msgspec
import nats
import pytest

from tests.integration.conftest import ServeProcess, run
from tests.integration.test_process import orders, outcomes, published_ids

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # `o2o serve` as a child process


def relay_pids(serve_pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(serve_pid), "-f", "adapters.cli relay"], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


async def submit_all(url: str, tag: str, n: int) -> None:
    nc = await nats.connect(url)
    replies = await asyncio.gather(*(nc.request("o2o.orders.submit", msgspec.json.encode(c), timeout=20)
                                     for c in orders(n, tag)))
    assert all(b'"status"' in r.data for r in replies)
    await nc.close()


def wait_for(check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def test_a_killed_relay_is_started_again_and_the_stream_has_every_event_once_in_order(nats_server, tmp_path):
    store = f"sqlite:///{tmp_path}/events.db"
    serve = ServeProcess(nats_server.url, store, tmp_path / "serve.log").start()
    try:
        run(submit_all(nats_server.url, "before", 200))
        (first,) = relay_pids(serve.proc.pid)
        os.kill(first, signal.SIGKILL)
        run(submit_all(nats_server.url, "while-away", 200))  # stored while no relay runs
        wait_for(lambda: relay_pids(serve.proc.pid) not in ([], [first]))
        assert "starting it again" in (tmp_path / "serve.log").read_text()
        run(submit_all(nats_server.url, "after", 200))
    finally:
        assert serve.terminate() == 0
    _, decided, last = outcomes(store)
    assert len(decided) == 600
    assert run(published_ids(nats_server.url)) == list(range(1, last + 1))


def test_an_engine_killed_outright_takes_its_relay_with_it(nats_server, tmp_path):
    serve = ServeProcess(nats_server.url, f"sqlite:///{tmp_path}/events.db", tmp_path / "serve.log").start()
    (relay,) = relay_pids(serve.proc.pid)
    serve.kill()
    wait_for(lambda: not os.path.exists(f"/proc/{relay}") or open(f"/proc/{relay}/stat").read().split()[2] == "Z",
             timeout=10)
