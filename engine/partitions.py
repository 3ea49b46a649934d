"""Partitions of the network for scale-out (issue 16, docs/scale-out.md).

A partition is a set of whole regions (`Node.region`). Each engine process
will own some partitions and be the only writer of their nodes. They are
declared in the configuration (`[partitions.declared]`) or computed here
from the network so that delivery areas that overlap stay together.

The computation: a grid of points (`grid_km` apart) over every delivery
disk; each point's *candidate regions* are the regions of the nodes that
deliver there. A point whose candidate regions fall in two partitions is a
*border* point: an order there may be served best by another partition's
node. Grouping the points by their set of candidate regions gives a
hypergraph (one weighted hyperedge per distinct set); the cut minimises the
border area, so it is the border share itself that is minimised, not a
proxy. Parts are balanced by node count: no part holds more than
`(1 + slack)` times the mean. Few regions are searched exhaustively, more
by greedy placement and local moves.

An order's location maps to a *cell* (a geohash, `cell_precision`
characters) and a cell to the region of the nearest node that delivers to
the cell's centre (the nearest delivery node when none reaches it), so the
cell's owner is a pure function of the network and the partition map.
Pure: no I/O, no clock.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Iterable, Sequence

import numpy as np
from msgspec import Struct

from domain.errors import InvalidInput
from domain.network import Network
from engine.geo import haversine_km

EXHAUSTIVE_MAX = 200_000  # assignments searched one by one at most; beyond, greedy + local moves
_BASE32 = "0123456789bcdefghjkmnpqrstuvwxyz"


# --- cells ---------------------------------------------------------------------------------------------------

def cell_of(lat: float, lon: float, precision: int = 6) -> str:
    """The geohash of a point: 6 characters are about 1.2 x 0.6 km."""
    lat_lo, lat_hi, lon_lo, lon_hi = -90.0, 90.0, -180.0, 180.0
    out, bits, ch, even = [], 0, 0, True
    while len(out) < precision:
        if even:
            mid = (lon_lo + lon_hi) / 2
            ch = ch * 2 + (lon >= mid)
            lon_lo, lon_hi = (mid, lon_hi) if lon >= mid else (lon_lo, mid)
        else:
            mid = (lat_lo + lat_hi) / 2
            ch = ch * 2 + (lat >= mid)
            lat_lo, lat_hi = (mid, lat_hi) if lat >= mid else (lat_lo, mid)
        even = not even
        bits += 1
        if bits == 5:
            out.append(_BASE32[ch])
            bits, ch = 0, 0
    return "".join(out)


def cell_centre(cell: str) -> tuple[float, float]:
    """(lat, lon) of a geohash cell's centre; a bad cell is an InvalidInput naming it."""
    if not cell or any(c not in _BASE32 for c in cell):
        raise InvalidInput("cell", f"not a geohash: {cell!r}")
    lat_lo, lat_hi, lon_lo, lon_hi = -90.0, 90.0, -180.0, 180.0
    even = True
    for c in cell:
        v = _BASE32.index(c)
        for shift in range(4, -1, -1):
            bit = (v >> shift) & 1
            if even:
                mid = (lon_lo + lon_hi) / 2
                lon_lo, lon_hi = (mid, lon_hi) if bit else (lon_lo, mid)
            else:
                mid = (lat_lo + lat_hi) / 2
                lat_lo, lat_hi = (mid, lat_hi) if bit else (lat_lo, mid)
            even = not even
    return (lat_lo + lat_hi) / 2, (lon_lo + lon_hi) / 2


# --- the map -------------------------------------------------------------------------------------------------

class Partition(Struct, frozen=True):
    name: str
    regions: tuple[str, ...]
    nodes: int  # nodes in its regions


