"""Partitioned routing (engine/routing/partitioned.py) on the test town cut
in two: west (S1, S2) and east (S3, K1). An order is routed among its home
partition's nodes first and handed over to the next partition only if none
of them can serve it."""
from __future__ import annotations

import msgspec
import numpy as np

from engine.partitions import declared_map
from engine.routing.partitioned import PartitionedRouter
from engine.routing.router import make_router
from engine.routing.types import NetworkState, OrderToRoute
from tests.engine.network_fixture import at_km, small_network

NOW = 1_767_225_600.0 + 4 * 3600
REGIONS = {"S1": "W", "S2": "W", "S3": "E", "K1": "E"}


def town(stock=None, costly_s2=True):
    net = small_network(stock)
    nodes = [msgspec.structs.replace(n, region=REGIONS[n.id],
                                     operating_cost=30.0 if n.id == "S2" and costly_s2 else n.operating_cost)
             for n in net.nodes]
    return msgspec.structs.replace(net, nodes=nodes)


def state(net):
    skus = [s.id for s in net.skus]
    atp = np.array([[net.stock.get(n.id, {}).get(k, 0) for k in skus] for n in net.nodes], dtype=np.int64)
    return NetworkState(network=net, node_ids=[n.id for n in net.nodes], sku_ids=skus, atp=atp,
                        capacity_left=np.array([n.capacity_per_slot for n in net.nodes], dtype=np.int64), now=NOW)


def order(key, km, lines, mode="delivery", pickup_node=None):
    lat, lon = at_km(km)
    return OrderToRoute(key=key, lines=lines, mode=mode, lat=lat, lon=lon, placed_at=NOW, promised_at=NOW + 3600,
                        value=10.0, pickup_node=pickup_node)


def nodes_of(decisions):
    return [[p.node for p in d.parts] for d in decisions]


def test_an_order_is_served_at_home_when_home_has_stock_even_if_a_foreign_node_is_cheaper():
    net = town()
    o = order("o1", 1.4, {"A": 1})  # nearest delivering node: S2 (west)
    assert nodes_of(make_router().route([o], state(net))) != [["S2"]]  # globally, not the costly S2
    assert nodes_of(make_router().route([o], state(net)))[0][0] in ("S3", "K1")
    router = PartitionedRouter(make_router(), declared_map(net, {"west": ["W"], "east": ["E"]}))
    d = router.route([o], state(net))[0]
    assert d.parts[0].node in ("S1", "S2") and router.stats.handed_over == 0
    assert {x.reason for x in d.lost if x.node in ("S3", "K1")} == {"in partition east, which did not route the order"}


def test_an_order_its_home_cannot_serve_is_handed_over_to_the_other_partition():
    stock = {"S1": {"A": 5, "C": 0}, "S2": {"A": 5, "C": 0}, "S3": {"A": 5, "C": 2}, "K1": {"A": 50, "C": 10}}
    net = town(stock)
    router = PartitionedRouter(make_router(), declared_map(net, {"west": ["W"], "east": ["E"]}))
    d = router.route([order("o1", 0.5, {"C": 1})], state(net))  # home: west, which has no C
    assert nodes_of(d)[0][0] in ("S3", "K1")
    assert (router.stats.handed_over, len(router.stats.served_abroad)) == (1, 1)


def test_a_handed_over_order_gets_only_what_the_home_orders_left():
    stock = {"S1": {"A": 5, "C": 0}, "S2": {"A": 5, "C": 0}, "S3": {"A": 5, "C": 0}, "K1": {"A": 50, "C": 1}}
    net = town(stock)
    router = PartitionedRouter(make_router(), declared_map(net, {"west": ["W"], "east": ["E"]}))
    d = router.route([order("west", 0.5, {"C": 1}), order("east", 3.5, {"C": 1})], state(net))
    assert nodes_of(d) == [[], ["K1"]]  # the east order is K1's at home; nothing left for the west one
    assert "no stock of SKU C" in d[0].reason and "capacity" not in d[0].reason  # not the other partition's mask
    assert router.stats.handed_over == 1 and len(router.stats.served_abroad) == 0


def test_a_pickup_order_stays_at_its_store():
    stock = {"S1": {"A": 5, "C": 0}, "S2": {"A": 5, "C": 0}, "S3": {"A": 5, "C": 2}, "K1": {"A": 50, "C": 10}}
    net = town(stock)
    router = PartitionedRouter(make_router(), declared_map(net, {"west": ["W"], "east": ["E"]}))
    d = router.route([order("o1", 0.0, {"C": 1}, mode="pickup", pickup_node="S1")], state(net))
    assert nodes_of(d) == [[]] and router.stats.handed_over == 0


def test_with_one_partition_it_decides_as_the_wrapped_router():
    net = town(costly_s2=False)
    batch = [order(f"o{i}", km, lines) for i, (km, lines) in enumerate(
        [(0.2, {"A": 2}), (1.4, {"C": 1}), (3.9, {"B": 3}), (2.1, {"A": 1, "C": 1}), (0.9, {"C": 1}), (4.5, {"A": 9})])]
    batch.append(order("p", 1.0, {"B": 1}, mode="pickup", pickup_node="S2"))
    one = PartitionedRouter(make_router(), declared_map(net, {"all": ["W", "E"]}))
    assert one.route(batch, state(net)) == make_router().route(batch, state(net))
    assert one.stats.handed_over == 0 and one.stats.batches == 1
