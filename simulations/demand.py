"""Seeded demand for a simulated day: online orders and over-the-counter
sales. Drawn once per scenario from the base network, so every variant sees
the same customers (common random numbers); a surge adds orders from a
stream of its own, leaving the base orders untouched."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from domain.commands import Line, SubmitOrder
from domain.network import Network
from simulations.scenario import Scenario, Surge

# lunch and dinner peaks; quiet nights
DEFAULT_HOURLY = [0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.6, 1.2, 1.6, 1.2, 1.5, 3.2,
                  3.6, 2.0, 1.2, 1.2, 1.6, 2.6, 3.0, 2.0, 1.4, 1.0, 0.6, 0.4]
KM_LAT = 1 / 110.57


@dataclass(frozen=True)
class Sale:
    at: float
    node: str
    lines: dict[str, int]


@dataclass
class Day:
    orders: list[tuple[float, SubmitOrder]]  # by time
    sales: list[Sale]


def day_bounds(s: Scenario, network: Network) -> tuple[float, float]:
    tz = ZoneInfo(network.timezone)
    date = datetime.fromisoformat(s.date)

    def at(hhmm: str) -> float:
        h, m = map(int, hhmm.split(":"))
        return datetime(date.year, date.month, date.day, tzinfo=tz).timestamp() + h * 3600 + m * 60

    return at(s.start), at(s.end)


def _times(rng: np.random.Generator, n: int, hourly: list[float], t0: float, t1: float, midnight: float) -> np.ndarray:
    """n arrival times between t0 and t1 following the hourly profile."""
    minutes = np.arange(int((t1 - t0) // 60))
    hour = ((t0 - midnight) // 3600 + minutes // 60).astype(int) % 24
    weight = np.asarray(hourly)[hour]
    if n == 0 or weight.sum() == 0:
        return np.zeros(0)
    picked = rng.choice(minutes, n, p=weight / weight.sum())
    return np.sort(t0 + picked * 60 + rng.uniform(0, 60, n))


def _orders(rng, s: Scenario, network: Network, times: np.ndarray, tag: str) -> list[tuple[float, SubmitOrder]]:
    d = s.demand
    stores = [n for n in network.nodes if n.kind == "store"]
    pickup_stores = [n for n in stores if "pickup" in n.modes]
    weight = rng.lognormal(0, 0.6, len(stores))
    skus = [k.id for k in network.skus]
    promo = {p.sku for p in d.promotions}
    regular = [k for k in skus if k not in promo]
    rank = rng.permutation(len(regular))
    popularity = 1 / (rank + 1) ** d.popularity_zipf
    popularity /= popularity.sum()
    channels = list(d.channels)
    shares = np.array([d.channels[c] for c in channels])
    km_lon = 1 / (111.32 * np.cos(np.radians(stores[0].lat))) if stores else 0
    out = []
    for i, t in enumerate(times):
        home = stores[rng.choice(len(stores), p=weight / weight.sum())]
        size = int(rng.integers(1, d.basket_max + 1))
        chosen = rng.choice(len(regular), min(size, len(regular)), replace=False, p=popularity)
        lines = {regular[j]: int(rng.integers(1, 3)) for j in sorted(chosen)}
        for p in d.promotions:
            if rng.random() < p.share:
                lines[p.sku] = 1
        channel = channels[int(rng.choice(len(channels), p=shares / shares.sum()))]
        minutes = int(rng.choice(d.promise_minutes))
        common = dict(channel=channel, external_id=f"{tag}-{i}", lines=[Line(k, q) for k, q in lines.items()],
                      promise_minutes=minutes)
        if pickup_stores and rng.random() < d.pickup_share:
            near = min(pickup_stores, key=lambda n: (n.lat - home.lat) ** 2 + (n.lon - home.lon) ** 2)
            cmd = SubmitOrder(mode="pickup", pickup_node=near.id, **common)
        else:
            dy, dx = rng.normal(0, d.hotspot_spread_km, 2)
            cmd = SubmitOrder(lat=round(float(home.lat + dy * KM_LAT), 6), lon=round(float(home.lon + dx * km_lon), 6), **common)
        out.append((float(t), cmd))
    return out


def base_day(s: Scenario, network: Network) -> Day:
    rng = np.random.default_rng([s.seed, 1])
    t0, t1 = day_bounds(s, network)
    midnight = day_bounds(Scenario(name="", date=s.date, start="00:00"), network)[0]
    hourly = s.demand.hourly or DEFAULT_HOURLY
    orders = _orders(rng, s, network, _times(rng, s.demand.orders, hourly, t0, t1, midnight), "o")
    sales = []
    pos = np.random.default_rng([s.seed, 2])
    skus = [k.id for k in network.skus][:60]  # counter sales are the popular items
    hours = (t1 - t0) / 3600
    for store in (n for n in network.nodes if n.kind == "store"):
        n = int(pos.poisson(s.pos.sales_per_store_hour * hours))
        for t in _times(pos, n, hourly, t0, t1, midnight):
            k = int(pos.integers(1, s.pos.basket_max + 1))
            lines = {skus[j]: 1 for j in pos.choice(len(skus), k, replace=False)}
            sales.append(Sale(float(t), store.id, lines))
    sales.sort(key=lambda x: (x.at, x.node))
    return Day(orders, sales)


def surge_orders(s: Scenario, network: Network, surge: Surge, index: int) -> list[tuple[float, SubmitOrder]]:
    """Extra orders for a surge: (factor - 1) x the base orders in its window."""
    rng = np.random.default_rng([s.seed, 100 + index])
    midnight = day_bounds(Scenario(name="", date=s.date, start="00:00"), network)[0]
    t0, t1 = (day_bounds(Scenario(name="", date=s.date, start=surge.start, end=surge.end), network))
    hourly = s.demand.hourly or DEFAULT_HOURLY
    day0, day1 = day_bounds(s, network)
    whole = _times(np.random.default_rng([s.seed, 1]), s.demand.orders, hourly, day0, day1, midnight)
    extra = int(round((surge.factor - 1) * int(((whole >= t0) & (whole < t1)).sum())))
    return _orders(rng, s, network, _times(rng, extra, hourly, t0, t1, midnight), f"surge{index}")
