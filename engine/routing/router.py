"""The router the engine calls: candidates -> solver -> decisions with
explanations (the chosen node's cost terms, and why each cheaper node lost)."""
from __future__ import annotations

from typing import Callable

from domain.network import Network

from engine.routing.candidates import Batch, NodeArrays, build
from engine.routing.explain import decisions
from engine.routing.greedy import solve_greedy
from engine.routing.mip import solve_mip
from engine.routing.optimal import solve_optimal
from engine.routing.problem import Problem, Solution
from engine.routing.types import Decision, NetworkState, OrderToRoute, RouterSettings
from engine.travel import STRAIGHT_LINE, TravelTimes


def solver_for(settings: RouterSettings) -> Callable[[Problem], Solution]:
    if settings.solver == "greedy":
        return solve_greedy
    if settings.solver == "exact":
        return solve_mip
    return lambda p: solve_optimal(p, settings.time_limit_ms / 1000)


class NetworkRouter:
    def __init__(self, settings: RouterSettings, travel: TravelTimes = STRAIGHT_LINE):
        self.settings = settings
        self.travel = travel  # engine/travel.py: straight line, a matrix or a road table service
        self.solve = solver_for(settings)
        self._nodes: tuple[Network, NodeArrays] | None = None  # the network itself: an id can be reused once freed

    def route(self, orders: list[OrderToRoute], state: NetworkState) -> list[Decision]:
        if not orders:
            return []
        return decisions(*self.plan(orders, state))

    def plan(self, orders: list[OrderToRoute], state: NetworkState) -> tuple[Batch, Solution]:
        """The batch's problem and its solution, before explanations."""
        batch = build(orders, state, self.settings, self.nodes(state))
        return batch, self.solve(batch.problem)

    def nodes(self, state: NetworkState) -> NodeArrays:
        if self._nodes is None or self._nodes[0] is not state.network:
            arrays = NodeArrays.of(state.network, self.travel)
            if arrays.ids != list(state.node_ids):
                raise ValueError("network state rows must follow the network's node order")
            self._nodes = (state.network, arrays)
        return self._nodes[1]


def make_router(settings: RouterSettings = RouterSettings(), travel: TravelTimes = STRAIGHT_LINE) -> NetworkRouter:
    return NetworkRouter(settings, travel)
