"""Simulations run the real engine: deterministic for a seed, a variant that
changes nothing equals the base, stock is conserved, and the event store a
simulation writes rebuilds to the same KPIs."""
from __future__ import annotations

import gc
import json
from pathlib import Path

import msgspec

import pytest

from adapters.cli import main
from engine.readmodels import ReadModels
from engine.store.eventlog import EventLog
from engine.store.network_file import load_sample
from simulations import results
from simulations.variants import network_of, run_scenario
from simulations.demand import base_day
from simulations.day import simulate, variant_network
from simulations.scenario import ScenarioError, load_scenario
from tests.conftest import garbage_left

SCENARIO = """
name = "tiny"
seed = 3
start = "10:00"
end = "13:30"
[network]
file = "sample"
[demand]
orders = 150
[pos]
sales_per_store_hour = 0.5
[[variants]]
name = "nothing-changed"
[[variants]]
name = "new-kitchen"
add_kitchens = [{id = "K99", lat = 31.23, lon = 121.47}]
[[variants]]
name = "close-two"
close_stores = ["S001", "S002"]
[[variants]]
name = "surge"
surges = [{start = "11:00", end = "12:30", factor = 1.5}]
"""


@pytest.fixture
def scenario(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(SCENARIO)
    return path


@pytest.mark.e2e
@pytest.mark.slow
def test_the_same_scenario_and_seed_give_identical_kpi_files_one_variant_at_a_time_or_in_workers(scenario, tmp_path):
    assert main(["simulate", str(scenario), "--out", str(tmp_path / "a")]) == 0
    assert main(["simulate", str(scenario), "--out", str(tmp_path / "b"), "--jobs", "2"]) == 0
    for name in ("kpis.json", "kpis.csv", "nodes.csv", "hourly.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    report = (tmp_path / "a" / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 3 and "tiny" in report


@pytest.mark.slow
def test_a_variant_that_changes_nothing_equals_the_base_and_changes_show(scenario):
    _, variants = run_scenario(scenario, progress=False)
    kpis, nodes, hourly = ({v.name: getattr(v, key) for v in variants} for key in ("kpis", "nodes", "hourly"))
    breaks = {v.name: v.breaks for v in variants}
    assert kpis["nothing-changed"] == kpis["base"]
    assert nodes["nothing-changed"] == nodes["base"] and hourly["nothing-changed"] == hourly["base"]
    assert kpis["surge"]["orders"] > kpis["base"]["orders"]
    assert "K99" in {row["node"] for row in nodes["new-kitchen"]}
    assert not {"S001", "S002"} & {row["node"] for row in nodes["close-two"]}
    assert all(b == [] for b in breaks.values()), breaks  # stock conserved in every variant


@pytest.mark.slow
def test_one_partition_routes_as_global_routing_and_more_hand_orders_over(tmp_path):
    path = tmp_path / "parts.toml"
    path.write_text(SCENARIO.split("[[variants]]")[0] + '[[variants]]\nname = "one"\npartitions = {count = 1}\n'
                    '[[variants]]\nname = "four"\npartitions = {count = 4}\n')
    _, variants = run_scenario(path, progress=False)
    kpis = {v.name: v.kpis for v in variants}
    assert kpis["one"] == kpis["base"]  # one partition holds every node: nothing to hand over
    assert kpis["four"]["orders"] == kpis["base"]["orders"] and 0 <= kpis["four"]["handed_over_share"] <= 1
    routing = {v.name: v.routing for v in variants}
    assert routing["four"]["partitions"] == 4 and routing["four"]["batches"] > 0


def test_the_event_store_of_a_simulation_rebuilds_to_the_same_read_models(scenario, tmp_path):
    s, folder = load_scenario(scenario)
    network = network_of(s, folder)
    url = f"sqlite:///{tmp_path}/sim.db"
    outcome = simulate(s, network, base_day(s, network), None, url)
    live, live_kpis = outcome.engine.readmodels.state(), results.kpis(outcome)
    outcome.engine.close()
    log = EventLog(url)
    rebuilt = ReadModels(outcome.network)
    for nid, event in log.stored_events():
        rebuilt.apply(event, nid)
    log.close()
    assert rebuilt.state() == live
    assert live_kpis["orders"] == s.demand.orders and live_kpis["completed"] > 0


@pytest.mark.parametrize("text, field", [
    ('name = "x"\n[demand]\norders = -5\n', "$.demand.orders"),
    ('name = "x"\n[behaviour]\ndecline_share = 2.0\n', "$.behaviour.decline_share"),
    ('name = "x"\ncolour = "red"\n', "$"),
    ('name = "x"\n[[variants]]\nname = "base"\n', "$.variants[0].name"),
    ('name = "x"\n[[variants]]\nname = "v"\nsurges = [{start = "25:00", end = "12:00", factor = 2}]\n',
     "$.variants[0].surges[0].start"),
])
def test_a_bad_scenario_is_refused_naming_the_field(tmp_path, text, field):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as e:
        load_scenario(path)
    assert e.value.field == field
    assert main(["simulate", str(path), "--out", str(tmp_path / "out")]) == 2


@pytest.mark.parametrize("variant, field", [
    ('close_stores = ["S999"]', "$.variants[0].close_stores"),
    ("stock_per_node = {NOPE-1 = 3}", "$.variants[0].stock_per_node"),
    ("partitions = {count = 99}", "$.variants[0].partitions"),
    ('partitions = {declared = {west = ["nowhere"]}}', "$.variants[0].partitions"),
])
def test_a_variant_naming_what_the_network_lacks_is_refused_naming_the_field(tmp_path, capsys, variant, field):
    path = tmp_path / "bad.toml"
    path.write_text(f'name = "x"\n[demand]\norders = 5\n[[variants]]\nname = "v"\n{variant}\n')
    assert main(["simulate", str(path), "--out", str(tmp_path / "out")]) == 2
    assert field in capsys.readouterr().err


def test_the_shipped_scenarios_are_valid():
    shipped = sorted((Path(__file__).resolve().parents[2] / "simulations/scenarios").glob("*.toml"))
    assert len(shipped) >= 6
    sample = load_sample()
    for path in shipped:
        s, _ = load_scenario(path)
        if s.network.file == "sample":
            for v in s.variants:
                variant_network(sample, s, v)  # raises a ScenarioError naming the field


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_replaying_a_simulated_day_with_an_unchanged_network_reproduces_its_kpis(scenario, tmp_path, request, kind):
    url = f"sqlite:///{tmp_path}/base.db" if kind == "sqlite" else request.getfixturevalue("postgres_url")
    s, folder = load_scenario(scenario)
    network = network_of(s, folder)
    outcome = simulate(s, network, base_day(s, network), None, url)
    day = results.kpis(outcome)
    outcome.engine.close()
    assert main(["replay", "--events", url, "--out", str(tmp_path / "replay")]) == 0
    both = json.loads((tmp_path / "replay" / "kpis.json").read_text())["variants"]
    same = {k: v for k, v in day.items() if k not in ("stockouts_pos", "events")}
    assert {k: both["recorded"][k] for k in same} == same  # the record rebuilds to what the day reported
    assert {k: both["replayed"][k] for k in same} == same  # and replays to it


@pytest.mark.slow
def test_a_replay_against_a_changed_network_differs_where_it_should(scenario, tmp_path):
    s, folder = load_scenario(scenario)
    network = network_of(s, folder)
    simulate(s, network, base_day(s, network), None, f"sqlite:///{tmp_path}/base.db").engine.close()
    smaller = msgspec.structs.replace(network, nodes=[n for n in network.nodes if n.id not in ("S001", "S002", "S003")])
    path = tmp_path / "smaller.json"
    path.write_bytes(msgspec.json.encode(msgspec.structs.replace(
        smaller, stock={k: v for k, v in network.stock.items() if k not in ("S001", "S002", "S003")})))
    assert main(["replay", "--events", f"sqlite:///{tmp_path}/base.db", "--network", str(path),
                 "--recorded-network", "engine/data/sample-city.json", "--out", str(tmp_path / "r2")]) == 0
    nodes = json.loads((tmp_path / "r2" / "kpis.json").read_text())["nodes"]
    assert "S001" in {r["node"] for r in nodes["recorded"]} and "S001" not in {r["node"] for r in nodes["replayed"]}


def test_a_simulated_day_leaves_no_cycles_of_refused_commands_behind(scenario):
    """Full collections are paused while a day runs, so garbage must not need them."""
    s, folder = load_scenario(scenario)
    network = network_of(s, folder)
    day = base_day(s, network)
    outcome, left = garbage_left(lambda: simulate(s, network, day, None, "memory:"))
    outcome.engine.close()
    assert outcome.engine.readmodels.kpis()["reroutes"] > 0  # nodes declined: some of their steps were refused
    assert left["traceback"] == left["frame"] == 0, left
    assert gc.get_threshold()[2] < 1 << 30  # and full collections are back on
