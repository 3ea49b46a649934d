"""The paths optimal takes where the LP is not used whole: components too
large for the LP in the budget (a priced min-cost flow, then neighbourhoods
solved again) and tight must-assign components (the tabu search). On small
random problems, with the size thresholds lowered so every component takes
them: answers stay feasible and never worse than greedy."""
from __future__ import annotations

import time
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.gap import gap
from engine.routing.flow import applies, solve_flow
from engine.routing.greedy import solve_greedy
from engine.routing.mip import solve_mip, solve_relaxation
from engine.routing.optimal import PRICED_OPTIONS, SEARCH_SHARE, solve_optimal
from engine.routing.problem import objective, violations, whole
from engine.routing.problem_file import LineSpec, NodeSpec, OrderSpec, ProblemFile, to_problem
from engine.routing.repair import (Local, construct, improve_by_nodes, improve_in_rounds, priced_options, rounds_apply,
                                   single_resource, tabu)
from tests.router.test_solvers import must_assign_problems, problems


@st.composite
def routing_problems(draw):
    """Whole orders, every load 1, every order may stay unserved: what the flow path takes."""
    n_nodes, n_orders = draw(st.integers(1, 5)), draw(st.integers(1, 14))
    skus = ["a", "b", "c"][: draw(st.integers(1, 3))]
    nodes = [NodeSpec(id=f"n{j}", capacity=float(draw(st.integers(0, 4)))) for j in range(n_nodes)]
    orders = [OrderSpec(id=f"o{i}", lines=[LineSpec(sku=s, qty=draw(st.integers(1, 2)))
                                           for s in draw(st.lists(st.sampled_from(skus), max_size=2, unique=True))],
                        penalty=draw(st.floats(5, 60))) for i in range(n_orders)]
    cost = [[draw(st.none() | st.floats(0, 40, allow_nan=False)) for _ in range(n_nodes)] for _ in range(n_orders)]
    stock = {f"n{j}": {s: draw(st.integers(0, 4)) for s in skus} for j in range(n_nodes)}
    return to_problem(ProblemFile(nodes=nodes, orders=orders, cost=cost, stock=stock))


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(routing_problems())
def test_the_priced_flow_answers_within_stock_and_capacity(problem):
    orders = np.arange(problem.n_orders)
    assert applies(problem, orders)
    nodes = solve_flow(problem, orders, problem.stock.astype(float), problem.capacity.astype(float),
                       time.perf_counter() + 5)
    assert violations(problem, whole(problem, nodes.tolist())) == []


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(routing_problems())
def test_optimal_on_components_too_large_for_the_lp_stays_feasible_and_never_worse_than_greedy(problem):
    with patch("engine.routing.optimal.LP_FIRST", 0), patch("engine.routing.optimal.FLOW_FROM", 0), \
            patch("engine.routing.optimal.HOOD", 3):
        optimal = solve_optimal(problem, time_limit_s=0.5)
    greedy = solve_greedy(problem)
    assert optimal.status in ("optimal", "feasible")
    assert violations(problem, optimal.parts) == []
    assert optimal.objective <= greedy.objective + 1e-6


@settings(max_examples=200, deadline=None)
@given(must_assign_problems() | problems(split=False), st.integers(0, 3))
def test_tabu_search_keeps_every_resource_within_supply_and_never_answers_worse_than_its_start(problem, seed):
    orders = np.arange(problem.n_orders)
    if not len(problem.pair_order):
        return  # the solvers never build a search for a component without choices
    local = Local.of(problem, orders, problem.stock.astype(float), problem.capacity.astype(float))
    if not single_resource(local) or (local.ptr[1:] == local.ptr[:-1]).any():
        return
    start = construct(local, "share")
    if (start < 0).any() or (np.asarray(local.use[start].sum(axis=0)).ravel() > local.supply + 1e-9).any():
        return  # tabu starts from a feasible answer
    best = tabu(local, start, np.inf, seed, steps=50)
    assert (np.asarray(local.use[best].sum(axis=0)).ravel() <= local.supply + 1e-9).all()
    assert local.cost[best].sum() <= local.cost[start].sum() + 1e-9
    assert np.array_equal(np.repeat(np.arange(len(orders)), np.diff(local.ptr))[best], np.arange(len(orders)))


