"""The production solver: decide the uncontested orders directly, split the
contested rest into independent components and solve each with OR-Tools
under the batch's time budget. Never worse than greedy, always feasible
when greedy is. The exact reductions that make this safe are in reduce.py.

Each component is first solved as an LP (on these batches it comes out
integral or nearly so). In a large component the orders the LP answers
whole are fixed and a MIP takes the fractional rest. Fixing by the LP is
not a proof, but the LP's value is a lower bound; if the answer is further
from it than `rel_gap` and budget is left, a MIP over the whole component,
started from the answer, uses the rest of the budget.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

import numpy as np

from engine.routing import flow
from engine.routing.branch import solve_small
from engine.routing.greedy import solve_greedy, status_of
from engine.routing.mip import Relaxation, solve_mip, solve_relaxation
from engine.routing.problem import INF, Problem, Solution, each_cheapest, flat, objective, ranges, whole
from engine.routing.reduce import components, contested, prune_dominated, usage
from engine.routing.repair import (Local, Search, compiled_steps, feasible_first, improve_by_nodes, improve_in_rounds,
                                   lagrangian, priced_fit, priced_options, rounds_apply, single_resource, tabu)

LP_FIRST = 200  # from this size a component keeps a fractional LP's whole answers; below, a MIP takes it all
MIN_SOLVE_S = 0.005  # with less time left than this, no solver is started
MIN_IMPROVE_S = 0.05  # a whole-component MIP is not worth starting with less time than this
SMALL = 16  # up to this many orders, "each at its cheapest" is checked in plain Python first
IMPROVER = "scip"  # takes a starting answer (HiGHS through model_builder cannot)
MAX_CLOSE = 100  # orders an exact MIP may decide after reduced-cost fixing (more: slower than the proof is worth)
HARD_IMPROVER, HARD_PARAMS = "sat", "num_workers:2"  # for must-assign components (CP-SAT, from the answer)
FEASIBLE_GRACE_S = 3.0  # past the budget, what finding a first feasible answer may take (then "unknown")
LP_SHARE = 0.5  # of the time left, what the LP of a must-assign component greedy cannot place may use
LP_PAIR_S = 12e-6  # GLOP's time per pair on type D/E (40 x 1000: 0.4-0.7 s); a longer LP than its share is not started
GREEDY_ORDER_S = 25e-6  # greedy's time per order with stock lines; without (GAP 40 x 1000), 6 us
GREEDY_NO_LINES_S = 8e-6
DECODE_ORDER_S = 10e-6  # per order of a component searched to its deadline: its answer decoded and compared
LAGRANGE_SHARE = 0.25  # of the time left, what the Lagrangian bound may use in place of that LP
PRICED_OPTIONS = (2, 4, 8)  # per order, in the LP that follows it: more only when fewer leave it infeasible
# (on C-E 40 x 1000 two had the whole LP's value, in 7-20 ms against 14-85 for three)
PRICED_LP_SHARE = 0.8  # of the time left, what that LP may use: its whole answers are most of the answer's quality
PRICED_LP_MIN_S = 0.15  # and at least this, up to the budget's end (7-20 ms of CPU; without it, on a machine
# at load 10 it ran out on one instance in four, after 10 ms of CPU, and the priced answer alone was 2-5% above
# the bound; it is no longer given time past the budget, which overran it by the LP's wall time)
DESCEND_SHARE = 0.2  # of the time left after a repair, what the cost descent may use before the MIP starts
FLOW_FROM = 2000  # orders in a component from which its LP is not tried in the budget: flow.py answers it
FLOW_AFTER = 0.8  # of the time left, what the LP of a large component may use before the flow takes over
FLOW_SHARE = 0.8  # of the time left, what the flow may use; neighbourhoods of its answer the rest (at peak,
# 5,000 orders, seeds 0-1: 0.3 / 0.6 / 0.8 of it left clustered 12.8 / 12.6 / 9.8-10.4% above exact, downtown
# 28.9-30.9 / 25.7-29.1 / 21.9-23.4%)
GREEDY_LARGE_S = 6e-6  # CPU per order of greedy on a large batch, kept back for the comparison at the end
# (16-20 ms at 5,000 on a quiet machine, 30-50 at load 3)
REDUCE_ORDER_S = 4e-6  # CPU per order of the reductions (prune, contested, components: 16-20 ms at 5,000 on a
# quiet machine, 27-40 at load 3)
START_ORDER_S = 6e-6  # CPU per order of the priced greedy start (_priced_start; greedy alone: 17-20 ms at 5,000)
FLOW_WHEN = 0.55  # the flow starts a large component when at least this share of its orders' cheapest nodes are full
FLOW_ROUND_PAIR_S = 1e-6  # CPU of the flow's first round per pair (5,000 orders, 40,000 pairs: 35-45 ms)
FLOW_MIN_ROUNDS = 20  # the flow starts only with time for this many of its rounds (about 1 s at 5,000 orders):
# at 200 ms _priced_start (16 rounds of prices) then neighbourhoods ended far closer to exact (peak: 3-8% against
# 10-38%); at 1 s the flow (5 rounds) then neighbourhoods ended closer on clustered, uniform and capacity-tight peak
# (0.3-0.9% against 0.5-1.2%) but 3-7% above exact on downtown peak where the priced start ended at 2.1-2.7% (the
# worst family first); at 2 s the flow (0.51 against 0.94% on average over 6 peak cases)
STOCK_PRICE, CAPACITY_PRICE = 1.0, 2.0  # _priced_start's price steps, x the mean cheapest cost (one round, capacity
# at 1 and 4: 0.5 and 1.8 points further from exact at peak, 200 ms; fill kept 55-68% / 63-83% / 63-74% at 1 / 2 / 4)
PRICE_SHARE = 0.5  # of the time left after the greedy pass, what the rounds of prices may use (16 rounds: 20-35 ms
# at 5,000, load 2; at 200 ms a quarter left 0.3-1.8 points more on 4 of 6 cases, 0.1-0.2 less on 2)
PRICE_ROUNDS, PRICE_DECAY = 16, 0.85  # its rounds of prices and their step's decay (at 5,000 orders, seed 0: 4 / 0.7
# left the start 1-4 points further from exact, 24 / 0.9 about the same as 16 / 0.85)
FILL_ORDER_S = 1e-6  # CPU per order of the component, kept back for _fill_unserved (3-4 ms at 5,000 at load 2)
HOOD = 2500  # orders per neighbourhood, at most
HOOD_ORDER_S, HOOD_AT = 35e-6, 600  # CPU per order of a neighbourhood of 600 solved again (about 20 ms)
HOOD_POWER = 1.7  # its time grows as orders ** this: 260 / 600 / 2,500 orders took 8-12 / 25 / 340-550 ms at load 2
# (sized by 35 us per order whatever the size, a first neighbourhood of 2,500 could run out of the time left
# after the flow at 1 s, and its answer was undone: 21% above exact on downtown peak, against 5% when it fitted)
HOOD_SCALE = HOOD_ORDER_S * HOOD_AT ** (1.0 - HOOD_POWER)  # seconds = HOOD_SCALE * orders ** HOOD_POWER
HOOD_TIME_SHARE = 0.35  # of the time left, what a neighbourhood is sized to take at the last one's pace
HOOD_MIN = 100  # a neighbourhood smaller than this is not worth its set-up
HOOD_CLOSE_S = 0.02  # the time left from which a neighbourhood's answer is closed by reduced costs (its MIP:
# HiGHS took 17 ms of CPU given the last 4 ms of a 5,000-order batch)
TABU_PATIENCE = 2000  # moves without a better answer after which the tabu search hands over to CP-SAT,
TABU_PATIENCE_SHARE = 0.25  # once this share of its time has also passed without one
HARD_MIP_SHARE = 0.3  # of the time left, what the MIP on a must-assign component's rest may use after the repair
ROUNDS_FROM = 200  # orders in a must-assign component from which the rest goes to improve_in_rounds, not a MIP
SEARCH_SHARE = 0.75  # of the time left, what such a component (repair and search) may use: its last quarter
# bought little (C-E 40 x 1000 seeds 1-6 on 150 and 200 ms of CPU: mean gap to the bound 0.25 / 0.24%,
# 0.42 / 0.42%, 0.49 / 0.46%), and it absorbs what runs past the deadline on a loaded machine


@dataclass
class Answer:
    """One component's answer: its orders' objective and a lower bound on it."""

    orders: np.ndarray
    objective: float
    bound: float
    proven: bool
    infeasible: bool = False  # proven: no answer places every must-assign order
    improve: bool = True  # worth a whole-component MIP if time is left (not for components too large for one)
    greedy: Solution | None = None  # greedy's answer on the component from the same supply, when it was run

    def gap(self) -> float:
        if not np.isfinite(self.objective):
            return np.inf  # a must-assign order left out: worth any time left
        return (self.objective - self.bound) / max(1.0, abs(self.objective))


def solve_optimal(problem: Problem, time_limit_s: float = 0.2, solver: str = "highs", rel_gap: float = 1e-3) -> Solution:
    """rel_gap: an answer this close to its lower bound (relative) is not
    worked on further; the default keeps batch latency down (closing the
    last of the gap costs far more time than it saves: figures in
    benchmarks/README.md), o2o solve asks for less."""
    if not problem.split and np.isinf(problem.penalty).any():
        compiled_steps()  # loaded once per process, outside the budget (repair.compiled_steps)
    deadline = time.perf_counter() + time_limit_s
    if (quick := each_at_cheapest(problem)) is not None:
        return quick
    reserve = 0.0
    # a large batch's answer is compared with greedy's at the end: the time that takes is kept back, and with
    # no time for the reductions and a start as well (a loaded machine) greedy's answer is all there is
    if problem.n_orders >= FLOW_FROM and np.isfinite(problem.penalty).all():
        if deadline - time.perf_counter() < (REDUCE_ORDER_S + START_ORDER_S + GREEDY_LARGE_S) * problem.n_orders:
            return replace(solve_greedy(problem), status="feasible")
        reserve = GREEDY_LARGE_S * problem.n_orders
        deadline -= reserve
    began = time.perf_counter()
    work = prune_dominated(problem)  # same optimum, fewer pairs
    parts: list[dict[int, list[int]]] = [{} for _ in range(problem.n_orders)]
    served = np.flatnonzero(work.pair_ptr[1:] > work.pair_ptr[:-1])
    if work.split and (work.pair_cost < 0).any():
        open_orders = served  # two negative-cost parts may beat one: no shortcut
    else:
        open_orders = contested(work, served, work.stock, work.capacity)
    # residual supply is only needed when something is contested (copying 600 x 2,000 per batch is not free)
    stock = _residual(work.stock) if len(open_orders) else work.stock
    capacity = work.capacity.astype(float, copy=True)
    if len(open_orders) < len(served):
        free = np.setdiff1d(served, open_orders)
        first = work.pair_ptr[free]
        first = first[work.pair_cost[first] <= work.penalty[free]]  # else unserved is cheaper
        _assign(work, first, parts)
        if len(open_orders):
            _take_pairs(work, first, stock, capacity)
    # the small components together in one quick MIP (one solver call, not one each), then each large one
    groups = components(work, open_orders, stock, capacity)
    # how much slower than on a quiet machine this batch runs (the reductions' time against what they take there):
    # a loaded machine slows every phase alike, and the flow path's estimates are scaled by it
    pace = max(1.0, (time.perf_counter() - began) / (REDUCE_ORDER_S * problem.n_orders))
    if reserve:  # greedy's time at the end, at this pace
        deadline -= (pace - 1.0) * reserve
    small = [c for c in groups if len(c) < LP_FIRST]
    groups = [(c, True) for c in groups if len(c) >= LP_FIRST]
    if small:
        groups.insert(0, (np.sort(np.concatenate(small)), False))
    answers = [_solve_component(work, c, large, parts, stock, capacity, deadline, solver, pace=pace)
               for c, large in groups]
    for a in sorted(answers, key=Answer.gap, reverse=True):
        if a.gap() > rel_gap and a.improve and not a.infeasible and not work.split \
                and deadline - time.perf_counter() >= MIN_IMPROVE_S:
            _improve(work, a, parts, stock, capacity, deadline)
    proven = all(a.proven for a in answers)
    # one component holding every order, from the problem's own supply: its greedy answer is greedy's
    same = answers[0].greedy if len(answers) == 1 and work is problem and len(open_orders) == len(served) \
        and len(answers[0].orders) == len(served) else None
    if same is not None:  # (its status was over the component's orders: orders with no node count too)
        same = replace(same, status=status_of(problem, same.parts))
    if any(not p and np.isinf(problem.penalty[o]) for o, p in enumerate(parts)):
        # infeasible only when proven: a must-assign order with no allowed node, or a component proven so
        nowhere = np.isinf(work.penalty) & (work.pair_ptr[1:] == work.pair_ptr[:-1])
        status = "infeasible" if nowhere.any() or any(a.infeasible for a in answers) else "unknown"
        return _no_worse_than_greedy(problem, Solution(parts, status, float("inf")), same)
    value = objective(problem, parts)
    # the bound: what is decided outright costs what it costs; the rest is bounded per component
    bound = problem.round_bound(value + sum(a.bound - a.objective for a in answers))
    mine = Solution(parts, "optimal" if proven else "feasible", value, bound if np.isfinite(bound) else None)
    return mine if proven else _no_worse_than_greedy(problem, mine, same)


_scratch = threading.local()


def _residual(stock: np.ndarray) -> np.ndarray:
    """A float copy of the stock for a batch to work down, in this thread's
    memory from the batch before: a fresh 600 x 2,000 copy took 2-4 ms of
    a downtown batch on a loaded machine (new pages), the copy into warm
    memory a fraction of that. Nothing keeps it past solve_optimal."""
    buf = getattr(_scratch, "stock", None)
    if buf is None or buf.shape != stock.shape:
        buf = _scratch.stock = np.empty(stock.shape)
    np.copyto(buf, stock)
    return buf


def each_at_cheapest(problem: Problem) -> Solution | None:
    """Every order at its cheapest node, or unserved where that costs less:
    no order can do better, so when they all fit together this is the
    optimum. A small batch (one or two orders, off-peak) is answered here in
    microseconds; the array path below costs about a millisecond whatever
    the size. None when they do not fit."""
    n = problem.n_orders
    if problem.split and bool((problem.pair_cost < 0).any()):
        return None  # two negative-cost parts may beat one
    if n > SMALL:
        return each_cheapest(problem)  # the same, in arrays
    ptr, lptr = problem.pair_ptr.tolist(), problem.line_ptr.tolist()
    parts: list[dict[int, list[int]]] = [{} for _ in range(n)]
    cap: dict[int, float] = {}
    held: dict[tuple[int, int], float] = {}
    value = 0.0
    for o in range(n):
        penalty = float(problem.penalty[o])
        if ptr[o] == ptr[o + 1] or float(problem.pair_cost[ptr[o]]) > penalty:
            if penalty == INF:
                return None
            value += penalty
            continue
        p = ptr[o]
        node = int(problem.pair_node[p])
        cap[node] = cap.get(node, 0.0) + float(problem.pair_load[p])
        if cap[node] > problem.capacity[node]:
            return None
        for line in range(lptr[o], lptr[o + 1]):
            cell = (node, int(problem.line_sku[line]))
            held[cell] = held.get(cell, 0.0) + float(problem.line_qty[line])
            if held[cell] > problem.stock[cell]:
                return None
        parts[o] = {node: list(range(lptr[o + 1] - lptr[o]))}
        value += float(problem.pair_cost[p])
    return Solution(parts, "optimal", value, value)


def _solve_component(work: Problem, orders: np.ndarray, large: bool, parts, stock, capacity, deadline: float,
                     solver: str, by_flow: bool = True, close_from: float = MIN_SOLVE_S, pace: float = 1.0) -> Answer:
    """Solves one component in place (parts, stock and capacity are updated).
    The LP first: when it comes out integral that is the proven optimum; a
    large component keeps what the LP answers whole and a MIP takes the
    fractional rest; a small one goes to a MIP whole (a proof is cheap there).
    Must-assign orders that greedy cannot place get a feasible answer first
    (repair.py), which the MIP then starts from."""
    by_flow = by_flow and large and flow.applies(work, orders)
    if by_flow and len(orders) >= FLOW_FROM:
        # the LP alone would take 0.3-8 s here (benchmarks/README.md)
        return _by_flow(work, orders, parts, stock, capacity, deadline, solver, pace)
    rest, bound, lp = orders, -np.inf, None
    # must-assign orders a greedy pass cannot place (tight generalised assignment): the LP gets at most a
    # share of the time, its whole answers are kept whatever the size, and a descent improves the answer
    greedy = _greedy_on(work, orders, stock, capacity) if not work.split and np.isinf(work.penalty[orders]).any() \
        else None
    hard = greedy is not None and greedy.status == "infeasible"
    searched = greedy is not None and len(orders) > ROUNDS_FROM \
        and (hard or _lp_too_long(work, orders, deadline - time.perf_counter()))
    # a component that uses all of its time: keep back what the final comparison with greedy and the answer's
    # decoding take (past the budget otherwise: 6-15 ms of wall at 1,000 orders on a loaded machine)
    last = deadline - ((GREEDY_ORDER_S if work.line_ptr[-1] else GREEDY_NO_LINES_S) * work.n_orders
                       + DECODE_ORDER_S * len(orders)) if hard or searched else deadline
    deadline = last
    if searched:  # a large must-assign component, answered by the repair and the search: they end early (the LP
        # over the priced options and the first round of moves may still use the time up to `last`)
        now = time.perf_counter()
        deadline = now + SEARCH_SHARE * (last - now)
    now = time.perf_counter()
    relaxed, rounding = None, None  # rounding: (pairs, x) to round for the repair's first start
    restricted = False  # the LP saw only some pairs: its reduced costs prove nothing
    # (also when greedy places every order: type B 40 x 1000, whose whole LP took 0.4 s)
    local = None  # the component as options and resources, from its own supply (made once, for the repair's tools)
    if greedy is not None and _lp_too_long(work, orders, (LP_SHARE if hard else 1.0) * (deadline - now)) \
            and single_resource(local := Local.of(work, orders, stock, capacity)):
        # the time limit holds: Lagrangian prices bound the component, and the LP over each order's few
        # cheapest options at those prices (on type C-E 40 x 1000 it had the whole LP's value, in a tenth
        # of its time) gives the whole answers to keep; failing that, the priced answer is the start
        bound, prices = lagrangian(local, now + LAGRANGE_SHARE * (deadline - now))
        for k in PRICED_OPTIONS:  # (infeasible over these options proves nothing: more)
            kept = np.sort(priced_options(local, prices, k))
            mask = np.zeros(len(work.pair_order), bool)
            mask[kept] = True
            now = time.perf_counter()
            relaxed = _relax(work.restricted(mask), orders, stock, capacity,
                             now + max(PRICED_LP_SHARE * (deadline - now), min(PRICED_LP_MIN_S, last - now)))
            if relaxed != "infeasible":
                break
        if isinstance(relaxed, tuple):  # its value bounds the restricted problem only: the Lagrangian bound stays
            relaxed, restricted = (replace(relaxed[0], pairs=kept[relaxed[0].pairs]), bound), True
        else:
            relaxed = None
            chosen = local.pair[priced_fit(local, prices)]
            rounding = chosen[chosen >= 0], np.ones(int((chosen >= 0).sum()))
        # the rest to the repair and the search, as when greedy cannot place every order: on type B 40 x 1000
        # (greedy places them) HiGHS on the LP's fractional rest of 21-24 orders took 35-45 ms of CPU whatever
        # its time limit, and 110-180 ms of wall at load 8 with 70-100 left: the budget overran by up to 70 ms
        hard = True
    elif not work.split:
        relaxed = _relax(work, orders, stock, capacity, now + LP_SHARE * (deadline - now) if hard
                         else now + FLOW_AFTER * (deadline - now) if by_flow else deadline)
    if relaxed == "unknown" and by_flow:
        # the LP ran out of its share (a loaded machine: it is timed by the clock): the flow's answer, not greedy's
        return _by_flow(work, orders, parts, stock, capacity, deadline, solver, pace)
    if relaxed == "infeasible":  # then so is the integer problem
        return Answer(orders, np.inf, np.inf, False, infeasible=True, greedy=greedy)
    if isinstance(relaxed, tuple):
        lp, bound = relaxed
        pairs, x = lp.pairs, lp.x
        rounding = pairs, x
        fractional = _fractional(work, pairs, x)
        if large or hard or not fractional[orders].any():
            rest = _fix(work, orders, pairs, x, fractional, parts, stock, capacity)
    proven = infeasible = False
    if len(rest):
        start = _feasible_start(work, rest, stock, capacity, deadline, rounding, hard=hard)
        left = deadline - time.perf_counter()
        if hard and start is not None:
            # the rest to the tabu search (then CP-SAT); no MIP over a component too large for its LP
            # (none above ROUNDS_FROM orders: on C-E 40 x 1000 SCIP took 20-30 ms and improved nothing, which
            # improve_in_rounds then used for 0.1-0.3% below the repair's answer)
            left = left * HARD_MIP_SHARE if (lp is not None or not large) and len(orders) <= ROUNDS_FROM else 0.0
        if start is None:
            # not over a whole large component (no must-assign order) whose LP ran out of time: HiGHS on a
            # neighbourhood of 600-700 orders given the last 25-30 ms took 100-110 ms of CPU and found nothing
            # (5,000-order batches)
            sol = _exact(work, rest, stock, capacity, left, solver) if left > MIN_SOLVE_S \
                and not (large and greedy is None and rest is orders and relaxed == "unknown") else None
        else:  # HiGHS takes no starting answer through model_builder: the solver that does
            sol = solve_mip(work, rest, stock, capacity, time_limit_s=left, solver=IMPROVER, hint=start.parts) \
                if left > MIN_SOLVE_S else None
        if sol is not None and sol.status == "infeasible" and rest is orders:
            infeasible = True  # proven by the solver on the whole component
        if sol is None or sol.status in ("infeasible", "unknown") or (
                start is not None and start.objective < sol.objective - 1e-9):
            sol = start if start is not None else _greedy_on(work, rest, stock, capacity)
        elif rest is orders:  # the MIP saw the whole component: its bound holds for it
            proven, bound = sol.status == "optimal", max(bound, sol.bound if sol.bound is not None else -np.inf)
        for o in rest:
            parts[o] = sol.parts[o]
        _take(work, parts, rest, stock, capacity)
    value = objective(work, parts, orders)
    bound = work.round_bound(bound)
    proven = proven or _meets(value, bound)
    if hard and np.isfinite(value) and not proven:  # (type A 40 x 1000: the priced LP's answer is whole, optimal)
        value = _descend(work, orders, parts, stock, capacity, deadline, local, last=last)
    answer = Answer(orders, value, bound, proven or _meets(value, bound), infeasible,
                    improve=not searched, greedy=greedy)
    # (not on tight must-assign components: HiGHS proves nothing there in any useful time, and CP-SAT
    # started from the answer, in _improve, uses the time better)
    if not answer.proven and not hard and not restricted and lp is not None and rest is not orders \
            and np.isfinite(value):
        _close_by_reduced_costs(work, answer, lp, parts, stock, capacity, deadline, min_left=close_from)
    return answer


def _by_flow(work: Problem, orders: np.ndarray, parts, stock, capacity, deadline: float, solver: str,
             pace: float = 1.0) -> Answer:
    """A start, then neighbourhoods of it solved exactly while the budget
    lasts; in place, like _solve_component. The start: where capacity
    binds (FLOW_WHEN) and the time left holds FLOW_MIN_ROUNDS of its
    rounds, the priced min-cost flow (flow.py, exact on capacity) for a
    share of the time; else greedy at prices of what binds
    (_priced_start). At 5,000 orders off-peak (stock binding) the flow's
    first round cost more than greedy's answer and served no more (README,
    "5,000 orders"). pace: how much slower than on a quiet machine this
    batch runs; the estimates of what a phase takes are scaled by it."""
    nodes = np.full(work.n_orders, -1)
    if deadline - time.perf_counter() < pace * START_ORDER_S * len(orders):
        # no time for a start (a loaded machine): the component unserved, and greedy's answer is the one returned
        return Answer(orders, _value(work, orders, nodes[orders]), -np.inf, False, improve=False)
    n_pairs = int((work.pair_ptr[orders + 1] - work.pair_ptr[orders]).sum())
    now = time.perf_counter()
    # (no phase is started that would end past the budget)
    if _at_full_cheapest(work, orders, capacity) >= FLOW_WHEN \
            and deadline - now > FLOW_MIN_ROUNDS * pace * FLOW_ROUND_PAIR_S * n_pairs / FLOW_SHARE:
        nodes[orders] = flow.solve_flow(work, orders, stock, capacity, now + FLOW_SHARE * (deadline - now),
                                        last=deadline)
    else:
        # (the greedy pass after the prices takes about START_ORDER_S per order)
        until = now + PRICE_SHARE * (deadline - now - pace * START_ORDER_S * len(orders))
        nodes[orders] = _priced_start(work, orders, stock, capacity, until=until)
    answer = whole(work, nodes.tolist())
    for o in orders:
        parts[o] = answer[o]
    _take_pairs(work, work.pair_of(orders[nodes[orders] >= 0], nodes[orders][nodes[orders] >= 0]), stock, capacity)
    _neighbourhoods(work, orders, nodes, parts, stock, capacity, deadline - pace * FILL_ORDER_S * len(orders), solver)
    _fill_unserved(work, orders, nodes, parts, stock, capacity)
    return Answer(orders, _value(work, orders, nodes[orders]), -np.inf, False, improve=False)


def _fill_unserved(work: Problem, orders: np.ndarray, nodes: np.ndarray, parts, stock, capacity) -> None:
    """The unserved orders placed where they now fit, the orders of most value
    first (in place; nodes kept in step): the neighbourhoods moved orders
    and freed supply that the orders outside them could not see. At 5,000
    orders and 200 ms it placed 1-7 more (greedy's answer replaces one
    that serves fewer orders than it: off-peak downtown came within 3)."""
    out = orders[nodes[orders] < 0]
    out = out[work.pair_ptr[out + 1] > work.pair_ptr[out]]
    if not len(out):
        return
    placed = solve_greedy(work.with_supply(stock, capacity), _by_value(work, out))
    got = _nodes_of(placed.parts, out)
    if not (got >= 0).any():
        return
    new = out[got >= 0]
    nodes[new] = got[got >= 0]
    for o in new.tolist():
        parts[o] = placed.parts[o]
    _take_pairs(work, work.pair_of(new, nodes[new]), stock, capacity)


def _priced_start(work: Problem, orders: np.ndarray, stock: np.ndarray, capacity: np.ndarray,
                  rounds: int = PRICE_ROUNDS, until: float = np.inf) -> np.ndarray:
    """Greedy, the orders of most value first, each at its cheapest node by
    a price that counts what it takes. The prices come from rounds of
    tatonnement: each order picks its cheapest node at the prices so far,
    and every stock cell and node capacity those picks overfill gets
    dearer by the share overfilled (x STOCK_PRICE / CAPACITY_PRICE x the
    mean cheapest cost, the step shrinking by PRICE_DECAY a round). Orders
    then steer clear of what binds where a node nearly as cheap has room.
    At 5,000 orders (seed 0, the start alone against exact): downtown peak
    8% above exact after 16 rounds, 17% after one, 41% for the flow's first
    round; uniform peak 7 / 17%, capacity-tight peak 4 / 10%; off-peak
    4-9% against 9-12% for the greedy without prices (README, "5,000
    orders", 2026-12-07). The node of
    each order given (-1: unserved). No round starts after `until`."""
    ptr = work.pair_ptr
    pairs = ranges(ptr[orders], ptr[orders + 1])
    pairs = pairs[work.pair_cost[pairs] <= work.penalty[work.pair_order[pairs]]]  # else unserved is cheaper
    if not len(pairs):
        return np.full(len(orders), -1)
    owner = work.pair_order[pairs]
    first = np.ones(len(pairs), bool)
    first[1:] = owner[1:] != owner[:-1]
    starts = np.flatnonzero(first)
    seg = np.cumsum(first) - 1  # each pair's order, numbered
    key, qty, _, cell = work.entries(pairs)
    entry_pair = work.entry_owner(pairs)
    n_cells = len(work.cell_keys)
    supply = np.zeros(n_cells)
    supply[cell] = stock.reshape(-1)[key]
    node, load = work.pair_node[pairs], work.pair_load[pairs]
    cost = work.pair_cost[pairs]
    unit = max(1.0, float(cost[first].mean()))
    cell_price, node_price = np.zeros(n_cells), np.zeros(work.n_nodes)
    picked, priced = first, cost
    for r in range(rounds + 1):
        demand = np.bincount(cell, qty * picked[entry_pair], n_cells)
        taken = np.bincount(node[picked], load[picked], work.n_nodes)
        step = unit * PRICE_DECAY ** r
        cell_price += step * STOCK_PRICE * np.where(demand > supply, 1.0 - supply / np.maximum(demand, 1e-9), 0.0)
        node_price += step * CAPACITY_PRICE * np.where(
            taken > capacity, 1.0 - np.maximum(capacity, 0.0) / np.maximum(taken, 1e-9), 0.0)
        priced = cost + np.bincount(entry_pair, cell_price[cell], len(pairs)) + node_price[node]
        if r == rounds or time.perf_counter() > until:
            break
        at = np.flatnonzero(priced <= np.minimum.reduceat(priced, starts)[seg])
        at = at[np.concatenate([[True], seg[at][1:] != seg[at][:-1]])]  # one per order (ties: the first)
        picked = np.zeros(len(pairs), bool)
        picked[at] = True
    perm = pairs[np.lexsort((priced, owner))]
    # (an order stops at a pair dearer than its penalty: with the prices added, only where the true cost is)
    sub = work.permuted(perm, pair_cost=np.zeros(len(perm)), penalty=np.full(work.n_orders, 1.0), stock=stock,
                        capacity=capacity)
    return _nodes_of(solve_greedy(sub, _by_value(work, orders)).parts, orders)


def _at_full_cheapest(work: Problem, orders: np.ndarray, capacity: np.ndarray) -> float:
    """The share of the given orders whose cheapest node has less room than
    the orders whose cheapest it is: how much capacity binds. At 5,000
    orders 0.11-0.19 off-peak (clustered, uniform, promo-heavy), 0.39-0.48
    off-peak downtown and capacity-tight, 0.60-0.76 at peak."""
    has = orders[work.pair_ptr[orders + 1] > work.pair_ptr[orders]]
    if not len(has):
        return 0.0
    first = work.pair_ptr[has]
    node = work.pair_node[first]
    return float((np.bincount(node, work.pair_load[first], work.n_nodes) > capacity + 1e-9)[node].mean())


def _by_value(work: Problem, orders: np.ndarray) -> np.ndarray:
    """The orders, the most valuable first (by the penalty of leaving them unserved; ties in their order)."""
    return orders[np.argsort(-work.penalty[orders], kind="stable")]


def _nodes_of(parts, orders: np.ndarray) -> np.ndarray:
    """The node of each given whole order (-1: unserved)."""
    return np.array([next(iter(parts[o]), -1) for o in orders.tolist()], dtype=np.int64)


def _value(work: Problem, orders: np.ndarray, nodes: np.ndarray) -> float:
    """What whole orders at these nodes (-1: unserved) cost, as objective() sums it."""
    at = nodes >= 0
    return float(work.pair_cost[work.pair_of(orders[at], nodes[at])].sum() + work.penalty[orders[~at]].sum())


def _neighbourhoods(work: Problem, orders: np.ndarray, nodes: np.ndarray, parts, stock, capacity, deadline: float,
                    solver: str) -> None:
    """Large-neighbourhood search on a component's answer (in place; nodes:
    each whole order's node, kept in step with parts): an unserved order
    and the orders now at the nodes it could use, then another (the unserved
    of most value first), until HOOD orders, are released and solved again
    (LP, MIP on its fractional rest) against what the others leave; a worse
    answer (the budget ran out in the LP) is undone. A neighbourhood is
    started only when one of its size fits in the time left."""
    tried = np.zeros(work.n_orders, bool)
    has_pairs = work.pair_ptr[orders + 1] > work.pair_ptr[orders]
    # a neighbourhood of n orders takes about scale * n ** HOOD_POWER seconds, scale as the last one took
    scale = HOOD_SCALE
    while (left := deadline - time.perf_counter()) > scale * HOOD_MIN ** HOOD_POWER:
        size = min(HOOD, int((HOOD_TIME_SHARE * left / scale) ** (1.0 / HOOD_POWER)))
        mine = nodes[orders]
        served = mine >= 0
        seeds = orders[~served & ~tried[orders] & has_pairs]
        if len(seeds):
            seeds = _by_value(work, seeds)
        else:  # then the served orders furthest above their cheapest node (first pair), the dearest first
            seeds = orders[served & ~tried[orders]]
            regret = work.pair_cost[work.pair_of(seeds, nodes[seeds])] - work.pair_cost[work.pair_ptr[seeds]]
            seeds = seeds[regret > 1e-9][np.argsort(-regret[regret > 1e-9], kind="stable")]
            if not len(seeds):
                return
        part_o, part_n = orders[served], mine[served]
        at_node = np.argsort(part_n, kind="stable")
        node_ptr = np.searchsorted(part_n[at_node], np.arange(work.n_nodes + 1))
        hood: set[int] = set()
        for u in seeds.tolist():
            tried[u] = True
            hood.add(u)
            for n in work.pair_node[work.pair_ptr[u]:work.pair_ptr[u + 1]].tolist():
                hood.update(part_o[at_node[node_ptr[n]:node_ptr[n + 1]]].tolist())
            if len(hood) >= size:
                break
        release = np.array(sorted(hood), dtype=np.int64)
        saved = nodes[release]
        before = _value(work, release, saved)
        held = work.pair_of(release[saved >= 0], saved[saved >= 0])
        _take_pairs(work, held, stock, capacity, sign=-1.0)
        for o in release.tolist():
            parts[o] = {}
        began = time.perf_counter()
        a = _solve_component(work, release, True, parts, stock, capacity, deadline, solver, by_flow=False,
                             close_from=HOOD_CLOSE_S)
        scale = max(HOOD_SCALE / 4,
                    (time.perf_counter() - began) / len(release) ** HOOD_POWER)
        if a.objective > before + 1e-9:
            _take(work, parts, release, stock, capacity, sign=-1)
            _assign(work, held, parts)
            for o in release[saved < 0].tolist():
                parts[o] = {}
            _take_pairs(work, held, stock, capacity)
        else:
            nodes[release] = _nodes_of(parts, release)


def _close_by_reduced_costs(work: Problem, a: Answer, lp: Relaxation, parts, stock, capacity, deadline: float,
                            min_left: float = MIN_SOLVE_S) -> None:
    """Proves the answer optimal, or finds the optimum, by reduced-cost
    fixing (in place, like _solve_component): a choice the LP leaves at 0
    whose reduced cost exceeds the answer's gap to the LP's value is in no
    better answer (choices at 1 likewise); the orders left with one choice
    take it, and an exact MIP decides the rest. On the benchmark batches
    whose LP was fractional this left a few dozen orders open."""
    margin = a.objective - a.bound + 1e-7 * max(1.0, abs(a.objective))
    out = (lp.x <= 1e-6) & (lp.reduced > margin)
    forced = (lp.x >= 1 - 1e-6) & (lp.reduced < -margin)
    owner = work.pair_order[lp.pairs]
    local = np.searchsorted(a.orders, owner)
    may_skip = ~((lp.unserved <= 1e-6) & (lp.unserved_reduced > margin))
    has_forced = np.bincount(local[forced], minlength=len(a.orders)) > 0
    out |= has_forced[local] & ~forced
    may_skip &= ~has_forced
    options = np.bincount(local[~out], minlength=len(a.orders)) + may_skip
    if (options == 0).any():  # an order that cannot be placed better: no better answer exists
        a.bound, a.proven = a.objective, True
        return
    open_orders = a.orders[options > 1]
    left = deadline - time.perf_counter()
    if len(open_orders) > MAX_CLOSE or left < min_left:
        return
    _take(work, parts, a.orders, stock, capacity, sign=-1)  # the component's own use back
    one = a.orders[options == 1]
    fixed = [{} for _ in range(work.n_orders)]
    kept = lp.pairs[~out]
    at = kept[np.isin(work.pair_order[kept], one)]
    _assign(work, at, fixed)
    rest_stock, rest_capacity = stock.copy(), capacity.copy()
    _take_pairs(work, at, rest_stock, rest_capacity)
    keep = np.ones(len(work.pair_order), bool)
    keep[lp.pairs[out]] = False
    penalty = work.penalty.copy()
    penalty[a.orders[~may_skip]] = np.inf
    sub = replace(work.restricted(keep), penalty=penalty)
    sol = _exact(sub, open_orders, rest_stock, rest_capacity, left)
    if sol.status in ("optimal", "feasible"):
        for o in open_orders:
            fixed[o] = sol.parts[o]
        value = objective(work, fixed, a.orders)
        if value < a.objective - 1e-9:
            for o in a.orders:
                parts[o] = fixed[o]
            a.objective = value
    if sol.status in ("optimal", "infeasible"):  # no better answer outside what was solved exactly
        a.bound, a.proven = a.objective, True
    _take(work, parts, a.orders, stock, capacity)


def _descend(work: Problem, orders: np.ndarray, parts, stock, capacity, deadline: float,
             local: Local | None = None, last: float | None = None) -> float:
    """Shifts and swaps that lower the cost and keep every resource within
    supply (repair.py), until none does or the deadline; in place. On type
    B-E GAP of 100 orders it improved an answer more in 150 ms than SCIP or
    CP-SAT started from it (benchmarks/README.md). last: until when the
    first round of moves may start, past the deadline. Returns the objective."""
    _take(work, parts, orders, stock, capacity, sign=-1)
    if local is None:  # (given: made from this same supply; 5-9 ms at 40 x 1000)
        local = Local.of(work, orders, stock, capacity)
    at = work.pair_of(*flat(parts, orders))
    served = np.array([bool(parts[o]) for o in orders])
    chosen = np.full(len(orders), -1)
    chosen[served] = local.option_of[at]
    owner = np.repeat(np.arange(len(orders)), np.diff(local.ptr))
    skip = np.flatnonzero(local.pair < 0)  # the "unserved" option of the orders that have one
    chosen[owner[skip][~served[owner[skip]]]] = skip[~served[owner[skip]]]
    if (chosen >= 0).all() and time.perf_counter() < (deadline if last is None else max(deadline, last)):
        if single_resource(local):
            # on large components many improving moves per round, to their local optimum (the tabu search
            # over all orders found nothing better from it), then the orders of a few nodes at a time searched
            # again; up to ROUNDS_FROM orders the tabu search, which weighs every swap each step (it did better
            # alone on C-E 10 x 100) and may pass through answers that overfill; then CP-SAT from its best
            if len(orders) > ROUNDS_FROM and rounds_apply(local):
                chosen = improve_by_nodes(local, improve_in_rounds(local, chosen, deadline, first_by=last), deadline)
            else:
                chosen = tabu(local, chosen, deadline, patience=TABU_PATIENCE,
                              patience_s=TABU_PATIENCE_SHARE * (deadline - time.perf_counter()))
            assert chosen is not None  # it started from a fitting answer
        else:
            search = Search(local, chosen, seed=0)
            search.descend(deadline)
            chosen = search.chosen
        nodes = np.full(work.n_orders, -1)
        nodes[orders] = local.node[chosen]
        better = whole(work, nodes.tolist())
        if objective(work, better, orders) < objective(work, parts, orders) - 1e-9:
            for o in orders:
                parts[o] = better[o]
    _take(work, parts, orders, stock, capacity)
    return objective(work, parts, orders)


def _feasible_start(work: Problem, orders: np.ndarray, stock, capacity, deadline: float,
                    lp: tuple[np.ndarray, np.ndarray] | None, hard: bool = False) -> Solution | None:
    """A feasible answer for must-assign orders a greedy pass cannot place
    (None when there are none, or none was found). lp: (pairs, x), the
    relaxation's answer (or the priced one) to round for the first start;
    hard: greedy is known not to place them. The repair may take the whole
    budget (a feasible answer first); the cost descent at most a fifth of
    what is left after it."""
    if work.split or not np.isinf(work.penalty[orders]).any():
        return None
    if not hard and _greedy_on(work, orders, stock, capacity).status != "infeasible":
        return None
    # feasibility first: with no feasible answer yet, the construction and repair may run past the budget
    # (by at most FEASIBLE_GRACE_S); the cost descent then gets none of the extra time
    pairs = feasible_first(work, orders, stock, capacity, deadline, lp=lp, descend_share=DESCEND_SHARE,
                           grace=time.perf_counter() + FEASIBLE_GRACE_S)
    if pairs is None:
        return None
    nodes = np.full(work.n_orders, -1)
    nodes[orders] = work.pair_node[np.maximum(pairs, 0)]
    nodes[orders[pairs < 0]] = -1
    sol_parts = whole(work, nodes.tolist())
    return Solution(sol_parts, "feasible", objective(work, sol_parts, orders))


def _improve(work: Problem, a: Answer, parts, stock, capacity, deadline: float) -> None:
    """A MIP over the whole component, started from its answer, for the rest of the budget."""
    _take(work, parts, a.orders, stock, capacity, sign=-1)  # the component's own use back
    if not np.isfinite(a.objective):  # a must-assign order left out (the LP's fix left it no room): repair first
        start = _feasible_start(work, a.orders, stock, capacity, deadline, None)
        if start is not None:
            for o in a.orders:
                parts[o] = start.parts[o]
            a.objective = start.objective
    must = bool(np.isinf(work.penalty[a.orders]).any())
    sol = solve_mip(work, a.orders, stock, capacity, time_limit_s=deadline - time.perf_counter(),
                    solver=HARD_IMPROVER if must else IMPROVER, hint=parts, params=HARD_PARAMS if must else None)
    if sol.status == "infeasible":
        a.infeasible = True
    elif sol.status != "unknown":
        if sol.objective < a.objective - 1e-9:
            for o in a.orders:
                parts[o] = sol.parts[o]
            a.objective = sol.objective
        if sol.bound is not None:
            a.bound = max(a.bound, work.round_bound(sol.bound))
        a.proven = sol.status == "optimal" or a.objective <= a.bound + 1e-9 * max(1.0, abs(a.bound))
    _take(work, parts, a.orders, stock, capacity)


def _no_worse_than_greedy(problem: Problem, mine: Solution, greedy: Solution | None = None) -> Solution:
    """An answer not proven optimal against greedy's: greedy's unless this
    one fills at least as many orders and costs no more. (Fill first: at
    5,000 orders an answer could cost less than greedy's and leave more
    orders unserved, which a customer sees and the objective's penalties
    weigh only in part.)"""
    greedy = solve_greedy(problem) if greedy is None else greedy
    if greedy.status != "infeasible" and (mine.status == "infeasible" or greedy.objective < mine.objective - 1e-9
                                          or greedy.filled > mine.filled):
        return Solution(greedy.parts, "feasible", greedy.objective, mine.bound)
    return mine


def _assign(problem: Problem, pairs: np.ndarray, parts: list[dict[int, list[int]]]) -> None:
    """Whole orders to the nodes of the given pairs."""
    n_lines = problem.line_ptr[1:] - problem.line_ptr[:-1]
    for o, n in zip(problem.pair_order[pairs].tolist(), problem.pair_node[pairs].tolist()):
        parts[o] = {n: list(range(n_lines[o]))}


def _exact(problem: Problem, orders: np.ndarray, stock: np.ndarray, capacity: np.ndarray, time_limit_s: float,
           solver: str = "highs") -> Solution:
    """The optimum over the given orders: a handful by branch and bound
    (branch.py: HiGHS's set-up alone took longer), more by the MIP."""
    return solve_small(problem, orders, stock, capacity) \
        or solve_mip(problem, orders, stock, capacity, time_limit_s=time_limit_s, solver=solver)


def _relax(problem: Problem, orders: np.ndarray, stock: np.ndarray, capacity: np.ndarray, deadline: float):
    """The LP relaxation and its value (a lower bound for these orders), or
    why there is none ("unknown" when the budget ran out first)."""
    left = deadline - time.perf_counter()
    if left < MIN_SOLVE_S:
        return "unknown"
    relaxed = solve_relaxation(problem, orders, stock, capacity, time_limit_s=left)
    if isinstance(relaxed, str):
        return relaxed
    pairs, x = relaxed.pairs, relaxed.x
    pen = problem.penalty[orders]
    served = np.bincount(problem.pair_order[pairs], x, problem.n_orders)[orders]
    finite = np.isfinite(pen)
    return relaxed, float(problem.pair_cost[pairs] @ x + pen[finite] @ (1 - served[finite]))


def _meets(value: float, bound: float) -> bool:
    """The answer is at its bound (within float noise): proven optimal."""
    return value <= bound + 1e-9 * max(1.0, abs(bound))


def _lp_too_long(problem: Problem, orders: np.ndarray, share_s: float) -> bool:
    return float((problem.pair_ptr[orders + 1] - problem.pair_ptr[orders]).sum()) * LP_PAIR_S > share_s


def _fractional(problem: Problem, pairs: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(O,) bool: orders the LP splits between nodes or serves in part."""
    out = np.zeros(problem.n_orders, bool)
    out[problem.pair_order[pairs][(x > 1e-6) & (x < 1 - 1e-6)]] = True
    return out


def _fix(problem: Problem, orders, pairs, x, fractional, parts, stock, capacity) -> np.ndarray:
    """Keeps what the LP answers whole (x = 0 or 1 everywhere); returns the
    orders left fractional. On these batches only a few percent are."""
    chosen = pairs[(x >= 1 - 1e-6) & ~fractional[problem.pair_order[pairs]]]
    _assign(problem, chosen, parts)
    _take_pairs(problem, chosen, stock, capacity)
    return orders[fractional[orders]]


def _take(problem: Problem, parts, orders, stock: np.ndarray, capacity: np.ndarray, sign: float = 1.0) -> None:
    """Subtracts what the given orders' parts use (adds it back with sign=-1)."""
    part_o, part_n, line_n, line = [], [], [], []
    for o in orders:
        base = int(problem.line_ptr[o])
        for n, idx in parts[o].items():
            part_o.append(o)
            part_n.append(n)
            line_n.extend([n] * len(idx))
            line.extend(base + i for i in idx)
    if not part_o:
        return
    pairs = problem.pair_of(np.array(part_o), np.array(part_n))
    np.subtract.at(capacity, problem.pair_node[pairs], sign * problem.pair_load[pairs])
    line = np.array(line, dtype=np.int64)
    np.subtract.at(stock, (np.array(line_n, dtype=np.int64), problem.line_sku[line]), sign * problem.line_qty[line])


def _take_pairs(problem: Problem, pairs: np.ndarray, stock: np.ndarray, capacity: np.ndarray,
                sign: float = 1.0) -> None:
    """Subtracts what whole orders at the given pairs use (adds it back with sign=-1)."""
    np.subtract.at(capacity, problem.pair_node[pairs], sign * problem.pair_load[pairs])
    key, qty, _ = usage(problem, pairs, stock.shape[1])
    np.subtract.at(stock.reshape(-1), key, sign * qty)


def _greedy_on(problem: Problem, orders: np.ndarray, stock: np.ndarray, capacity: np.ndarray) -> Solution:
    return solve_greedy(problem.with_supply(stock, capacity), np.sort(orders))
