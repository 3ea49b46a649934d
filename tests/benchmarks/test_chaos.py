"""The bounded chaos run (o2o bench chaos), short: its checks must hold."""
from __future__ import annotations

import pytest

from benchmarks.scaleout.chaos import run_chaos
from tests.conftest import POSTGRES_URL

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres]


def test_kills_and_a_pause_lose_no_acknowledged_order_decide_none_twice_and_oversell_nothing(tmp_path):
    r = run_chaos(POSTGRES_URL, rate=40, seconds=25, ttl=2.0, intake_share=0.3, folder=tmp_path)
    assert r["acknowledged"] == r["sent"] == 1000
    assert r["by_reply"] > 0 and r["by_intake"] > 0
    assert (r["lost"], r["decided_twice"], r["oversold"]) == (0, 0, [])
    assert r["stream_equals_store"], {k: r[k] for k in ("published", "published_twice", "not_published")}
    what = [f["what"] for f in r["faults"]]
    assert what[0] == "kill -9 engine a (owner of p1)" and "(O2O_INTAKE's leader)" in what[2]
    assert what[4] == "SIGSTOP engine b for 5 s (past its lease)" and len(what) == 6
    assert r["takeovers"] >= 2  # p1 by b after the kill; a's partitions back after b's pause
