"""Realistic routing batches for the solver benchmark (see README.md).

The simulations' city generator at 600 nodes (stores clustered in 12
districts over 40 x 40 km, 20 central kitchens) and 2,000 SKUs; orders come from around the stores (hot spots), baskets of 1-6
lines drawn from a skewed (Zipf) popularity, a few scarce promotion SKUs
in 10-30% of orders with supply = demand / 1.3; every node carries most of
the assortment at shelf levels. Capacity per node is 3x the average demand
per node off-peak and 1.2x at peak.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from domain.network import Network
from engine.routing.types import NetworkState, OrderToRoute
from simulations.network_gen import CENTER, KM_LAT, KM_LON, CitySpec, generate

NOW = 1_767_225_600.0 + 11 * 3600  # a weekday, 19:00 in Shanghai
REGIMES = {"off-peak": 3.0, "peak": 1.2}


@dataclass
class Instance:
    name: str
    orders: list[OrderToRoute]
    state: NetworkState


def make_network(seed: int = 1000, n_nodes: int = 600, n_skus: int = 2000) -> Network:
    """The simulations' city generator at benchmark size (its stock is replaced per instance)."""
    kitchens = max(1, n_nodes // 30)
    return generate(CitySpec(stores=n_nodes - kitchens, kitchens=kitchens, skus=n_skus, radius_km=20, districts=12,
                             seed=seed, name="bench-city"))


def make_instance(n_orders: int, regime: str, seed: int = 0, network: Network | None = None,
                  n_promo: int = 3, promo_share: tuple[float, float] = (0.04, 0.10), capacity: float | None = None,
                  orders_uniform: bool = False) -> Instance:
    """capacity: x the average demand per node (default: the regime's);
    orders_uniform: orders spread evenly over the nodes' bounding box
    rather than around the stores (benchmarks/families.py)."""
    rng = np.random.default_rng(seed)
    network = network or make_network(1000 + seed)
    n_nodes, n_skus = len(network.nodes), len(network.skus)
    node_xy = np.array([[(n.lon - CENTER[1]) / KM_LON, (n.lat - CENTER[0]) / KM_LAT] for n in network.nodes])
    # orders around the stores: a few busy districts draw more
    weight = rng.lognormal(0.0, 0.6, n_nodes)
    origin = rng.choice(n_nodes, n_orders, p=weight / weight.sum())
    xy = node_xy[origin] + rng.normal(0, 1.5, (n_orders, 2))
    if orders_uniform:
        xy = rng.uniform(node_xy.min(axis=0), node_xy.max(axis=0), (n_orders, 2))
        origin = np.argmin(((xy[:, None, :] - node_xy[None, :, :]) ** 2).sum(axis=2), axis=1)  # the nearest node
    popularity = 1 / np.arange(1, n_skus + 1) ** 1.1
    popularity /= popularity.sum()
    promo = rng.choice(np.arange(50, n_skus), n_promo, replace=False)
    promo_share = rng.uniform(*promo_share, n_promo)  # default: 10-30% of orders hold one
    orders, demand = [], np.zeros(n_skus)
    prices = np.array([s.price for s in network.skus])
    for i in range(n_orders):
        size = int(rng.integers(1, 7))
        chosen = set(rng.choice(n_skus, size, replace=False, p=popularity).tolist())
        chosen.update(int(s) for s, share in zip(promo, promo_share) if rng.random() < share)
        lines = {network.skus[j].id: (1 if j in promo else int(rng.integers(1, 3))) for j in sorted(chosen)}
        for j in chosen:
            demand[j] += lines[network.skus[j].id]
        minutes = 45 if rng.random() < 0.8 else 30
        orders.append(OrderToRoute(
            key=f"o{i}", lines=lines, mode="delivery", lat=CENTER[0] + xy[i, 1] * KM_LAT,
            lon=CENTER[1] + xy[i, 0] * KM_LON, placed_at=NOW, promised_at=NOW + minutes * 60,
            value=float(sum(prices[j] * lines[network.skus[j].id] for j in chosen)),
        ))
    # shelf stock: most of the assortment everywhere, never the bottleneck
    atp = np.where(rng.random((n_nodes, n_skus)) < 0.85, rng.integers(5, 30, (n_nodes, n_skus)), 0).astype(np.int64)
    # scarce promotion SKUs: supply = demand / 1.3, placed where the orders come from
    near = np.bincount(origin, minlength=n_nodes) + 0.2
    for j in promo:
        supply = int(demand[j] / 1.3)
        atp[:, j] = rng.multinomial(supply, near / near.sum())
    per_node = n_orders / n_nodes
    ratio = REGIMES[regime] if capacity is None else capacity
    capacity_left = _capacities(ratio * per_node, n_nodes, rng)
    state = NetworkState(network=network, node_ids=[n.id for n in network.nodes], sku_ids=[s.id for s in network.skus],
                         atp=atp, capacity_left=capacity_left, now=NOW)
    return Instance(f"{regime} {n_orders}", orders, state)


def _capacities(mean: float, n_nodes: int, rng: np.random.Generator) -> np.ndarray:
    """Integer capacities averaging `mean` (at least 1 each): the floor
    everywhere and one more at a random share of the nodes. Rounding every
    node alike made 1.5x and 0.9x of 1,000 orders' 1.67 per node both 2,
    the same as peak's 1.2x (capacity-tight was clustered peak at 1,000)."""
    if mean <= 1:
        return np.ones(n_nodes, dtype=np.int64)
    base = int(np.floor(mean))
    out = np.full(n_nodes, base, dtype=np.int64)
    extra = int(round((mean - base) * n_nodes))
    if extra:  # drawn last: the orders and stock of a seed stay as they were
        out[rng.choice(n_nodes, extra, replace=False)] += 1
    return out
