"""Greedy, optimal and exact on random small assignment problems: every
answer is feasible, optimal is never worse than greedy, and optimal equals
a proven optimum within 0.1%."""
from __future__ import annotations

from dataclasses import replace
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ortools.linear_solver.python import model_builder_helper as mbh

from benchmarks.gap import gap
from engine.routing.greedy import solve_greedy
from engine.routing.mip import solve_mip
from engine.routing.optimal import solve_optimal
from engine.routing.problem import objective, violations
from engine.routing.problem_file import LineSpec, NodeSpec, OrderSpec, ProblemFile, to_problem
from engine.routing.reduce import prune_dominated


@st.composite
def problems(draw, split: bool | None = None):
    n_nodes = draw(st.integers(1, 6))
    n_orders = draw(st.integers(1, 14))
    skus = ["a", "b", "c", "d"][: draw(st.integers(1, 4))]
    nodes = [NodeSpec(id=f"n{j}", capacity=draw(st.none() | st.integers(0, 5).map(float))) for j in range(n_nodes)]
    orders = []
    for i in range(n_orders):
        chosen = draw(st.lists(st.sampled_from(skus), max_size=3, unique=True))
        lines = [LineSpec(sku=s, qty=draw(st.integers(1, 3))) for s in chosen]
        penalty = draw(st.none() | st.floats(0, 60, allow_nan=False))
        orders.append(OrderSpec(id=f"o{i}", lines=lines, penalty=30.0 if penalty is None and i % 2 else penalty))
    cost = [[draw(st.none() | st.floats(-5, 40, allow_nan=False)) for _ in range(n_nodes)] for _ in range(n_orders)]
    load = [[float(draw(st.integers(1, 3))) for _ in range(n_nodes)] for _ in range(n_orders)]
    stock = {f"n{j}": {s: draw(st.integers(0, 6)) for s in skus} for j in range(n_nodes)}
    do_split = draw(st.booleans()) if split is None else split
    return to_problem(ProblemFile(nodes=nodes, orders=orders, cost=cost, stock=stock, load=load, split=do_split,
                                  split_penalty=draw(st.floats(0, 10))))


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(problems())
def test_greedy_and_optimal_answers_never_break_stock_capacity_or_allowed_nodes(problem):
    for solution in (solve_greedy(problem), solve_optimal(problem, time_limit_s=5)):
        if solution.status != "infeasible":
            assert violations(problem, solution.parts) == []


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(problems())
def test_optimal_is_never_worse_than_greedy_within_a_tenth_of_a_percent_of_exact_and_its_bound_holds(problem):
    greedy = solve_greedy(problem)
    optimal = solve_optimal(problem, time_limit_s=5)
    exact = solve_mip(problem)
    if greedy.status != "infeasible":
        assert optimal.status != "infeasible"
        assert optimal.objective <= greedy.objective + 1e-6
    if exact.status == "optimal":
        tol = 1e-6 * max(1.0, abs(exact.objective))
        assert optimal.status != "infeasible"
        assert optimal.objective <= exact.objective + 1e-3 * max(1.0, abs(exact.objective)) + 1e-6
        assert exact.bound is not None and abs(exact.bound - exact.objective) <= tol
        assert optimal.bound is None or optimal.bound <= exact.objective + tol, "a lower bound above the optimum"
        if optimal.status == "optimal":
            assert abs(optimal.objective - exact.objective) <= tol
    else:
        assert optimal.status == "infeasible" or violations(problem, optimal.parts) == []


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(problems(split=False))
def test_the_large_component_path_keeps_the_lp_whole_answers_feasibly_never_worse_than_greedy_and_bounded(problem):
    # batches of this size never reach LP_FIRST: every component takes the large path here (LP, the
    # fractional rest by MIP, then reduced-cost fixing to prove or improve the answer)
    with patch("engine.routing.optimal.LP_FIRST", 0):
        optimal = solve_optimal(problem, time_limit_s=5)
    greedy, exact = solve_greedy(problem), solve_mip(problem)
    if optimal.status != "infeasible":
        assert violations(problem, optimal.parts) == []
    if greedy.status != "infeasible":
        assert optimal.status != "infeasible" and optimal.objective <= greedy.objective + 1e-6
    if exact.status == "optimal":
        tol = 1e-6 * max(1.0, abs(exact.objective))
        if optimal.bound is not None:
            assert optimal.bound <= exact.objective + tol
        if optimal.status == "optimal":
            assert abs(optimal.objective - exact.objective) <= tol


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(problems(split=False))
def test_dropping_dominated_pairs_keeps_the_optimum(problem):
    pruned = prune_dominated(problem)
    assert len(pruned.pair_order) <= len(problem.pair_order)
    before, after = solve_mip(problem), solve_mip(pruned)
    assert before.status == after.status
    if before.status == "optimal":
        assert abs(before.objective - after.objective) <= 1e-6 * max(1.0, abs(before.objective))


