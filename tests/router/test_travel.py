"""Travel times from a matrix: the router chooses and promises by the
matrix's minutes exactly; a place or node the matrix has no time for gets
the straight line's time, marked as a guess; matrix files name bad fields."""
from __future__ import annotations

import json

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.routing.router import make_router
from engine.routing.types import RouterSettings
from engine.store.travel_file import TravelFileError, dump_travel_matrix, load_travel_matrix
from engine.travel import Grid, TravelMatrix
from tests.router.test_decisions import LAT, LON, NOON, node, order, state

GRID = Grid(lat0=LAT - 0.05, lon0=LON - 0.05, dlat=0.01, dlon=0.01, rows=10, cols=10)


def matrix(minutes: dict[str, float | np.ndarray], grid: Grid = GRID) -> TravelMatrix:
    """Each node's minutes: one value for every cell, or an array over the cells."""
    return TravelMatrix(grid, list(minutes), np.array([np.broadcast_to(m, grid.size) for m in minutes.values()], float))


def route(orders, st_, travel=None, **settings_):
    router = make_router(RouterSettings(**settings_)) if travel is None else make_router(RouterSettings(**settings_), travel)
    return router.route(orders, st_)


def test_a_matrix_that_puts_the_nearest_node_behind_a_river_sends_the_order_to_the_other_one():
    nodes = [node("NEAR", km_north=0.5), node("OTHER", km_north=-1.5)]
    st_ = state(nodes, {"NEAR": {"a": 5}, "OTHER": {"a": 5}})
    assert [p.node for p in route([order()], st_)[0].parts] == ["NEAR"]  # by straight line
    d = route([order()], st_, matrix({"NEAR": 31.0, "OTHER": 6.5}))[0]
    assert [p.node for p in d.parts] == ["OTHER"]
    assert d.parts[0].cost.eta_min == 5.0 + 6.5  # preparation + the matrix's minutes (rounded to 0.1 as stored)
    assert d.parts[0].eta_at == NOON + (5.0 + 6.5) * 60
    assert d.parts[0].straight_line is False


def test_a_node_the_matrix_makes_too_slow_for_the_promise_is_passed_over_as_too_late_by_its_minutes():
    nodes = [node("NEAR", cost_per_km=0.0), node("OTHER", km_north=-1.0, cost_per_km=30.0)]
    st_ = state(nodes, {"NEAR": {"a": 5}, "OTHER": {"a": 5}})
    d = route([order(promise_min=30)], st_, matrix({"NEAR": 40.0, "OTHER": 10.0}))[0]
    assert [p.node for p in d.parts] == ["OTHER"]
    assert [(x.node, x.reason) for x in d.lost] == [("NEAR", "too late (ready in 45 min)")]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_every_part_is_promised_at_preparation_plus_the_matrix_minutes_of_its_cell(data):
    n_nodes = data.draw(st.integers(1, 5))
    nodes = [node(f"N{i}", km_north=data.draw(st.floats(-2, 2)), prep_minutes=data.draw(st.sampled_from([0.0, 5.0, 12.5])))
             for i in range(n_nodes)]
    cells = np.array(data.draw(st.lists(st.floats(0, 50, allow_nan=False), min_size=GRID.size * n_nodes,
                                        max_size=GRID.size * n_nodes))).reshape(n_nodes, GRID.size)
    m = TravelMatrix(GRID, [n.id for n in nodes], cells)
    places = data.draw(st.lists(st.tuples(st.floats(-2.5, 2.5), st.floats(-0.02, 0.02)), min_size=1, max_size=12))
    orders = [msgspec.structs.replace(order(f"o{i}", km_north=north, promise_min=90), lon=LON + east)
              for i, (north, east) in enumerate(places)]
    decisions = route(orders, state(nodes, {n.id: {"a": 99} for n in nodes}), m, solver="greedy")
    for o, d in zip(orders, decisions):
        cell = int(GRID.cells(np.array([o.lat]), np.array([o.lon]))[0])
        for p in d.parts:
            k = [n.id for n in nodes].index(p.node)
            assert p.eta_at == NOON + (nodes[k].prep_minutes + cells[k, cell]) * 60
            assert p.straight_line is False


