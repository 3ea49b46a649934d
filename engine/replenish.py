"""Replenishment suggestions: sell first, then buy (以销定购).

For each node and SKU, an order-up-to level for the next delivery: the
demand expected between that delivery and the one after it (the same hours
on recent days: units sold online and over the counter, online orders lost
for stock, counter customers who went without, quotes that found it short),
online and counter demand each with a margin for its spread at its own
service level, plus the SKU's safety stock. What a node lacks of its level comes first from the surplus of
kitchens and stores near it, then is bought. docs/replenishment.md explains
the policy and its limits.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta
from statistics import NormalDist
from zoneinfo import ZoneInfo

import msgspec
import numpy as np

from domain.commands import ReplenishPolicy
from domain.network import Network
from engine.geo import haversine_km
from engine.readmodels.atp import AtpView
from engine.readmodels.demand import LOST_ONLINE, SHORT_COUNTER, SHORT_QUOTE, SOLD_COUNTER, SOLD_ONLINE, DemandView
from engine.replies import ts as _ts

DAY_S = 86_400.0


class Transfer(msgspec.Struct, frozen=True):
    from_node: str
    to_node: str
    sku: str
    qty: int
    distance_km: float


class Purchase(msgspec.Struct, frozen=True):
    node: str
    sku: str
    qty: int


class Reserve(msgspec.Struct, frozen=True):
    """Units of a SKU at a node kept for its counter: online orders cannot take them (its safety stock)."""
    node: str
    sku: str
    qty: int


class StockPlan(msgspec.Struct, frozen=True):
    """One node and SKU the suggestion moves or buys."""

    node: str
    sku: str
    free: int  # on hand less reserved, now
    expected: float  # mean demand from the next delivery to the one after it
    target: int  # the order-up-to level: expected + margin at the service level + safety stock
    transfer_in: int
    transfer_out: int
    buy: int


class Suggestions(msgspec.Struct, frozen=True):
    delivery_at: datetime  # the delivery the suggestion is for
    covers_until: datetime  # the delivery after it
    history_days: int  # days of demand the levels rest on (0: none yet, nothing suggested)
    units_to_buy: int
    units_to_move: int
    transfers: list[Transfer]
    purchases: list[Purchase]
    lines: list[StockPlan]
    reserves: list[Reserve] = []  # with counter_reserve: the safety stock to set where it changes


def deliveries_around(times: list[str], timezone: str, now: float) -> tuple[float, float]:
    """The next delivery at or after `now` and the one after it, from local daily times."""
    tz = ZoneInfo(timezone)
    today = datetime.fromtimestamp(now, tz).date()
    out = []
    for d in range(3):
        day = today + timedelta(days=d)
        for hhmm in times:
            h, m = map(int, hhmm.split(":"))
            out.append(datetime(day.year, day.month, day.day, h, m, tzinfo=tz).timestamp())
    out = sorted(set(out))
    i = next(k for k, t in enumerate(out) if t >= now - 1e-6)
    return out[i], out[i + 1]


def suggest(network: Network, atp: AtpView, demand: DemandView, policy: ReplenishPolicy, now: float,
            nodes: list[str] | None = None) -> Suggestions:
    arrive, until = deliveries_around(policy.deliveries, network.timezone, now)
    days = _history(demand, policy, now, arrive, until)
    if not days:
        return Suggestions(_ts(arrive), _ts(until), 0, 0, 0, [], [], [])
    shape = atp.on_hand.shape
    weights = {SOLD_ONLINE: 1.0, SOLD_COUNTER: 1.0, LOST_ONLINE: 1.0, SHORT_COUNTER: 1.0,
               SHORT_QUOTE: policy.quote_weight}
    online = {SOLD_ONLINE: 1.0, LOST_ONLINE: 1.0, SHORT_QUOTE: policy.quote_weight}
    counter = {SOLD_COUNTER: 1.0, SHORT_COUNTER: 1.0}
    cover_online = np.stack([_demand(atp, demand, online, arrive - k * DAY_S, until - k * DAY_S) for k in days])
    cover_counter = np.stack([_demand(atp, demand, counter, arrive - k * DAY_S, until - k * DAY_S) for k in days])
    cover = cover_online + cover_counter
    before = np.zeros(shape)  # what is expected to go before the delivery arrives
    if arrive > now:
        before = np.mean([_demand(atp, demand, weights, now - k * DAY_S, arrive - k * DAY_S) for k in days], axis=0)
    mean = cover.mean(axis=0)
    z = NormalDist().inv_cdf(policy.service_level)
    # two levels added up: online orders take from the shelf before the counter's customers come (they are
    # routed ahead, and to whichever node has the whole basket, so a node's online demand jumps when its
    # neighbours run short), and one level for both let online take the counter's share (docs/replenishment.md)
    safety = _sku_safety(network, atp)  # the SKU's own, from the network (atp.safety holds the counter's reserves too)
    at_counter = _level(cover_counter, NormalDist().inv_cdf(policy.counter_service_level))
    target = _level(cover_online, z) + at_counter + safety
    free = atp.on_hand - atp.reserved
    position = np.maximum(free - np.round(before).astype(np.int64), 0)
    carried = _listed(network, atp) | (atp.on_hand > 0) | _sold(atp, demand, days, arrive, until)
    if policy.new_skus:  # also what was lost or short where the node never held it
        carried |= cover.sum(axis=0) > 0
    scope = np.zeros(shape[0], dtype=bool)
    for n in (nodes if nodes else atp.node_ids):
        scope[atp.node_index[n]] = True
    # every SKU a node carries stays on its shelf: a slow seller's few sales say little, and an online
    # basket needs all its SKUs at one node
    target = np.where(carried, np.maximum(target, policy.min_stock + safety), target)
    need = np.where(carried & scope[:, None], np.maximum(target - position, 0), 0)
    # a source keeps a day of its own demand (and the level of this delivery): only the rest moves
    daily = _demand(atp, demand, weights, now - max(days) * DAY_S, now) / max(days)
    keep = np.where(daily > 0, np.ceil(daily + z * np.sqrt(daily) - 1e-9), 0).astype(np.int64) + safety
    surplus = np.maximum(position - np.maximum(target, keep), 0)

    moved_in = np.zeros(shape, dtype=np.int64)
    moved_out = np.zeros(shape, dtype=np.int64)
    transfers: list[Transfer] = []
    if policy.transfer_km > 0:
        near = _neighbours(network, atp, policy.transfer_km)
        cells = np.argwhere(need > 0)
        order = sorted(((-int(need[i, j]), atp.node_ids[i], atp.sku_ids[j], i, j) for i, j in cells))
        for _, _, _, i, j in order:
            want = int(need[i, j] - moved_in[i, j])
            for src, km in near[i]:
                qty = min(want, int(surplus[src, j]))
                if qty < policy.min_transfer:
                    continue
                transfers.append(Transfer(atp.node_ids[src], atp.node_ids[i], atp.sku_ids[j], qty, round(km, 3)))
                surplus[src, j] -= qty
                moved_out[src, j] += qty
                moved_in[i, j] += qty
                want -= qty
                if not want:
                    break
    buy = need - moved_in
    if policy.pack > 1:
        buy = -(-buy // policy.pack) * policy.pack
    purchases = [Purchase(atp.node_ids[i], atp.sku_ids[j], int(buy[i, j]))
                 for i, j in sorted(np.argwhere(buy > 0).tolist(), key=lambda c: (atp.node_ids[c[0]], atp.sku_ids[c[1]]))]
    touched = sorted(np.argwhere((buy > 0) | (moved_in > 0) | (moved_out > 0)).tolist(),
                     key=lambda c: (atp.node_ids[c[0]], atp.sku_ids[c[1]]))
    lines = [StockPlan(atp.node_ids[i], atp.sku_ids[j], int(free[i, j]), round(float(mean[i, j]), 3),
                       int(target[i, j]), int(moved_in[i, j]), int(moved_out[i, j]), int(buy[i, j]))
             for i, j in touched]
    transfers.sort(key=lambda t: (t.to_node, t.sku, t.from_node))
    reserves: list[Reserve] = []
    if policy.counter_reserve != "none":  # online orders leave the counter's level on the shelf
        margin = np.maximum(at_counter - np.ceil(cover_counter.mean(axis=0) - 1e-9).astype(np.int64), 0)
        reserve = np.where(scope[:, None], (margin if policy.counter_reserve == "margin" else at_counter) + safety,
                           atp.safety)
        reserves = [Reserve(atp.node_ids[i], atp.sku_ids[j], int(reserve[i, j]))
                    for i, j in sorted(np.argwhere(reserve != atp.safety).tolist(),
                                       key=lambda c: (atp.node_ids[c[0]], atp.sku_ids[c[1]]))]
    return Suggestions(_ts(arrive), _ts(until), len(days), int(buy.sum()), int(moved_in.sum()), transfers, purchases,
                       lines, reserves)


def _level(cover: np.ndarray, z: float) -> np.ndarray:
    """Per node and SKU: the demand of a window (days x nodes x SKUs) its stock lasts through with
    probability Φ(z), as mean + z x σ rounded up; σ at least √mean (Poisson's: a few days' sales say little
    of the spread); 0 where nothing was asked for."""
    mean = cover.mean(axis=0)
    spread = cover.std(axis=0, ddof=1) if len(cover) > 1 else np.zeros(mean.shape)
    sigma = np.maximum(spread, np.sqrt(mean))
    return np.where(mean > 0, np.ceil(mean + z * sigma - 1e-9), 0).astype(np.int64)


OBSERVED = 0.75  # a past window counts when demand was known over this share of it (nodes open at 07:00, a
# delivery at 06:30)


def _history(demand: DemandView, policy: ReplenishPolicy, now: float, arrive: float, until: float) -> list[int]:
    """The days back (k) whose window [arrive - k days, until - k days) is over and was (mostly) observed."""
    since = demand.since(now)
    if since is None:
        return []
    first = max(1, math.ceil((until - now) / DAY_S - 1e-9))
    span = until - arrive
    return [k for k in range(first, first + policy.history_days)
            if until - k * DAY_S - max(arrive - k * DAY_S, since) >= OBSERVED * span]


def _demand(atp: AtpView, demand: DemandView, weights: dict[str, float], start: float, end: float) -> np.ndarray:
    out = np.zeros(atp.on_hand.shape)
    for kind, w in weights.items():
        if not w:
            continue
        for (node, sku), q in demand.between(kind, start, end).items():
            i, j = atp.node_index.get(node), atp.sku_index.get(sku)
            if i is not None and j is not None:
                out[i, j] += w * q
    return out


def _sold(atp: AtpView, demand: DemandView, days: list[int], arrive: float, until: float) -> np.ndarray:
    """Node-SKUs sold at some time in the days the levels rest on: the node carries them."""
    out = np.zeros(atp.on_hand.shape, dtype=bool)
    start, end = arrive - max(days) * DAY_S, until
    for kind in (SOLD_ONLINE, SOLD_COUNTER):
        for (node, sku), q in demand.between(kind, start, end).items():
            i, j = atp.node_index.get(node), atp.sku_index.get(sku)
            if i is not None and j is not None and q > 0:
                out[i, j] = True
    return out


def _sku_safety(network: Network, atp: AtpView) -> np.ndarray:
    """Every node's safety stock of each SKU as the network gives it."""
    row = np.zeros(atp.on_hand.shape[1], dtype=np.int64)
    for k in network.skus:
        j = atp.sku_index.get(k.id)
        if j is not None:
            row[j] = k.safety_stock
    return np.broadcast_to(row, atp.on_hand.shape)


