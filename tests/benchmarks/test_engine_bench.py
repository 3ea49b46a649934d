"""`o2o bench engine` on a few hundred orders: every figure is reported,
the collector's among them, and the process's collector is left as found."""
from __future__ import annotations

import gc
import json
import os
import sys

import pytest

from adapters.cli import main
from benchmarks.engine import by_fifth


def test_a_small_run_reports_cpu_wall_and_the_collectors_share_and_restores_the_collector(tmp_path, capsys):
    threshold, callbacks = gc.get_threshold(), list(gc.callbacks)
    assert main(["bench", "engine", "--orders", "400", "--batch", "100", "--repeat", "1", "--out", str(tmp_path)]) == 0
    (run,) = json.loads((tmp_path / "engine.json").read_text())["runs"]
    assert run["cpu_us_per_order"] > 0 and run["wall_us_per_order"] > 0
    assert run["gc_collections"] >= 0 and run["gc_us_per_order"] >= 0
    # the longest is part of the sum (both rounded to a tenth)
    assert run["gc_longest_ms"] <= run["gc_us_per_order"] * 400 / 1e3 + 0.1
    batches = run["batch_ms"]  # four batches: their wall times in order, none longer than the run
    assert 0 < batches["median"] <= batches["p99"] <= batches["max"] <= run["wall_us_per_order"] * 400 / 1e3 + 0.1
    # four batches of 100: the fifths' ends (80, 160, ...) each fall in the next batch, the last two in one
    fifths = run["cpu_us_per_order_by_fifth"]
    assert len(fifths) == 4 and all(x > 0 for x in fifths)
    assert sum(fifths) / 4 == pytest.approx(run["cpu_us_per_order"], rel=0.5)
    assert gc.get_threshold() == threshold and gc.callbacks == callbacks
    out = capsys.readouterr().out
    assert "collector" in out and "a fixed Python loop in" in out
    machine = json.loads((tmp_path / "engine.json").read_text())["machine"]
    assert machine["python_loop_s"] > 0
    # the interpreter measured: this one, and its libpython if it runs from a shared one
    assert machine["python_executable"] == sys.executable
    lib = machine["python_shared_library"]
    assert lib is None or ("libpython" in os.path.basename(lib) and os.path.exists(lib))


def test_the_cpu_by_fifth_is_each_fifths_cpu_over_its_orders():
    # ten batches of 10 orders, the n-th batch costing n ms: each fifth is two batches
    progress, cpu = [], 0.0
    for n in range(1, 11):
        cpu += n / 1000
        progress.append((10 * n, cpu))
    assert by_fifth(progress, 0.0) == [150.0, 350.0, 550.0, 750.0, 950.0]
    assert by_fifth([], 0.0) == []
