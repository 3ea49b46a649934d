"""Seeded demand for a simulated day (or several): online orders,
over-the-counter sales and the counter customers a clerk signs up. Drawn
once per scenario from the base network, so every variant sees the same
customers (common random numbers); each day from streams of its own (the
first day's are those of a one-day scenario); a surge adds orders from a
stream of its own, leaving the base orders untouched.

Drawn in arrays, not order by order: a 100,000-order day takes about a second."""
from __future__ import annotations

import bisect
import zlib
from dataclasses import dataclass, field
from datetime import date as Date, datetime, timedelta
from typing import Callable
from zoneinfo import ZoneInfo

import msgspec
import numpy as np

from domain.commands import Discount, Line, SignUpMember, SubmitOrder
from domain.money import to_minor
from domain.network import Network
from simulations.scenario import Scenario, Surge

# lunch and dinner peaks; quiet nights
DEFAULT_HOURLY = [0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.6, 1.2, 1.6, 1.2, 1.5, 3.2,
                  3.6, 2.0, 1.2, 1.2, 1.6, 2.6, 3.0, 2.0, 1.4, 1.0, 0.6, 0.4]
KM_LAT = 1 / 110.57
NEAREST = 8  # pickup stores a customer considers, nearest first
PROMOTION_PRICE = 9.9  # a promotion SKU the network lacks is added at this price (simulations/day.py)


@dataclass(frozen=True)
class Sale:
    at: float
    node: str
    lines: dict[str, int]
    member: str | None = None


def sign_ups(s: Scenario, network: Network) -> list[SignUpMember]:
    """The scenario's members, signed up by clerks at the stores in turn."""
    stores = [n.id for n in network.nodes if n.kind == "store"]
    if not stores:
        return []
    clerks = s.members.clerks_per_store
    return [SignUpMember(member=f"m{i}", node=stores[i % len(stores)], via="clerk",
                         clerk=f"{stores[i % len(stores)]}-clerk{i // len(stores) % clerks + 1}")
            for i in range(s.members.count)]


def member_of(key: str, share: float, count: int) -> str | None:
    """A member for an order or sale with this key, for `share` of keys (stable across runs and variants)."""
    h = zlib.crc32(key.encode())
    return f"m{h // 10_000 % count}" if count and h % 10_000 < share * 10_000 else None


@dataclass
class Day:
    """The customers of a scenario's run (one day or several)."""

    orders: list[tuple[float, SubmitOrder]]  # by time
    sales: list[Sale]
    signups: list[SignUpMember] = field(default_factory=list)  # before the first day starts
    joined: list[tuple[float, SignUpMember]] = field(default_factory=list)  # at a till during the run, by time
    _joined_at: list[float] = field(default_factory=list, repr=False)

    def members_at(self, t: float) -> int:
        """Members signed up before t (they are named m0, m1, ... in the order they signed up)."""
        if len(self._joined_at) != len(self.joined):
            self._joined_at = [at for at, _ in self.joined]
        return len(self.signups) + bisect.bisect_left(self._joined_at, t)


def on_day(s: Scenario, day: int) -> Scenario:
    """The scenario as seen on its day `day` (0 is the first): the same, on that date."""
    if day == 0:
        return s
    return msgspec.structs.replace(s, date=(Date.fromisoformat(s.date) + timedelta(days=day)).isoformat())


def _stream(s: Scenario, k: int, day: int) -> np.random.Generator:
    """Random stream k of a day: the first day's is a one-day scenario's."""
    return np.random.default_rng([s.seed, k] if day == 0 else [s.seed, k, day])


def clock_time(s: Scenario, network: Network, hhmm: str) -> float:
    """Epoch seconds of a local time on the scenario's date."""
    date = datetime.fromisoformat(s.date)
    h, m = map(int, hhmm.split(":"))
    midnight = datetime(date.year, date.month, date.day, tzinfo=ZoneInfo(network.timezone)).timestamp()
    return midnight + h * 3600 + m * 60