@settings(max_examples=60, deadline=None)
@given(must_assign_problems() | problems(split=False))
def test_moves_in_rounds_keep_every_resource_within_supply_and_never_answer_worse_than_their_start(problem):
    orders = np.arange(problem.n_orders)
    if not len(problem.pair_order):
        return
    local = Local.of(problem, orders, problem.stock.astype(float), problem.capacity.astype(float))
    if not single_resource(local) or (local.ptr[1:] == local.ptr[:-1]).any():
        return
    start = construct(local, "share")
    if (start < 0).any() or (np.asarray(local.use[start].sum(axis=0)).ravel() > local.supply + 1e-9).any():
        return  # it starts from a fitting answer
    best = improve_in_rounds(local, start.copy(), np.inf)
    assert (np.asarray(local.use[best].sum(axis=0)).ravel() <= local.supply + 1e-9).all()
    assert local.cost[best].sum() <= local.cost[start].sum() + 1e-9
    assert np.array_equal(np.repeat(np.arange(len(orders)), np.diff(local.ptr))[best], np.arange(len(orders)))
    if rounds_apply(local):  # then the orders of a node at a time (6 in the solver: these have at most 5)
        with patch("engine.routing.repair.LNS_NODES", 1):
            again = improve_by_nodes(local, best.copy(), time.perf_counter() + 0.02)
        assert (np.asarray(local.use[again].sum(axis=0)).ravel() <= local.supply + 1e-9).all()
        assert local.cost[again].sum() <= local.cost[best].sum() + 1e-9
        assert np.array_equal(np.repeat(np.arange(len(orders)), np.diff(local.ptr))[again], np.arange(len(orders)))


def test_moves_in_rounds_bring_a_type_d_answer_closer_to_its_bound():
    # type D, 20 nodes x 200 orders: from the regret construction, to a local optimum of shifts, swaps and chains
    problem = to_problem(gap("D", 20, 200, 1))
    orders = np.arange(problem.n_orders)
    local = Local.of(problem, orders, problem.stock.astype(float), problem.capacity.astype(float))
    start = construct(local, "share")
    assert (start >= 0).all()
    best = improve_in_rounds(local, start.copy(), np.inf)
    assert (np.asarray(local.use[best].sum(axis=0)).ravel() <= local.supply + 1e-9).all()
    assert local.cost[best].sum() < local.cost[start].sum()


def test_nodes_searched_again_take_the_rounds_answer_lower_and_keep_it_within_capacity():
    # type C, 20 nodes x 400 orders: from the local optimum of the rounds, the orders of 6 nodes at a time
    problem = to_problem(gap("C", 20, 400, 3))
    orders = np.arange(problem.n_orders)
    local = Local.of(problem, orders, problem.stock.astype(float), problem.capacity.astype(float))
    start = improve_in_rounds(local, construct(local, "share"), np.inf)
    best = improve_by_nodes(local, start.copy(), time.perf_counter() + 1.0)
    assert (np.asarray(local.use[best].sum(axis=0)).ravel() <= local.supply + 1e-9).all()
    assert local.cost[best].sum() < local.cost[start].sum()
    assert np.array_equal(np.repeat(np.arange(len(orders)), np.diff(local.ptr))[best], np.arange(len(orders)))


def test_tabu_search_improves_a_type_c_answer_in_a_few_hundred_moves():
    # type C, 10 nodes x 100 orders: the regret construction's answer is several percent above the optimum
    problem = to_problem(gap("C", 10, 100, 1))
    orders = np.arange(problem.n_orders)
    local = Local.of(problem, orders, problem.stock.astype(float), problem.capacity.astype(float))
    start = construct(local, "share")
    assert (start >= 0).all()
    best = tabu(local, start, np.inf, steps=300)
    nodes = local.node[best]
    assert violations(problem, whole(problem, nodes.tolist())) == []
    assert objective(problem, whole(problem, nodes.tolist())) < local.cost[start].sum()


def test_tabu_search_hands_over_after_its_moves_without_better_only_once_its_time_without_better_has_passed_too():
    # type C 10 x 100 from the regret construction: a better answer comes within the first moves, then
    # 20 moves without one come in milliseconds
    problem = to_problem(gap("C", 10, 100, 1))
    orders = np.arange(problem.n_orders)
    local = Local.of(problem, orders, problem.stock.astype(float), problem.capacity.astype(float))
    start = construct(local, "share")
    tabu(local, start, np.inf, steps=1)  # numba's code loaded (or compiled) before anything is timed
    t0 = time.perf_counter()
    tabu(local, start, t0 + 5.0, patience=20)
    by_moves = time.perf_counter() - t0
    t0 = time.perf_counter()
    held = tabu(local, start, t0 + 0.6, patience=20, patience_s=10.0)
    by_time = time.perf_counter() - t0
    assert by_moves < 2.5  # stopped by its moves, far from the deadline
    assert by_time >= 0.6  # the time patience not passed: on to the deadline
    assert held is not None and local.cost[held].sum() < local.cost[start].sum()


