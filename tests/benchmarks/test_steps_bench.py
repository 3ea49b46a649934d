"""`o2o bench steps` on a few hundred orders: every routed part's four steps
are sent and answered, and the commits that served them are reported."""
from __future__ import annotations

import gc
import json

from adapters.cli import main
from benchmarks.steps import STEPS_PER_PART, steps_of


def test_a_small_run_answers_every_step_and_reports_the_steps_a_commit_served(tmp_path, capsys):
    threshold = gc.get_threshold()
    assert main(["bench", "steps", "--rates", "300", "--seconds", "2", "--alone", "250", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "steps.json").read_text())
    runs = report["runs"]
    assert [r["name"] for r in runs] == ["warm-up", "steps"]
    for r in runs:
        assert r["sent"] >= r["offered_per_s"] * 2 and r["answered"] == r["sent"], r
        assert not r["errors"] and not r["timeouts"]
        assert r["service_cpu_us_per_request"] > 0 and r["steps_per_commit"] >= 1.0
    assert "| steps | 300 |" in capsys.readouterr().out
    alone = {r["what"]: r for r in report["in_process"]}  # the engine alone, each command alone and in groups
    assert set(alone) == {"step", "counter sale"}
    assert all(r["alone_us"] > 0 and r["grouped_us"] > 0 and r["commands"] >= 200 for r in alone.values())
    assert gc.get_threshold() == threshold and not gc.get_freeze_count()  # the collector as it was


def test_steps_come_in_rounds_every_part_accepted_before_any_is_picked():
    lives = [[("o1", "S1", "delivery")], [("o2", "S2", "pickup"), ("o2", "S3", "pickup")]]
    payloads, subjects = steps_of(lives)
    assert len(payloads) == STEPS_PER_PART * 3
    assert subjects[:3] == ["o2o.orders.accept"] * 3 and set(subjects[3:]) == {"o2o.orders.progress"}
    steps = [json.loads(p).get("step") for p in payloads]
    assert steps == [None] * 3 + ["picked"] * 3 + ["dispatched", "ready", "ready"] + ["delivered", "collected",
                                                                                         "collected"]
    assert [json.loads(p)["node"] for p in payloads[:3]] == ["S1", "S2", "S3"]
