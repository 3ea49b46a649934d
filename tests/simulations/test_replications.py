"""Replications: every variant once per seed with the same customers per
seed, each KPI's mean with a 95% interval, the paired difference against
the base with its own; a variant that changes nothing differs by exactly 0."""
from __future__ import annotations

import csv
import json
import math

import pytest
from hypothesis import given, strategies as st

from adapters.cli import main
from simulations import replications
from simulations.variants import run_replications

SCENARIO = """
name = "small"
seed = 11
start = "11:00"
end = "12:30"
[network]
file = "sample"
[demand]
orders = 60
[pos]
sales_per_store_hour = 0.5
[[variants]]
name = "nothing-changed"
[[variants]]
name = "new-kitchen"
add_kitchens = [{id = "K99", lat = 31.23, lon = 121.47}]
"""


@pytest.fixture
def scenario(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(SCENARIO)
    return path


def test_a_variant_that_changes_nothing_differs_from_the_base_by_exactly_zero_in_every_kpi(scenario):
    s, runs = run_replications(scenario, 3, progress=False)
    assert [len(run) for run in runs] == [3, 3, 3]
    summary = replications.summarise([s.seed + r for r in range(3)], [{v.name: v.kpis for v in run} for run in runs])
    assert summary["seeds"] == [11, 12, 13]
    assert len({run[0].kpis["orders"] for run in runs}) == 1  # a seed changes who orders, not how many
    assert len({run[0].kpis["distance_km"] for run in runs}) == 3  # each seed its own customers
    for key, row in summary["kpis"].items():
        d = row["nothing-changed"]["diff"]
        assert (d["mean"], d["low"], d["high"], d["significant"]) == (0, 0, 0, False), key
        assert row["nothing-changed"]["mean"] == row["base"]["mean"]
    fill = summary["kpis"]["fill_rate"]["base"]
    assert fill["n"] == 3 and fill["low"] <= fill["mean"] <= fill["high"]


@given(st.lists(st.integers(-1000, 1000), min_size=2, max_size=30), st.integers(-50, 50))
def test_a_constant_shift_is_the_paired_difference_and_significant_unless_zero(base, shift):
    runs = [{"base": {"k": b}, "v": {"k": b + shift}} for b in base]
    row = replications.summarise(list(range(len(base))), runs)["kpis"]["k"]
    d = row["v"]["diff"]
    assert d["mean"] == d["low"] == d["high"] == shift
    assert d["significant"] == (shift != 0)
    c = row["base"]
    assert c["low"] <= c["mean"] <= c["high"] and math.isclose(c["mean"], sum(base) / len(base))


def test_a_wider_spread_gives_a_wider_interval_and_one_value_none():
    narrow, wide = replications.interval([10, 11, 12]), replications.interval([0, 11, 22])
    assert wide["high"] - wide["low"] > narrow["high"] - narrow["low"]
    assert replications.interval([5]) == {"n": 1, "mean": 5, "low": None, "high": None}
    # Student t with 2 degrees of freedom: 4.303 x sd / sqrt(3)
    assert narrow["high"] - narrow["mean"] == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)


@pytest.mark.slow
def test_simulate_with_replications_writes_intervals_and_marks_what_is_significant(scenario, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["simulate", str(scenario), "--replications", "3", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 replications (seeds 11..13)" in text and "difference against base, * significant" in text
    summary = json.loads((out / "replications.json").read_text())
    assert summary["replications"] == 3 and [r["seed"] for r in summary["runs"]] == [11, 12, 13]
    rows = list(csv.DictReader((out / "replications.csv").open()))
    noop = [r for r in rows if r["variant"] == "nothing-changed"]
    assert noop and all(float(r["diff_mean"]) == 0 and r["significant"] == "False" for r in noop)
    page = (out / "report.html").read_text()
    assert "Over 3 replications" in page and "95% interval" in page
    fill = summary["kpis"]["fill_rate"]["base"]
    assert replications.shown("fill_rate", fill) in page  # the interval is shown


def test_replications_below_one_are_refused_naming_the_flag(scenario, tmp_path, capsys):
    assert main(["simulate", str(scenario), "--replications", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--replications: must be at least 1" in capsys.readouterr().err
