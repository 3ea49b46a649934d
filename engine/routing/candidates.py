"""From a batch of orders and the network's state to the assignment problem.

Vectorised in two steps: distances over orders x nodes select the pairs in
reach (delivery radius, or the chosen pickup store); ETA, hours, promise,
stock and capacity are then checked on those pairs only, and the K cheapest
feasible nodes per order are kept. The explanations cost the pairs they
rank with `Batch.total_at`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import chain, repeat
from zoneinfo import ZoneInfo

import numpy as np

from domain.network import Network
from engine.geo import EARTH_KM
from engine.routing.problem import Problem
from engine.routing.types import NetworkState, OrderToRoute, RouterSettings, Weights
from engine.travel import STRAIGHT_LINE, TravelTimes

# Lateness risk rises from 0 to 1 as the slack to the promise falls below this.
RISK_SLACK_MIN = 15.0
DISTINCT_FROM = 256  # lines in a batch from which each distinct (SKU, qty) is checked once (_stocked)
DIST_ROWS = 64  # orders per block of the distances' passes (64 x 600 doubles: 300 KB)
SORT_WHOLE = 4096  # up to this many feasible pairs, a batch's are sorted whole (_first_k)


@dataclass
class NodeArrays:
    """The network's nodes as arrays, built once per network."""

    ids: list[str]
    index: dict[str, int]
    lat: np.ndarray
    lon: np.ndarray
    radius: np.ndarray
    prep: np.ndarray
    cost_per_km: np.ndarray
    operating: np.ndarray
    delivers: np.ndarray
    picks_up: np.ndarray
    hours: list[list[tuple[int, int]]]
    tz: ZoneInfo
    speed_kmh: float
    travel: TravelTimes = STRAIGHT_LINE  # engine/travel.py: where travel minutes come from
    _opens: np.ndarray | None = None  # (windows, 3): node row, opens, closes in minutes

    @classmethod
    def of(cls, network: Network, travel: TravelTimes = STRAIGHT_LINE) -> "NodeArrays":
        ns = network.nodes

        def arr(f):
            return np.array([f(n) for n in ns], dtype=float)

        return cls(
            ids=[n.id for n in ns], index={n.id: i for i, n in enumerate(ns)},
            lat=arr(lambda n: n.lat), lon=arr(lambda n: n.lon), radius=arr(lambda n: n.delivery_radius_km),
            prep=arr(lambda n: n.prep_minutes), cost_per_km=arr(lambda n: n.cost_per_km),
            operating=arr(lambda n: n.operating_cost),
            delivers=np.array(["delivery" in n.modes for n in ns]), picks_up=np.array(["pickup" in n.modes for n in ns]),
            hours=[[w.minutes() for w in n.hours] for n in ns], tz=ZoneInfo(network.timezone), speed_kmh=network.speed_kmh,
            travel=travel,
        )

    def open_until(self, now: float) -> np.ndarray:
        """Minutes from now until each node closes; 0 when closed now. Windows
        that abut (a night shift split at 24:00) count as one."""
        t = datetime.fromtimestamp(now, self.tz)
        minute = t.hour * 60 + t.minute + t.second / 60
        if self._opens is None:
            self._opens = np.array([(i, o, c, _run_end(windows, c)) for i, windows in enumerate(self.hours)
                                    for o, c in windows], dtype=float).reshape(-1, 4)
        row, opens, closes, run_end = self._opens.T
        inside = (opens <= minute) & (minute < closes)
        out = np.zeros(len(self.ids))
        np.maximum.at(out, row[inside].astype(np.int64), run_end[inside] - minute)
        return out


def _run_end(windows: list[tuple[int, int]], closes: int) -> int:
    """Where the open run through a window closing at `closes` ends, in
    minutes after today's midnight (past 1,440 when it runs on past midnight)."""
    next_closes = dict(windows)  # opens -> closes
    end = closes
    while end < closes + 1440 and (after := next_closes.get(end % 1440)) is not None:
        end += after - end % 1440
    return min(end, closes + 1440)