@dataclass
class PartitionMap:
    """Which partition owns a region, a node, a point or a cell."""

    network: Network
    partitions: tuple[Partition, ...]
    computed: bool  # from the network (else declared)
    _of_region: dict[str, str] = field(default_factory=dict, repr=False)
    _of_node: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._of_region = {r: p.name for p in self.partitions for r in p.regions}
        self._of_node = {n.id: self._of_region[n.region] for n in self.network.nodes}
        nodes = self.network.nodes
        self._lat = np.array([n.lat for n in nodes])
        self._lon = np.array([n.lon for n in nodes])
        self._radius = np.array([n.delivery_radius_km if "delivery" in n.modes else -1.0 for n in nodes])
        self._region = [n.region for n in nodes]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.partitions)

    def of_region(self, region: str) -> str:
        try:
            return self._of_region[region]
        except KeyError:
            raise InvalidInput("region", f"no region {region!r} in network {self.network.name!r}") from None

    def of_node(self, node_id: str) -> str:
        try:
            return self._of_node[node_id]
        except KeyError:
            raise InvalidInput("node", f"no node {node_id!r} in network {self.network.name!r}") from None

    def home_region(self, lat: float, lon: float) -> str:
        """The region of the nearest node that delivers to the point; the
        nearest delivery node's when none reaches it (some partition must answer)."""
        d = haversine_km(lat, lon, self._lat, self._lon)
        delivers = self._radius >= 0
        reach = delivers & (d <= self._radius)
        pool = reach if reach.any() else (delivers if delivers.any() else np.ones(len(d), bool))
        return self._region[int(np.flatnonzero(pool)[np.argmin(d[pool])])]

    def of_point(self, lat: float, lon: float, precision: int = 6) -> str:
        """The owner of the cell the point lies in (not of the point itself:
        every order in one cell goes to one owner)."""
        return self.of_cell(cell_of(lat, lon, precision))

    def of_cell(self, cell: str) -> str:
        return self._of_region[self.home_region(*cell_centre(cell))]

    def candidate_partitions(self, lat: float, lon: float) -> set[str]:
        """The partitions of the nodes that deliver to the point."""
        d = haversine_km(lat, lon, self._lat, self._lon)
        return {self._of_region[self._region[i]] for i in np.flatnonzero((self._radius >= 0) & (d <= self._radius))}

    def cell_table(self, precision: int = 6) -> dict[str, str]:
        """cell -> home region for every cell whose centre some node delivers
        to: the table an intake consumer's subject filter is built from."""
        points = _grid(self.network, _cell_step_km(precision))
        cells = sorted({cell_of(la, lo, precision) for la, lo in zip(points[0], points[1])})
        return {c: self.home_region(*cell_centre(c)) for c in cells}


def _cell_step_km(precision: int) -> float:
    """Half the smaller side of a geohash cell, so the grid hits every cell."""
    lat_bits = (5 * precision) // 2
    lon_bits = 5 * precision - lat_bits
    return min(180 / 2 ** lat_bits * 111.0, 360 / 2 ** lon_bits * 111.0 * 0.85) / 2


# --- border share --------------------------------------------------------------------------------------------

class BorderShare(Struct, frozen=True):
    """Of the points some node delivers to (area-weighted), or of given orders:
    how many have candidate nodes in more than one partition."""

    points: int  # covered points (or orders with a candidate)
    border: int  # of them, with candidates in two or more partitions
    share: float  # border / points
    mean_partitions: float  # partitions with a candidate, per covered point
    step_km: float = 0.0  # grid spacing (0: orders, not a grid)


def border_share(pmap: PartitionMap, step_km: float = 0.25) -> BorderShare:
    """Area-weighted: a uniform grid over every delivery disk."""
    lat, lon = _grid(pmap.network, step_km)
    return _share(pmap, lat, lon, step_km)


def order_border_share(pmap: PartitionMap, lats: Sequence[float], lons: Sequence[float]) -> BorderShare:
    """Demand-weighted: the given orders' delivery locations."""
    return _share(pmap, np.asarray(lats, float), np.asarray(lons, float), 0.0)


def _share(pmap: PartitionMap, lat: np.ndarray, lon: np.ndarray, step_km: float) -> BorderShare:
    masks, counts = _region_masks(pmap.network, lat, lon)
    regions = _regions(pmap.network)
    index = {p: i for i, p in enumerate(pmap.names)}
    part_of = [index[pmap.of_region(r)] for r in regions]
    covered = border = parts_total = 0
    for mask, n in zip(masks, counts):
        parts = {part_of[i] for i in range(len(regions)) if mask >> i & 1}
        covered += n
        parts_total += n * len(parts)
        border += n * (len(parts) > 1)
    return BorderShare(points=int(covered), border=int(border), share=border / covered if covered else 0.0,
                       mean_partitions=parts_total / covered if covered else 0.0, step_km=step_km)


# --- building the map ----------------------------------------------------------------------------------------

def partition_map(network: Network, settings: object) -> PartitionMap:
    """The map the configuration's `[partitions]` section (engine.config.PartitionSettings)
    describes over this network: declared if any are, else computed."""
    declared = getattr(settings, "declared", {}) or {}
    if declared:
        return declared_map(network, declared)
    return computed_map(network, settings.count, settings.slack, settings.grid_km)


