"""Candidate building's array shortcuts agree with the plain definitions:
the stock check by bit sets with "the node holds every line (any line,
when splitting)", and the in-place distances with engine.geo.local_km to
the last bit."""
from __future__ import annotations

from unittest.mock import patch

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.geo import local_km
from engine.routing import candidates
from engine.routing.candidates import NodeArrays, _distances, _first_k, _stocked


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_the_stock_bit_sets_say_what_checking_every_line_at_every_node_says(data):
    n_nodes = data.draw(st.integers(1, 140))  # across several 64-node words
    n_skus = data.draw(st.integers(1, 6))
    atp = np.array(data.draw(st.lists(st.lists(st.integers(0, 3), min_size=n_skus, max_size=n_skus),
                                      min_size=n_nodes, max_size=n_nodes)), dtype=np.int64)
    orders = data.draw(st.lists(st.dictionaries(st.integers(0, n_skus - 1), st.integers(1, 4), max_size=4),
                                min_size=1, max_size=8))
    line_ptr = np.concatenate([[0], np.cumsum([len(o) for o in orders])]).astype(np.int64)
    line_sku = np.array([s for o in orders for s in o], dtype=np.int64)
    line_qty = np.array([q for o in orders for q in o.values()], dtype=np.int64)
    for any_line, distinct_from in ((False, 1024), (True, 1024), (False, 0), (True, 0)):  # each line, distinct ones
        with patch.object(candidates, "DISTINCT_FROM", distinct_from):
            got = _stocked(line_ptr, line_sku, line_qty, atp, len(orders), any_line)
        reduce = any if any_line else all
        want = [[reduce(atp[n, s] >= q for s, q in o.items()) if o else True for n in range(n_nodes)] for o in orders]
        assert got.tolist() == want


@given(st.lists(st.tuples(st.floats(30.9, 31.5), st.floats(121.2, 121.8)), min_size=1, max_size=20))
def test_the_in_place_distances_equal_local_km_to_the_last_bit(points):
    nodes = NodeArrays(ids=["a", "b", "c"], index={}, lat=np.array([31.0, 31.23, 31.4]),
                       lon=np.array([121.3, 121.47, 121.7]), radius=np.zeros(3), prep=np.zeros(3),
                       cost_per_km=np.zeros(3), operating=np.zeros(3), delivers=np.ones(3, bool),
                       picks_up=np.ones(3, bool), hours=[[], [], []], tz=None, speed_kmh=20.0)  # type: ignore[arg-type]
    lat, lon = np.array(points).T
    want = local_km(lat[:, None], lon[:, None], nodes.lat[None, :], nodes.lon[None, :])
    for rows in (candidates.DIST_ROWS, 3):  # one block, and several with a short last one
        with patch.object(candidates, "DIST_ROWS", rows):
            assert np.array_equal(_distances(lat, lon, nodes), want)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_the_k_cheapest_per_order_are_those_a_stable_sort_of_every_pair_puts_first(data):
    counts = data.draw(st.lists(st.integers(0, 12), min_size=1, max_size=8))
    k = data.draw(st.integers(1, 6))
    oi = np.repeat(np.arange(len(counts)), counts)
    cost = np.array(data.draw(st.lists(st.integers(0, 5), min_size=len(oi), max_size=len(oi))), float)  # ties
    key = oi * 6.0 + cost

    def first_k(sort):
        starts = np.searchsorted(oi[sort], np.arange(len(counts)))
        return sort[np.arange(len(sort)) - starts[oi[sort]] < k].tolist()

    with patch.object(candidates, "SORT_WHOLE", 0):  # the partition, not the whole sort a batch this small gets
        assert first_k(_first_k(key, oi, len(counts), k)) == first_k(np.argsort(key, kind="stable"))
