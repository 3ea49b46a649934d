"""`o2o cluster`: the partition map of a network; a local cluster up, its
status (partitions, owners, streams), and down."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adapters.cli import main


def test_partitions_prints_the_cut_and_its_border_share(capsys):
    assert main(["cluster", "partitions", "--partitions", "2"]) == 0
    out = capsys.readouterr().out
    assert "p2             16 nodes  Lujiazui, Sanlin" in out
    assert "border share: " in out and "more than one partition" in out


def test_more_partitions_than_regions_is_refused_naming_the_field(capsys):
    assert main(["cluster", "partitions", "--partitions", "9"]) == 2
    assert "config.partitions.count: 9 partitions asked of 6 region(s)" in capsys.readouterr().err


def test_status_without_a_cluster_says_how_to_name_one(tmp_path, capsys):
    assert main(["cluster", "status", "--dir", str(tmp_path)]) == 2
    assert "--nats: no cluster is up in" in capsys.readouterr().err


def _status(run_dir: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "adapters.cli", "cluster", "status", "--dir", str(run_dir), "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _until(check, what: str, timeout: float = 90.0):
    deadline = time.monotonic() + timeout  # only stops a hung test
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.3)
    return value


@pytest.mark.e2e
@pytest.mark.slow
def test_up_starts_three_servers_and_an_engine_that_takes_its_lease_and_down_stops_them(tmp_path):
    run_dir = tmp_path / "run"
    up = subprocess.Popen([sys.executable, "-m", "adapters.cli", "cluster", "up", "--dir", str(run_dir),
                           "--engines", "1", "--partitions", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    try:
        state = _until(lambda: (run_dir / "cluster.json").exists() and json.loads((run_dir / "cluster.json").read_text()),
                       "cluster up writes its state")
        pids = [s["pid"] for s in state["servers"]] + [e["pid"] for e in state["engines"]]
        def serving(s: dict) -> bool:  # holds both partitions, then serves: its consumers exist (p2's comes last)
            consumers = {c["name"] for st in s["streams"] for c in st["consumers"]}
            return all(p["owner"] for p in s["partitions"]) and {"o2o-engine", "o2o-engine-p2"} <= consumers

        status = _until(lambda: (s := _status(run_dir)) and serving(s) and s, "the engine holds p1 and p2 and serves")
        assert [s["health"] for s in status["servers"]] == ["ok"] * 3
        p1, p2 = status["partitions"]
        assert p1["owner"] == f"{os.uname().nodename}-{state['engines'][0]['pid']}" and p1["epoch"] >= 1
        assert p2["owner"] == p1["owner"]  # one engine: it wants every partition
        streams = {s["name"]: s for s in status["streams"]}
        assert {"O2O_INTAKE", "O2O_HANDOFF", "O2O_EVENTS", "KV_o2o-leases"} <= set(streams)
        assert all(len(s["replicas"]) == 2 and s["leader"] for s in streams.values())
        assert [c["name"] for c in streams["O2O_INTAKE"]["consumers"]] == ["o2o-engine"]
        assert sorted(c["name"] for c in streams["O2O_HANDOFF"]["consumers"]) == ["o2o-engine-p1", "o2o-engine-p2"]
        assert subprocess.run([sys.executable, "-m", "adapters.cli", "cluster", "down", "--dir", str(run_dir)],
                              timeout=120).returncode == 0
        out, _ = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            print(up.communicate(timeout=60)[0])  # what cluster up said, shown if the test failed before
    assert up.returncode == 0, out
    assert "nats-server n3: nats://127.0.0.1:" in out and "engine 1: wants partition(s) p1,p2" in out and "stopped" in out
    assert not (run_dir / "cluster.json").exists()
    gone = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    assert gone == []


@pytest.mark.e2e
@pytest.mark.slow
def test_a_standby_engine_takes_the_partition_over_when_its_owner_is_killed(tmp_path):
    run_dir = tmp_path / "run"
    config = tmp_path / "o2o.toml"
    config.write_text("[partitions]\ncount = 1\nlease_ttl_s = 2.0\n")  # a short lease: the takeover within seconds
    up = subprocess.Popen([sys.executable, "-m", "adapters.cli", "cluster", "up", "--dir", str(run_dir),
                           "--engines", "2", "--config", str(config)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    try:
        state = _until(lambda: (run_dir / "cluster.json").exists() and json.loads((run_dir / "cluster.json").read_text()),
                       "cluster up writes its state")
        owner_of = {f"{os.uname().nodename}-{e['pid']}": e["pid"] for e in state["engines"]}
        held = _until(lambda: (p := _status(run_dir)["partitions"][0])["owner"] and p, "an engine holds p1")
        first, epoch = held["owner"], held["epoch"]
        assert first in owner_of, (first, owner_of)
        os.kill(owner_of[first], signal.SIGKILL)
        # One reading for both: a second listing right after may come from a KV replica that lags.
        after = _until(lambda: (p := _status(run_dir)["partitions"][0])["owner"] not in (None, first) and p,
                       "the standby holds p1")
        second = after["owner"]
        engines = {e["pid"]: e["alive"] for e in _status(run_dir)["engines"]}
    finally:
        up.send_signal(signal.SIGINT)  # as Ctrl-C in its terminal
        out, _ = up.communicate(timeout=120)
        print(out)  # shown if the test fails
    assert second in owner_of and after["owner"] == second and after["epoch"] > epoch
    assert engines == {owner_of[first]: False, owner_of[second]: True}
    assert up.returncode == 0 and f"(pid {owner_of[first]}) exited with -9" in out and out.rstrip().endswith("stopped")
