"""`o2o bench steps` on a few hundred orders: every routed part's four steps
are sent and answered, and the commits that served them are reported."""
from __future__ import annotations

import gc
import json

from adapters.cli import main
from benchmarks.load.plan import SCENARIO, demand
from benchmarks.steps import STEPS_PER_PART, steps_of, with_lives, with_members


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


def test_members_purchases_and_new_orders_in_the_stream_answered_without_errors(tmp_path):
    assert main(["bench", "steps", "--rates", "300", "--seconds", "1.5", "--alone", "100", "--members", "0.5",
                 "--lives", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "steps.json").read_text())
    assert report["parameters"]["member_share"] == 0.5 and report["parameters"]["members"] > 50
    for r in report["runs"]:
        assert r["answered"] == r["sent"] and not r["errors"] and not r["timeouts"], r
        lives = r["lives"]  # an order placed for every four steps, its latency apart
        assert lives["orders"] == -(-(r["sent"] - lives["orders"]) // STEPS_PER_PART)
        assert lives["orders_latency_ms"]["p99"] > 0 and lives["steps_latency_ms"]["p99"] > 0
        assert lives["cpu_us_per_life"] > r["service_cpu_us_per_request"]
    assert report["runs"][-1]["members_earning"] > 0  # hand-overs in the runs earned points


def test_a_new_order_goes_before_every_four_steps_while_there_are_any():
    payloads, subjects = [b"s%d" % i for i in range(10)], ["o2o.orders.progress"] * 10
    out, subs, placed = with_lives(payloads, subjects, [{"external_id": "n1"}, {"external_id": "n2"}])
    assert placed == 2 and len(out) == 12
    assert subs[0] == subs[5] == "o2o.orders.submit" and subs.count("o2o.orders.submit") == 2
    assert [p for p, s in zip(out, subs) if s != "o2o.orders.submit"] == payloads


def test_a_share_of_the_orders_are_members_three_each_signed_up_at_stores():
    network, orders = demand(SCENARIO, 100)
    mixed, signups = with_members(network, orders, 0.25)
    members = [o.member for o in mixed if o.member]
    assert len(members) == 25 and len(signups) == 9 and {s.member for s in signups} == set(members)
    assert max(members.count(m) for m in set(members)) == 3
    assert all(network.node(s.node).kind == "store" for s in signups)
    assert with_members(network, orders, 0.0) == (orders, [])