def _listed(network: Network, atp: AtpView) -> np.ndarray:
    """The assortment the network file gives each node (its starting stock)."""
    out = np.zeros(atp.on_hand.shape, dtype=bool)
    for node, lines in network.stock.items():
        i = atp.node_index.get(node)
        if i is None:
            continue
        for sku, q in lines.items():
            j = atp.sku_index.get(sku)
            if j is not None and q > 0:
                out[i, j] = True
    return out


def _neighbours(network: Network, atp: AtpView, km: float) -> list[list[tuple[int, float]]]:
    """Per node row: the other nodes within `km`, kitchens first, then by distance."""
    nodes = [n for n in network.nodes if n.id in atp.node_index]
    rows = [atp.node_index[n.id] for n in nodes]
    lat = np.array([n.lat for n in nodes])
    lon = np.array([n.lon for n in nodes])
    out: list[list[tuple[int, float]]] = [[] for _ in atp.node_ids]
    for a, n in enumerate(nodes):
        dist = haversine_km(n.lat, n.lon, lat, lon)
        near = [(nodes[b].kind != "kitchen", float(dist[b]), rows[b]) for b in range(len(nodes))
                if b != a and dist[b] <= km]
        out[rows[a]] = [(row, d) for _, d, row in sorted(near)]
    return out
