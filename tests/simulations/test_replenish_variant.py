"""A variant that applies the engine's replenishment suggestions at each delivery."""
from __future__ import annotations

from pathlib import Path

import pytest

from domain.commands import SetSafetyStock
from simulations import replay, results
from simulations.day import simulate, variant_network
from simulations.demand import base_day
from simulations.scenario import ScenarioError, load_scenario, reports_replenishment
from simulations.variants import network_of
from tests.simulations.test_replay_recorded import orders_of

SCENARIO = """
name = "two-days"
seed = 5
days = 2
start = "09:00"
end = "14:00"
[network]
file = "sample"
[demand]
orders = 200
[pos]
sales_per_store_hour = 1.0
[stock]
depth = "popularity"
replenish_at = ["09:00", "12:00"]
[[variants]]
name = "replenish"
replenish = {service_level = 0.9, transfer_km = 3.0, counter_reserve = "level"}
"""


@pytest.fixture
def scenario(tmp_path) -> Path:
    path = tmp_path / "two-days.toml"
    path.write_text(SCENARIO)
    return path


@pytest.mark.slow
def test_the_variant_tops_up_until_a_day_is_known_then_buys_what_the_engine_suggests_and_stock_is_conserved(scenario):
    s, folder = load_scenario(scenario)
    network = network_of(s, folder)
    day = base_day(s, network)
    base = simulate(s, network, day, None, "memory:")
    variant = simulate(s, network, day, s.variants[0], "memory:")
    try:
        assert results.conservation(base) == [] and results.conservation(variant) == []
        b, v = results.kpis(base), results.kpis(variant)
        assert b["units_bought"] == sum(base.replenished.values()) and b["units_moved"] == 0
        assert v["units_bought"] != b["units_bought"]  # from the second day, the suggestions
        assert v["units_moved"] == sum(q for q in variant.transferred.values() if q > 0)
        assert sum(variant.transferred.values()) == 0  # a move takes from one node what it gives another
        assert (variant.engine.readmodels.atp.safety > base.engine.readmodels.atp.safety).any()  # counter reserves
    finally:
        base.engine.close()
        variant.engine.close()


def test_only_a_scenario_with_the_variant_reports_units_bought_keeping_other_kpi_files_as_they_were(tmp_path):
    path = tmp_path / "plain.toml"
    path.write_text(SCENARIO.split("[[variants]]")[0])
    assert not reports_replenishment(load_scenario(path)[0])
    path.write_text(SCENARIO)
    assert reports_replenishment(load_scenario(path)[0])


def test_the_variant_s_deliveries_are_the_scenario_s_and_naming_others_is_refused(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(SCENARIO.replace("service_level = 0.9", 'deliveries = ["10:00"]'))
    with pytest.raises(ScenarioError) as e:
        load_scenario(path)
    assert e.value.field == "$.variants[0].replenish.deliveries"


@pytest.mark.slow
def test_a_store_with_counter_reserves_replays_to_the_same_orders(scenario, tmp_path):
    s, folder = load_scenario(scenario)
    network = network_of(s, folder)
    url = f"sqlite:///{tmp_path}/replenish.db"
    variant = simulate(s, network, base_day(s, network), s.variants[0], url)
    try:
        assert (variant.engine.readmodels.atp.safety > 0).any()
        rec, views, _ = replay.read(url, variant_network(network, s, s.variants[0]))
        assert any(isinstance(c, SetSafetyStock) for _, c in rec.commands)  # the reserves set at deliveries
        again = replay.run(rec, replay.replay_scenario(), variant_network(network, s, s.variants[0]))
        try:
            assert orders_of(again.engine.readmodels) == orders_of(views)
            assert (again.engine.readmodels.atp.safety == views.atp.safety).all()
        finally:
            again.engine.close()
    finally:
        variant.engine.close()
