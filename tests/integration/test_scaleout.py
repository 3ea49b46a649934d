"""Several engines on one store with one relay (`o2o serve --events external`
beside `o2o relay`), as `o2o cluster up` runs them."""
from __future__ import annotations

import subprocess
import sys

import pytest
from nats.js.errors import NotFoundError

from tests.integration.conftest import ServeProcess, run
from tests.integration.test_process import outcomes, published_ids
from tests.integration.test_relay import relay_pids, submit_all, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # `o2o serve` and `o2o relay` as child processes


def published(url: str) -> list[int]:
    try:
        return run(published_ids(url))
    except NotFoundError:  # the relay has not made the stream yet
        return []


def test_two_engines_leave_publishing_to_one_relay_which_publishes_every_stored_event_once_in_order(
        nats_server, tmp_path):
    store = f"sqlite:///{tmp_path}/events.db"
    engines = [ServeProcess(nats_server.url, store, tmp_path / f"serve-{i}.log", ("--events", "external")).start()
               for i in (1, 2)]
    relay = None
    try:
        assert [relay_pids(e.proc.pid) for e in engines] == [[], []]  # neither starts a relay of its own
        run(submit_all(nats_server.url, "a", 100))  # the queue group spreads them over both engines
        relay = subprocess.Popen([sys.executable, "-m", "adapters.cli", "relay", "--store", store,
                                  "--nats", nats_server.url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run(submit_all(nats_server.url, "b", 100))
        _, decided, last = outcomes(store)
        wait_for(lambda: published(nats_server.url) == list(range(1, last + 1)), timeout=60)
    finally:
        codes = [e.terminate() for e in engines]
        if relay:
            relay.terminate()
            relay.wait(30)
    assert codes == [0, 0] and len(decided) == 200
    served = ["serving on" in (tmp_path / f"serve-{i}.log").read_text() and "events published" in
              (tmp_path / f"serve-{i}.log").read_text() for i in (1, 2)]
    assert served == [True, True]