@dataclass
class Batch:
    """The problem and what is needed to explain its answer."""

    problem: Problem
    orders: list[OrderToRoute]
    nodes: NodeArrays
    state: NetworkState
    weights: Weights
    dist: np.ndarray  # (O, N) km
    open_for: np.ndarray  # (N,) minutes until closing
    pickup: np.ndarray  # (O,) bool
    minutes_left: np.ndarray  # (O,) until the promise
    home: np.ndarray  # (O,) the member's home node, -1 for none

    reach: np.ndarray  # (O, N) bool: in the radius (delivery) or the chosen store (pickup)
    excluded: tuple[np.ndarray, np.ndarray]  # (order, node) pairs that declined or let the order expire
    road: np.ndarray | None = None  # (O, N) travel minutes from the travel source; None: dist at the network's speed
    guessed: np.ndarray | None = None  # (O, N) bool: road minutes guessed by straight line; None: none

    @property
    def now(self) -> float:
        return self.state.now

    def timing(self, oi: np.ndarray, ni: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Distance, pickup, minutes to hand-over (eta) and slack to the promise of (order, node) pairs."""
        dist = self.dist[oi, ni]
        pickup = self.pickup[oi]
        travel = dist * (60 / self.nodes.speed_kmh) if self.road is None else self.road[oi, ni]
        eta = self.nodes.prep[ni] + np.where(pickup, 0.0, travel)
        return dist, pickup, eta, self.minutes_left[oi] - eta

    def straight_line(self, oi: np.ndarray, ni: np.ndarray) -> np.ndarray:
        """(pairs,) bool: delivery times guessed by straight line where the source had none."""
        if self.guessed is None:
            return np.zeros(len(oi), bool)
        return self.guessed[oi, ni] & ~self.pickup[oi]

    def terms(self, oi: np.ndarray, ni: np.ndarray) -> dict[str, np.ndarray]:
        """Cost terms of (order, node) pairs; oi and ni broadcast like numpy arrays."""
        w, n = self.weights, self.nodes
        dist, pickup, eta, slack = self.timing(oi, ni)
        delivery = np.where(pickup, 0.0, dist * n.cost_per_km[ni])
        lateness = np.clip(1 - slack / RISK_SLACK_MIN, 0, 1) * w.lateness
        operating = n.operating[ni] * w.operating
        home = np.where(self.home[oi] == ni, -w.home_bonus, 0.0)
        time = eta * w.per_minute
        return {"distance_km": np.where(pickup, 0.0, dist), "eta": eta, "slack": slack, "delivery": delivery,
                "time": time, "lateness": lateness, "operating": operating, "home": home,
                "total": delivery + time + lateness + operating + home}

    def total_at(self, oi: np.ndarray, ni: np.ndarray) -> np.ndarray:
        """The total cost of (order, node) pairs, as `terms` gives it, with
        fewer temporaries (the explanations rank the pairs by it)."""
        w, n = self.weights, self.nodes
        dist, pickup = self.dist[oi, ni], self.pickup[oi]
        eta = dist * (60 / n.speed_kmh) if self.road is None else self.road[oi, ni]
        eta[pickup] = 0.0
        eta += n.prep[ni]
        lateness = self.minutes_left[oi] - eta
        lateness *= -1 / RISK_SLACK_MIN
        lateness += 1
        np.clip(lateness, 0, 1, out=lateness)
        total = dist * n.cost_per_km[ni]
        total[pickup] = 0.0
        total += eta * w.per_minute
        total += lateness * w.lateness
        total += n.operating[ni] * w.operating
        total[self.home[oi] == ni] -= w.home_bonus
        return total


def build(orders: list[OrderToRoute], state: NetworkState, settings: RouterSettings, nodes: NodeArrays) -> Batch:
    w = settings.weights
    n_orders, n_nodes = len(orders), len(nodes.ids)
    line_ptr, line_sku, line_qty, stock = _lines(orders, state)
    lat = np.fromiter((o.lat for o in orders), float, n_orders)
    lon = np.fromiter((o.lon for o in orders), float, n_orders)
    dist = _distances(lat, lon, nodes)
    road = nodes.travel.road(nodes, lat, lon, dist)
    pickup = np.array([o.mode == "pickup" for o in orders], dtype=bool)

    # in reach: delivery within the radius, pickup at the chosen store (if it offers pickup)
    reach = nodes.delivers[None, :] & (dist <= nodes.radius[None, :])
    reach[pickup] = False
    ex_o, ex_n = [], []
    for i, o in enumerate(orders):
        if o.pickup_node is not None and o.mode == "pickup":
            k = nodes.index.get(o.pickup_node)
            if k is not None:
                reach[i, k] = nodes.picks_up[k]
        for x in o.excluded:
            if (k := nodes.index.get(x)) is not None:
                ex_o.append(i)
                ex_n.append(k)
    excluded = (np.array(ex_o, dtype=np.int64), np.array(ex_n, dtype=np.int64))
    b = Batch(problem=None, orders=orders, nodes=nodes, state=state, weights=w, dist=dist,  # type: ignore[arg-type]
              open_for=nodes.open_until(state.now), pickup=pickup,
              minutes_left=np.array([(o.promised_at - state.now) / 60 for o in orders]),
              home=np.array([nodes.index.get(o.home_node or "", -1) for o in orders], dtype=np.int64),
              reach=reach, excluded=excluded, road=None if road is None else road.minutes,
              guessed=None if road is None else road.guessed)

    # the checks on orders x nodes that need no ETA first (stock: bit sets, see _stocked), then the rest per pair
    allowed = _stocked(line_ptr, line_sku, line_qty, stock, n_orders, any_line=settings.allow_split)
    allowed &= reach
    allowed &= (state.capacity_left > 0)[None, :]
    allowed[excluded] = False  # never a node that declined the order or let it expire
    # (np.nonzero on the 2-D mask took 1.6 ms on 1,000 x 600; this 0.3)
    flat = np.flatnonzero(allowed)
    oi = flat // max(n_nodes, 1)
    ni = flat - oi * n_nodes
    t = b.terms(oi, ni)
    ok = (b.open_for[ni] >= t["eta"]) & (t["slack"] >= 0)
    oi, ni, cost = oi[ok], ni[ok], t["total"][ok]

    # the K cheapest per order, cheapest first (oi is sorted: one stable sort on order + cost does it)
    if len(cost):
        span = float(cost.max() - cost.min()) + 1.0
        key = oi * span + (cost - cost.min())
        sort = _first_k(key, oi, n_orders, settings.candidates)
        oi, ni, cost = oi[sort], ni[sort], cost[sort]
    starts = np.searchsorted(oi, np.arange(n_orders))
    keep = np.arange(len(oi)) - starts[oi] < settings.candidates
    b.problem = Problem(
        n_nodes=n_nodes, pair_order=oi[keep], pair_node=ni[keep], pair_cost=cost[keep],
        pair_load=np.ones(int(keep.sum())), line_ptr=line_ptr, line_sku=line_sku, line_qty=line_qty,
        stock=stock, capacity=state.capacity_left,
        penalty=np.array([np.inf if o.must_assign else w.unserved_base + o.value for o in orders]),
        split=settings.allow_split, split_penalty=w.split_penalty,
    )
    return b


def _first_k(key: np.ndarray, oi: np.ndarray, n_orders: int, k: int) -> np.ndarray:
    """Positions that a stable argsort of key puts among the first k of their
    order (oi sorted), in that order, and maybe some after them: only the
    keys up to each order's k-th smallest are sorted (a downtown order has
    ~70 pairs in reach, and sorting them all took 2 ms of a batch). A
    small batch's pairs are sorted whole: 5 us for 200 pairs, against 30
    for the partition's dozen calls."""
    if len(key) <= SORT_WHOLE:
        return np.argsort(key, kind="stable")
    starts = np.searchsorted(oi, np.arange(n_orders + 1))
    width = int(np.diff(starts).max())
    if width <= k:
        return np.argsort(key, kind="stable")
    pad = np.full((n_orders, width), np.inf)
    pad[oi, np.arange(len(oi)) - starts[oi]] = key
    kth = np.partition(pad, k - 1, axis=1)[:, k - 1]
    within = np.flatnonzero(key <= kth[oi])  # ties at the k-th are all kept: the stable sort decides among them
    return within[np.argsort(key[within], kind="stable")]


