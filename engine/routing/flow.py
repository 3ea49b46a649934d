"""An answer for components too large for the LP in the batch's budget
(5,000-order batches: the LP alone takes 0.3-8 s), better than greedy's.

With every load 1, capacity alone makes the problem a min-cost flow
(source -> order -> node or "unserved" -> sink), which OR-Tools solves
exactly in milliseconds; stock is what breaks it. So stock cells are
priced instead (Lagrangian relaxation): each round solves the flow with
each pair's cost raised by the prices of the cells it takes, raises the
price of every overfilled cell by its overfill (subgradient step), and
turns the flow into a feasible answer: orders dropped from overfilled
cells (costliest first), then the unserved placed one by one at their
cheapest node that still fits (fewest candidates first). The best answer
of the rounds is kept. No bound: the answer is "feasible".
"""
from __future__ import annotations

import time

import numpy as np
from ortools.graph.python import min_cost_flow

from engine.routing.greedy import Ledger
from engine.routing.problem import Problem, ranges
from engine.routing.reduce import usage

SCALE = 1000.0  # the flow takes integer costs: costs in thousandths
MAX_ROUNDS = 5
PACE_MARGIN = 1.25  # a round may take this much longer than the last (downtown peak, 5,000: 61 then 70 ms)
STEP = 0.1  # first price step per unit overfilled, x the mean cheapest cost
GATE_QTY = 1  # lines in larger quantities do not pass through a gate (it counts orders): priced instead


def applies(problem: Problem, orders: np.ndarray) -> bool:
    """Whole orders, every load 1 (capacity counts orders), none must be assigned."""
    pairs = ranges(problem.pair_ptr[orders], problem.pair_ptr[orders + 1])
    return not problem.split and bool(np.all(problem.pair_load[pairs] == 1.0)) \
        and bool(np.isfinite(problem.penalty[orders]).all())


def solve_flow(problem: Problem, orders: np.ndarray, stock: np.ndarray, capacity: np.ndarray,
               deadline: float, last: float = np.inf) -> np.ndarray:
    """A node per order given (-1: unserved) within the stock and capacity
    given, as cheap as the rounds until the deadline make it (at least one).
    No round is started after the deadline, nor one that would end past
    `last` at the last round's pace."""
    k = len(orders)
    counts = problem.pair_ptr[orders + 1] - problem.pair_ptr[orders]
    pairs = ranges(problem.pair_ptr[orders], problem.pair_ptr[orders + 1])
    local = np.repeat(np.arange(k), counts)
    node, cost = problem.pair_node[pairs], problem.pair_cost[pairs]
    penalty = problem.penalty[orders]
    n_skus = stock.shape[1]
    key, qty, _ = usage(problem, pairs, n_skus)
    n_lines = problem.line_ptr[problem.pair_order[pairs] + 1] - problem.line_ptr[problem.pair_order[pairs]]
    entry_pair = np.repeat(np.arange(len(pairs)), n_lines)
    entry_ptr = np.concatenate([[0], np.cumsum(n_lines)])
    cells, cell = np.unique(key, return_inverse=True)
    supply = stock.reshape(-1)[cells].astype(float)
    nodes_used = np.unique(node)
    node_slot = np.searchsorted(nodes_used, node)
    cell_slot = np.searchsorted(nodes_used, cells // n_skus)
    slots = np.minimum(np.floor(np.maximum(capacity[nodes_used], 0.0) + 1e-9), k)
    gated = np.zeros(len(cells), bool)
    price = np.zeros(len(cells))
    step = STEP * max(1.0, float(np.mean(cost[np.concatenate([[0], np.cumsum(counts)[:-1]])[counts > 0]]))
                      if (counts > 0).any() else 1.0)
    by_options = np.argsort(counts, kind="stable")  # who is placed first in the repair
    best, best_value = np.full(k, -1), float(penalty.sum())
    began = time.perf_counter()
    for r in range(MAX_ROUNDS):
        chosen = _flow(k, local, node_slot, cost + np.bincount(entry_pair, qty * price[cell], len(pairs)), penalty,
                       slots, gated, cell, qty, entry_ptr, cell_slot, supply)
        if chosen is None:
            break
        taken = chosen[chosen >= 0]
        held = np.zeros(len(pairs), bool)
        held[taken] = True
        overfill = np.bincount(cell, qty * held[entry_pair], len(cells)) - supply
        fixed = _repair(problem, orders, pairs, local, chosen, overfill, cell, qty, entry_ptr, stock, capacity,
                        by_options)
        at = fixed >= 0
        value = float(cost[fixed[at]].sum() + penalty[~at].sum())
        if value < best_value - 1e-9:
            best, best_value = fixed, value
        now = time.perf_counter()
        if not (overfill > 1e-9).any() or now > deadline or now + PACE_MARGIN * (now - began) > last:
            break
        began = now
        # an overfilled cell becomes a gate of the network; what gates cannot hold (an order's second gated
        # cell, quantities above 1) is priced
        price = np.where(gated, np.maximum(0.0, price + step / np.sqrt(1 + r) * overfill), 0.0)
        gated |= overfill > 1e-9
    out = np.full(k, -1)
    out[best >= 0] = node[best[best >= 0]]
    return out


def _flow(k, local, node_slot, priced, penalty, slots, gated, cell, qty, entry_ptr, cell_slot, supply):
    """The min-cost flow: source -> order -> (its pair's first gated cell ->) node -> sink, or order ->
    sink (unserved, at its penalty). Each order's pair, as a position in pairs (-1: unserved); None
    if the solver fails."""
    n_pairs, n_gates, m = len(node_slot), int(gated.sum()), len(slots)
    gate_of = np.cumsum(gated) - 1
    # each pair's first gated cell taken in quantity 1 (-1: none)
    through = np.where(gated[cell] & (qty <= GATE_QTY), np.arange(len(cell)), len(cell))
    first = np.full(n_pairs, len(cell))
    has = entry_ptr[1:] > entry_ptr[:-1]
    if len(cell):
        first[has] = np.minimum.reduceat(through, entry_ptr[:-1][has])
    gate = np.where(first < len(cell), gate_of[cell[np.minimum(first, len(cell) - 1)]], -1) if len(cell) \
        else np.full(n_pairs, -1)
    src, sink = k + n_gates + m, k + n_gates + m + 1
    gate_cells = np.flatnonzero(gated)
    tails = np.concatenate([np.full(k, src), local, np.arange(k), k + np.arange(n_gates), k + n_gates + np.arange(m)])
    heads = np.concatenate([np.arange(k), np.where(gate >= 0, k + gate, k + n_gates + node_slot), np.full(k, sink),
                            k + n_gates + cell_slot[gate_cells], np.full(m, sink)])
    caps = np.concatenate([np.ones(k), np.ones(n_pairs), np.ones(k), np.floor(np.maximum(supply[gate_cells], 0) + 1e-9),
                           slots]).astype(np.int64)
    costs = np.concatenate([np.zeros(k), priced, penalty, np.zeros(n_gates + m)])
    flow = min_cost_flow.SimpleMinCostFlow()
    arcs = flow.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, np.round(costs * SCALE).astype(np.int64))
    supplies = np.zeros(sink + 1, np.int64)
    supplies[src], supplies[sink] = k, -k
    flow.set_nodes_supplies(np.arange(sink + 1), supplies)
    if flow.solve() != flow.OPTIMAL:
        return None
    chosen = np.full(k, -1)
    on = np.flatnonzero(flow.flows(arcs)[k:k + n_pairs] > 0)
    chosen[local[on]] = on
    return chosen


