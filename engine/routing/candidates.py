"""From a batch of orders and the network's state to the assignment problem:
vectorised over orders x nodes (distance, ETA, radius, hours, promise,
stock, capacity), keeping the K cheapest feasible nodes per order.

The masks are kept so every decision can say why a cheaper node lost.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from domain.network import Network
from engine.geo import local_km
from engine.routing.problem import Problem
from engine.routing.types import NetworkState, OrderToRoute, RouterSettings

# Lateness risk rises from 0 to 1 as the slack to the promise falls below this.
RISK_SLACK_MIN = 15.0


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

    @classmethod
    def of(cls, network: Network) -> "NodeArrays":
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
        )

    def open_until(self, now: float) -> np.ndarray:
        """Minutes from now until each node closes; <= 0 when closed now."""
        t = datetime.fromtimestamp(now, self.tz)
        minute = t.hour * 60 + t.minute + t.second / 60
        out = np.zeros(len(self.ids))
        for i, windows in enumerate(self.hours):
            for opens, closes in windows:
                if opens <= minute < closes:
                    out[i] = max(out[i], closes - minute)
        return out


@dataclass
class Batch:
    """The problem plus what explains it."""

    problem: Problem
    orders: list[OrderToRoute]
    nodes: NodeArrays
    sku_cols: list[np.ndarray]  # per order, the ATP columns of its lines
    qtys: list[np.ndarray]
    cost: np.ndarray  # (O, N) full cost, as if every node could serve
    dist: np.ndarray  # (O, N) km
    eta: np.ndarray  # (O, N) minutes
    reachable: np.ndarray  # (O, N) mode, radius, pickup node, not excluded
    is_open: np.ndarray  # (O, N) open now and until the hand-over
    on_time: np.ndarray  # (O, N)
    stocked: np.ndarray  # (O, N) holds every line
    has_room: np.ndarray  # (N,)
    atp: np.ndarray
    considered: np.ndarray  # (O, N) nodes worth explaining: offer the mode (the pickup store for pickup)
    problem_now: float

    def short_sku(self, i: int, n: int) -> str | None:
        """The first of order i's SKUs node n cannot promise, if any."""
        lacking = self.atp[n, self.sku_cols[i]] < self.qtys[i]
        return list(self.orders[i].lines)[int(np.argmax(lacking))] if lacking.any() else None


def build(orders: list[OrderToRoute], state: NetworkState, settings: RouterSettings, nodes: NodeArrays) -> Batch:
    w = settings.weights
    n_orders, n_nodes = len(orders), len(nodes.ids)
    sku_index = {s: j for j, s in enumerate(state.sku_ids)}
    lat = np.array([o.lat for o in orders], dtype=float)
    lon = np.array([o.lon for o in orders], dtype=float)
    pickup = np.array([o.mode == "pickup" for o in orders])
    dist = local_km(lat[:, None], lon[:, None], nodes.lat[None, :], nodes.lon[None, :]) if n_orders else np.zeros((0, n_nodes))
    travel = np.where(pickup[:, None], 0.0, dist / nodes.speed_kmh * 60)
    eta = nodes.prep[None, :] + travel

    reachable = np.where(pickup[:, None], nodes.picks_up[None, :], nodes.delivers[None, :] & (dist <= nodes.radius[None, :]))
    for i, o in enumerate(orders):
        if o.mode == "pickup":
            row = np.zeros(n_nodes, bool)
            k = nodes.index.get(o.pickup_node or "")
            if k is not None:
                row[k] = nodes.picks_up[k]
            reachable[i] = row
        for x in o.excluded:
            k = nodes.index.get(x)
            if k is not None:
                reachable[i, k] = False
    is_open = nodes.open_until(state.now)[None, :] >= eta
    slack = np.array([(o.promised_at - state.now) / 60 for o in orders])[:, None] - eta
    on_time = slack >= 0

    # stock: a node holds the order when every line is within its ATP
    sku_cols, qtys = [], []
    for o in orders:
        sku_cols.append(np.array([sku_index[s] for s in o.lines], dtype=np.int64))
        qtys.append(np.array(list(o.lines.values()), dtype=np.int64))
    line_ptr = np.concatenate([[0], np.cumsum([len(c) for c in sku_cols])]).astype(np.int64)
    line_sku = np.concatenate(sku_cols) if sku_cols else np.zeros(0, np.int64)
    line_qty = np.concatenate(qtys) if qtys else np.zeros(0, np.int64)
    atp = state.atp
    if len(line_sku):
        enough = atp[:, line_sku] >= line_qty[None, :]  # (N, L)
        holds_any = np.logical_or.reduceat(enough, line_ptr[:-1], axis=1).T if n_orders else np.zeros((0, n_nodes), bool)
        stocked = np.logical_and.reduceat(enough, line_ptr[:-1], axis=1).T
        empty = line_ptr[1:] == line_ptr[:-1]
        stocked[empty] = True  # reduceat repeats a column for empty segments
        holds_any[empty] = True
    else:
        stocked = holds_any = np.ones((n_orders, n_nodes), bool)
    has_room = state.capacity_left > 0

    risk = np.clip(1 - slack / RISK_SLACK_MIN, 0, 1)
    home = np.zeros((n_orders, n_nodes))
    for i, o in enumerate(orders):
        k = nodes.index.get(o.home_node or "")
        if k is not None:
            home[i, k] = -w.home_bonus
    delivery = np.where(pickup[:, None], 0.0, dist * nodes.cost_per_km[None, :])
    cost = delivery + eta * w.per_minute + risk * w.lateness + nodes.operating[None, :] * w.operating + home

    usable = reachable & is_open & on_time & has_room[None, :] & (holds_any if settings.allow_split else stocked)
    problem = _keep_cheapest(usable, cost, settings.candidates, line_ptr, line_sku, line_qty, atp, state, orders, w,
                             settings.allow_split)
    considered = np.where(pickup[:, None], reachable, nodes.delivers[None, :])
    for i, o in enumerate(orders):  # a declined node is worth saying so
        for x in o.excluded:
            k = nodes.index.get(x)
            if k is not None:
                considered[i, k] = True
    return Batch(problem, orders, nodes, sku_cols, qtys, cost, dist, eta, reachable, is_open, on_time, stocked,
                 has_room, atp, considered, state.now)


def _keep_cheapest(usable, cost, k, line_ptr, line_sku, line_qty, atp, state, orders, w, split) -> Problem:
    n_orders, n_nodes = usable.shape
    masked = np.where(usable, cost, np.inf)
    k = min(k, n_nodes)
    if n_orders and k < n_nodes:
        top = np.argpartition(masked, k - 1, axis=1)[:, :k]
    else:
        top = np.tile(np.arange(n_nodes), (n_orders, 1))
    top_cost = np.take_along_axis(masked, top, axis=1)
    order = np.argsort(top_cost, axis=1, kind="stable")
    top, top_cost = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_cost, order, axis=1)
    keep = np.isfinite(top_cost)
    pair_order = np.repeat(np.arange(n_orders), k)[keep.ravel()]
    return Problem(
        n_nodes=n_nodes, pair_order=pair_order, pair_node=top[keep], pair_cost=top_cost[keep],
        pair_load=np.ones(int(keep.sum())), line_ptr=line_ptr, line_sku=line_sku, line_qty=line_qty,
        stock=atp.astype(float), capacity=state.capacity_left.astype(float),
        penalty=np.array([np.inf if o.must_assign else w.unserved_base + o.value for o in orders]),
        split=split, split_penalty=w.split_penalty,
    )
