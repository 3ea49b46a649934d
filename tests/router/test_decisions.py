"""The router's decisions on hand-made networks: pickup, splitting, unknown
SKUs, night shifts, and the reasons given when an order is not served."""
from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.network import Network, Node, Sku, Window
from engine.routing.candidates import build
from engine.routing.explain import MAX_LOSSES, decisions
from engine.routing.router import make_router
from engine.routing.types import NetworkState, OrderToRoute, RouterSettings, Weights
from engine.travel import Grid, TravelMatrix

LAT, LON = 31.23, 121.47
NOON = 1_767_225_600.0 + 4 * 3600  # 12:00 in Shanghai
KM = 1 / 110.57  # degrees of latitude per km


def node(id: str, km_north: float = 0.0, **fields) -> Node:
    base = dict(id=id, name=id, kind="store", lat=LAT + km_north * KM, lon=LON, modes=["delivery", "pickup"],
                delivery_radius_km=3.0, hours=[Window("00:00", "24:00")], capacity_per_slot=5, prep_minutes=5.0,
                cost_per_km=2.0)
    return Node(**{**base, **fields})


def state(nodes: list[Node], stock: dict[str, dict[str, int]], now: float = NOON) -> NetworkState:
    skus = sorted({s for row in stock.values() for s in row})
    atp = np.array([[stock.get(n.id, {}).get(s, 0) for s in skus] for n in nodes], dtype=np.int64).reshape(len(nodes), -1)
    return NetworkState(network=Network(name="t", nodes=nodes, skus=[Sku(s, s, 5.0) for s in skus]),
                        node_ids=[n.id for n in nodes], sku_ids=skus, atp=atp,
                        capacity_left=np.array([n.capacity_per_slot for n in nodes], dtype=np.int64), now=now)


def order(key: str = "o", lines: dict[str, int] | None = None, km_north: float = 0.0, now: float = NOON,
          promise_min: float = 60, **fields) -> OrderToRoute:
    return OrderToRoute(key=key, lines=lines or {"a": 1}, mode=fields.pop("mode", "delivery"), lat=LAT + km_north * KM,
                        lon=LON, placed_at=now, promised_at=now + promise_min * 60, **fields)


def route(orders, st, **settings_):
    return make_router(RouterSettings(**settings_)).route(orders, st)


def test_a_pickup_order_goes_to_its_store_even_beyond_every_delivery_radius():
    nodes = [node("NEAR"), node("FAR", km_north=20)]
    d = route([order(km_north=0.1, mode="pickup", pickup_node="FAR")], state(nodes, {"NEAR": {"a": 5}, "FAR": {"a": 5}}))[0]
    assert [p.node for p in d.parts] == ["FAR"]
    assert d.parts[0].cost.distance_km == 0 and d.lost == []


def test_a_pickup_order_its_store_cannot_serve_is_explained_by_that_store_alone():
    nodes = [node("A"), node("B", km_north=0.5)]
    d = route([order(mode="pickup", pickup_node="B")], state(nodes, {"A": {"a": 5}, "B": {"a": 0}}))[0]
    assert d.parts == [] and d.reason == "no stock of SKU a"
    assert [(x.node, x.reason) for x in d.lost] == [("B", "no stock of SKU a")]


def test_a_pickup_store_that_does_not_offer_pickup_cannot_serve_it():
    nodes = [node("A", modes=["delivery"])]
    d = route([order(mode="pickup", pickup_node="A")], state(nodes, {"A": {"a": 5}}))[0]
    assert d.parts == [] and d.reason == "the pickup store cannot serve it"


def test_an_order_out_of_every_radius_is_unserved_because_no_node_reaches_it():
    nodes = [node("A", modes=["pickup"]), node("B", km_north=10)]
    d = route([order()], state(nodes, {"A": {"a": 5}, "B": {"a": 5}}))[0]
    assert d.parts == [] and d.reason == "too far"
    assert [(x.node, x.reason) for x in d.lost] == [("B", "too far")]


def test_a_cheaper_node_that_cannot_make_the_promise_lost_as_too_late():
    nodes = [node("SLOW", prep_minutes=40), node("FAR-FAST", km_north=2.5, prep_minutes=0, cost_per_km=12)]
    st_ = state(nodes, {"SLOW": {"a": 5}, "FAR-FAST": {"a": 5}})
    d = route([order(promise_min=30)], st_)[0]
    assert [p.node for p in d.parts] == ["FAR-FAST"]
    assert [(x.node, x.reason) for x in d.lost] == [("SLOW", "too late (ready in 40 min)")]
    assert d.parts[0].eta_at <= NOON + 30 * 60


