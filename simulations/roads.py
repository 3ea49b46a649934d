"""A synthetic road-time matrix for a network, and what it does to ETAs.

No road network ships with the project, so this stands in for one: the
road from a node to a place is the straight line times a detour factor
(1.15 to 1.6, fixed per node and cell by a hash of the seed), at the
network's courier speed, and a river runs north-south through the city's
middle: crossing it costs `river_minutes` more (the bridges are few). It
writes a travel-matrix file (docs/travel.md) with the minutes from each
node to every cell it can reach, and prints how far the straight line is
from these times on the places around the nodes: the error of the ETA
(preparation + travel) at the node nearest by road (median, 9 in 10) and the share of places whose nearest node by road is not the
nearest by straight line.

    python -m simulations.roads --network sample --out o2o-data/roads.json
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from domain.network import Network
from engine.geo import local_km
from engine.store.network_file import SAMPLE_NETWORK, load_network
from engine.store.travel_file import dump_travel_matrix
from engine.travel import Grid, TravelMatrix

DETOUR = (1.15, 1.6)  # road km per straight km, lowest and highest


def road_minutes(network: Network, grid: Grid, seed: int = 1, river_minutes: float = 8.0) -> np.ndarray:
    """(nodes, cells) minutes, NaN for cells beyond a node's delivery radius."""
    cells = np.arange(grid.size)
    lat, lon = grid.centres(cells)
    river = float(np.median([n.lon for n in network.nodes]))
    out = np.full((len(network.nodes), grid.size), np.nan)
    for i, n in enumerate(network.nodes):  # node by node: the full matrix of km is large
        km = local_km(lat, lon, n.lat, n.lon)
        reach = km <= n.delivery_radius_km
        u = np.random.default_rng([seed, i]).random(grid.size)
        detour = DETOUR[0] + (DETOUR[1] - DETOUR[0]) * u ** 2  # mostly mild, a few long ways round
        minutes = km * detour * 60 / network.speed_kmh + np.where((lon > river) != (n.lon > river), river_minutes, 0.0)
        out[i, reach] = np.round(minutes[reach], 2)
    return out


def compare(network: Network, matrix: TravelMatrix, places: int = 20_000, seed: int = 1) -> dict[str, float]:
    """Straight-line ETAs against the matrix's on random places in reach of some node."""
    rng = np.random.default_rng(seed)
    g = matrix.grid
    lat = rng.uniform(g.lat0, g.lat0 + g.rows * g.dlat, places * 3)
    lon = rng.uniform(g.lon0, g.lon0 + g.cols * g.dlon, places * 3)
    nlat, nlon = np.array([n.lat for n in network.nodes]), np.array([n.lon for n in network.nodes])
    km = local_km(lat[:, None], lon[:, None], nlat[None, :], nlon[None, :])
    reach = km <= np.array([n.delivery_radius_km for n in network.nodes])[None, :]
    keep = np.flatnonzero(reach.any(axis=1))[:places]
    km, reach = km[keep], reach[keep]
    straight = km * 60 / network.speed_kmh
    column = {n: j for j, n in enumerate(matrix.node_ids)}
    road = matrix.minutes()[[column[n.id] for n in network.nodes]][:, g.cells(lat[keep], lon[keep])].T
    reach &= ~np.isnan(road)
    served = np.flatnonzero(reach.any(axis=1))
    nearest_straight = np.where(reach, straight, np.inf).argmin(axis=1)[served]
    nearest_road = np.where(reach, road, np.inf).argmin(axis=1)[served]
    # the ETA (preparation + travel) at the node nearest by road, as the straight line and the road give it
    prep = np.array([n.prep_minutes for n in network.nodes])[nearest_road]
    by_road = prep + road[served, nearest_road]
    error = np.abs(prep + straight[served, nearest_road] - by_road) / by_road
    return {"places": len(served), "median_error": float(np.median(error)),
            "p90_error": float(np.quantile(error, 0.9)),
            "other_nearest": float((nearest_straight != nearest_road).mean())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulations.roads", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", default="sample", help="a network file, or 'sample' (default)")
    p.add_argument("--out", required=True, help="the travel-matrix file to write")
    p.add_argument("--cell-m", type=float, default=250.0, help="area cell size in metres (default 250)")
    p.add_argument("--river-minutes", type=float, default=8.0, help="extra minutes to cross the river (default 8)")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    network = load_network(SAMPLE_NETWORK if a.network == "sample" else a.network)
    grid = Grid.around(network, a.cell_m)
    matrix = TravelMatrix(grid, [n.id for n in network.nodes], road_minutes(network, grid, a.seed, a.river_minutes))
    dump_travel_matrix(matrix, a.out, network=network.name,
                       source=f"synthetic: detour {DETOUR[0]}-{DETOUR[1]}, river {a.river_minutes:g} min, seed {a.seed}")
    c = compare(network, matrix, seed=a.seed)
    print(f"wrote {a.out}: {len(network.nodes)} nodes x {grid.rows} x {grid.cols} cells of {a.cell_m:g} m")
    print(f"straight line at {network.speed_kmh:g} km/h against these roads, {c['places']:,} places: ETA off by "
          f"{c['median_error']:.0%} (median), {c['p90_error']:.0%} or more for 1 in 10; "
          f"the nearest node by road is another for {c['other_nearest']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
