"""optimal on 5,000-order batches of every routing family (benchmarks/
families.py), where one component is too large for its LP and the flow path
answers it: whatever time it gets, its answer is feasible and never worse
than greedy's, neither in orders served nor in cost."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from benchmarks.families import FAMILIES, network_for, routing_instance
from engine.routing.candidates import build
from engine.routing.greedy import solve_greedy
from engine.routing.optimal import solve_optimal
from engine.routing.problem import Problem, violations
from engine.routing.router import NetworkRouter
from engine.routing.types import RouterSettings


@lru_cache(maxsize=None)
def _network(shape: str):
    return network_for(shape)


def batch(family: str, regime: str, n_orders: int = 5000, seed: int = 7) -> Problem:
    network = _network(FAMILIES[family].shape)
    inst = routing_instance(family, n_orders, regime, seed, network)
    router = NetworkRouter(RouterSettings(solver="greedy"))
    return build(inst.orders, inst.state, router.settings, router.nodes(inst.state)).problem


def filled(parts) -> int:
    return sum(1 for p in parts if p)


@pytest.mark.slow
@pytest.mark.parametrize("regime", ["off-peak", "peak"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_optimal_on_a_large_batch_serves_as_many_orders_as_greedy_and_costs_no_more(family, regime):
    problem = batch(family, regime)
    greedy = solve_greedy(problem)
    for limit in (0.2, 0.05):  # (a loaded machine gives the process less: the guarantee holds whatever it gets)
        optimal = solve_optimal(problem, limit)
        assert violations(problem, optimal.parts) == []
        assert filled(optimal.parts) >= filled(greedy.parts)
        assert optimal.objective <= greedy.objective + 1e-6 * abs(greedy.objective)


@pytest.mark.slow
def test_a_large_batch_given_no_time_gets_greedys_answer():
    problem = batch("clustered", "peak")
    greedy = solve_greedy(problem)
    optimal = solve_optimal(problem, 0.0)
    assert optimal.parts == greedy.parts
    assert optimal.status == "feasible"


def test_an_unproven_answer_cheaper_than_greedys_but_serving_fewer_orders_gives_way_to_greedys():
    from engine.routing.optimal import _no_worse_than_greedy
    from engine.routing.problem import Solution

    greedy = Solution([{0: [0]}, {1: [0]}], "feasible", 100.0)
    fewer = Solution([{0: [0]}, {}], "feasible", 90.0, bound=80.0)
    more = Solution([{1: [0]}, {0: [0]}], "feasible", 95.0, bound=80.0)
    assert _no_worse_than_greedy(None, fewer, greedy).parts == greedy.parts
    assert _no_worse_than_greedy(None, fewer, greedy).bound == 80.0
    assert _no_worse_than_greedy(None, more, greedy) is more


def test_each_orders_cheapest_cost_is_the_least_of_its_pairs():
    # the neighbourhoods' regret reads an order's cheapest cost off its first pair
    problem = batch("downtown", "peak", n_orders=400)
    ptr = problem.pair_ptr
    cheapest = problem.pair_cost[np.minimum(ptr[:-1], len(problem.pair_cost) - 1)]
    with_pairs = [o for o in range(problem.n_orders) if ptr[o + 1] > ptr[o]]
    assert with_pairs
    assert all(cheapest[o] == problem.pair_cost[ptr[o]:ptr[o + 1]].min() for o in with_pairs)
