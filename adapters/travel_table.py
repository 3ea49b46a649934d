"""Road travel times from a table service over HTTP: OSRM's
`/table/v1/{profile}/...` or Valhalla's `/sources_to_targets`.

The router asks for a batch's area cells (engine/travel.py's CellTimes);
each cell not in the cache costs one row of the table, from the nodes that
can reach it (its delivery radius, by straight line) to the cell's centre.
Rows are kept in an LRU cache for a time (cache_ttl_s). A failed or slow
call (timeout_s) leaves those cells to the straight line, marked as guessed
(`straight_line: 1` in the part's cost terms), and the service is not asked
again for retry_after_s, so a dead service costs one timeout, not one a
batch. The engine runs the router in its own thread: blocking here is fine.
"""
from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable, Literal

import numpy as np

from engine.geo import local_km
from engine.travel import CellTimes, Grid, TravelMatrix

if TYPE_CHECKING:
    from domain.network import Network
    from engine.routing.candidates import NodeArrays

log = logging.getLogger(__name__)

Protocol = Literal["osrm", "valhalla"]


class TableError(Exception):
    """The table service did not answer usably."""


class TableService(CellTimes):
    def __init__(self, grid: Grid, url: str, protocol: Protocol = "osrm", profile: str = "driving",
                 timeout_s: float = 2.0, cache_cells: int = 100_000, cache_ttl_s: float = 3600.0,
                 retry_after_s: float = 30.0, max_locations: int = 100,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(grid)
        self.url, self.protocol, self.profile = url.rstrip("/"), protocol, profile
        self.timeout_s, self.cache_cells, self.cache_ttl_s = timeout_s, cache_cells, cache_ttl_s
        self.retry_after_s, self.max_locations, self.clock = retry_after_s, max(2, max_locations), clock
        self._cache: OrderedDict[int, tuple[float, np.ndarray]] = OrderedDict()  # cell -> (expires, minutes per node)
        self._ids: list[str] | None = None  # the node list the cached rows are for
        self._down_until = 0.0
        self.calls = self.failures = self.hits = self.misses = 0

    def rows_of(self, nodes: "NodeArrays", cells: np.ndarray) -> np.ndarray:
        if self._ids is not nodes.ids:  # another network: the rows' columns mean other nodes
            self._cache.clear()
            self._ids = nodes.ids
        now = self.clock()
        out = np.full((len(cells), len(nodes.ids)), np.nan)
        need: list[int] = []
        for i, cell in enumerate(cells.tolist()):
            hit = self._cache.get(cell) if cell >= 0 else None
            if hit is not None and hit[0] > now:
                self._cache.move_to_end(cell)
                out[i] = hit[1]
                self.hits += 1
            elif cell >= 0:
                need.append(i)
        self.misses += len(need)
        if need and now >= self._down_until:
            fetched = self.fetch(nodes, cells[need])
            if fetched is None:
                self._down_until = now + self.retry_after_s
            else:
                out[need] = fetched
                for i in need:
                    self._remember(int(cells[i]), out[i].copy(), now)
        return out

    def _remember(self, cell: int, row: np.ndarray, now: float) -> None:
        self._cache[cell] = (now + self.cache_ttl_s, row)
        self._cache.move_to_end(cell)
        while len(self._cache) > self.cache_cells:
            self._cache.popitem(last=False)

    def fetch(self, nodes: "NodeArrays", cells: np.ndarray) -> np.ndarray | None:
        """(cells, nodes) minutes from the service, NaN for nodes that cannot reach a cell or
        that the service found no route for; None when a call failed (logged)."""
        lat, lon = self.grid.centres(cells)
        half_diagonal = float(np.hypot(self.grid.dlat * 111.2, self.grid.dlon * 111.2 * np.cos(np.radians(lat.mean())))) / 2
        reach = local_km(lat[:, None], lon[:, None], nodes.lat[None, :], nodes.lon[None, :]) <= nodes.radius + half_diagonal
        reach &= nodes.delivers[None, :]  # pickup has no travel: a pickup-only node is never asked for
        out = np.full((len(cells), len(nodes.ids)), np.nan)
        per_call = max(1, self.max_locations // 2)
        try:
            for start in range(0, len(cells), per_call):
                rows = np.arange(start, min(start + per_call, len(cells)))
                srcs = np.flatnonzero(reach[rows].any(axis=0))
                room = self.max_locations - len(rows)
                for s0 in range(0, len(srcs), room):
                    src = srcs[s0:s0 + room]
                    seconds = self._table(nodes.lat[src], nodes.lon[src], lat[rows], lon[rows])  # (src, dst)
                    block = seconds.T / 60
                    block[~reach[np.ix_(rows, src)]] = np.nan
                    out[np.ix_(rows, src)] = block
        except TableError as e:
            self.failures += 1
            log.warning("travel table %s: %s; straight line for %.0f s", self.url, e, self.retry_after_s)
            return None
        return out

    def _table(self, slat: np.ndarray, slon: np.ndarray, dlat: np.ndarray, dlon: np.ndarray) -> np.ndarray:
        """(sources, destinations) seconds, NaN where there is no route."""
        self.calls += 1
        if self.protocol == "osrm":
            coords = ";".join(f"{x:.6f},{y:.6f}" for x, y in zip([*slon, *dlon], [*slat, *dlat]))
            n = len(slat)
            query = (f"sources={';'.join(map(str, range(n)))}"
                     f"&destinations={';'.join(map(str, range(n, n + len(dlat))))}&annotations=duration")
            body = self._call(urllib.request.Request(f"{self.url}/table/v1/{self.profile}/{coords}?{query}"))
            if body.get("code") != "Ok" or "durations" not in body:
                raise TableError(f"code {body.get('code')!r}: {body.get('message', 'no durations')}")
            table = body["durations"]
            seconds = [[np.nan if t is None else float(t) for t in row] for row in table]
        else:
            request = {"sources": [{"lat": a, "lon": b} for a, b in zip(slat.tolist(), slon.tolist())],
                       "targets": [{"lat": a, "lon": b} for a, b in zip(dlat.tolist(), dlon.tolist())],
                       "costing": self.profile}
            body = self._call(urllib.request.Request(
                f"{self.url}/sources_to_targets", data=json.dumps(request).encode(),
                headers={"Content-Type": "application/json"}))
            if "sources_to_targets" not in body:
                raise TableError(f"no sources_to_targets: {body.get('error', body)!s:.200}")
            seconds = [[np.nan if c.get("time") is None else float(c["time"]) for c in row]
                       for row in body["sources_to_targets"]]
        out = np.array(seconds, dtype=float).reshape(-1, len(dlat)) if seconds else np.zeros((0, len(dlat)))
        if out.shape != (len(slat), len(dlat)):
            raise TableError(f"a {out.shape} table for {len(slat)} sources x {len(dlat)} destinations")
        return out

    def _call(self, request: urllib.request.Request) -> dict:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise TableError(f"HTTP {e.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            raise TableError(str(getattr(e, "reason", e))) from None
        except ValueError as e:
            raise TableError(f"not JSON: {e}") from None


def build_matrix(network: "Network", service: TableService, progress: Callable[[int, int], None] = lambda done, of: None
                 ) -> TravelMatrix:
    """The service's minutes from every node to every cell of its grid some node can reach
    (`o2o network travel-matrix`); the other cells stay unknown. A failed call is a TableError."""
    from engine.routing.candidates import NodeArrays

    nodes = NodeArrays.of(network)
    grid = service.grid
    cells = np.arange(grid.size)
    lat, lon = grid.centres(cells)
    reachable = np.zeros(grid.size, bool)
    for i in range(len(nodes.ids)):  # node by node: the grid x nodes matrix can be large
        reachable |= local_km(lat, lon, nodes.lat[i], nodes.lon[i]) <= nodes.radius[i]
    wanted = cells[reachable]
    minutes = np.full((len(nodes.ids), grid.size), np.nan)
    step = max(1, service.max_locations // 2) * 20
    for start in range(0, len(wanted), step):
        part = wanted[start:start + step]
        rows = service.fetch(nodes, part)
        if rows is None:
            raise TableError(f"the table service at {service.url} failed (see the log); nothing written")
        minutes[:, part] = rows.T
        progress(min(start + step, len(wanted)), len(wanted))
    return TravelMatrix(grid, nodes.ids, minutes)
