"""A scenario may route with a travel matrix (the scenario's or a
variant's own): "straight" is the base's straight line again, a road
matrix moves the day; couriers may drive roads the router does not know
(`roads`); a matrix file that is missing or bad is refused naming the
field before anything runs."""
from __future__ import annotations

import pytest

from simulations.roads import main as roads
from simulations.scenario import ScenarioError, load_scenario, travel_of
from simulations.variants import run_scenario
from tests.simulations.test_simulate import SCENARIO

BASE = SCENARIO.split("[[variants]]")[0]


@pytest.mark.slow
def test_a_variant_routing_by_a_road_matrix_changes_the_day_and_straight_is_the_base_again(tmp_path):
    assert roads(["--out", str(tmp_path / "roads.json"), "--cell-m", "1000"]) == 0
    path = tmp_path / "roads.toml"
    path.write_text(BASE + '[[variants]]\nname = "roads"\ntravel_matrix = "roads.json"\n'
                    '[[variants]]\nname = "straight"\ntravel_matrix = "straight"\n')
    _, variants = run_scenario(path, progress=False)
    kpis = {v.name: v.kpis for v in variants}
    assert kpis["straight"] == kpis["base"]
    assert kpis["roads"] != kpis["base"] and kpis["roads"]["orders"] == kpis["base"]["orders"]


def test_the_scenario_s_matrix_is_every_variant_s_unless_it_names_its_own(tmp_path):
    assert roads(["--out", str(tmp_path / "roads.json"), "--cell-m", "2000"]) == 0
    path = tmp_path / "s.toml"
    path.write_text(BASE.replace('[network]', 'travel_matrix = "roads.json"\n[network]') +
                    '[[variants]]\nname = "same"\n[[variants]]\nname = "straight"\ntravel_matrix = "straight"\n')
    s, _ = load_scenario(path)
    same, straight = s.variants
    assert travel_of(s, None) is travel_of(s, same) and travel_of(s, None).node_ids[0] == "S001"
    assert type(travel_of(s, straight)).__name__ == "StraightLine"


@pytest.mark.parametrize("text, field", [
    ('travel_matrix = "nowhere.json"\n', "$.travel_matrix"),
    ('[[variants]]\nname = "v"\ntravel_matrix = "bad.json"\n', "$.variants[0].travel_matrix"),
])
def test_a_missing_or_bad_matrix_is_refused_naming_the_field(tmp_path, text, field):
    (tmp_path / "bad.json").write_text("{}")
    path = tmp_path / "bad.toml"
    path.write_text(text + BASE if not text.startswith("[[") else BASE + text)
    with pytest.raises(ScenarioError) as e:
        load_scenario(path)
    assert e.value.field == field


@pytest.mark.slow
def test_couriers_on_roads_the_router_does_not_know_run_later_than_promised_and_a_router_that_knows_them_does_not(
        tmp_path):
    assert roads(["--out", str(tmp_path / "roads.json"), "--cell-m", "1000"]) == 0
    path = tmp_path / "truth.toml"
    busy = BASE.replace("orders = 150", "orders = 600")  # enough orders that some run late
    path.write_text(busy.replace('[network]', 'roads = "roads.json"\n[network]') +
                    '[[variants]]\nname = "knows-roads"\ntravel_matrix = "roads.json"\n')
    _, variants = run_scenario(path, progress=False)
    kpis = {v.name: v.kpis for v in variants}
    _, plain = run_scenario(_without_roads(path), progress=False)
    assert kpis["base"]["on_time_rate"] < plain[0].kpis["on_time_rate"]  # straight-line promises, roads driven
    assert kpis["knows-roads"]["on_time_rate"] > kpis["base"]["on_time_rate"]
    assert kpis["base"]["handover_min_mean"] > plain[0].kpis["handover_min_mean"]


def _without_roads(path):
    plain = path.with_name("plain.toml")
    plain.write_text(path.read_text().replace('roads = "roads.json"\n', ""))
    return plain
