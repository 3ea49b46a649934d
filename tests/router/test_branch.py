"""The branch and bound over a handful of orders answers as an exact MIP does."""
from __future__ import annotations

from unittest.mock import patch

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.routing import branch
from engine.routing.branch import solve_small
from engine.routing.mip import solve_mip
from engine.routing.problem_file import NodeSpec, OrderSpec, ProblemFile, to_problem
from tests.router.test_solvers import problems


@settings(max_examples=300, deadline=None)
@given(problems(split=False), st.data())
def test_the_small_search_finds_what_an_exact_mip_finds_against_any_supply(problem, data):
    # some orders of the problem, against supply with some of it taken (as the rest of a component sees it)
    orders = np.array(sorted(data.draw(st.sets(st.integers(0, problem.n_orders - 1), min_size=1,
                                               max_size=branch.MAX_ORDERS))))
    stock = problem.stock * data.draw(st.sampled_from([1.0, 0.5, 0.0]))
    capacity = np.maximum(problem.capacity - data.draw(st.integers(0, 2)), 0.0)  # (inf stays inf)
    got, want = solve_small(problem, orders, stock, capacity), solve_mip(problem, orders, stock, capacity)
    assert got is not None and got.status == want.status
    if want.status == "optimal":
        assert abs(got.objective - want.objective) <= 1e-6 * max(1.0, abs(want.objective))
        assert got.bound == got.objective
        _assert_fits(problem, orders, got.parts, stock, capacity)


def _assert_fits(problem, orders, parts, stock, capacity) -> None:
    """Only the given orders placed, each whole at one of its nodes, the must-assign ones all, within the supply."""
    used, load = np.zeros_like(stock, dtype=float), np.zeros(problem.n_nodes)
    for o, p in enumerate(parts):
        if o not in orders.tolist() or not p:
            assert not p and not (o in orders.tolist() and np.isinf(problem.penalty[o]))
            continue
        (n, lines), = p.items()
        pair = problem.pair_of(np.array([o]), np.array([n]))[0]
        assert pair >= 0 and lines == list(range(problem.line_ptr[o + 1] - problem.line_ptr[o]))
        load[n] += problem.pair_load[pair]
        for sku, qty in zip(*problem.lines(o)):
            used[n, sku] += qty
    assert (used <= stock + 1e-9).all() and (load <= capacity + 1e-9).all()


def test_too_many_orders_or_branches_are_left_to_a_mip():
    problem = to_problem(ProblemFile(nodes=[NodeSpec(id="n", capacity=1.0)],
                                     orders=[OrderSpec(id="a", penalty=5.0), OrderSpec(id="b", penalty=9.0)],
                                     cost=[[1.0], [2.0]]))
    every = np.arange(problem.n_orders)
    assert solve_small(problem, every, problem.stock, problem.capacity).objective == 7.0  # b placed (2), a left out (5)
    with patch.object(branch, "MAX_ORDERS", 1):
        assert solve_small(problem, every, problem.stock, problem.capacity) is None
    with patch.object(branch, "MAX_NODES", 1):
        assert solve_small(problem, every, problem.stock, problem.capacity) is None
