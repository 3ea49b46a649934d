"""Instance families for `o2o bench solver`: batches the router was not tuned
on, beside the project's own clustered city (benchmarks/instances.py).

Routing families (600 nodes, 2,000 SKUs, 8 candidates per order, off-peak
and peak):

| family | nodes | orders | promotions | capacity (x average demand per node) |
| --- | --- | --- | --- | --- |
| clustered | 12 districts over 40 x 40 km | around the stores | 3 SKUs in ~20% of orders | 3 / 1.2 |
| uniform | spread evenly over 40 x 40 km | spread evenly | as clustered | 3 / 1.2 |
| downtown | spread evenly over 12 x 12 km (dozens in reach) | around the stores | as clustered | 3 / 1.2 |
| promo-heavy | as clustered | as clustered | 12 SKUs in ~60% of orders | 3 / 1.2 |
| capacity-tight | as clustered | as clustered | as clustered | 1.5 / 0.9 |

Generalised assignment families (every order must be assigned, every node
allowed): types A-E of benchmarks/gap.py, nodes = orders / 10 (at most 40).
"""
from __future__ import annotations

from dataclasses import dataclass

import msgspec
import numpy as np

from benchmarks.gap import gap
from benchmarks.instances import Instance, make_instance, make_network
from domain.network import Network
from engine.routing.problem import Problem
from engine.routing.problem_file import to_problem
from simulations.network_gen import CENTER, KM_LAT, KM_LON


@dataclass(frozen=True)
class Family:
    shape: str = "clustered"  # clustered | uniform | downtown
    n_promo: int = 3
    promo_share: tuple[float, float] = (0.04, 0.10)  # of orders holding each promotion SKU
    capacity: tuple[float, float] = (3.0, 1.2)  # off-peak, peak
    orders_uniform: bool = False


FAMILIES = {
    "clustered": Family(),
    "uniform": Family(shape="uniform", orders_uniform=True),
    "downtown": Family(shape="downtown"),
    "promo-heavy": Family(n_promo=12, promo_share=(0.05, 0.11)),
    "capacity-tight": Family(capacity=(1.5, 0.9)),
}
GAP_TYPES = ("A", "B", "C", "D", "E")


def network_for(shape: str, seed: int = 1000, nodes: int = 600, skus: int = 2000) -> Network:
    """The clustered city, or the same nodes moved: evenly over 40 x 40 km
    (uniform) or over 12 x 12 km (downtown)."""
    network = make_network(seed, nodes, skus)
    if shape == "clustered":
        return network
    half = {"uniform": 20.0, "downtown": 6.0}[shape]
    rng = np.random.default_rng(seed + 1)
    xy = rng.uniform(-half, half, (len(network.nodes), 2))
    nodes = [msgspec.structs.replace(n, lat=round(float(CENTER[0] + y * KM_LAT), 6),
                                     lon=round(float(CENTER[1] + x * KM_LON), 6))
             for n, (x, y) in zip(network.nodes, xy)]
    return msgspec.structs.replace(network, nodes=nodes, name=f"bench-{shape}")


def routing_instance(family: str, n_orders: int, regime: str, seed: int, network: Network) -> Instance:
    f = FAMILIES[family]
    return make_instance(n_orders, regime, seed=seed, network=network, n_promo=f.n_promo, promo_share=f.promo_share,
                         capacity=dict(zip(("off-peak", "peak"), f.capacity))[regime],
                         orders_uniform=f.orders_uniform)


def gap_nodes(n_orders: int) -> int:
    return min(40, max(5, n_orders // 10))


def gap_instance(kind: str, n_orders: int, seed: int, n_nodes: int | None = None) -> Problem:
    return to_problem(gap(kind, n_nodes or gap_nodes(n_orders), n_orders, seed))
