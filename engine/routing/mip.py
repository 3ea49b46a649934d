"""The assignment problem as a mixed-integer program, built from arrays
(no Python loop per variable: model building would cost as much as solving)
and solved by OR-Tools.

Only stock and capacity rows that can bind are written: a (node, SKU) whose
stock covers every candidate order's demand constrains nothing.
"""
from __future__ import annotations

import ctypes
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from ortools.linear_solver.python import model_builder_helper as mbh

from engine.routing.problem import Problem, Solution, flat, objective, ranges

# HiGHS reached proven optima fastest on these instances with 2 cores (see
# ENGINEERING.md and benchmarks/README.md); SCIP is the fallback.
SOLVERS = ("highs", "scip", "cbc")
SOLVER_INFINITY = 1e19  # a bound this large is a solver's way of saying it has none


@dataclass
class Rows:
    """A sparse constraint matrix assembled from coordinate blocks."""

    rows: list[np.ndarray]
    cols: list[np.ndarray]
    vals: list[np.ndarray]
    lo: list[np.ndarray]
    hi: list[np.ndarray]
    n: int = 0

    @classmethod
    def empty(cls) -> "Rows":
        return cls([], [], [], [], [])

    def add(self, row: np.ndarray, col: np.ndarray, val: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        """row indices are local to this block, 0..len(lo)-1."""
        self.rows.append(row + self.n)
        self.cols.append(col)
        self.vals.append(val.astype(float))
        self.lo.append(np.asarray(lo, float))
        self.hi.append(np.asarray(hi, float))
        self.n += len(lo)

    def resource(self, key: np.ndarray, col: np.ndarray, val: np.ndarray, supply: np.ndarray,
                 dense: bool = False) -> None:
        """sum val * x <= supply[key], for the keys whose demand can exceed
        supply; rows in key order. dense: the keys index supply itself (nodes),
        so no sort is needed to number them."""
        if len(key) == 0:
            return
        if dense:
            demand, inv, cap = np.bincount(key, val, len(supply)), key, supply
        else:
            uniq, inv = np.unique(key, return_inverse=True)
            demand, cap = np.bincount(inv, weights=val), supply[uniq]
        tight = demand > cap + 1e-9
        if not tight.any():
            return
        row_of = np.cumsum(tight) - 1
        keep = tight[inv]
        self.add(row_of[inv[keep]], col[keep], val[keep], np.full(int(tight.sum()), -np.inf), cap[tight])

    def matrix(self, n_cols: int) -> sp.csr_matrix:
        if not self.rows:
            return sp.csr_matrix((0, n_cols))
        return sp.csr_matrix(
            (np.concatenate(self.vals), (np.concatenate(self.rows), np.concatenate(self.cols))), shape=(self.n, n_cols)
        )


def _pairs_of(problem: Problem, orders: np.ndarray) -> np.ndarray:
    starts, ends = problem.pair_ptr[orders], problem.pair_ptr[orders + 1]
    return ranges(starts, ends)


def solve_mip(
    problem: Problem,
    orders: np.ndarray | None = None,
    stock: np.ndarray | None = None,
    capacity: np.ndarray | None = None,
    time_limit_s: float | None = None,
    solver: str = "highs",
    hint: list[dict[int, list[int]]] | None = None,
    params: str | None = None,
) -> Solution:
    """Solves the orders given (all by default) against the stock and
    capacity given (the problem's by default); parts of other orders stay
    empty, and the objective and bound are over the orders given. A hint
    (whole orders only) is a starting answer for solvers that take one;
    params: the solver's own parameters (text), in place of ours. Status
    "infeasible" only when the solver proved it; "unknown" when it found no
    answer in its time."""
    orders = np.arange(problem.n_orders) if orders is None else np.asarray(orders, dtype=np.int64)
    stock = problem.stock if stock is None else stock
    capacity = problem.capacity if capacity is None else capacity
    parts: list[dict[int, list[int]]] = [{} for _ in range(problem.n_orders)]
    nowhere = problem.pair_ptr[orders + 1] == problem.pair_ptr[orders]
    if np.isinf(problem.penalty[orders][nowhere]).any():
        return Solution(parts, "infeasible", float("inf"))  # a must-assign order with no allowed node
    if nowhere.all():  # nothing to decide (solvers answer an empty model with no status)
        value = objective(problem, parts, orders)
        return Solution(parts, "optimal", value, value)
    build = _build_split if problem.split else _build_whole
    lb, ub, obj, integral, rows, decode = build(problem, orders, stock, capacity)
    start = None
    if hint is not None and not problem.split:
        col = np.full(len(problem.pair_order), -1)
        col[_pairs_of(problem, orders)] = np.arange(len(lb))
        start = np.zeros(len(lb))
        start[col[problem.pair_of(*flat(hint, orders))]] = 1.0
    s, status = _run(lb, ub, obj, rows, integral, time_limit_s, solver, start, params)
    if status not in (mbh.SolveStatus.OPTIMAL, mbh.SolveStatus.FEASIBLE):
        return Solution(parts, "infeasible" if status == mbh.SolveStatus.INFEASIBLE else "unknown", float("inf"))
    decode(np.round(s.variable_values()).astype(int), parts)
    pen = problem.penalty[orders]  # the model leaves out the constant: every finite penalty
    raw = float(s.best_objective_bound())  # SCIP says "no bound" as -1e20, its infinity
    bound = raw + float(pen[np.isfinite(pen)].sum()) if abs(raw) < SOLVER_INFINITY else -np.inf
    return Solution(parts, "optimal" if status == mbh.SolveStatus.OPTIMAL else "feasible",
                    objective(problem, parts, orders), bound if np.isfinite(bound) else None)


@dataclass
class Relaxation:
    """An optimal solution of the LP relaxation over some orders, with the
    reduced costs of its optimal basis: any integer answer costs at least
    the LP's value plus, for each choice the LP leaves at 0, its reduced
    cost if taken (choices at 1 likewise, for dropping them), so a choice
    whose reduced cost exceeds an answer's gap to the LP's value is not
    in any better answer."""

    pairs: np.ndarray  # the orders' pairs (`_pairs_of` order)
    x: np.ndarray  # per pair
    reduced: np.ndarray  # per pair: of its x; of the cheapest pair of an order: of x[p0] (the order row's slack)
    unserved: np.ndarray  # per order (the orders given, in their order): LP value of leaving it out
    unserved_reduced: np.ndarray  # per order: of leaving it out (inf for must-assign orders)


def solve_relaxation(problem: Problem, orders: np.ndarray, stock: np.ndarray, capacity: np.ndarray,
                     solver: str = "glop", time_limit_s: float | None = None) -> Relaxation | str:
    """The LP relaxation of the whole-order model, or why there is none:
    "infeasible" (proven: then so is the integer problem) or "unknown" (also
    when the time limit came first). On these batches it is nearly integral.

    Written relative to each order's cheapest pair (`_build_relative`): the
    all-zero start is then every order at its cheapest node, which no
    other choice undercuts (every cost is >= 0: dual feasible), so the dual
    simplex starts there and only moves the orders the tight resources
    push out. On 1,000-order batches where nearly every order is contested
    it took a third to a half of the time of the primal simplex on the
    plain model (benchmarks/README.md)."""
    orders = np.asarray(orders, dtype=np.int64)
    built = _build_relative(problem, orders, stock, capacity)
    if built is None:
        return "infeasible"  # a must-assign order with no allowed node
    lb, ub, obj, rows, expand = built
    if len(lb) == 0:  # one way only: every order at its only pair (must-assign), if it fits
        if rows.hi and (np.concatenate(rows.hi) < -1e-9).any():
            return "infeasible"
        return expand(np.zeros(0), np.zeros(0), np.zeros(rows.n))
    s, status = _run(lb, ub, obj, rows, None, time_limit_s, solver, dual=True)
    if status != mbh.SolveStatus.OPTIMAL:
        return "infeasible" if status == mbh.SolveStatus.INFEASIBLE else "unknown"
    return expand(s.variable_values(), s.reduced_costs(), s.dual_values())


def _build_relative(problem: Problem, orders: np.ndarray, stock: np.ndarray, capacity: np.ndarray):
    """The whole-order LP with each order's cheapest pair p0 substituted out:
    x[p0] = 1 - (the order's other x) - u, where u (unserved) exists only
    for orders that may stay unserved. Columns: the other pairs' x (cost
    c - c[p0]) and u (penalty - c[p0]); the order row says x[p0] >= 0; a
    resource row holds every other column's own use minus its order's
    p0's use, against the supply left after every p0. Returns (lb, ub,
    obj, rows, expand: the columns' values -> x of every pair of the
    orders, in `_pairs_of` order), or None when a must-assign order has no pair."""
    counts = problem.pair_ptr[orders + 1] - problem.pair_ptr[orders]
    must = np.isinf(problem.penalty[orders])
    if (must & (counts == 0)).any():
        return None
    pairs = _pairs_of(problem, orders)
    local = np.repeat(np.arange(len(orders)), counts)  # each pair's order, as a row of `orders`
    offset = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has = counts > 0
    is_first = np.zeros(len(pairs), bool)
    is_first[offset[has]] = True
    first = pairs[offset[has]]  # the cheapest pair of each order that has one
    c0 = np.zeros(len(orders))
    c0[has] = problem.pair_cost[first]
    q = np.flatnonzero(~is_first)  # other pairs, as positions in `pairs`
    free = np.flatnonzero(~must & has)  # orders with a u column (an order with no pair is simply unserved)
    n_q, n = len(q), len(q) + len(free)
    col_order = np.concatenate([local[q], free])
    obj = np.concatenate([problem.pair_cost[pairs[q]] - c0[local[q]], problem.penalty[orders[free]] - c0[free]])
    # resource use of every pair (as in _build_whole), then only the resources that can bind
    owner = problem.pair_order[pairs]
    lpos = np.repeat(np.arange(len(pairs)), problem.line_ptr[owner + 1] - problem.line_ptr[owner])
    node = problem.pair_node[pairs]
    use = Rows.empty()
    _, qty, _, cell = problem.entries(pairs)  # (cells numbered in key order: the rows come in the same order)
    use.resource(cell, lpos, qty, stock.ravel()[problem.cell_keys], dense=True)
    use.resource(node, np.arange(len(pairs)), problem.pair_load[pairs], capacity, dense=True)
    rows = Rows.empty()
    rows.add(col_order, np.arange(n), np.ones(n), np.full(len(orders), -np.inf), np.ones(len(orders)))
    if use.n:
        # a column's own use (other pairs), minus its order's p0's use spread over every column of the
        # order (its other x, its u): p0 and another pair are at different nodes, so no entry repeats
        r, pos, v = (np.concatenate(x) for x in (use.rows, use.cols, use.vals))
        at_p0 = is_first[pos]
        column = np.full(len(pairs), -1)
        column[q] = np.arange(n_q)
        by_order = np.argsort(col_order, kind="stable")
        col_ptr = np.searchsorted(col_order[by_order], np.arange(len(orders) + 1))
        eo = local[pos[at_p0]]
        k = col_ptr[eo + 1] - col_ptr[eo]
        rows.add(np.concatenate([r[~at_p0], np.repeat(r[at_p0], k)]),
                 np.concatenate([column[pos[~at_p0]], by_order[ranges(col_ptr[eo], col_ptr[eo + 1])]]),
                 np.concatenate([v[~at_p0], -np.repeat(v[at_p0], k)]), np.full(use.n, -np.inf),
                 np.concatenate(use.hi) - np.bincount(r[at_p0], v[at_p0], use.n))

    def expand(x: np.ndarray, reduced: np.ndarray, duals: np.ndarray) -> Relaxation:
        px, rc = np.zeros(len(pairs)), np.zeros(len(pairs))
        px[q], rc[q] = x[:n_q], reduced[:n_q]
        px[offset[has]] = 1.0 - np.bincount(col_order, x, len(orders))[has]
        rc[offset[has]] = -duals[:len(orders)][has]  # x[p0] is the order row's slack
        out_x, out_rc = np.zeros(len(orders)), np.full(len(orders), np.inf)
        out_x[free], out_rc[free] = x[n_q:], reduced[n_q:]
        out_x[~has], out_rc[~has] = 1.0, 0.0  # no pair: unserved, the only way
        return Relaxation(pairs, np.clip(px, 0.0, 1.0), rc, np.clip(out_x, 0.0, 1.0), out_rc)

    return np.zeros(n), np.ones(n), obj, rows, expand


def _run(lb, ub, obj, rows: Rows, integral, time_limit_s, solver, start=None, params=None, dual=False):
    model = mbh.ModelBuilderHelper()
    model.fill_model_from_sparse_data(lb, ub, obj, np.concatenate(rows.lo) if rows.lo else np.zeros(0),
                                      np.concatenate(rows.hi) if rows.hi else np.zeros(0), rows.matrix(len(lb)))
    if integral is not None:
        for j in np.flatnonzero(integral):
            model.set_var_integrality(int(j), True)
    if start is not None and solver != "highs":  # HiGHS through model_builder crashes on hints (OR-Tools 9.15)
        for j, v in enumerate(start.tolist()):
            model.add_hint(j, v)
    s = mbh.ModelSolverHelper(solver)
    if time_limit_s is not None:
        s.set_time_limit_in_seconds(time_limit_s)
    if params is not None:
        s.set_solver_specific_parameters(params)
    elif solver == "highs":
        s.set_solver_specific_parameters("threads=1\nmip_rel_gap=1e-6\noutput_flag=false\nlog_to_console=false\n")
    elif solver == "glop":  # preprocessing costs more than it saves on these LPs (benchmarks/README.md)
        s.set_solver_specific_parameters("use_preprocessing:false" + (" use_dual_simplex:true" if dual else ""))
    s.solve(model)
    return s, s.status()


def _order_rows(problem: Problem, orders: np.ndarray, col: np.ndarray, owner: np.ndarray, rows: Rows) -> None:
    """Each order served at most once (exactly once when it must be)."""
    must = np.isinf(problem.penalty[orders])
    local = np.searchsorted(orders, owner) if np.all(np.diff(orders) > 0) else _index_of(orders, owner)
    rows.add(local, col, np.ones(len(col)), np.where(must, 1.0, -np.inf), np.ones(len(orders)))


def _index_of(orders: np.ndarray, owner: np.ndarray) -> np.ndarray:
    pos = {int(o): i for i, o in enumerate(orders)}
    return np.array([pos[int(o)] for o in owner], dtype=np.int64)


def _build_whole(problem, orders, stock, capacity):
    pairs = _pairs_of(problem, orders)
    owner = problem.pair_order[pairs]
    node = problem.pair_node[pairs]
    pen = problem.penalty[owner]
    obj = problem.pair_cost[pairs] - np.where(np.isinf(pen), 0.0, pen)
    n = len(pairs)
    rows = Rows.empty()
    cols = np.arange(n)
    _order_rows(problem, orders, cols, owner, rows)
    # stock: one entry per (pair, line of its order)
    lstart, lend = problem.line_ptr[owner], problem.line_ptr[owner + 1]
    line = ranges(lstart, lend)
    pcol = np.repeat(cols, lend - lstart)
    n_skus = stock.shape[1]
    rows.resource(node[pcol] * n_skus + problem.line_sku[line], pcol, problem.line_qty[line].astype(float), stock.ravel())
    rows.resource(node, cols, problem.pair_load[pairs], capacity, dense=True)

    def decode(x: np.ndarray, parts: list) -> None:
        for p in np.flatnonzero(x > 0):
            o = int(owner[p])
            parts[o] = {int(node[p]): list(range(int(problem.line_ptr[o + 1] - problem.line_ptr[o])))}

    return np.zeros(n), np.ones(n), obj, np.ones(n, bool), rows, decode


def _build_split(problem, orders, stock, capacity):
    """Variables: u (a part at the pair's node), z (a line served at that
    node), s (the order is served). Lines of a served order are each served
    once; a line only where its part is open."""
    pairs = _pairs_of(problem, orders)
    owner = problem.pair_order[pairs]
    node = problem.pair_node[pairs]
    n_u = len(pairs)
    lstart, lend = problem.line_ptr[owner], problem.line_ptr[owner + 1]
    zline = ranges(lstart, lend)  # global line index per z
    zpair = np.repeat(np.arange(n_u), lend - lstart)  # u index per z
    n_z = len(zline)
    n_s = len(orders)
    u_cols, z_cols, s_cols = np.arange(n_u), n_u + np.arange(n_z), n_u + n_z + np.arange(n_s)
    must = np.isinf(problem.penalty[orders])
    pen = np.where(must, 0.0, problem.penalty[orders])
    obj = np.concatenate([problem.pair_cost[pairs] + problem.split_penalty, np.zeros(n_z),
                          -(problem.split_penalty + pen)])
    rows = Rows.empty()
    # each line of an order: sum_z z - s = 0
    lines_of = ranges(problem.line_ptr[orders], problem.line_ptr[orders + 1])
    line_row = {int(l): i for i, l in enumerate(lines_of)}
    zrow = np.array([line_row[int(l)] for l in zline], dtype=np.int64)
    order_pos = _index_of(orders, np.repeat(orders, problem.line_ptr[orders + 1] - problem.line_ptr[orders]))
    rows.add(np.concatenate([zrow, np.arange(len(lines_of))]), np.concatenate([z_cols, s_cols[order_pos]]),
             np.concatenate([np.ones(n_z), -np.ones(len(lines_of))]), np.zeros(len(lines_of)), np.zeros(len(lines_of)))
    # z <= u
    rows.add(np.concatenate([np.arange(n_z)] * 2), np.concatenate([z_cols, u_cols[zpair]]),
             np.concatenate([np.ones(n_z), -np.ones(n_z)]), np.full(n_z, -np.inf), np.zeros(n_z))
    # a part holds at least one line (else negative costs would open empty parts)
    n_lines = (lend - lstart)
    has = np.flatnonzero(n_lines > 0)
    rank = np.cumsum(n_lines > 0) - 1
    rows.add(np.concatenate([rank[has], rank[zpair]]), np.concatenate([u_cols[has], z_cols]),
             np.concatenate([np.ones(len(has)), -np.ones(n_z)]), np.full(len(has), -np.inf), np.zeros(len(has)))
    # an order without lines is served by exactly one part, or not at all
    empty = np.flatnonzero(problem.line_ptr[orders + 1] == problem.line_ptr[orders])
    if len(empty):
        at = np.isin(owner, orders[empty])
        local = _index_of(orders[empty], owner[at])
        rows.add(np.concatenate([local, np.arange(len(empty))]), np.concatenate([u_cols[at], s_cols[empty]]),
                 np.concatenate([np.ones(int(at.sum())), -np.ones(len(empty))]), np.zeros(len(empty)), np.zeros(len(empty)))
    n_skus = stock.shape[1]
    rows.resource(node[zpair] * n_skus + problem.line_sku[zline], z_cols, problem.line_qty[zline].astype(float), stock.ravel())
    rows.resource(node, u_cols, problem.pair_load[pairs], capacity, dense=True)
    lb = np.concatenate([np.zeros(n_u + n_z), np.where(must, 1.0, 0.0)])
    ub = np.ones(n_u + n_z + n_s)

    def decode(x: np.ndarray, parts: list) -> None:
        for k in np.flatnonzero(x[u_cols] > 0):
            parts[int(owner[k])][int(node[k])] = []
        for k in np.flatnonzero(x[z_cols] > 0):
            o, nd = int(owner[zpair[k]]), int(node[zpair[k]])
            parts[o].setdefault(nd, []).append(int(zline[k] - problem.line_ptr[o]))

    return lb, ub, obj, np.ones(len(ub), bool), rows, decode


@contextmanager
def solver_output_to_stderr():
    """Sends what the solvers print to stdout to stderr instead, for callers
    whose stdout is their answer (o2o solve, the benchmark's table): HiGHS
    prints some development lines whatever its output options (OR-Tools 9.15)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        ctypes.CDLL(None).fflush(None)  # what C code buffered goes where it was meant to, before the swap back
        os.dup2(saved, 1)
        os.close(saved)