@pytest.mark.parametrize("kind", ["C", "E"])
def test_tabu_search_moves_alike_by_either_overfill_formula(kind):
    # generalised assignment takes the compiled steps' shorter formula for a swap's overfill; with whole-number
    # loads both formulas give the same floats, so the same moves from the same seed
    problem = to_problem(gap(kind, 10, 100, 2))
    orders = np.arange(problem.n_orders)
    local = Local.of(problem, orders, problem.stock.astype(float), problem.capacity.astype(float))
    start = construct(local, "share")
    shorter = tabu(local, start, np.inf, seed=1, steps=400)
    with patch("engine.routing.repair._by_node", return_value=False):
        general = tabu(local, start, np.inf, seed=1, steps=400)
    assert shorter is not None and np.array_equal(shorter, general)
    assert local.cost[shorter].sum() < local.cost[start].sum()


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(must_assign_problems() | problems())
def test_optimal_says_infeasible_only_when_exact_proves_it_on_every_path(problem):
    # the large-component path (LP first, its whole answers kept, the repair and the tabu search on
    # tight must-assign components), and mixed problems: optional and must-assign orders, stock, splits
    with patch("engine.routing.optimal.LP_FIRST", 0):
        optimal = solve_optimal(problem, time_limit_s=5)
    exact = solve_mip(problem)
    assert exact.status in ("optimal", "infeasible")  # no time limit: exact always decides
    if optimal.status == "infeasible":
        assert exact.status == "infeasible"
    if exact.status == "optimal":
        assert optimal.status in ("optimal", "feasible")
        assert violations(problem, optimal.parts) == []


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(routing_problems())
def test_a_large_component_whose_lp_runs_out_of_time_gets_the_flows_answer_never_worse_than_greedy(problem):
    # on a loaded machine the LP (timed by the clock) may not finish its share: the flow answers instead
    with patch("engine.routing.optimal.LP_FIRST", 0), patch("engine.routing.optimal.HOOD", 3), \
            patch("engine.routing.optimal.solve_relaxation", lambda *a, **k: "unknown"):
        optimal = solve_optimal(problem, time_limit_s=0.5)
    assert optimal.status in ("optimal", "feasible")
    assert violations(problem, optimal.parts) == []
    assert optimal.objective <= solve_greedy(problem).objective + 1e-6


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(must_assign_problems())
def test_without_the_lp_the_lagrangian_bound_holds_and_infeasible_is_said_only_when_exact_proves_it(problem):
    # the path of tight components whose LP would not finish in its share (types D and E at 1,000 orders)
    with patch("engine.routing.optimal.LP_PAIR_S", 1.0):
        optimal = solve_optimal(problem, time_limit_s=0.3)
    exact = solve_mip(problem)
    if optimal.status == "infeasible":
        assert exact.status == "infeasible"
    if exact.status == "optimal":
        assert optimal.status in ("optimal", "feasible")
        assert violations(problem, optimal.parts) == []
        assert optimal.bound is None or optimal.bound <= exact.objective + 1e-6 * max(1.0, abs(exact.objective))


def test_type_e_at_1000_orders_solves_no_lp_over_every_pair_but_one_over_its_cheapest_priced_options():
    # the whole LP takes 0.4-0.7 s there, more than the router's budget: Lagrangian prices choose each
    # order's few options for an LP over those instead
    problem = to_problem(gap("E", 40, 1000, 1))
    sizes = []

    def relaxation(sub, *args, **kwargs):
        sizes.append(len(sub.pair_order))
        return solve_relaxation(sub, *args, **kwargs)

    # (a budget the machine's load cannot squeeze out of the LP; the whole LP still counts as too long)
    with patch("engine.routing.optimal.solve_relaxation", side_effect=relaxation), \
            patch("engine.routing.optimal.LP_PAIR_S", 1.0):
        optimal = solve_optimal(problem, time_limit_s=2)
    assert sizes and max(sizes) <= max(PRICED_OPTIONS) * problem.n_orders < len(problem.pair_order)
    assert optimal.status == "feasible"
    assert violations(problem, optimal.parts) == []
    assert optimal.bound is not None and optimal.bound <= optimal.objective