def declared_map(network: Network, declared: dict[str, Iterable[str]]) -> PartitionMap:
    """Every region of the network in exactly one declared partition; errors name the field."""
    regions = _regions(network)
    nodes = _node_counts(network)
    seen: dict[str, str] = {}
    parts = []
    for name, listed in declared.items():
        listed = tuple(listed)
        at = f"config.partitions.declared.{name}"
        if not listed:
            raise InvalidInput(at, "a partition needs at least one region")
        for r in listed:
            if r not in nodes:
                raise InvalidInput(at, f"no region {r!r} in network {network.name!r} (regions: {', '.join(regions)})")
            if r in seen:
                raise InvalidInput(at, f"region {r!r} is also in partition {seen[r]!r}")
            seen[r] = name
        parts.append(Partition(name, listed, sum(nodes[r] for r in listed)))
    missing = [r for r in regions if r not in seen]
    if missing:
        raise InvalidInput("config.partitions.declared", f"region(s) in no partition: {', '.join(missing)}")
    return PartitionMap(network, tuple(parts), computed=False)


def computed_map(network: Network, count: int, slack: float = 0.5, grid_km: float = 0.25) -> PartitionMap:
    """`count` partitions cut from the network's regions (see the module's docstring)."""
    regions = _regions(network)
    if count < 1:
        raise InvalidInput("config.partitions.count", "expected int >= 1")
    if count > len(regions):
        raise InvalidInput("config.partitions.count",
                           f"{count} partitions asked of {len(regions)} region(s): a partition is whole regions")
    nodes = _node_counts(network)
    weights = [nodes[r] for r in regions]
    masks, counts = _region_masks(network, *_grid(network, grid_km))
    labels = cut(masks, counts, weights, count, slack)
    groups: dict[int, list[str]] = {}
    for r, label in zip(regions, labels):
        groups.setdefault(label, []).append(r)
    ordered = sorted(groups.values(), key=lambda rs: (-sum(nodes[r] for r in rs), rs))  # p1: the largest
    parts = tuple(Partition(f"p{i + 1}", tuple(rs), sum(nodes[r] for r in rs)) for i, rs in enumerate(ordered))
    return PartitionMap(network, parts, computed=True)


def cut(masks: Sequence[int], counts: Sequence[int], weights: Sequence[int], k: int, slack: float) -> list[int]:
    """A label 0..k-1 per region (bit i of a mask is region i), every label
    used, minimising the weight of masks spanning two labels, with no
    label's weight above (1 + slack) x the mean; ties: the lighter heaviest part."""
    n = len(weights)
    cap = (1 + slack) * sum(weights) / k
    if max(weights) > cap:  # a region heavier than the cap cannot be split: let it stand alone
        cap = max(weights)
    edges = [(m, c) for m, c in zip(masks, counts) if m & (m - 1)]  # one region only: never cut
    if _stirling(n, k) <= EXHAUSTIVE_MAX:
        best = _exhaustive(n, k, weights, cap, edges)
        if best is not None:
            return best
    return _local_search(n, k, weights, cap, edges)


def _cost(labels: Sequence[int], weights: Sequence[int], k: int, edges: list[tuple[int, int]]) -> tuple[int, float]:
    border = 0
    for mask, c in edges:
        first, i, m = -1, 0, mask
        while m:
            if m & 1:
                if first < 0:
                    first = labels[i]
                elif labels[i] != first:
                    border += c
                    break
            m >>= 1
            i += 1
    load = [0] * k
    for label, w in zip(labels, weights):
        load[label] += w
    return border, max(load)


def _exhaustive(n: int, k: int, weights: Sequence[int], cap: float, edges) -> list[int] | None:
    """Every set partition of n regions into k non-empty parts (restricted growth strings), pruned by the cap."""
    best: tuple[tuple[int, float], list[int]] | None = None
    labels = [0] * n
    load = [0.0] * k

    def place(i: int, used: int) -> None:
        nonlocal best
        if n - i < k - used:
            return
        if i == n:
            cost = _cost(labels, weights, k, edges)
            if best is None or cost < best[0]:
                best = (cost, labels.copy())
            return
        for label in range(min(used + 1, k)):
            if load[label] + weights[i] > cap + 1e-9:
                continue
            labels[i] = label
            load[label] += weights[i]
            place(i + 1, max(used, label + 1))
            load[label] -= weights[i]

    place(0, 0)
    return None if best is None else best[1]


