"""`o2o bench scaleout`: writer processes on one shared events table and on a table each."""
from __future__ import annotations

import json
from unittest.mock import patch

import pytest

from adapters.cli import main
from tests.conftest import POSTGRES_URL


@pytest.mark.postgres
@pytest.mark.e2e
@pytest.mark.slow
def test_a_tiny_run_reports_every_setting_with_its_writers_and_drops_its_schemas(tmp_path, capsys):
    import psycopg

    import benchmarks.scaleout as bench

    def schemas() -> set[str]:
        with psycopg.connect(POSTGRES_URL.replace("postgres://", "postgresql://"), autocommit=True) as conn:
            return {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'o2o_bench_%'")}

    made: list[str] = []  # this run's schemas only: other tests' benches make and drop theirs meanwhile

    def new_store(*args):
        url = bench_new_store(*args)
        made.append(args[-1][-1])
        return url

    bench_new_store = bench.new_store
    with patch.object(bench, "new_store", new_store):
        assert main(["bench", "scaleout", "--postgres", POSTGRES_URL, "--writers", "1", "2", "--batch", "5",
                     "--seconds", "0.5", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "scaleout.json").read_text())
    runs = report["runs"]
    assert [(r["tables"], r["writers"]) for r in runs] == [("shared", 1), ("shared", 2), ("own", 1), ("own", 2)]
    for r in runs:
        assert len(r["per_writer"]) == r["writers"] and r["events"] == sum(w["events"] for w in r["per_writer"]) > 0
        assert r["events"] % 5 == 0 and r["lock_waiters_mean"] >= 0
    assert report["machine"]["git_commit"] and report["machine"]["load_average_before"]
    assert "writers 2  batch    5" in capsys.readouterr().out
    assert len(made) >= 6 and not set(made) & schemas()  # (shared 1 + 1, own 1 + 2, and the probe's)


@pytest.mark.parametrize("bad, words", [(["--writers", "0"], "--writers: expected int >= 1"),
                                        (["--seconds", "0"], "--seconds: expected a number > 0"),
                                        (["--repeat", "0"], "--repeat: expected int >= 1")])
def test_bad_options_are_refused_naming_the_option(bad, words, capsys):
    assert main(["bench", "scaleout", *bad]) == 2
    assert words in capsys.readouterr().err


@pytest.mark.slow
def test_border_reports_by_area_and_by_orders_per_number_of_partitions(tmp_path, capsys):
    assert main(["bench", "border", "simulations/scenarios/ordinary-day.toml", "--max-partitions", "3",
                 "--out", str(tmp_path)]) == 0
    (day,) = json.loads((tmp_path / "border.json").read_text())["scenarios"]
    assert [r["partitions"] for r in day["rows"]] == [2, 3]
    two, three = day["rows"]
    assert 0 < two["area_share"] < three["area_share"] < 1 and 0 < two["order_share"] < three["order_share"] < 1
    assert sorted(map(sorted, two["regions"])) == [["Hongkou", "Jing'an", "Putuo", "Xuhui"], ["Lujiazui", "Sanlin"]]
    assert "border orders" in capsys.readouterr().out


@pytest.mark.e2e
@pytest.mark.slow
def test_filters_creates_consumers_listing_the_cells_and_a_wildcard_and_consumes_every_message(tmp_path, capsys):
    assert main(["bench", "filters", "--filters", "5", "--messages", "200", "--repeat", "1",
                 "--out", str(tmp_path)]) == 0
    runs = json.loads((tmp_path / "filters.json").read_text())["runs"]
    assert [(r["cells"], r["listed"]) for r in runs] == [(5, False), (5, True)]
    assert all(r["consumed_per_s"] > 0 and r["create_ms"] > 0 for r in runs)
