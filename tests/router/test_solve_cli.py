"""`o2o solve` end to end, and the documented schemas."""
from __future__ import annotations

import ctypes
import json
from pathlib import Path

import jsonschema
import pytest

from adapters.cli import main
from engine.routing.mip import solver_output_to_stderr
from engine.routing.problem_file import schemas

ROOT = Path(__file__).resolve().parents[2]
PROBLEMS = sorted((ROOT / "docs/examples/problems").glob("*.json"))


def solve(capsys, *args) -> dict:
    assert main(["solve", *map(str, args)]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_committed_schemas_are_the_generated_ones():
    for name, schema in schemas().items():
        assert json.loads((ROOT / f"docs/schemas/{name}.json").read_text()) == schema, f"regenerate docs/schemas/{name}.json"


@pytest.mark.parametrize("path", PROBLEMS, ids=lambda p: p.name)
def test_the_shipped_problem_files_validate_against_the_schema(path):
    jsonschema.validate(json.loads(path.read_text()), schemas()["problem"])


def test_a_20_node_200_order_generalised_assignment_is_answered_feasibly(capsys):
    path = ROOT / "docs/examples/problems/gap-20x200.json"
    problem = json.loads(path.read_text())
    answer = solve(capsys, path, "--solver", "optimal", "--time-limit", "1")
    jsonschema.validate(answer, schemas()["solution"])
    assert answer["status"] in ("optimal", "feasible") and answer["unassigned"] == []
    nodes = [n["id"] for n in problem["nodes"]]
    orders = {o["id"]: i for i, o in enumerate(problem["orders"])}
    assert sorted(a["order"] for a in answer["assignments"]) == sorted(orders)
    used = {n: 0.0 for n in nodes}
    total = 0.0
    for a in answer["assignments"]:
        i, j = orders[a["order"]], nodes.index(a["node"])
        used[a["node"]] += problem["load"][i][j]
        total += problem["cost"][i][j]
    assert all(used[n["id"]] <= n["capacity"] for n in problem["nodes"])
    assert answer["objective"] == pytest.approx(total)


def test_greedy_that_cannot_place_every_must_assign_order_says_infeasible_and_shows_what_it_placed(capsys):
    answer = solve(capsys, ROOT / "docs/examples/problems/gap-20x200.json", "--solver", "greedy")
    jsonschema.validate(answer, schemas()["solution"])
    assert answer["status"] == "infeasible" and answer["objective"] is None
    assert answer["unassigned"] and len(answer["assignments"]) + len(answer["unassigned"]) == 200


def test_the_small_example_is_solved_to_its_known_optimum(capsys):
    answer = solve(capsys, ROOT / "docs/examples/problems/small.json", "--solver", "exact")
    assert answer["status"] == "optimal" and answer["objective"] == pytest.approx(20.5)
    assert answer["unassigned"] == ["o4"]  # its penalty (5) is below every allowed cost
    optimal = solve(capsys, ROOT / "docs/examples/problems/small.json", "--solver", "optimal")
    assert optimal["status"] == "optimal" and optimal["objective"] == pytest.approx(20.5)
    assert optimal["bound"] == pytest.approx(20.5)
    greedy = solve(capsys, ROOT / "docs/examples/problems/small.json", "--solver", "greedy")
    assert greedy["objective"] >= answer["objective"]


@pytest.mark.parametrize("change, words", [
    (lambda p: p["cost"].pop(), "$.cost: has 4 rows"),
    (lambda p: p["orders"][1]["lines"][0].update(qty=0), "$.orders[1].lines[0].qty"),
    (lambda p: p["stock"].update({"nowhere": {"cake": 1}}), "$.stock.nowhere"),
    (lambda p: p["nodes"][1].update(id="store-A"), "duplicate id"),
])
def test_a_bad_problem_file_is_refused_naming_the_field(tmp_path, capsys, change, words):
    problem = json.loads((ROOT / "docs/examples/problems/small.json").read_text())
    change(problem)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(problem))
    assert main(["solve", str(path)]) == 2
    assert words in capsys.readouterr().err


def test_what_a_solver_prints_to_stdout_goes_to_stderr_so_the_answer_stays_json(capfd):
    with solver_output_to_stderr():
        ctypes.CDLL(None).printf(b"HighsMipSolverData chatter\n")
    out, err = capfd.readouterr()
    assert "chatter" in err and "chatter" not in out
