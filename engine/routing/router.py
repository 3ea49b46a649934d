"""The router the engine calls: candidates -> solver -> decisions with
explanations (the chosen node's cost terms, and why each cheaper node lost)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from engine.routing.candidates import Batch, NodeArrays, build
from engine.routing.greedy import solve_greedy
from engine.routing.mip import solve_mip
from engine.routing.optimal import solve_optimal
from engine.routing.problem import Problem, Solution
from engine.routing.types import CostTerms, Decision, Loss, NetworkState, OrderToRoute, Part, RouterSettings

MAX_LOSSES = 5  # cheaper nodes explained per decision


def solver_for(settings: RouterSettings) -> Callable[[Problem], Solution]:
    if settings.solver == "greedy":
        return solve_greedy
    if settings.solver == "exact":
        return solve_mip
    return lambda p: solve_optimal(p, settings.time_limit_ms / 1000)


class NetworkRouter:
    def __init__(self, settings: RouterSettings):
        self.settings = settings
        self.solve = solver_for(settings)
        self._nodes: tuple[int, NodeArrays] | None = None

    def route(self, orders: list[OrderToRoute], state: NetworkState) -> list[Decision]:
        if not orders:
            return []
        batch, solution = self.plan(orders, state)
        return self.decide(batch, solution)

    def plan(self, orders: list[OrderToRoute], state: NetworkState) -> tuple[Batch, Solution]:
        """The batch's problem and its solution, before explanations."""
        batch = build(orders, state, self.settings, self.nodes(state))
        return batch, self.solve(batch.problem)

    def decide(self, batch: Batch, solution: Solution) -> list[Decision]:
        return [self._decide(batch, solution, i) for i in range(len(batch.orders))]

    def nodes(self, state: NetworkState) -> NodeArrays:
        if self._nodes is None or self._nodes[0] != id(state.network):
            arrays = NodeArrays.of(state.network)
            if arrays.ids != list(state.node_ids):
                raise ValueError("network state rows must follow the network's node order")
            self._nodes = (id(state.network), arrays)
        return self._nodes[1]

    def _decide(self, b: Batch, sol: Solution, i: int) -> Decision:
        o = b.orders[i]
        chosen = sol.parts[i]
        skus = list(o.lines)
        parts = [
            Part(node=b.nodes.ids[n], lines={skus[k]: o.lines[skus[k]] for k in idx},
                 eta_at=b.problem_now + float(b.eta[i, n]) * 60, cost=self._terms(b, i, n))
            for n, idx in chosen.items()
        ]
        limit = max((b.cost[i, n] for n in chosen), default=np.inf)
        lost = self._losses(b, i, limit, set(chosen))
        reason = None
        if not parts:
            reason = lost[0].reason if len(lost) == 1 else self._why_unserved(b, i, lost)
        return Decision(key=o.key, parts=parts, lost=lost, reason=reason)

    def _terms(self, b: Batch, i: int, n: int) -> CostTerms:
        w = self.settings.weights
        o = b.orders[i]
        dist = float(b.dist[i, n]) if o.mode == "delivery" else 0.0
        eta = float(b.eta[i, n])
        delivery = dist * float(b.nodes.cost_per_km[n])
        slack = (o.promised_at - b.problem_now) / 60 - eta
        lateness = float(np.clip(1 - slack / 15.0, 0, 1)) * w.lateness
        operating = float(b.nodes.operating[n]) * w.operating
        home = -w.home_bonus if o.home_node == b.nodes.ids[n] else 0.0
        return CostTerms(distance_km=round(dist, 3), eta_min=round(eta, 1), delivery=round(delivery, 2),
                         time=round(eta * w.per_minute, 2), lateness=round(lateness, 2), operating=round(operating, 2),
                         home=home, total=round(float(b.cost[i, n]), 2))

    def _losses(self, b: Batch, i: int, limit: float, chosen: set[int]) -> list[Loss]:
        """Why each node cheaper than the chosen one (any node, if none was chosen) lost."""
        row = np.where(b.considered[i], b.cost[i], np.inf)
        cheaper = np.flatnonzero(row < limit)
        cheaper = cheaper[np.argsort(row[cheaper], kind="stable")][:MAX_LOSSES]
        return [Loss(node=b.nodes.ids[n], reason=self._reason(b, i, int(n))) for n in cheaper if n not in chosen]

    def _reason(self, b: Batch, i: int, n: int) -> str:
        o = b.orders[i]
        if b.nodes.ids[n] in o.excluded:
            return "declined or let the order expire before"
        if not b.reachable[i, n]:
            return "too far" if o.mode == "delivery" else "not the pickup store"
        if not b.is_open[i, n]:
            return "closed"
        if not b.on_time[i, n]:
            return f"too late (ready in {b.eta[i, n]:.0f} min)"
        if not b.has_room[n]:
            return "capacity full"
        short = b.short_sku(i, n)
        if short is not None:
            return f"no stock of SKU {short}"
        return "stock or capacity went to other orders in the batch"

    def _why_unserved(self, b: Batch, i: int, lost: list[Loss]) -> str:
        if not lost:
            return "no node reaches the location" if b.orders[i].mode == "delivery" else "the pickup store cannot serve it"
        return "no node can serve it: " + "; ".join(f"{x.node} {x.reason}" for x in lost[:3])


def make_router(settings: RouterSettings = RouterSettings()) -> NetworkRouter:
    return NetworkRouter(settings)