def day_bounds(s: Scenario, network: Network) -> tuple[float, float]:
    return clock_time(s, network, s.start), clock_time(s, network, s.end)


def _times(rng: np.random.Generator, n: int, hourly: list[float], t0: float, t1: float, midnight: float) -> np.ndarray:
    """n arrival times between t0 and t1 following the hourly profile."""
    minutes = np.arange(int((t1 - t0) // 60))
    hour = ((t0 - midnight) // 3600 + minutes // 60).astype(int) % 24
    weight = np.asarray(hourly)[hour]
    if n == 0 or weight.sum() == 0:
        return np.zeros(0)
    picked = rng.choice(minutes, n, p=weight / weight.sum())
    return np.sort(t0 + picked * 60 + rng.uniform(0, 60, n))


def popularity(s: Scenario, network: Network) -> tuple[list[str], np.ndarray]:
    """Regular SKUs, best sellers first, and their share of lines: a Zipf
    curve over the SKUs ranked by how deep the chain stocks them (a chain
    stocks its best sellers deepest; ties in a seeded random order)."""
    promo = {p.sku for p in s.demand.promotions}
    depth: dict[str, int] = {}
    for lines in network.stock.values():
        for sku, q in lines.items():
            depth[sku] = depth.get(sku, 0) + q
    skus = [k.id for k in network.skus if k.id not in promo]
    tie = np.random.default_rng([s.seed, 4]).permutation(len(skus))
    order = sorted(range(len(skus)), key=lambda j: (-depth.get(skus[j], 0), tie[j]))
    ranked = [skus[j] for j in order]
    share = 1 / np.arange(1, len(ranked) + 1) ** s.demand.popularity_zipf
    return ranked, share / share.sum()


def _baskets(rng: np.random.Generator, n: int, size_max: int, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """n baskets of 1..size_max distinct items drawn by popularity: (n, size_max)
    item indices, -1 past a basket's size. Items are drawn with replacement,
    twice as many as needed, and repeats dropped."""
    size = rng.integers(1, size_max + 1, n)
    draws = rng.choice(len(p), (n, 2 * size_max), p=p)
    out = np.full((n, size_max), -1)
    for i in range(n):
        seen = dict.fromkeys(draws[i].tolist())
        picked = list(seen)[: size[i]]
        out[i, : len(picked)] = picked
    return out, size


def _pickup_choices(network: Network, homes: list) -> list[list[str]]:
    """Per home store, the pickup stores nearest to it, nearest first."""
    pickup = [n for n in network.nodes if "pickup" in n.modes]
    if not pickup:
        return [[] for _ in homes]
    lat = np.array([n.lat for n in pickup])
    lon = np.array([n.lon for n in pickup])
    out = []
    for h in homes:
        d = (lat - h.lat) ** 2 + ((lon - h.lon) * np.cos(np.radians(h.lat))) ** 2
        out.append([pickup[j].id for j in np.argsort(d, kind="stable")[:NEAREST]])
    return out


def _orders(rng: np.random.Generator, s: Scenario, network: Network, times: np.ndarray,
            tag: str, members_at: Callable[[float], int]) -> list[tuple[float, SubmitOrder]]:
    d = s.demand
    n = len(times)
    stores = [x for x in network.nodes if x.kind == "store"]
    if n == 0 or not stores:
        return []
    # hot spots, a property of the city: customers gather around some stores much more than others
    weight = np.random.default_rng([s.seed, 5]).lognormal(0, 0.6, len(stores))
    home = rng.choice(len(stores), n, p=weight / weight.sum())
    ranked, share = popularity(s, network)
    items, _ = _baskets(rng, n, min(d.basket_max, len(ranked)), share)
    qty = rng.integers(1, 3, items.shape)
    promo = rng.random((n, len(d.promotions))) < np.array([p.share for p in d.promotions])
    channels = list(d.channels)
    weights = np.array([d.channels[c] for c in channels])
    channel = rng.choice(len(channels), n, p=weights / weights.sum())
    promise = rng.choice(np.asarray(d.promise_minutes), n)
    pickup = rng.random(n) < d.pickup_share
    offset = rng.normal(0, d.hotspot_spread_km, (n, 2))
    nearest = _pickup_choices(network, stores)
    carried = {k: {sku for sku, q in v.items() if q > 0} for k, v in network.stock.items()}
    out = []
    for i in range(n):
        lines = {ranked[j]: int(q) for j, q in zip(items[i], qty[i]) if j >= 0}
        for k, p in enumerate(d.promotions):
            if promo[i, k]:
                lines[p.sku] = 1
        common = dict(channel=channels[channel[i]], external_id=f"{tag}-{i}", promise_minutes=int(promise[i]),
                      lines=[Line(k, q) for k, q in lines.items()],
                      member=member_of(f"{tag}-{i}", s.members.online_share, members_at(float(times[i]))))
        h = stores[home[i]]
        if pickup[i] and nearest[home[i]]:
            # the shop shows each store's assortment: the nearest store listing the whole basket
            choices = nearest[home[i]]
            store = next((x for x in choices if lines.keys() <= carried.get(x, set())), choices[0])
            out.append((float(times[i]), SubmitOrder(mode="pickup", pickup_node=store, **common)))
        else:
            lat = h.lat + offset[i, 0] * KM_LAT
            lon = h.lon + offset[i, 1] * KM_LAT / np.cos(np.radians(h.lat))
            out.append((float(times[i]), SubmitOrder(lat=round(float(lat), 6), lon=round(float(lon), 6), **common)))
    return out


def _sales(s: Scenario, network: Network, hourly: list[float], t0: float, t1: float, midnight: float,
           day: int) -> list[Sale]:
    """Counter sales in every store, of what it carries, best sellers most
    (members are given later: _counter_members)."""
    rng = _stream(s, 2, day)
    ranked, share = popularity(s, network)
    rank = {k: j for j, k in enumerate(ranked)}
    hours = (t1 - t0) / 3600
    sales = []
    for store in (x for x in network.nodes if x.kind == "store"):
        shelf = [k for k, q in network.stock.get(store.id, {}).items() if q > 0 and k in rank]
        count = int(rng.poisson(s.pos.sales_per_store_hour * hours))
        if not shelf or count == 0:
            continue
        p = share[[rank[k] for k in shelf]]
        items, _ = _baskets(rng, count, min(s.pos.basket_max, len(shelf)), p / p.sum())
        for t, row in zip(_times(rng, count, hourly, t0, t1, midnight), items):
            sales.append(Sale(float(t), store.id, {shelf[j]: 1 for j in row if j >= 0}))
    sales.sort(key=lambda x: (x.at, x.node))
    return sales


def _counter_members(s: Scenario, sales: list[Sale], first: int) -> tuple[list[Sale], list[tuple[float, SignUpMember]]]:
    """In time order: a sale is a member's (a hash of the sale picks one of
    the members signed up by then), or, for `counter_signup_share` of the
    others, a clerk signs the customer up at the till (a hash picks the
    clerk) and the sale is the new member's first."""
    m = s.members
    out, joined = [], []
    for sale in sales:
        key = f"{sale.node}/{sale.at:.3f}"
        member = member_of(key, m.counter_share, first + len(joined))
        if member is None and m.counter_signup_share:
            h = zlib.crc32(f"signup/{key}".encode())
            if h % 10_000 < m.counter_signup_share * 10_000:
                member = f"m{first + len(joined)}"
                joined.append((sale.at, SignUpMember(member=member, node=sale.node, via="clerk",
                                                     clerk=f"{sale.node}-clerk{h // 10_000 % m.clerks_per_store + 1}")))
        out.append(Sale(sale.at, sale.node, sale.lines, member))
    return out, joined


def _priced(s: Scenario, network: Network, orders: list[tuple[float, SubmitOrder]],
            stream: int, day: int) -> list[tuple[float, SubmitOrder]]:
    """Coupons and delivery fees, from a random stream of their own (the
    baskets and places drawn before stay as they were)."""
    m = s.money
    if not orders or (not m.coupon_share and not m.delivery_fee):
        return orders
    rng = _stream(s, stream, day)
    coupon = rng.random(len(orders)) < m.coupon_share
    price = {k.id: to_minor(k.price, network.minor_units) for k in network.skus}
    for p in s.demand.promotions:  # not in the base network: each variant adds it
        price.setdefault(p.sku, to_minor(PROMOTION_PRICE, network.minor_units))
    out = []
    for (t, cmd), c in zip(orders, coupon):
        off = int(sum(price[x.sku] * x.qty for x in cmd.lines) * m.coupon_off) if c else 0
        fee = m.delivery_fee if cmd.mode == "delivery" else 0
        if off or fee:
            cmd = msgspec.structs.replace(cmd, discounts=[Discount(off, "COUPON")] if off else [], delivery_fee=fee)
        out.append((t, cmd))
    return out


def base_day(s: Scenario, network: Network) -> Day:
    """Every day of the run: orders and counter sales day by day, then, in
    time order, the sales' members and the counter customers signed up; the
    orders' members among those signed up by the order's time."""
    drawn = [sale for d in range(s.days) for sale in _day_sales(on_day(s, d), network, d)]
    sales, joined = _counter_members(s, drawn, s.members.count)
    day = Day([], sales, sign_ups(s, network), joined)
    day.orders = [o for d in range(s.days) for o in _day_orders(on_day(s, d), network, d, day.members_at)]
    return day


def _day_sales(s: Scenario, network: Network, day: int) -> list[Sale]:
    t0, t1 = day_bounds(s, network)
    return _sales(s, network, s.demand.hourly or DEFAULT_HOURLY, t0, t1, clock_time(s, network, "00:00"), day)


def _day_orders(s: Scenario, network: Network, day: int,
                members_at: Callable[[float], int]) -> list[tuple[float, SubmitOrder]]:
    rng = _stream(s, 1, day)
    t0, t1 = day_bounds(s, network)
    midnight = clock_time(s, network, "00:00")
    hourly = s.demand.hourly or DEFAULT_HOURLY
    orders = _orders(rng, s, network, _times(rng, s.demand.orders, hourly, t0, t1, midnight),
                     "o" if day == 0 else f"o{day}", members_at)
    return _priced(s, network, orders, 9, day)


def surge_size(s: Scenario, network: Network, surge: Surge, day: int = 0) -> int:
    """(factor - 1) x the base orders in the surge's window (on the scenario's day `day`)."""
    s = on_day(s, day)
    t0, t1 = clock_time(s, network, surge.start), clock_time(s, network, surge.end)
    day0, day1 = day_bounds(s, network)
    whole = _times(_stream(s, 1, day), s.demand.orders, s.demand.hourly or DEFAULT_HOURLY, day0, day1,
                   clock_time(s, network, "00:00"))
    return int(round((surge.factor - 1) * int(((whole >= t0) & (whole < t1)).sum())))


def surge_orders(s: Scenario, network: Network, surge: Surge, index: int, day: int = 0,
                 members_at: Callable[[float], int] | None = None) -> list[tuple[float, SubmitOrder]]:
    """Extra orders for a surge (every day of the run), from a random stream of its own."""
    size = surge_size(s, network, surge, day)
    s = on_day(s, day)
    rng = _stream(s, 100 + index, day)
    t0, t1 = clock_time(s, network, surge.start), clock_time(s, network, surge.end)
    times = _times(rng, size, s.demand.hourly or DEFAULT_HOURLY, t0, t1, clock_time(s, network, "00:00"))
    tag = f"surge{index}" if day == 0 else f"surge{index}d{day}"
    orders = _orders(rng, s, network, times, tag, members_at or (lambda t: s.members.count))
    return _priced(s, network, orders, 200 + index, day)
