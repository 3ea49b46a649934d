"""Seeded generator of city networks for a bakery-cafe / convenience chain.

The city is Shanghai-like: coordinates around People's Square, each district
named after the real district nearest its centre.

- Stores (S001...) are clustered around `districts` district centres within
  `radius_km` of the city centre. Most open 07:00-23:00, about 1 in 10 round
  the clock; about 9 in 10 deliver (radius 3-5 km) and all offer pickup;
  6-13 orders per 30-minute slot, 6-12 minutes to prepare, 2.5 RMB per km,
  2.5-4.5 RMB operating cost per order; about 4 in 10 belong to one of seven
  dealers (franchisees).
- Central kitchens (K01...) stand at the outer edge of the busiest districts
  (cheaper rent): delivery only, 9 km radius, 60 orders per slot, 06:00-22:00,
  2 RMB per km, 1.5 RMB per order.
- The catalogue has `skus` SKUs in nine categories (bread, cake, sandwich,
  coffee, tea, fruit, snack, drink, dairy) priced in RMB by category; about
  1 in 5 keeps a safety stock of one unit. The first four categories are
  made by the kitchens.
- Starting stock: a store carries about 85% of the catalogue at shelf level
  (4-24 units); a kitchen carries 80-199 units of everything it makes.

The same spec and seed give the same network. SKU and node ids depend only
on their position, so scenarios can name them (close S017, add K03).

    python -m simulations.network_gen --stores 60 --kitchens 2 --skus 200 --seed 7 \
        --out engine/data/sample-city.json
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from domain.network import Network, Node, Sku, Window
from engine.store.network_file import dump_network

CENTER = (31.23, 121.47)  # Shanghai, People's Square
KM_LAT = 1 / 110.57
KM_LON = 1 / (111.32 * np.cos(np.radians(CENTER[0])))
CATEGORIES = {  # name: (price range RMB, share of the catalogue, kitchen-made)
    "bread": ((6, 18), 0.15, True), "cake": ((18, 88), 0.10, True), "sandwich": ((12, 28), 0.10, True),
    "coffee": ((12, 32), 0.10, True), "tea": ((8, 22), 0.08, False), "fruit": ((5, 40), 0.12, False),
    "snack": ((3, 15), 0.15, False), "drink": ((3, 12), 0.12, False), "dairy": ((5, 20), 0.08, False),
}
# Product names by category; past the end of a list the names come round again
# with a variant (see _sku_name), so any catalogue size works.
PRODUCTS = {
    "bread": ["Croissant", "Pain au chocolat", "Butter roll", "Pork floss bun", "Red bean bun", "Custard bun",
              "Cheese bun", "Whole wheat toast", "Milk toast", "Taro bun", "Coconut bun", "Sausage roll",
              "Egg tart", "Baguette", "Bagel", "Brioche", "Cinnamon roll", "Matcha swirl bun", "Scallion roll",
              "Walnut loaf", "Rye bread", "Danish pastry", "Pineapple bun", "Mochi bread", "Ham & cheese croissant"],
    "cake": ["Cheesecake slice", "Tiramisu cup", "Black forest cake", "Mango mousse", "Matcha roll cake",
             "Chiffon cake", "Mille crepe", "Strawberry shortcake", "Durian crepe", "Chocolate brownie",
             "Red velvet slice", "Opera cake", "Swiss roll", "Egg yolk pastry", "Taro mochi cake", "Lemon tart",
             "Fruit tart", "Madeleines (6)", "Cupcake", "Birthday cake 6-inch"],
    "sandwich": ["Tuna sandwich", "Egg salad sandwich", "Ham & cheese sandwich", "Chicken katsu sandwich",
                 "Club sandwich", "BLT", "Teriyaki chicken wrap", "Beef bulgogi wrap", "Onigiri salmon",
                 "Onigiri tuna mayo", "Pork floss rice ball", "Chicken bento", "Beef bento", "Curry rice bowl",
                 "Cold sesame noodles", "Pork dumplings (8)", "Hot dog", "Panini", "Caesar salad", "Chicken salad"],
    "coffee": ["Americano", "Latte", "Cappuccino", "Flat white", "Mocha", "Caramel macchiato", "Vanilla latte",
               "Oat latte", "Coconut latte", "Cold brew", "Iced americano", "Espresso", "Hazelnut latte",
               "Cheese foam latte", "Osmanthus latte", "Drip coffee bags (10)", "Coffee beans 250 g"],
    "tea": ["Jasmine milk tea", "Bubble milk tea", "Oolong tea", "Lemon tea", "Peach oolong", "Matcha latte",
            "Grapefruit jasmine tea", "Brown sugar boba", "Taro milk tea", "Green tea bottle", "Barley tea",
            "Chrysanthemum tea", "Pu'er tea bags", "Longjing tea bags"],
    "fruit": ["Bananas", "Fuji apples", "Mandarins", "Strawberry box", "Blueberry box", "Kyoho grapes",
              "Watermelon cup", "Mango", "Pineapple cup", "Kiwis", "Dragon fruit", "Cherry box", "Lychees",
              "Hami melon cup", "Crown pear", "Mixed fruit cup", "Durian box", "Cherry tomato box", "Avocado",
              "Pomelo"],
    "snack": ["Potato chips", "Seaweed snack", "Spicy gluten strips", "Dried mango", "Mixed nuts",
              "Sunflower seeds", "Chocolate bar", "Digestive biscuits", "Egg rolls", "Rice crackers", "Beef jerky",
              "Spicy chicken feet", "Tea egg", "Oden fish balls", "Gummy candy", "Pocky", "Wafers",
              "Peanut brittle", "Pork floss crisps", "Roast sweet potato"],
    "drink": ["Mineral water", "Sparkling water", "Cola", "Orange juice", "Coconut water", "Sports drink",
              "Soy milk", "Lemon soda", "Herbal tea can", "Iced tea", "Energy drink", "Sour plum juice",
              "Vitamin water", "Apple juice", "Ginger ale"],
    "dairy": ["Fresh milk 950 ml", "Yoghurt cup", "Greek yoghurt", "Drinking yoghurt", "Chocolate milk",
              "Cheese sticks", "Butter 200 g", "Caramel pudding", "Cream cheese", "Ice cream cup", "Banana milk",
              "Skim milk", "Strawberry yoghurt", "Milk tea pudding"],
}
VARIANTS = ["large", "family pack", "seasonal", "light", "premium", "2-pack"]
# Approximate centres of Shanghai districts (lat, lon); a generated district
# takes the name of the nearest one not yet taken.
DISTRICTS = {
    "Huangpu": (31.231, 121.484), "Jing'an": (31.229, 121.448), "Xuhui": (31.188, 121.437),
    "Changning": (31.220, 121.424), "Putuo": (31.249, 121.397), "Hongkou": (31.265, 121.505),
    "Yangpu": (31.259, 121.526), "Lujiazui": (31.235, 121.505), "Zhangjiang": (31.203, 121.590),
    "Jinqiao": (31.268, 121.600), "Sanlin": (31.150, 121.510), "Minhang": (31.113, 121.382),
    "Baoshan": (31.405, 121.489), "Jiading": (31.376, 121.265), "Qingpu": (31.151, 121.124),
    "Songjiang": (31.032, 121.228), "Fengxian": (30.918, 121.474),
}


@dataclass(frozen=True)
class CitySpec:
    """What to generate; the defaults make the shipped sample city."""

    stores: int = 60
    kitchens: int = 2
    skus: int = 200
    radius_km: float = 12.0  # stores lie within this distance (per axis) of the centre
    districts: int = 6  # clusters the stores gather around
    seed: int = 7
    name: str = "sample-city"


def generate(spec: CitySpec = CitySpec()) -> Network:
    rng = np.random.default_rng(spec.seed)
    centres = rng.uniform(-spec.radius_km * 0.7, spec.radius_km * 0.7, (spec.districts, 2))
    names = _district_names(centres)
    district = rng.integers(0, spec.districts, spec.stores)
    xy = np.clip(centres[district] + rng.normal(0, spec.radius_km / 5, (spec.stores, 2)), -spec.radius_km, spec.radius_km)
    nodes = [_store(i, x, y, names[d], rng) for i, ((x, y), d) in enumerate(zip(xy, district))]
    busiest = np.argsort(np.bincount(district, minlength=spec.districts))[::-1]
    for k in range(spec.kitchens):
        d = busiest[k % spec.districts]
        cx, cy = centres[d] * 1.15  # the outer edge of a busy district: cheaper rent
        nodes.append(_kitchen(k, cx, cy, names[d]))
    skus, made = _catalogue(spec.skus, rng)
    stock = {}
    for n in nodes:
        if n.kind == "kitchen":  # deep stock of what kitchens make
            stock[n.id] = {s.id: int(rng.integers(80, 200)) for s, m in zip(skus, made) if m}
        else:  # most of the assortment at shelf levels
            stock[n.id] = {s.id: int(rng.integers(4, 25)) for s in skus if rng.random() < 0.85}
    return Network(name=spec.name, nodes=nodes, skus=skus, stock=stock)


def _district_names(centres: np.ndarray) -> list[str]:
    """Nearest real district first, each name used once; numbered past the list."""
    real = {name: ((lon - CENTER[1]) / KM_LON, (lat - CENTER[0]) / KM_LAT) for name, (lat, lon) in DISTRICTS.items()}
    pairs = sorted((float(np.hypot(cx - rx, cy - ry)), d, name)
                   for d, (cx, cy) in enumerate(centres) for name, (rx, ry) in real.items())
    names: dict[int, str] = {}
    for _, d, name in pairs:
        if d not in names and name not in names.values():
            names[d] = name
    return [names.get(d, f"District {d + 1}") for d in range(len(centres))]


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
    skus, made, seen = [], [], {c: 0 for c in names}
    for j, c in enumerate(cats):
        category = names[c]
        (lo, hi), _, kitchen_made = CATEGORIES[category]
        skus.append(Sku(id=f"{category[:3].upper()}-{j + 1:03d}", name=_sku_name(category, seen[category]),
                        price=float(round(rng.uniform(lo, hi), 1)), safety_stock=int(rng.random() < 0.2),
                        category=category))
        seen[category] += 1
        made.append(kitchen_made)
    return skus, made


def _sku_name(category: str, k: int) -> str:
    """The k-th product of a category: the list, then the list with variants."""
    products = PRODUCTS[category]
    base, lap = products[k % len(products)], k // len(products)
    if lap == 0:
        return base
    if lap <= len(VARIANTS):
        return f"{base} ({VARIANTS[lap - 1]})"
    return f"{base} #{lap + 1}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stores", type=int, default=60)
    p.add_argument("--kitchens", type=int, default=2)
    p.add_argument("--skus", type=int, default=200)
    p.add_argument("--radius-km", type=float, default=12.0, help="half the width of the city")
    p.add_argument("--districts", type=int, default=6, help="clusters the stores gather around")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--name", default="sample-city")
    p.add_argument("--out", required=True, help="a .json file")
    a = p.parse_args(argv)
    dump_network(generate(CitySpec(a.stores, a.kitchens, a.skus, a.radius_km, a.districts, a.seed, a.name)), a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