def test_a_must_assign_component_greedy_places_whose_lp_is_too_long_gets_the_priced_lp_and_beats_greedy():
    # type B 40 x 1000: greedy places every order, but the whole LP (0.4 s) is longer than the budget
    problem = to_problem(gap("B", 40, 1000, 1))
    greedy = solve_greedy(problem)
    assert greedy.status == "feasible"
    sizes = []

    def relaxation(sub, *args, **kwargs):
        sizes.append(len(sub.pair_order))
        return solve_relaxation(sub, *args, **kwargs)

    with patch("engine.routing.optimal.solve_relaxation", side_effect=relaxation), \
            patch("engine.routing.optimal.LP_PAIR_S", 1.0):
        optimal = solve_optimal(problem, time_limit_s=2)
    assert sizes and max(sizes) < len(problem.pair_order)
    assert violations(problem, optimal.parts) == []
    assert optimal.objective < greedy.objective
    assert optimal.bound is not None and optimal.bound <= optimal.objective


@pytest.mark.parametrize("k", [1, 2, 3, 10])
def test_priced_options_are_each_orders_k_cheapest_at_the_prices(k):
    problem = to_problem(gap("D", 5, 30, 1))
    local = Local.of(problem, np.arange(problem.n_orders), problem.stock, problem.capacity)
    prices = np.random.default_rng(k).uniform(0, 2, len(local.supply))
    kept = set(priced_options(local, prices, k).tolist())
    use = local.use.toarray()
    priced = local.cost + use @ prices
    for i in range(problem.n_orders):
        q = np.arange(local.ptr[i], local.ptr[i + 1])
        mine = np.array([local.pair[x] in kept for x in q])
        assert mine.sum() == min(k, len(q))
        assert priced[q][mine].max() <= priced[q][~mine].min(initial=np.inf) + 1e-9


def test_with_the_budget_spent_before_the_priced_lp_the_priced_answer_is_repaired_into_a_feasible_one():
    # the LP over the priced options gets up to the budget's end, no further (a floor past it overran the
    # budget by the LP's wall time on a loaded machine): without it the priced answer is the start
    problem = to_problem(gap("D", 40, 1000, 1))
    results = []

    def relaxation(sub, *args, **kwargs):
        results.append(solve_relaxation(sub, *args, **kwargs))
        return results[-1]

    with patch("engine.routing.optimal.solve_relaxation", side_effect=relaxation):
        optimal = solve_optimal(problem, time_limit_s=0.001)
    assert all(isinstance(r, str) for r in results)
    assert optimal.status == "feasible"
    assert violations(problem, optimal.parts) == []


def test_a_large_must_assign_component_searches_until_three_quarters_of_the_budget():
    # the last quarter bought little on C-E 40 x 1000 and absorbs what runs past the deadline under load
    from engine.routing import optimal as module

    problem = to_problem(gap("D", 40, 1000, 1))
    calls = []  # (when the rounds were called, the deadline they were given)
    components = []  # (when each component started, the deadline it was given)
    solve_component = module._solve_component

    def rounds(local, chosen, deadline, first_by=None):
        calls.append((time.perf_counter(), deadline))
        return improve_in_rounds(local, chosen, deadline, first_by)

    def component(work, orders, large, parts, stock, capacity, deadline, *args, **kwargs):
        components.append((time.perf_counter(), deadline))
        return solve_component(work, orders, large, parts, stock, capacity, deadline, *args, **kwargs)

    # 2 s, not the router's 0.2: on a loaded machine the repair before the rounds may take a second
    with patch("engine.routing.optimal.improve_in_rounds", side_effect=rounds), \
            patch("engine.routing.optimal._solve_component", side_effect=component):
        optimal = solve_optimal(problem, time_limit_s=2.0)
    # the share is of the time left when the component starts, which is no later than the rounds' call; of the
    # component's own deadline (a component past the budget on a loaded machine still gets its minimum)
    called, deadline = calls[0]
    end = [given for started, given in components if started <= called][-1]
    assert end - deadline >= (1 - SEARCH_SHARE) * (end - called) - 1e-6
    assert optimal.status == "feasible"
    assert violations(problem, optimal.parts) == []


def test_type_b_whose_greedy_places_every_order_sends_the_lps_fractional_rest_to_no_mip():
    # HiGHS on that rest took 35-45 ms of CPU whatever its time limit: past the budget on a loaded machine
    problem = to_problem(gap("B", 40, 1000, 1))
    assert solve_greedy(problem).status == "feasible"
    # at the router's budget: with 0.5 s the whole LP (40,000 pairs, 0.48 s at LP_PAIR_S) fits or not by a few
    # ms of greedy's time, and when it fits a MIP on its rest is the plan
    with patch("engine.routing.optimal.solve_mip", side_effect=AssertionError("no MIP")):
        optimal = solve_optimal(problem, time_limit_s=0.2)
    assert optimal.status in ("optimal", "feasible")  # (the search may reach the bound)
    assert violations(problem, optimal.parts) == []
    assert optimal.objective <= solve_greedy(problem).objective
