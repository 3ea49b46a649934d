"""Exact reductions of a whole-order assignment problem: what can be decided
or ruled out before any solver runs, without losing the optimum.

- Dominated pairs: a pair costlier than leaving the order unserved is never
  used. A resource (a node's stock of a SKU, or its capacity) is
  free when every pair still allowed could use it at once. An order never
  needs a node costlier than its cheapest node whose resources are all free:
  moving it there is always possible and costs no more. Dropping those pairs
  frees more resources; repeat.
- Contested orders, as a closure: a resource is tight when the uncontested
  orders' demand at their cheapest nodes plus everything the contested
  orders could ask of it exceeds its supply; an order whose cheapest node
  uses a tight resource is contested; repeat until nothing changes. Some
  optimal answer gives every uncontested order its cheapest node.
- Components: contested orders interact only through tight resources, so
  each connected group can be solved on its own.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from engine.routing.problem import Problem, ranges

MAX_PRUNE_ROUNDS = 3  # each round is exact on its own: stopping early only prunes less


def usage(problem: Problem, pairs: np.ndarray, n_skus: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stock entries of whole orders at the given pairs: cell key (node * n_skus + sku), quantity, the pair."""
    assert n_skus == problem.stock.shape[1]
    return problem.entries(pairs)[:3]


def prune_dominated(problem: Problem) -> Problem:
    """The problem without the dominated pairs described above (whole orders only)."""
    n_pairs, n_skus = len(problem.pair_order), problem.stock.shape[1]
    if n_pairs == 0 or problem.split:
        return problem
    _, qty, pp, cell = problem.entries(np.arange(n_pairs))
    cells = problem.cell_keys
    supply = problem.stock.ravel()[cells]
    alive = problem.pair_cost <= problem.penalty[problem.pair_order]  # else leaving it unserved is cheaper
    has_pairs = problem.pair_ptr[1:] > problem.pair_ptr[:-1]
    starts = problem.pair_ptr[:-1][has_pairs]
    position = np.arange(n_pairs)
    for _ in range(MAX_PRUNE_ROUNDS):
        a = alive[pp]
        cell_tight = np.bincount(cell[a], qty[a], len(cells)) > supply + 1e-9
        node_load = np.bincount(problem.pair_node[alive], problem.pair_load[alive], problem.n_nodes)
        tight_pair = (node_load > problem.capacity + 1e-9)[problem.pair_node]
        tight_pair |= np.bincount(pp, cell_tight[cell], n_pairs) > 0
        # the first free pair of each order; everything after it is dominated
        first_free = np.minimum.reduceat(np.where(alive & ~tight_pair, position, n_pairs), starts)
        limit = np.full(problem.n_orders, n_pairs)
        limit[has_pairs] = first_free
        keep = alive & (position <= limit[problem.pair_order])
        if keep.sum() == alive.sum():
            break
        alive = keep
    if alive.all():
        return problem
    return problem.restricted(alive)


def contested(problem: Problem, orders: np.ndarray, stock: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """The contested orders among those given (the closure described above)."""
    first = problem.pair_ptr[orders]
    all_pairs = ranges(problem.pair_ptr[orders], problem.pair_ptr[orders + 1])
    _, f_qty, f_pair, fk = problem.entries(first)
    _, a_qty, a_pair, ak = problem.entries(all_pairs)
    f_owner, a_owner = problem.pair_order[f_pair], problem.pair_order[a_pair]
    keys = problem.cell_keys  # (cells no pair here uses have no demand)
    supply = stock.ravel()[keys]
    # an order whose cheapest node costs more than leaving it unserved uses nothing
    wants = np.zeros(problem.n_orders, bool)
    wants[orders] = problem.pair_cost[first] <= problem.penalty[orders]
    first_node, first_load = problem.pair_node[first], problem.pair_load[first]
    pair_owner, pair_node, pair_load = problem.pair_order[all_pairs], problem.pair_node[all_pairs], problem.pair_load[all_pairs]
    out = np.zeros(problem.n_orders, bool)
    while True:
        fixed_f, open_a = wants[f_owner] & ~out[f_owner], out[a_owner]
        demand = np.bincount(fk[fixed_f], f_qty[fixed_f], len(keys)) + np.bincount(ak[open_a], a_qty[open_a], len(keys))
        fixed_o, open_p = wants[orders] & ~out[orders], out[pair_owner]
        load = np.bincount(first_node[fixed_o], first_load[fixed_o], problem.n_nodes) \
            + np.bincount(pair_node[open_p], pair_load[open_p], problem.n_nodes)
        hit = np.zeros(problem.n_orders, bool)
        hit[f_owner[demand[fk] > supply[fk] + 1e-9]] = True
        hit[orders[load[first_node] > capacity[first_node] + 1e-9]] = True
        new = hit & wants & ~out
        if not new.any():
            return orders[out[orders]]
        out |= new


def components(problem: Problem, orders: np.ndarray, stock: np.ndarray, capacity: np.ndarray) -> list[np.ndarray]:
    """Contested orders grouped by the stock cells and nodes they could
    overfill together (those whose combined potential demand exceeds supply)."""
    if len(orders) == 0:
        return []
    pairs = ranges(problem.pair_ptr[orders], problem.pair_ptr[orders + 1])
    _, qty, pp, inv = problem.entries(pairs)
    uniq = problem.cell_keys
    k_tight = (np.bincount(inv, qty, len(uniq)) > stock.ravel()[uniq] + 1e-9)[inv]
    load = np.bincount(problem.pair_node[pairs], problem.pair_load[pairs], problem.n_nodes)
    n_tight = (load > capacity + 1e-9)[problem.pair_node[pairs]]
    # bipartite graph: orders, then stock cells, then nodes
    local = np.searchsorted(orders, np.concatenate([problem.pair_order[pp][k_tight], problem.pair_order[pairs][n_tight]]))
    res = np.concatenate([inv[k_tight], len(uniq) + problem.pair_node[pairs][n_tight]])
    size = len(orders) + len(uniq) + problem.n_nodes
    graph = coo_matrix((np.ones(len(local)), (local, len(orders) + res)), shape=(size, size))
    _, label = connected_components(graph, directed=False)
    label = label[: len(orders)]
    groups = np.argsort(label, kind="stable")
    cuts = np.flatnonzero(np.diff(label[groups])) + 1
    return [orders[np.sort(g)] for g in np.split(groups, cuts)]