def _local_search(n: int, k: int, weights: Sequence[int], cap: float, edges) -> list[int]:
    """Greedy placement (heaviest region first, beside the part it overlaps
    most, within the cap), then single moves and swaps while they lower the cost."""
    pair = np.zeros((n, n))
    for mask, c in edges:
        members = [i for i in range(n) if mask >> i & 1]
        for a, b in combinations(members, 2):
            pair[a, b] += c
            pair[b, a] += c
    labels = [-1] * n
    load = [0.0] * k
    for i in sorted(range(n), key=lambda i: -weights[i]):
        empty = [p for p in range(k) if load[p] == 0]
        if len(empty) >= sum(1 for j in range(n) if labels[j] < 0):  # parts still empty need the rest
            p = empty[0]
        else:
            room = [p for p in range(k) if load[p] + weights[i] <= cap] or list(range(k))
            p = max(room, key=lambda p: (sum(pair[i, j] for j in range(n) if labels[j] == p), -load[p]))
        labels[i] = p
        load[p] += weights[i]
    cost = _cost(labels, weights, k, edges)
    improved = True
    while improved:
        improved = False
        for i in range(n):
            for p in range(k):
                if p == labels[i] or load[labels[i]] == weights[i] or load[p] + weights[i] > cap:
                    continue
                trial = labels.copy()
                trial[i] = p
                c = _cost(trial, weights, k, edges)
                if c < cost:
                    load[labels[i]] -= weights[i]
                    load[p] += weights[i]
                    labels, cost, improved = trial, c, True
        for i, j in combinations(range(n), 2):
            a, b = labels[i], labels[j]
            if a == b or load[a] - weights[i] + weights[j] > cap or load[b] - weights[j] + weights[i] > cap:
                continue
            trial = labels.copy()
            trial[i], trial[j] = b, a
            c = _cost(trial, weights, k, edges)
            if c < cost:
                load[a] += weights[j] - weights[i]
                load[b] += weights[i] - weights[j]
                labels, cost, improved = trial, c, True
    return labels


def _stirling(n: int, k: int) -> int:
    """Set partitions of n into k non-empty parts."""
    return sum((-1) ** j * math.comb(k, j) * (k - j) ** n for j in range(k + 1)) // math.factorial(k)


# --- the grid ------------------------------------------------------------------------------------------------

def _regions(network: Network) -> list[str]:
    return sorted({n.region for n in network.nodes})


def _node_counts(network: Network) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in network.nodes:
        counts[n.region] = counts.get(n.region, 0) + 1
    return counts


def _grid(network: Network, step_km: float) -> tuple[np.ndarray, np.ndarray]:
    """Points `step_km` apart over the delivery disks' bounding box, kept where some node delivers."""
    if step_km <= 0:
        raise InvalidInput("config.partitions.grid_km", "expected float > 0")
    ds = [n for n in network.nodes if "delivery" in n.modes and n.delivery_radius_km > 0]
    if not ds:
        return np.zeros(0), np.zeros(0)
    lat = np.array([n.lat for n in ds])
    lon = np.array([n.lon for n in ds])
    r = np.array([n.delivery_radius_km for n in ds])
    km_lat = 111.195
    km_lon = km_lat * math.cos(math.radians(float(lat.mean())))
    lat_axis = np.arange((lat - r / km_lat).min(), (lat + r / km_lat).max(), step_km / km_lat)
    lon_axis = np.arange((lon - r / km_lon).min(), (lon + r / km_lon).max(), step_km / km_lon)
    if lat_axis.size * lon_axis.size > 4_000_000:
        raise InvalidInput("config.partitions.grid_km", f"{step_km:g} km makes too many points for this network")
    glat, glon = (a.ravel() for a in np.meshgrid(lat_axis, lon_axis, indexing="ij"))
    covered = np.zeros(glat.size, bool)
    for i in range(len(ds)):
        covered |= haversine_km(glat, glon, lat[i], lon[i]) <= r[i]
    return glat[covered], glon[covered]


def _region_masks(network: Network, lat: np.ndarray, lon: np.ndarray) -> tuple[list[int], list[int]]:
    """Distinct sets of candidate regions (bit masks over the sorted regions) and how many points have each."""
    regions = _regions(network)
    bit = {r: i for i, r in enumerate(regions)}
    mask = np.zeros(lat.size, dtype=object if len(regions) > 62 else np.int64)
    for n in network.nodes:
        if "delivery" in n.modes and n.delivery_radius_km > 0:
            inside = haversine_km(lat, lon, n.lat, n.lon) <= n.delivery_radius_km
            mask[inside] |= 1 << bit[n.region]
    values, counts = np.unique(mask[mask != 0], return_counts=True)
    return [int(v) for v in values], [int(c) for c in counts]