def test_an_unserved_order_names_the_nodes_that_could_not_take_it():
    nodes = [node("EMPTY"), node("FULL", km_north=0.5, capacity_per_slot=0), node("SHUT", km_north=1, hours=[Window("18:00", "22:00")])]
    d = route([order()], state(nodes, {"EMPTY": {"a": 0}, "FULL": {"a": 5}, "SHUT": {"a": 5}}))[0]
    assert d.parts == []
    assert d.reason == "no node can serve it: EMPTY no stock of SKU a; FULL capacity full; SHUT closed"


def test_a_sku_no_node_has_heard_of_is_out_of_stock_everywhere():
    d = route([order(lines={"a": 1, "never-seen": 2})], state([node("A")], {"A": {"a": 5}}))[0]
    assert d.parts == [] and d.reason == "no stock of SKU never-seen"


def test_an_order_lost_to_another_in_the_batch_is_told_so():
    nodes = [node("A", capacity_per_slot=1), node("B", km_north=1.5)]
    st_ = state(nodes, {"A": {"a": 5}, "B": {"a": 5}})
    first, second = route([order("o1"), order("o2", km_north=0.1)], st_, solver="greedy")
    assert [p.node for p in first.parts] == ["A"] and [p.node for p in second.parts] == ["B"]
    assert [(x.node, x.reason) for x in second.lost] == [("A", "stock or capacity went to other orders in the batch")]


def test_a_night_shift_split_at_midnight_is_one_opening():
    night = [Window("00:00", "02:00"), Window("22:00", "24:00")]
    five_to_midnight = NOON + 11 * 3600 + 55 * 60
    st_ = state([node("NIGHT", hours=night, prep_minutes=20)], {"NIGHT": {"a": 5}}, now=five_to_midnight)
    d = route([order(now=five_to_midnight)], st_)[0]
    assert [p.node for p in d.parts] == ["NIGHT"]


def test_splitting_serves_an_order_no_single_node_can_and_each_part_gets_its_lines():
    nodes = [node("A"), node("B", km_north=0.5)]
    st_ = state(nodes, {"A": {"a": 1, "b": 0}, "B": {"a": 0, "b": 1}})
    whole = route([order(lines={"a": 1, "b": 1})], st_)[0]
    assert whole.parts == []
    split = route([order(lines={"a": 1, "b": 1})], st_, allow_split=True)[0]
    assert {p.node: p.lines for p in split.parts} == {"A": {"a": 1}, "B": {"b": 1}}


def test_an_order_is_split_only_when_one_node_cannot_serve_it_cheaper():
    nodes = [node("A"), node("B", km_north=0.5)]
    d = route([order(lines={"a": 1, "b": 1})], state(nodes, {"A": {"a": 1, "b": 1}, "B": {"a": 1, "b": 1}}),
              allow_split=True)[0]
    assert [p.node for p in d.parts] == ["A"]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.floats(-4, 4), st.floats(0, 30), st.integers(-1, 2), st.booleans()), min_size=1, max_size=8))
def test_the_costs_explanations_rank_by_equal_the_cost_of_each_pair(rows):
    nodes = [node("A"), node("B", km_north=1, cost_per_km=1, operating_cost=3), node("C", km_north=-2, prep_minutes=12)]
    orders = [order(f"o{i}", km_north=km, promise_min=promise, home_node=None if home < 0 else nodes[home].id,
                    mode="pickup" if pickup else "delivery", pickup_node="A" if pickup else None)
              for i, (km, promise, home, pickup) in enumerate(rows)]
    router = make_router()
    st_ = state(nodes, {"A": {"a": 1}})
    b = build(orders, st_, router.settings, router.nodes(st_))
    oi, ni = np.divmod(np.arange(len(orders) * len(nodes)), len(nodes))
    assert np.allclose(b.total_at(oi, ni), b.terms(oi, ni)["total"])