def _distances(lat: np.ndarray, lon: np.ndarray, nodes: NodeArrays) -> np.ndarray:
    """(orders, nodes) km: engine.geo.local_km, the same operations in the
    same order (so the same values to the last bit), computed in place and
    DIST_ROWS orders at a time: each block's nine passes stay in the cache
    (over the whole 1,000 x 600 at once they ran at memory speed: 4.3
    against 2.2 ms)."""
    k = np.pi / 180 * EARTH_KM
    scale = np.cos(np.radians((np.mean(lat) + np.mean(nodes.lat)) / 2))
    out = np.empty((len(lat), len(nodes.lat)))
    scratch = np.empty((min(DIST_ROWS, len(lat)), len(nodes.lat)))
    for s in range(0, len(lat), DIST_ROWS):
        e = min(s + DIST_ROWS, len(lat))
        dx, dy = out[s:e], scratch[:e - s]
        np.subtract(nodes.lat[None, :], lat[s:e, None], out=dy)
        dy *= k
        np.subtract(nodes.lon[None, :], lon[s:e, None], out=dx)
        dx *= k
        dx *= scale
        dx *= dx
        dy *= dy
        dx += dy
        np.sqrt(dx, out=dx)
    return out


def _lines(orders: list[OrderToRoute], state: NetworkState):
    """The orders' lines as flat arrays (line_ptr, ATP column, qty) and the
    stock they are checked against: the ATP matrix, with a column of zeros
    for each SKU no node has heard of."""
    sku_index = _sku_index(state.sku_ids)
    lines = [o.lines for o in orders]
    line_ptr = np.zeros(len(orders) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, lines), np.int64, len(orders)), out=line_ptr[1:])
    total = int(line_ptr[-1])
    # (map over the chained dicts, not a generator per line: a third less time at 1,000 orders)
    line_qty = np.fromiter(chain.from_iterable(map(dict.values, lines)), np.int64, total)
    cols = np.fromiter(map(sku_index.get, chain.from_iterable(lines), repeat(-1)), np.int64, total)
    stock = state.atp
    if (cols < 0).any():  # SKUs no node has heard of: a column of zeros each
        unknown: dict[str, int] = {}
        skus = list(chain.from_iterable(lines))
        for i in np.flatnonzero(cols < 0).tolist():
            cols[i] = unknown.setdefault(skus[i], len(sku_index) + len(unknown))
        stock = np.hstack([stock, np.zeros((stock.shape[0], len(unknown)), stock.dtype)])
    return line_ptr, cols, line_qty, stock


