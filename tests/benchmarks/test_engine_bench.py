"""`o2o bench engine` on a few hundred orders: every figure is reported,
the collector's among them, and the process's collector is left as found."""
from __future__ import annotations

import gc
import json

from adapters.cli import main


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
    assert gc.get_threshold() == threshold and gc.callbacks == callbacks
    out = capsys.readouterr().out
    assert "collector" in out and "a fixed Python loop in" in out
    assert json.loads((tmp_path / "engine.json").read_text())["machine"]["python_loop_s"] > 0