def test_a_must_assign_order_that_fits_nowhere_makes_the_problem_infeasible():
    problem = to_problem(ProblemFile(
        nodes=[NodeSpec(id="n", capacity=1.0)], orders=[OrderSpec(id="a"), OrderSpec(id="b")],
        cost=[[1.0], [1.0]],
    ))
    assert solve_greedy(problem).status == solve_optimal(problem).status == solve_mip(problem).status == "infeasible"


def test_splitting_serves_an_order_no_single_node_can_and_pays_the_split_penalty():
    spec = ProblemFile(
        nodes=[NodeSpec(id="n1"), NodeSpec(id="n2")],
        orders=[OrderSpec(id="o", lines=[LineSpec("a", 1), LineSpec("b", 1)], penalty=100.0)],
        stock={"n1": {"a": 1}, "n2": {"b": 1}}, cost=[[3.0, 4.0]], split_penalty=5.0,
    )
    whole = to_problem(spec)
    assert not solve_optimal(whole).parts[0]
    split = to_problem(ProblemFile(**{**{f: getattr(spec, f) for f in spec.__struct_fields__}, "split": True}))
    for solution in (solve_greedy(split), solve_optimal(split), solve_mip(split)):
        assert solution.parts[0] == {0: [0], 1: [1]}
        assert np.isclose(solution.objective, 3 + 4 + 5)


@st.composite
def must_assign_problems(draw):
    """Tight generalised assignment problems: every order must be placed."""
    n_nodes, n_orders = draw(st.integers(1, 4)), draw(st.integers(1, 9))
    load = [[float(draw(st.integers(1, 6))) for _ in range(n_nodes)] for _ in range(n_orders)]
    cost = [[draw(st.none() | st.integers(1, 30).map(float)) if n_nodes > 1 else 1.0 for _ in range(n_nodes)]
            for _ in range(n_orders)]
    total = [sum(row[j] for row in load) for j in range(n_nodes)]
    tightness = draw(st.floats(0.2, 1.2))
    nodes = [NodeSpec(id=f"n{j}", capacity=float(int(tightness * total[j] / n_nodes) + draw(st.integers(0, 3))))
             for j in range(n_nodes)]
    skus = draw(st.lists(st.sampled_from(["a", "b"]), max_size=2, unique=True))
    orders = [OrderSpec(id=f"o{i}", lines=[LineSpec(sku=s, qty=1) for s in skus if draw(st.booleans())])
              for i in range(n_orders)]
    stock = {f"n{j}": {s: draw(st.integers(0, n_orders)) for s in skus} for j in range(n_nodes)} if skus else None
    return to_problem(ProblemFile(nodes=nodes, orders=orders, cost=cost, load=load, stock=stock))


@settings(max_examples=200, deadline=None)
@given(must_assign_problems())
def test_optimal_says_infeasible_only_when_exact_proves_it_and_otherwise_places_every_must_assign_order(problem):
    optimal, exact = solve_optimal(problem, time_limit_s=5), solve_mip(problem)
    assert exact.status in ("optimal", "infeasible")  # no time limit: exact always decides
    if optimal.status == "infeasible":
        assert exact.status == "infeasible"
    if exact.status == "optimal":
        assert optimal.status in ("optimal", "feasible")
        assert violations(problem, optimal.parts) == []
        assert optimal.objective >= exact.objective - 1e-6 * max(1.0, abs(exact.objective))


