"""`o2o bench store` end to end on a tiny simulated day: the figures it
reports must describe the store it built (not their speed)."""
from __future__ import annotations

import json

import pytest

from adapters.cli import main

TINY = ["--nodes", "6", "--skus", "20", "--orders", "20", "--repeat", "1", "--batch-sizes", "10", "100", "--write-sample", "300"]


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.postgres
def test_a_tiny_run_reports_writes_and_replay_of_the_store_it_built_on_sqlite_and_postgres(tmp_path, capsys):
    from tests.conftest import POSTGRES_URL

    out = tmp_path / "out"
    assert main(["bench", "store", *TINY, "--postgres", POSTGRES_URL, "--store-dir", str(tmp_path / "stores"),
                 "--out", str(out)]) == 0
    report = json.loads((out / "store.json").read_text())
    assert (out / "store.png").stat().st_size > 0
    store = report["store"]
    events, nodes = store["events"], store["nodes"]
    assert events > 0 and sum(store["saves"]) == events
    assert store["save_sizes"]["saves"] == len(store["saves"])
    assert store["build_peak_rss_bytes"] > 0 and not store["reused"]
    assert report["bench_process"]["peak_rss_bytes"] >= store["build_peak_rss_bytes"]
    assert report["bench_process"]["seconds"] > 0
    for backend in ("sqlite", "postgres"):
        writes = report["writes"][backend]
        assert writes["engine_saves"]["events"] == events
        assert writes["engine_saves"]["events_per_s"] > 0
        assert sum(c["events"] for c in writes["engine_saves"]["by_class"].values()) == events
        assert {k: v["events"] for k, v in writes["fixed"].items()} == {"10": min(events, 300), "100": min(events, 300)}
        assert {k: v["saves"] for k, v in writes["fixed"].items()} == {"10": -(-min(events, 300) // 10),
                                                                        "100": -(-min(events, 300) // 100)}
        _positive(writes["engine_saves"], "seconds", "events_per_s_with_snapshots", "cpu_seconds_with_snapshots")
        for fixed in writes["fixed"].values():
            _positive(fixed, "seconds", "cpu_seconds", "events_per_s", "save_ms")
        replay = report["replay"][backend]
        assert replay["fetch"]["events"] == replay["fetch_and_decode"]["events"] == events
        for rate in (replay["fetch"], replay["fetch_and_decode"]):
            _positive(rate, "seconds", "events_per_s")
        for key in ("with_snapshots", "without_snapshots"):
            restart = replay[key]
            # the restarted engine found every event and every node's inventory: it opened nothing new
            assert restart["events"] == events
            assert restart["inventories"] == nodes
            assert restart["peak_rss_bytes"] >= restart["rss_bytes_with_inventories"] > 0
            assert restart["peak_rss_bytes"] >= restart["peak_rss_bytes_before_open"] > 0
            assert restart["runs"] == len(restart["catch_up_events_per_s_runs"]) == 1
            assert len(restart["catch_up_events_per_cpu_s_runs"]) == len(restart["load_average_runs"]) == 1
            _positive(restart, "catch_up_seconds", "catch_up_cpu_seconds", "catch_up_events_per_s",
                      "catch_up_events_per_cpu_s", "inventories_seconds", "startup_seconds")
            assert restart["load_average"] >= 0
        target = report["targets"][backend]
        assert target["replay_events_per_s"] == replay["with_snapshots"]["catch_up_events_per_s"]
        assert target["replay_events_per_cpu_s"] == replay["with_snapshots"]["catch_up_events_per_cpu_s"]
        assert target["full_size"] is False  # 20 orders: not the store the targets are set for
        assert target["memory_met"] == (target["peak_rss_bytes"] < 2**30)
    machine = report["machine"]
    assert machine["cores"] >= 1 and machine["git_commit"] and machine["memory_bytes"] > 0
    assert len(machine["load_average_before"]) == len(machine["load_average_after"]) == 3
    assert report["parameters"]["batch_sizes"] == [10, 100] and report["parameters"]["repeat"] == 1
    assert "wrote" in capsys.readouterr().out


def _positive(figures: dict, *names: str) -> None:
    for name in names:
        assert isinstance(figures[name], (int, float)) and figures[name] > 0, (name, figures[name])


@pytest.mark.slow
def test_a_built_store_is_reused_until_a_rebuild_is_asked_for(tmp_path):
    from benchmarks.store.build import build

    first = build(tmp_path, orders=20, nodes=6, skus=20, rebuild=False)
    again = build(tmp_path, orders=20, nodes=6, skus=20, rebuild=False)
    assert not first["reused"] and again["reused"]
    assert again["events"] == first["events"] and again["saves"] == first["saves"]
    assert not build(tmp_path, orders=20, nodes=6, skus=20, rebuild=True)["reused"]


@pytest.mark.parametrize("bad, words", [
    (["--orders", "0"], "--orders"),
    (["--batch-sizes", "0"], "--batch-sizes"),
    (["--repeat", "0"], "--repeat"),
    (["--postgres", "postgres://127.0.0.1:5432/test?schema=mine"], "schema"),
    (["--postgres", "sqlite:///x.db"], "not a PostgreSQL URL"),
])
def test_bad_options_are_refused_naming_the_option(tmp_path, capsys, bad, words):
    assert main(["bench", "store", "--quick", *bad, "--store-dir", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "store.json").exists()
