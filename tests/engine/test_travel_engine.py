"""The engine keeps what the travel source said: a matrix's minutes in the
promise, and `straight_line: 1` in the cost terms (with "ETA ~") where the
source had no road time and the straight line was a guess."""
from __future__ import annotations

import numpy as np

from domain.commands import Line, SubmitOrder
from engine.app import Engine, EngineSettings
from engine.clock import SimClock
from engine.routing.router import make_router
from engine.travel import Grid, TravelMatrix
from tests.engine.network_fixture import LAT, LON, at_km, small_network

T0 = 1_700_000_000.0
GRID = Grid(lat0=LAT - 0.01, lon0=LON - 0.01, dlat=0.005, dlon=0.005, rows=4, cols=4)  # about 2 km around S1


def engine_with(minutes: dict[str, float]) -> Engine:
    m = TravelMatrix(GRID, list(minutes), np.array([[v] * GRID.size for v in minutes.values()], float))
    return Engine(small_network(), EngineSettings(), clock=SimClock(T0), router=make_router(travel=m)).start()


def submit(e: Engine, ext: str, km: float):
    lat, lon = at_km(km)
    return e.submit(SubmitOrder(channel="app", external_id=ext, lines=[Line("A", 1)], lat=lat, lon=lon))


def test_the_promise_is_the_matrix_minutes_and_a_guess_outside_it_is_marked_straight_line():
    e = engine_with({"S1": 25.0, "S2": 7.0, "S3": 30.0, "K1": 30.0})
    try:
        road = submit(e, "in-grid", km=0.1)
        assert road.node == "S2"  # S1 is nearer, but 25 minutes away by road
        assert road.parts[0].eta_at.timestamp() == T0 + (10 + 7.0) * 60
        assert "straight_line" not in road.cost["S2"] and "ETA 17 min" in road.explanation
        guess = submit(e, "off-grid", km=3.5)  # north of the grid: no road time for any node
        assert guess.cost[guess.node]["straight_line"] == 1.0
        assert "ETA ~" in guess.explanation
    finally:
        e.close()


def test_a_quote_promises_by_the_same_matrix_as_the_submit_after_it():
    from domain.commands import QuoteOrder

    e = engine_with({"S1": 25.0, "S2": 7.0, "S3": 30.0, "K1": 30.0})
    try:
        lat, lon = at_km(0.1)
        best = e.quote(QuoteOrder(lines=[Line("A", 1)], lat=lat, lon=lon, modes="delivery")).options[0]
        assert best.node == "S2" and best.eta_at.timestamp() == T0 + (10 + 7.0) * 60
        reply = submit(e, "after-quote", km=0.1)
        assert (reply.node, reply.parts[0].eta_at) == (best.node, best.eta_at)
    finally:
        e.close()
