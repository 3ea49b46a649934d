"""Travel times from a road table service over HTTP (a real stand-in
server for OSRM and Valhalla): the router promises by the service's times
to the order's cell, rows are cached (LRU, TTL), and a slow or failing
service leaves the straight line, marked as a guess, without asking again
for a while."""
from __future__ import annotations

import numpy as np
import pytest

from adapters.table_standin import TableStandin
from adapters.travel_table import TableService
from engine.routing.router import make_router
from engine.routing.types import RouterSettings
from engine.travel import Grid
from tests.router.test_decisions import NOON, node, order, state


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def standin():
    with TableStandin(detour=1.5, speed_kmh=20.0) as s:
        yield s


@pytest.fixture(autouse=True)
def healthy(standin):
    standin.delay_s, standin.fail = 0.0, False
    yield


NODES = [node("A", km_north=0.6), node("B", km_north=-1.0)]
STATE = state(NODES, {"A": {"a": 99}, "B": {"a": 99}})
GRID = Grid.around(STATE.network, 250)


def service(standin, **kw) -> TableService:
    return TableService(GRID, standin.url, **kw)


def expected_minutes(standin, n, o) -> float:
    """The stand-in's answer, in OSRM's 0.1 s, from node n to the centre of the order's cell, in minutes."""
    lat, lon = GRID.centres(GRID.cells(np.array([o.lat]), np.array([o.lon])))
    return round(float(standin.seconds([n.lat], [n.lon], lat, lon)[0, 0]), 1) / 60


@pytest.mark.parametrize("protocol", ["osrm", "valhalla"])
def test_the_router_promises_by_the_service_s_minutes_to_the_order_s_cell(standin, protocol):
    o = order(km_north=0.1)
    d = make_router(RouterSettings(), service(standin, protocol=protocol)).route([o], STATE)[0]
    chosen = next(n for n in NODES if n.id == d.parts[0].node)
    assert d.parts[0].eta_at == NOON + (chosen.prep_minutes + expected_minutes(standin, chosen, o)) * 60
    assert d.parts[0].straight_line is False


def test_rows_are_cached_and_asked_again_after_their_ttl(standin):
    clock = Clock()
    table = service(standin, cache_ttl_s=60, clock=clock)
    router = make_router(RouterSettings(), table)
    orders = [order("o1", km_north=0.1), order("o2", km_north=0.11), order("o3", km_north=2.0)]  # two share a cell
    router.route(orders, STATE)
    assert (table.calls, table.misses) == (1, 2)
    router.route(orders, STATE)
    assert (table.calls, table.hits) == (1, 2)
    clock.t = 61
    router.route(orders, STATE)
    assert table.calls == 2


def test_the_least_recently_used_cell_is_dropped_when_the_cache_is_full(standin):
    table = service(standin, cache_cells=1)
    router = make_router(RouterSettings(), table)
    router.route([order("o1", km_north=0.1)], STATE)
    router.route([order("o2", km_north=2.0)], STATE)
    router.route([order("o3", km_north=2.0)], STATE)  # still cached
    assert table.calls == 2
    router.route([order("o4", km_north=0.1)], STATE)  # dropped for the other cell
    assert table.calls == 3


def test_many_cells_over_a_small_locations_limit_get_the_same_times_in_more_calls(standin):
    orders = [order(f"o{i}", km_north=-1.2 + 0.25 * i) for i in range(10)]
    big, small = service(standin), service(standin, max_locations=4)
    want = make_router(RouterSettings(), big).route(orders, STATE)
    assert make_router(RouterSettings(), small).route(orders, STATE) == want
    assert small.calls > big.calls == 1


@pytest.mark.parametrize("trouble", ["slow", "failing"])
def test_a_slow_or_failing_service_leaves_the_straight_line_marked_and_is_not_asked_again_for_a_while(standin, trouble):
    clock = Clock()
    table = service(standin, timeout_s=0.2, retry_after_s=30, clock=clock)
    router = make_router(RouterSettings(), table)
    if trouble == "slow":
        standin.delay_s = 1.0
    else:
        standin.fail = True
    o = order(km_north=0.1)
    d = router.route([o], STATE)[0]
    straight = make_router().route([o], STATE)[0]
    assert [(p.node, p.eta_at, p.straight_line) for p in d.parts] == [(p.node, p.eta_at, True) for p in straight.parts]
    assert table.failures == 1
    calls = standin.calls
    router.route([o], STATE)
    assert standin.calls == calls  # within retry_after_s: not asked
    standin.delay_s, standin.fail = 0.0, False
    clock.t = 31
    d = router.route([o], STATE)[0]
    assert d.parts[0].straight_line is False and standin.calls == calls + 1


def test_o2o_network_travel_matrix_writes_the_service_s_minutes_for_every_cell_a_node_reaches(standin, tmp_path):
    from adapters.cli import main
    from domain.network import Network
    from engine.store.network_file import dump_network
    from engine.store.travel_file import load_travel_matrix

    network = Network(name="two", nodes=NODES, skus=STATE.network.skus)
    dump_network(network, tmp_path / "net.json")
    out = tmp_path / "m.json"
    assert main(["network", "travel-matrix", str(tmp_path / "net.json"), "--from-table", standin.url,
                 "--out", str(out), "--cell-m", "500", "--max-locations", "40"]) == 0
    m = load_travel_matrix(out)
    grid = Grid.around(network, 500)
    assert m.grid == grid and m.node_ids == ["A", "B"]
    o = order(km_north=0.3)
    want = round(expected_on(standin, grid, NODES[0], o), 1) / 60
    assert m.minutes_of("A", o.lat, o.lon) == round(want, 2)
    assert m.minutes_of("A", o.lat + 0.1, o.lon) is None  # 11 km north: beyond A's 3 km


def test_o2o_network_travel_matrix_writes_nothing_when_the_service_fails(standin, tmp_path, capsys):
    from adapters.cli import main

    standin.fail = True
    assert main(["network", "travel-matrix", "--from-table", standin.url, "--out", str(tmp_path / "m.json")]) == 1
    assert not (tmp_path / "m.json").exists() and "nothing written" in capsys.readouterr().err


def expected_on(standin, grid, n, o) -> float:
    lat, lon = grid.centres(grid.cells(np.array([o.lat]), np.array([o.lon])))
    return float(standin.seconds([n.lat], [n.lon], lat, lon)[0, 0])


def test_a_pickup_only_node_is_never_asked_for(standin):
    from engine.routing.candidates import NodeArrays

    nodes = [node("A"), node("P", modes=["pickup"])]
    arrays = NodeArrays.of(state(nodes, {"A": {"a": 1}, "P": {"a": 1}}).network)
    o = order(km_north=0.2)
    rows = service(standin).fetch(arrays, GRID.cells(np.array([o.lat]), np.array([o.lon])))
    assert not np.isnan(rows[0, 0]) and np.isnan(rows[0, 1])