_sku_cache: tuple[list[str], int, dict[str, int]] | None = None


def _sku_index(sku_ids: list[str]) -> dict[str, int]:
    """SKU -> ATP column; the read model's list only grows, so it is rebuilt
    only when it does. The cache holds the list itself: compared by identity,
    another list can never pass for it (an id can be reused once freed)."""
    global _sku_cache
    if _sku_cache is None or _sku_cache[0] is not sku_ids or _sku_cache[1] != len(sku_ids):
        _sku_cache = (sku_ids, len(sku_ids), {s: j for j, s in enumerate(sku_ids)})
    return _sku_cache[2]


def _stocked(line_ptr, line_sku, line_qty, atp, n_orders: int, any_line: bool) -> np.ndarray:
    """(orders, nodes) bool: does the node hold every line of the order (any
    line, when splitting)? Each distinct (SKU, qty) of the batch is checked
    once over all nodes and kept as a bit set of nodes (64 per word); an
    order's lines are then AND-ed (OR-ed) word by word. On a 1,000-order
    batch it took about a quarter of the time of checking every pair in
    reach line by line in a dense downtown (benchmarks/README.md)."""
    n_nodes = atp.shape[0]
    counts = line_ptr[1:] - line_ptr[:-1]
    nonempty = counts > 0
    if not nonempty.any():
        return np.ones((n_orders, n_nodes), bool)
    if len(line_sku) <= DISTINCT_FROM:  # few lines: checking each costs less than finding the distinct ones
        which = None
        holds = atp[:, line_sku] >= line_qty  # (nodes, lines)
    else:
        key = line_sku.astype(np.int64) * (1 << 32) + line_qty
        uniq, which = np.unique(key, return_inverse=True)
        holds = atp[:, uniq >> 32] >= (uniq & 0xFFFFFFFF)[None, :]  # (nodes, distinct lines)
    # (packed along contiguous rows: along the nodes axis of `holds` it took three times as long; indexing, unlike
    # np.take, lays the columns out so that the transpose is contiguous already: 0.9 against 1.2 ms at 1,000 orders)
    packed = np.packbits(np.ascontiguousarray(holds.T), axis=1)  # (distinct lines, bytes of nodes)
    packed = np.hstack([packed, np.zeros((len(packed), (-packed.shape[1]) % 8), np.uint8)])
    words = packed.view(np.uint64)  # (distinct lines, words of nodes)
    out = np.full((n_orders, words.shape[1]), ~np.uint64(0))  # an order without lines needs no stock
    reduce = np.bitwise_or if any_line else np.bitwise_and
    out[nonempty] = reduce.reduceat(words if which is None else words[which], line_ptr[:-1][nonempty], axis=0)
    return np.unpackbits(out.view(np.uint8), axis=1, count=n_nodes).view(bool)
