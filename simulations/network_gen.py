"""Seeded generator of city networks: stores clustered in districts, central
kitchens at the edge of the busiest areas, a bakery-cafe / convenience
catalogue with prices, and starting stock.

    python -m simulations.network_gen --stores 60 --kitchens 2 --skus 200 --seed 7 \
        --out engine/data/sample-city.json
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from domain.network import Network, Node, Sku, Window
from engine.network_file import dump_network

CENTER = (31.23, 121.47)  # Shanghai, People's Square
KM_LAT = 1 / 110.57
KM_LON = 1 / (111.32 * np.cos(np.radians(CENTER[0])))
CATEGORIES = {  # name: (price range RMB, share of the catalogue, kitchen-made)
    "bread": ((6, 18), 0.15, True), "cake": ((18, 88), 0.10, True), "sandwich": ((12, 28), 0.10, True),
    "coffee": ((12, 32), 0.10, True), "tea": ((8, 22), 0.08, False), "fruit": ((5, 40), 0.12, False),
    "snack": ((3, 15), 0.15, False), "drink": ((3, 12), 0.12, False), "dairy": ((5, 20), 0.08, False),
}
DISTRICTS = ["Huangpu", "Jingan", "Xuhui", "Changning", "Putuo", "Hongkou", "Yangpu", "Pudong"]


@dataclass(frozen=True)
class CitySpec:
    stores: int = 60
    kitchens: int = 2
    skus: int = 200
    radius_km: float = 12.0  # stores lie within this distance of the centre
    districts: int = 6
    seed: int = 7
    name: str = "sample-city"


def generate(spec: CitySpec = CitySpec()) -> Network:
    rng = np.random.default_rng(spec.seed)
    centres = rng.uniform(-spec.radius_km * 0.7, spec.radius_km * 0.7, (spec.districts, 2))
    district = rng.integers(0, spec.districts, spec.stores)
    xy = np.clip(centres[district] + rng.normal(0, spec.radius_km / 5, (spec.stores, 2)), -spec.radius_km, spec.radius_km)
    nodes = [_store(i, x, y, DISTRICTS[d % len(DISTRICTS)], rng) for i, ((x, y), d) in enumerate(zip(xy, district))]
    busiest = np.argsort(np.bincount(district, minlength=spec.districts))[::-1]
    for k in range(spec.kitchens):
        cx, cy = centres[busiest[k % spec.districts]] * 1.15  # the edge of a busy district: cheaper rent
        nodes.append(_kitchen(k, cx, cy, DISTRICTS[busiest[k % spec.districts] % len(DISTRICTS)]))
    skus, made = _catalogue(spec.skus, rng)
    stock = {}
    for n in nodes:
        if n.kind == "kitchen":  # deep stock of what kitchens make
            stock[n.id] = {s.id: int(rng.integers(80, 200)) for s, m in zip(skus, made) if m}
        else:  # most of the assortment at shelf levels
            stock[n.id] = {s.id: int(rng.integers(4, 25)) for s in skus if rng.random() < 0.85}
    return Network(name=spec.name, nodes=nodes, skus=skus, stock=stock)


def _point(x: float, y: float) -> tuple[float, float]:
    return round(float(CENTER[0] + y * KM_LAT), 6), round(float(CENTER[1] + x * KM_LON), 6)


def _store(i: int, x: float, y: float, region: str, rng: np.random.Generator) -> Node:
    lat, lon = _point(x, y)
    all_night = rng.random() < 0.1
    return Node(
        id=f"S{i + 1:03d}", name=f"{region} store {i + 1}", kind="store", lat=lat, lon=lon,
        modes=["delivery", "pickup"] if rng.random() < 0.9 else ["pickup"],
        delivery_radius_km=float(round(rng.uniform(3, 5), 1)),
        hours=[Window("00:00", "24:00")] if all_night else [Window("07:00", "23:00")],
        capacity_per_slot=int(rng.integers(6, 14)), prep_minutes=float(rng.integers(6, 13)),
        cost_per_km=2.5, operating_cost=float(round(rng.uniform(2.5, 4.5), 2)), region=region,
        dealer=f"dealer-{int(rng.integers(1, 8))}" if rng.random() < 0.4 else None,
    )


def _kitchen(k: int, x: float, y: float, region: str) -> Node:
    lat, lon = _point(x, y)
    return Node(
        id=f"K{k + 1:02d}", name=f"{region} central kitchen {k + 1}", kind="kitchen", lat=lat, lon=lon,
        modes=["delivery"], delivery_radius_km=9.0, hours=[Window("06:00", "22:00")], capacity_per_slot=60,
        prep_minutes=8.0, cost_per_km=2.0, operating_cost=1.5, region=region,
    )


def _catalogue(n: int, rng: np.random.Generator) -> tuple[list[Sku], list[bool]]:
    names = list(CATEGORIES)
    shares = np.array([CATEGORIES[c][1] for c in names])
    cats = rng.choice(len(names), n, p=shares / shares.sum())
    skus, made = [], []
    for j, c in enumerate(cats):
        (lo, hi), _, kitchen_made = CATEGORIES[names[c]]
        skus.append(Sku(id=f"{names[c][:3].upper()}-{j + 1:03d}", name=f"{names[c]} {j + 1}",
                        price=float(round(rng.uniform(lo, hi), 1)), safety_stock=int(rng.random() < 0.2)))
        made.append(kitchen_made)
    return skus, made


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stores", type=int, default=60)
    p.add_argument("--kitchens", type=int, default=2)
    p.add_argument("--skus", type=int, default=200)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--name", default="sample-city")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    dump_network(generate(CitySpec(a.stores, a.kitchens, a.skus, seed=a.seed, name=a.name)), a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