@pytest.mark.slow
@pytest.mark.parametrize("nodes, orders, seed", [(10, 100, 1), (20, 100, 2)])
def test_type_d_generalised_assignment_gets_a_feasible_answer_that_every_order_and_capacity_respects(nodes, orders, seed):
    # type D: loads 1-100, cost falls as load rises, capacities at 80% of the average load: greedy cannot place them all
    problem = to_problem(gap("D", nodes, orders, seed))
    assert solve_greedy(problem).status == "infeasible"
    optimal = solve_optimal(problem, time_limit_s=3)
    assert optimal.status in ("optimal", "feasible")
    assert violations(problem, optimal.parts) == []
    assert optimal.bound is not None and optimal.bound <= optimal.objective


@st.composite
def capacity_only_problems(draw, whole: bool = False):
    """Orders without lines (generalised assignment): capacity alone binds. whole: integer penalties."""
    n_nodes, n_orders = draw(st.integers(1, 5)), draw(st.integers(1, 12))
    nodes = [NodeSpec(id=f"n{j}", capacity=draw(st.none() | st.integers(0, 6).map(float))) for j in range(n_nodes)]
    orders = [OrderSpec(id=f"o{i}", penalty=draw(st.none() | (st.integers(0, 40).map(float) if whole else st.floats(0, 40))))
              for i in range(n_orders)]
    cost = [[draw(st.none() | st.integers(-3, 40).map(float)) for _ in range(n_nodes)] for _ in range(n_orders)]
    load = [[float(draw(st.integers(1, 4))) for _ in range(n_nodes)] for _ in range(n_orders)]
    return to_problem(ProblemFile(nodes=nodes, orders=orders, cost=cost, load=load))


@settings(max_examples=150, deadline=None)
@given(capacity_only_problems(), st.data())
def test_greedy_without_stock_lines_places_each_order_in_turn_at_its_cheapest_node_with_room(problem, data):
    orders = np.array(data.draw(st.permutations(range(problem.n_orders))), dtype=np.int64)
    got = solve_greedy(problem, orders)
    left = problem.capacity.copy()
    for o in orders.tolist():
        want = -1
        for p in range(problem.pair_ptr[o], problem.pair_ptr[o + 1]):
            if problem.pair_cost[p] > problem.penalty[o]:
                break
            if left[problem.pair_node[p]] >= problem.pair_load[p]:
                want = int(problem.pair_node[p])
                left[want] -= problem.pair_load[p]
                break
        assert got.node_of(o) == want
    assert got.objective == pytest.approx(objective(problem, got.parts))
    left_out = [o for o in orders.tolist() if got.node_of(o) < 0 and np.isinf(problem.penalty[o])]
    assert got.status == ("infeasible" if left_out else "feasible")  # over the orders given only


def _in_turn(problem, orders) -> list[int]:
    """Greedy as the rule says it, one order and one line at a time: each
    order to its first node (cheapest first) with its stock and room left."""
    stock, left = problem.stock.astype(float), problem.capacity.astype(float)
    got = [-1] * problem.n_orders
    for o in orders.tolist():
        skus, qtys = problem.lines(o)
        for p in range(problem.pair_ptr[o], problem.pair_ptr[o + 1]):
            n = int(problem.pair_node[p])
            if problem.pair_cost[p] > problem.penalty[o]:
                break
            if left[n] >= problem.pair_load[p] and (stock[n, skus] >= qtys).all():
                left[n] -= problem.pair_load[p]
                stock[n, skus] -= qtys
                got[o] = n
                break
    return got


@settings(max_examples=100, deadline=None)
@given(problems(split=False), st.data())
def test_greedy_with_stock_lines_places_each_order_in_turn_at_its_first_node_with_the_stock_and_room(problem, data):
    orders = np.array(data.draw(st.permutations(range(problem.n_orders))), dtype=np.int64)
    orders = orders[: data.draw(st.integers(0, len(orders)))]
    got = solve_greedy(problem, orders)
    assert [got.node_of(o) for o in range(problem.n_orders)] == _in_turn(problem, orders)
    assert got.objective == pytest.approx(objective(problem, got.parts))
    left_out = [o for o in orders.tolist() if got.node_of(o) < 0 and np.isinf(problem.penalty[o])]
    assert got.status == ("infeasible" if left_out else "feasible")