def _repair(problem: Problem, orders, pairs, local, chosen, overfill, cell, qty, entry_ptr, stock, capacity,
            by_options) -> np.ndarray:
    """The flow's answer made feasible: each order's pair, as a position in
    pairs (-1: unserved). Orders on overfilled cells, costliest first, move
    to their cheapest node that fits while their cell is still overfilled
    (or stay unserved); then the unserved are placed where they fit."""
    chosen = chosen.copy()
    ledger = Ledger(problem)
    ledger.capacity = capacity.tolist()
    ledger.stock = np.ascontiguousarray(stock).reshape(-1)
    kept = chosen >= 0
    ledger.left = dict(zip(*_left_after(problem, pairs[chosen[kept]], stock)))
    load = np.bincount(problem.pair_node[pairs[chosen[kept]]], minlength=problem.n_nodes)
    ledger.cap = {int(n): float(capacity[n] - load[n]) for n in np.flatnonzero(load)}
    ptr, lptr = problem.pair_ptr, problem.line_ptr
    skus, qtys = problem.line_sku, problem.line_qty
    first = np.concatenate([[0], np.cumsum(ptr[orders + 1] - ptr[orders])[:-1]])  # each order's first, in pairs
    n_skus = stock.shape[1]

    def lines_of(o: int) -> list[tuple[int, int]]:
        return list(zip(skus[lptr[o]:lptr[o + 1]].tolist(), qtys[lptr[o]:lptr[o + 1]].tolist()))

    def place(i: int, o: int, lines) -> None:
        chosen[i] = -1
        for p in range(int(ptr[o]), int(ptr[o + 1])):
            if problem.pair_cost[p] > problem.penalty[o]:
                break
            n = int(problem.pair_node[p])
            if ledger.fits(n, 1.0, lines):
                ledger.take(n, 1.0, lines)
                chosen[i] = first[i] + p - ptr[o]
                return

    if (overfill > 1e-9).any():
        taken = chosen[kept]
        on_over = np.zeros(len(pairs), bool)
        on_over[np.repeat(np.arange(len(pairs)), np.diff(entry_ptr))[(overfill > 1e-9)[cell]]] = True
        who = local[taken[on_over[taken]]]
        rank = np.argsort(-(problem.pair_cost[pairs[chosen[who]]] - problem.penalty[orders[who]]), kind="stable")
        left = ledger.left
        for i in who[rank].tolist():
            o, n = int(orders[i]), int(problem.pair_node[pairs[chosen[i]]])
            lines = lines_of(o)
            if all(left.get(n * n_skus + s, 0.0) >= 0 for s, _ in lines):
                continue  # its cells fit now that others moved
            ledger.take(n, -1.0, [(s, -q) for s, q in lines])
            place(i, o, lines)
    for i in by_options[chosen[by_options] < 0].tolist():
        o = int(orders[i])
        place(i, o, lines_of(o))
    return chosen


def _left_after(problem: Problem, taken: np.ndarray, stock: np.ndarray) -> tuple[list[int], list[float]]:
    """Stock left in the cells the given pairs take (cell keys, amounts)."""
    key, qty, _ = usage(problem, taken, stock.shape[1])
    if not len(key):
        return [], []
    cells, inv = np.unique(key, return_inverse=True)
    return cells.tolist(), (stock.reshape(-1)[cells] - np.bincount(inv, qty, len(cells))).tolist()
