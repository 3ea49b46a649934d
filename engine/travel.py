"""Travel minutes from nodes to the places of a batch's orders: the one
source the router, quotes and simulations use (docs/travel.md).

- `StraightLine` (the default): straight-line km at the network's courier
  speed, as the router always did; it returns None and the router computes
  `km * 60 / speed` where it needs it, so the default costs nothing more.
- `TravelMatrix`: minutes per (area cell, node) that a planner brings
  (engine/store/travel_file.py reads it), or that `o2o network travel-matrix`
  built once from a road table service.
- adapters/travel_table.py asks such a service over HTTP, cell by cell.

A cell-based source gives the time to the cell's centre for any place in
the cell. A pair it has no time for (a place outside the grid, a node the
matrix does not name, no road) gets the straight line's time instead and is
marked guessed: the part's promise then says `straight_line: 1`.
The delivery radius stays straight-line km; only times come from roads.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, NamedTuple, Protocol

import numpy as np
from msgspec import Meta, Struct

from domain.network import Network

if TYPE_CHECKING:  # the router's node arrays (ids, lat, lon, radius, speed_kmh)
    from engine.routing.candidates import NodeArrays

KM_PER_DEG_LAT = 111.195  # engine.geo.EARTH_KM * pi / 180, rounded: only sizes grid cells


class Road(NamedTuple):
    """One batch's road times: (orders, nodes) minutes, and the pairs guessed by straight line (None: none)."""

    minutes: np.ndarray
    guessed: np.ndarray | None


class TravelTimes(Protocol):
    """Minutes from every node to each order's place; None: straight line at the network's speed."""

    def road(self, nodes: "NodeArrays", lat: np.ndarray, lon: np.ndarray, dist: np.ndarray) -> Road | None: ...


class StraightLine:
    """The default: the router's own km x 60 / speed."""

    def road(self, nodes: "NodeArrays", lat: np.ndarray, lon: np.ndarray, dist: np.ndarray) -> Road | None:
        return None

    def __repr__(self) -> str:
        return "StraightLine()"


STRAIGHT_LINE = StraightLine()