def test_greedy_matches_the_rule_on_larger_random_batches_where_orders_compete():
    rng = np.random.default_rng(7)
    for _ in range(20):
        n_nodes, n_orders, n_skus = int(rng.integers(3, 12)), int(rng.integers(50, 200)), int(rng.integers(2, 12))
        cost = [[float(rng.integers(1, 50)) if rng.random() < 0.7 else None for _ in range(n_nodes)]
                for _ in range(n_orders)]
        orders = [OrderSpec(id=f"o{i}", penalty=float(rng.integers(10, 60)) if rng.random() < 0.8 else None,
                            lines=[LineSpec(sku=f"s{k}", qty=int(rng.integers(1, 4)))
                                   for k in rng.choice(n_skus, int(rng.integers(0, 3)), replace=False)])
                  for i in range(n_orders)]
        nodes = [NodeSpec(id=f"n{j}", capacity=None if rng.random() < 0.2 else float(rng.integers(0, 30)))
                 for j in range(n_nodes)]
        stock = {f"n{j}": {f"s{k}": int(rng.integers(0, 40)) for k in range(n_skus)} for j in range(n_nodes)}
        problem = to_problem(ProblemFile(nodes=nodes, orders=orders, cost=cost, stock=stock))
        order = rng.permutation(n_orders)
        got = solve_greedy(problem, order)
        assert [got.node_of(o) for o in range(n_orders)] == _in_turn(problem, order)


@settings(max_examples=100, deadline=None)
@given(capacity_only_problems(whole=True))
def test_with_integer_costs_the_bound_is_a_whole_number_no_higher_than_the_optimum(problem):
    optimal, exact = solve_optimal(problem, time_limit_s=5), solve_mip(problem)
    if optimal.bound is not None and np.isfinite(optimal.bound):
        assert optimal.bound == np.floor(optimal.bound)
        if exact.status == "optimal":
            assert optimal.bound <= exact.objective + 1e-9


def test_a_fractional_bound_is_rounded_up_only_when_every_cost_is_whole():
    problem = to_problem(gap("C", 5, 40, 1))
    assert problem.round_bound(1390.3) == 1391.0
    assert problem.round_bound(1391.0000000001) == 1391.0  # a solver's tolerance is not a whole unit
    halves = replace(problem, pair_cost=problem.pair_cost + 0.5)
    assert halves.round_bound(1390.3) == 1390.3


def test_a_solver_that_has_no_bound_gives_none_not_its_infinity():
    # SCIP stopped by its time limit before any bound reports -1e20 (its infinity): no bound, not that
    problem = to_problem(gap("D", 3, 6, 1))
    start = solve_optimal(problem, time_limit_s=1)

    class Stopped:
        def __init__(self, x):
            self.x = x

        def variable_values(self):
            return self.x

        def best_objective_bound(self):
            return -1e20

    def run(lb, ub, obj, rows, integral, time_limit_s, solver, start_x=None, params=None, dual=False):
        return Stopped(start_x), mbh.SolveStatus.FEASIBLE

    with patch("engine.routing.mip._run", side_effect=run):
        sol = solve_mip(problem, solver="scip", hint=start.parts)
    assert sol.status == "feasible" and sol.objective == start.objective
    assert sol.bound is None


@settings(max_examples=100, deadline=None)
@given(problems(split=False), st.data())
def test_a_restricted_problem_keeps_each_pairs_stock_entries_and_their_cells(problem, data):
    problem.entries(np.arange(len(problem.pair_order)))  # numbered before the restriction, as the solver does
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=len(problem.pair_order),
                                       max_size=len(problem.pair_order))), dtype=bool)
    sub = problem.restricted(keep)
    fresh = replace(sub)  # the same pairs, numbered from scratch
    pairs = np.arange(len(sub.pair_order))
    key, qty, pair, cell = sub.entries(pairs)
    want_key, want_qty, want_pair, _ = fresh.entries(pairs)
    assert np.array_equal(key, want_key) and np.array_equal(qty, want_qty) and np.array_equal(pair, want_pair)
    assert np.array_equal(sub.cell_keys[cell], key)
