"""`o2o bench solver` end to end on tiny batches of every family: each case
reports every solver's time, fill and the gap to exact (not their speed)."""
from __future__ import annotations

import json

import pytest

from adapters.cli import main
from benchmarks.families import FAMILIES
from benchmarks.solver import ALL


@pytest.mark.slow
def test_a_tiny_run_reports_every_family_with_times_fill_and_gaps(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["bench", "solver", "--quick", "--sizes", "30", "--instances", "1", "--repeat", "1",
                 "--nodes", "40", "--skus", "100", "--exact-seconds", "5", "--gap-time-limit", "0.5",
                 "--out", str(out)]) == 0
    report = json.loads((out / "solver.json").read_text())
    assert (out / "solver.png").stat().st_size > 0
    cases = report["cases"]
    assert {c["family"] for c in cases} == set(ALL)
    assert len([c for c in cases if c["family"] in FAMILIES]) == 2 * len(FAMILIES)  # off-peak and peak
    for c in cases:
        for solver in ("greedy", "optimal", "exact"):
            assert c["route_ms"][solver]["median"] > 0 and c["route_ms"][solver]["runs"] >= 1
            assert 0 <= c["filled"][solver] <= c["orders"]
        assert c["optimal_worse_than_greedy"] == 0
        if c["family"] in FAMILIES:
            assert c["exact_status"] == {"optimal": 1}
            for solver in ("greedy", "optimal", "exact"):  # what the engine pays: the route and its explanations
                assert c["with_explanations_ms"][solver]["median"] > c["route_ms"][solver]["median"]
            assert c["gap_to_exact"]["max"] >= -1e-9  # exact is the optimum here
        else:
            assert c["filled"]["optimal"] == c["orders"]  # must-assign: every order placed
            assert c["gap_to_bound"]["max"] >= -1e-9


def test_exact_without_an_answer_in_its_time_leaves_the_case_without_a_gap(tmp_path, monkeypatch):
    """A routing family's exact has a time limit: a batch it cannot answer
    in it gets no gap and no fill gain, and says so, instead of holding the bench."""
    import benchmarks.solver as bench
    from engine.routing.problem import Solution

    limits = []

    def no_answer(problem, orders=None, stock=None, capacity=None, time_limit_s=None, **kw):
        limits.append(time_limit_s)
        return Solution([{} for _ in range(problem.n_orders)], "unknown", float("inf"))

    monkeypatch.setattr(bench, "solve_mip", no_answer)
    out = tmp_path / "out"
    assert main(["bench", "solver", "--families", "clustered", "--sizes", "30", "--instances", "1", "--repeat", "1",
                 "--nodes", "40", "--skus", "100", "--exact-seconds", "7", "--out", str(out)]) == 0
    cases = json.loads((out / "solver.json").read_text())["cases"]
    assert limits and set(limits) == {7.0}
    for c in cases:
        assert c["exact_status"] == {"unknown": 1} and c["exact_time_limit_s"] == 7.0
        assert c["gap_to_exact"] is None and c["share_of_exact_fill_gain"] is None and c["filled"]["exact"] is None
        assert c["filled"]["optimal"] >= c["filled"]["greedy"]
