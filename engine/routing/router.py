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
        row = b.row(i)
        skus = list(o.lines)
        parts = [
            Part(node=b.nodes.ids[n], lines={skus[k]: o.lines[skus[k]] for k in idx},
                 eta_at=b.now + float(row["eta"][n]) * 60, cost=_cost_terms(row, n))
            for n, idx in chosen.items()
        ]
        limit = max((row["total"][n] for n in chosen), default=np.inf)
        lost = self._losses(b, row, i, limit, set(chosen))
        reason = None
        if not parts:
            reason = self._why_unserved(b, i, lost)
        return Decision(key=o.key, parts=parts, lost=lost, reason=reason)

    def _losses(self, b: Batch, row: dict, i: int, limit: float, chosen: set[int]) -> list[Loss]:
        """Why each node cheaper than the chosen one (any node, if none was chosen) lost."""
        cost = np.where(row["considered"] | row["excluded"], row["total"], np.inf)
        cheaper = np.flatnonzero(cost < limit)
        cheaper = cheaper[np.argsort(cost[cheaper], kind="stable")][:MAX_LOSSES]
        return [Loss(node=b.nodes.ids[n], reason=self._reason(b, row, i, int(n))) for n in cheaper if n not in chosen]

    def _reason(self, b: Batch, row: dict, i: int, n: int) -> str:
        o = b.orders[i]
        if row["excluded"][n]:
            return "declined or let the order expire before"
        if not row["reachable"][n]:
            return "too far" if o.mode == "delivery" else "not the pickup store"
        if not row["open"][n]:
            return "closed"
        if not row["on_time"][n]:
            return f"too late (ready in {row['eta'][n]:.0f} min)"
        if not row["has_room"][n]:
            return "capacity full"
        short = b.short_sku(i, n)
        if short is not None:
            return f"no stock of SKU {short}"
        return "stock or capacity went to other orders in the batch"

    def _why_unserved(self, b: Batch, i: int, lost: list[Loss]) -> str:
        if not lost:
            return "no node reaches the location" if b.orders[i].mode == "delivery" else "the pickup store cannot serve it"
        if len(lost) == 1:
            return lost[0].reason
        return "no node can serve it: " + "; ".join(f"{x.node} {x.reason}" for x in lost[:3])


def _cost_terms(row: dict, n: int) -> CostTerms:
    def r(key: str, digits: int = 2) -> float:
        return round(float(row[key][n]), digits)

    return CostTerms(distance_km=r("distance_km", 3), eta_min=r("eta", 1), delivery=r("delivery"), time=r("time"),
                     lateness=r("lateness"), operating=r("operating"), home=r("home"), total=r("total"))


def make_router(settings: RouterSettings = RouterSettings()) -> NetworkRouter:
    return NetworkRouter(settings)