def _losses_by_brute_force(b, decisions):
    """Each order's losses as the explanations define them, from every pair's cost: nodes considered (offering
    its mode: for pickup the chosen store; or declining it), not chosen, costing less than its dearest part (any,
    unserved), the MAX_LOSSES cheapest, ties by node."""
    oi, ni = np.divmod(np.arange(len(b.orders) * len(b.nodes.ids)), len(b.nodes.ids))
    cost = b.total_at(oi, ni).reshape(len(b.orders), len(b.nodes.ids))
    out = []
    for i, (o, d) in enumerate(zip(b.orders, decisions)):
        chosen = {p.node for p in d.parts}
        limit = max((cost[i, b.nodes.index[p.node]] for p in d.parts), default=np.inf)
        considered = [n for n, nid in enumerate(b.nodes.ids)
                      if (b.reach[i, n] if o.mode == "pickup" else b.nodes.delivers[n]) or nid in o.excluded]
        cheaper = sorted((cost[i, n], n) for n in considered if b.nodes.ids[n] not in chosen and cost[i, n] < limit)
        out.append([b.nodes.ids[n] for _, n in cheaper[:MAX_LOSSES]])
    return out


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_the_losses_are_the_cheapest_nodes_considered_below_the_chosen_one(data):
    n_nodes = data.draw(st.integers(1, 9))
    nodes = [node(f"N{k}", km_north=data.draw(st.floats(-6, 6)), cost_per_km=data.draw(st.sampled_from([0, 0.5, 1, 2, 4])),
                  operating_cost=data.draw(st.sampled_from([0, 1, 3])), prep_minutes=data.draw(st.sampled_from([0, 5, 25])),
                  modes=data.draw(st.sampled_from([["delivery", "pickup"], ["pickup"], ["delivery"]])),
                  delivery_radius_km=data.draw(st.sampled_from([1.0, 3.0, 8.0])))
             for k in range(n_nodes)]
    ids = [n.id for n in nodes]
    stock = {n.id: {"a": data.draw(st.integers(0, 2)), "b": data.draw(st.integers(0, 2))} for n in nodes}
    orders = []
    for i in range(data.draw(st.integers(1, 12))):
        pickup = data.draw(st.booleans())
        orders.append(order(f"o{i}", lines=data.draw(st.sampled_from([{"a": 1}, {"b": 1}, {"a": 1, "b": 1}, {"a": 2}])),
                            km_north=data.draw(st.floats(-5, 5)), promise_min=data.draw(st.sampled_from([10, 30, 60])),
                            mode="pickup" if pickup else "delivery",
                            pickup_node=data.draw(st.sampled_from(ids)) if pickup else None,
                            home_node=data.draw(st.sampled_from([None, *ids])),
                            excluded=tuple(data.draw(st.lists(st.sampled_from(ids), max_size=2, unique=True)))))
    weights = Weights(per_minute=data.draw(st.sampled_from([0.0, 0.2])), lateness=data.draw(st.sampled_from([-5.0, 20.0])),
                      home_bonus=data.draw(st.sampled_from([-1.0, 2.0])))  # a bound must hold for any weights
    settings_ = RouterSettings(solver=data.draw(st.sampled_from(["greedy", "optimal"])), allow_split=data.draw(st.booleans()),
                               weights=weights)
    router = make_router(settings_)
    if data.draw(st.booleans()):  # road minutes per area cell (some unknown): no longer linear in distance
        grid = Grid(lat0=LAT - 0.1, lon0=LON - 0.1, dlat=0.01, dlon=0.01, rows=20, cols=20)
        minutes = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).uniform(0, 40, (n_nodes, grid.size))
        minutes[minutes > 36] = np.nan
        router = make_router(settings_, TravelMatrix(grid, ids, minutes))
    st_ = state(nodes, stock)
    b, solution = router.plan(orders, st_)
    d = decisions(b, solution)
    assert [[x.node for x in x_.lost] for x_ in d] == _losses_by_brute_force(b, d)


def test_a_new_read_model_with_as_many_skus_in_another_order_is_read_by_its_own_columns():
    router = make_router()
    nodes = [node("A")]
    for skus, atp in ((["a", "b"], [[5, 0]]), (["b", "a"], [[5, 0]])):
        st_ = NetworkState(network=Network(name="t", nodes=nodes, skus=[Sku(s, s, 5.0) for s in skus]),
                           node_ids=["A"], sku_ids=list(skus), atp=np.array(atp), capacity_left=np.array([5]), now=NOON)
        d = router.route([order(lines={skus[0]: 1}), order("o2", lines={skus[1]: 1})], st_)
        assert [bool(x.parts) for x in d] == [True, False]


def test_a_node_of_another_partition_is_lost_as_elsewhere_not_full():
    nodes = [node("MINE"), node("THEIRS", km_north=0.5)]
    st_ = state(nodes, {"MINE": {"a": 0}, "THEIRS": {"a": 5}})
    st_ = dataclasses.replace(st_, capacity_left=np.array([10, 0]), elsewhere=np.array([False, True]))
    d = route([order()], st_)[0]
    assert d.parts == []
    assert [(x.node, x.reason) for x in d.lost] == [
        ("MINE", "no stock of SKU a"), ("THEIRS", "in another partition: served there if this one cannot")]