def test_a_place_outside_the_grid_gets_the_straight_line_time_marked_as_a_guess():
    nodes = [node("A", delivery_radius_km=30.0)]
    st_ = state(nodes, {"A": {"a": 5}})
    far = order(km_north=8.0)  # beyond the grid's 5.5 km north edge
    straight = route([far], st_)[0].parts[0]
    guessed = route([far], st_, matrix({"A": 1.0}))[0].parts[0]
    assert guessed.eta_at == straight.eta_at and guessed.cost == straight.cost
    assert guessed.straight_line is True and straight.straight_line is False


def test_a_node_the_matrix_does_not_name_gets_the_straight_line_time_marked_as_a_guess():
    nodes = [node("OLD", km_north=1.0), node("NEW")]
    st_ = state(nodes, {"OLD": {"a": 5}, "NEW": {"a": 5}})
    d = route([order()], st_, matrix({"OLD": 60.0}))[0]  # NEW opened after the matrix was made
    assert [(p.node, p.straight_line) for p in d.parts] == [("NEW", True)]
    assert d.parts[0].eta_at == route([order()], st_)[0].parts[0].eta_at


def test_a_pickup_order_is_never_marked_as_a_guess():
    nodes = [node("A")]
    d = route([order(mode="pickup", pickup_node="A", km_north=8)], state(nodes, {"A": {"a": 5}}), matrix({"B": 1.0}))[0]
    assert [(p.node, p.straight_line, p.cost.eta_min) for p in d.parts] == [("A", False, 5.0)]


def test_grid_cells_are_row_major_from_the_south_west_corner_and_minus_one_outside():
    g = Grid(lat0=31.0, lon0=121.0, dlat=0.1, dlon=0.2, rows=2, cols=3)
    lat = np.array([31.05, 31.15, 31.15, 30.99, 31.21])
    lon = np.array([121.01, 121.01, 121.59, 121.1, 121.1])
    assert g.cells(lat, lon).tolist() == [0, 3, 5, -1, -1]
    clat, clon = g.centres(np.array([5]))
    assert (round(float(clat[0]), 6), round(float(clon[0]), 6)) == (31.15, 121.5)


def test_a_matrix_file_round_trips(tmp_path):
    m = matrix({"A": np.arange(GRID.size) / 4, "B": np.where(np.arange(GRID.size) % 2, np.nan, 3.0)})
    dump_travel_matrix(m, tmp_path / "m.json", network="t", source="test")
    back = load_travel_matrix(tmp_path / "m.json")
    assert back.grid == GRID and back.node_ids == ["A", "B"]
    assert np.array_equal(back.minutes(), m.minutes(), equal_nan=True)


@pytest.mark.parametrize("change, field, reason", [
    (lambda d: d["grid"].update(dlat=0), "$.grid.dlat", "> 0"),
    (lambda d: d["minutes"][1].pop(), "$.minutes[1]", "one value per cell"),
    (lambda d: d["minutes"][0].__setitem__(3, -1), "$.minutes[0][3]", ">= 0"),
    (lambda d: d["nodes"].append("A"), "$.nodes", "named twice"),
    (lambda d: d.update(speed=1), "$", "unknown field `speed`"),
])
def test_a_bad_matrix_file_is_refused_naming_the_field(tmp_path, change, field, reason):
    m = matrix({"A": 1.0, "B": 2.0})
    dump_travel_matrix(m, tmp_path / "m.json")
    data = json.loads((tmp_path / "m.json").read_text())
    change(data)
    (tmp_path / "m.json").write_text(json.dumps(data))
    with pytest.raises(TravelFileError) as e:
        load_travel_matrix(tmp_path / "m.json")
    assert e.value.field == field and reason in e.value.reason
    assert str(tmp_path / "m.json") in str(e.value)