class Grid(Struct, frozen=True, forbid_unknown_fields=True):
    """Area cells: `rows` x `cols` cells of dlat x dlon degrees from the south-west corner (lat0, lon0).
    Cell k is row k // cols, column k % cols."""

    lat0: Annotated[float, Meta(ge=-90, le=90)]
    lon0: Annotated[float, Meta(ge=-180, le=180)]
    dlat: Annotated[float, Meta(gt=0, le=1)]
    dlon: Annotated[float, Meta(gt=0, le=1)]
    rows: Annotated[int, Meta(ge=1, le=10_000)]
    cols: Annotated[int, Meta(ge=1, le=10_000)]

    @property
    def size(self) -> int:
        return self.rows * self.cols

    def cells(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """The cell of each place, -1 outside the grid."""
        r = np.floor((np.asarray(lat, float) - self.lat0) / self.dlat)
        c = np.floor((np.asarray(lon, float) - self.lon0) / self.dlon)
        inside = (r >= 0) & (r < self.rows) & (c >= 0) & (c < self.cols)
        return np.where(inside, r * self.cols + c, -1).astype(np.int64)

    def centres(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cells = np.asarray(cells, np.int64)
        return self.lat0 + (cells // self.cols + 0.5) * self.dlat, self.lon0 + (cells % self.cols + 0.5) * self.dlon

    @classmethod
    def around(cls, network: Network, cell_m: float) -> "Grid":
        """Square-ish cells of about cell_m metres covering every node's delivery area."""
        lat = np.array([n.lat for n in network.nodes])
        lon = np.array([n.lon for n in network.nodes])
        km = max((n.delivery_radius_km for n in network.nodes), default=0.0) + cell_m / 1000
        dlat = cell_m / 1000 / KM_PER_DEG_LAT
        dlon = dlat / max(math.cos(math.radians(float(lat.mean()))), 1e-6)
        south, west = lat.min() - km / KM_PER_DEG_LAT, lon.min() - km / KM_PER_DEG_LAT * dlon / dlat
        north, east = lat.max() + km / KM_PER_DEG_LAT, lon.max() + km / KM_PER_DEG_LAT * dlon / dlat
        return cls(lat0=round(float(south), 6), lon0=round(float(west), 6), dlat=round(dlat, 8), dlon=round(dlon, 8),
                   rows=int(math.ceil((north - south) / dlat)) + 1, cols=int(math.ceil((east - west) / dlon)) + 1)


class CellTimes:
    """A source of minutes per (area cell, node): the batch's cells are looked
    up once each, and every order takes its cell's row. Subclasses say how
    a cell's row is found (`rows_of`)."""

    def __init__(self, grid: Grid):
        self.grid = grid

    def rows_of(self, nodes: "NodeArrays", cells: np.ndarray) -> np.ndarray:
        """(len(cells), nodes) minutes, NaN where unknown; cells are distinct, -1 is outside the grid."""
        raise NotImplementedError

    def road(self, nodes: "NodeArrays", lat: np.ndarray, lon: np.ndarray, dist: np.ndarray) -> Road | None:
        cells, which = np.unique(self.grid.cells(lat, lon), return_inverse=True)
        minutes = self.rows_of(nodes, cells)[which.reshape(-1)]  # a copy: (orders, nodes)
        missing = np.isnan(minutes)
        if not missing.any():
            return Road(minutes, None)
        minutes[missing] = dist[missing] * (60 / nodes.speed_kmh)
        return Road(minutes, missing)


class TravelMatrix(CellTimes):
    """Minutes from each named node to each cell of the grid (NaN: no time known)."""

    def __init__(self, grid: Grid, node_ids: list[str], minutes: np.ndarray):
        super().__init__(grid)
        minutes = np.asarray(minutes, dtype=float)
        if minutes.shape != (len(node_ids), grid.size):
            raise ValueError(f"minutes must be (nodes, cells) = ({len(node_ids)}, {grid.size}), not {minutes.shape}")
        self.node_ids = list(node_ids)
        # by cell, with a row of NaN for places outside the grid and a column of NaN for nodes it does not name
        self._by_cell = np.full((grid.size + 1, len(node_ids) + 1), np.nan)
        self._by_cell[:-1, :-1] = minutes.T
        self._columns: tuple[list[str], np.ndarray | None] | None = None
        self._length = 0

    def minutes(self) -> np.ndarray:
        """(nodes, cells) minutes, NaN where none is known."""
        return self._by_cell[:-1, :-1].T

    def rows_of(self, nodes: "NodeArrays", cells: np.ndarray) -> np.ndarray:
        rows = self._by_cell[cells]  # -1: the last row, all NaN
        columns = self._columns_for(nodes.ids)
        return rows[:, :-1] if columns is None else rows[:, columns]

    def _columns_for(self, ids: list[str]) -> np.ndarray | None:
        """The matrix column of each of the network's nodes; None when they are the matrix's nodes in its order.
        Kept for the list itself (compared by identity and length: the router builds it once per network)."""
        if self._columns is None or self._columns[0] is not ids or len(ids) != self._length:
            index = {n: j for j, n in enumerate(self.node_ids)}
            columns = np.array([index.get(n, len(self.node_ids)) for n in ids], dtype=np.int64)
            same = len(ids) == len(self.node_ids) and bool((columns == np.arange(len(ids))).all())
            self._columns, self._length = (ids, None if same else columns), len(ids)
        return self._columns[1]

    def minutes_of(self, node_id: str, lat: float, lon: float) -> float | None:
        """The matrix's minutes from a node to a place; None when it has none."""
        cell = int(self.grid.cells(np.array([lat]), np.array([lon]))[0])
        if node_id not in self.node_ids:
            return None
        m = self._by_cell[cell, self.node_ids.index(node_id)]
        return None if np.isnan(m) else float(m)
