"""Each order at its cheapest node when all of them fit: the array check
(problem.each_cheapest, for batches over optimal.SMALL) answers as the
plain loop does, and solve_optimal answers with it as its full path would."""
from __future__ import annotations

from unittest.mock import patch

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from engine.routing import optimal
from engine.routing.optimal import each_at_cheapest, solve_optimal
from engine.routing.problem import each_cheapest, objective
from engine.routing.problem_file import LineSpec, NodeSpec, OrderSpec, ProblemFile, to_problem


@st.composite
def problems(draw, orders: tuple[int, int], rooms: tuple[int, ...] = (1, 4, 40)):
    """Roomy or tight supply, penalties finite, infinite or none, costs with ties and negatives."""
    n_nodes = draw(st.integers(1, 6))
    skus = ["a", "b", "c"]
    room = draw(st.sampled_from(rooms))
    nodes = [NodeSpec(id=f"n{j}", capacity=draw(st.none() | st.integers(room // 4, room).map(float))) for j in range(n_nodes)]
    specs = []
    for i in range(draw(st.integers(*orders))):
        lines = [LineSpec(sku=s, qty=draw(st.integers(1, 3)))
                 for s in draw(st.lists(st.sampled_from(skus), max_size=3, unique=True))]
        specs.append(OrderSpec(id=f"o{i}", lines=lines, penalty=draw(st.sampled_from([None, 5.0, 30.0, 30.0]))))
    cost = [[draw(st.sampled_from([None, -2.0, 0.0, 3.0, 3.0, 7.5, 12.0])) for _ in nodes] for _ in specs]
    stock = {f"n{j}": {s: draw(st.integers(room // 4, room * 3)) for s in skus} for j in range(n_nodes)}
    return to_problem(ProblemFile(nodes=nodes, orders=specs, cost=cost, stock=stock, split=draw(st.booleans()),
                                  split_penalty=4.0))


def _guarded(problem) -> bool:
    """each_at_cheapest's own guard, before either check: split parts of negative cost may beat one."""
    return problem.split and bool((problem.pair_cost < 0).any())


@settings(max_examples=300, deadline=None)
@given(problems(orders=(0, optimal.SMALL)))
def test_the_array_check_gives_the_loops_answer_or_none_where_it_does(problem):
    if _guarded(problem):
        return
    with patch.object(optimal, "SMALL", 10**6):
        loop = each_at_cheapest(problem)
    arrays = each_cheapest(problem)
    event("fits" if loop is not None else "does not fit")
    if loop is None:
        assert arrays is None
    else:
        assert arrays is not None and arrays.parts == loop.parts and arrays.status == "optimal"
        assert arrays.objective == pytest.approx(loop.objective) and arrays.bound == arrays.objective
        assert arrays.objective == objective(problem, arrays.parts)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(problems(orders=(optimal.SMALL + 1, 60), rooms=(20, 60, 200)))
def test_a_batch_over_small_whose_orders_all_fit_at_their_cheapest_is_answered_as_the_full_path_would(problem):
    fits = not _guarded(problem) and each_cheapest(problem) is not None
    event("fits" if fits else "does not fit")
    if not fits:
        return
    quick = solve_optimal(problem, time_limit_s=5)
    with patch.object(optimal, "each_at_cheapest", lambda p: None):
        full = solve_optimal(problem, time_limit_s=5)
    assert quick.parts == full.parts and quick.status == full.status == "optimal"
    assert quick.objective == full.objective
