"""Quotes: a cart's options before checkout, from the read models and cost
terms routing uses (engine/routing/candidates.py, explain.py), nothing reserved.

A cart routed alone gets its cheapest candidate node, or none where leaving
it unserved costs less: that is every solver's answer to a batch of one
order with splitting off (optimal.each_at_cheapest, greedy). So a batch of
quotes is one candidate build with each cart at its own cheapest node, and
quotes never compete with one another for stock. With splitting on, a cart
may be served in parts more cheaply than whole: such a router's delivery
quotes are decided by the router itself, one cart at a time.
"""
from __future__ import annotations

import uuid
from typing import Any

import msgspec
import numpy as np

from domain.commands import QuoteOrder, SubmitOrder
from domain.errors import DomainError, InvalidInput
from engine.memory import untraced
from engine.replies import QuoteOption, QuotePart, QuoteReply, Shortage, ts
from engine.routing.candidates import Batch, NodeArrays, _distances, build
from engine.routing.explain import decisions
from engine.routing.greedy import solve_greedy
from engine.routing.problem import Solution
from engine.routing.types import Decision, NetworkState, OrderToRoute, RouterSettings

PICKUP_OPTIONS = 3  # pickup options per quote, nearest first
PICKUP_TRIED = 8  # stores of the pickup area tried for them (nearest first)
SHORT_NODES = 3  # nearest nodes in reach whose shortages a delivery quote reports


class Quotes:
    """Answers quotes against the engine's read models and router."""

    def __init__(self, engine: Any):
        self.engine = engine
        self._arrays: tuple[Any, NodeArrays] | None = None

    def quote(self, cmd: QuoteOrder) -> QuoteReply:
        result = self.quote_batch([cmd])[0]
        if isinstance(result, DomainError):
            raise result
        return result

    def quote_batch(self, cmds: list[QuoteOrder]) -> list[QuoteReply | DomainError]:
        """Each quote as if its cart were submitted alone now; a bad one is a
        DomainError in its slot, naming the field."""
        e = self.engine
        at = e.clock.now()
        state = e.network_state(at)
        settings, nodes = self._router(state)
        results: list[Any] = [None] * len(cmds)
        asks: list[OrderToRoute] = []
        owner: list[tuple[int, str]] = []  # per ask: (quote, "delivery" | "pickup")
        for i, cmd in enumerate(cmds):
            qid = cmd.quote_id or uuid.uuid4().hex
            try:
                mine = self._asks(cmd, qid, at, nodes)
            except DomainError as err:
                results[i] = untraced(err)
                continue
            if not mine:
                results[i] = QuoteReply(quote_id=qid, at=ts(at), options=[], short=[],
                                        reason=f"no pickup store within {cmd.within_km:g} km")
            asks += mine
            owner += [(i, ask.mode) for ask in mine]
        if not asks:
            return results
        whole = msgspec.structs.replace(settings, allow_split=False) if settings.allow_split else settings
        batch = build(asks, state, whole, nodes)  # a pickup is at one store: whole there, or not at all
        decided = decisions(batch, alone(batch))
        if settings.allow_split:  # parts may beat whole: the router decides each delivery cart, alone
            for k, ask in enumerate(asks):
                if ask.mode == "delivery":
                    decided[k] = e.router.route([ask], state)[0]
        split = self._splits(asks, decided, state, settings, nodes)
        by_quote: dict[int, list[int]] = {}
        for k, (i, _) in enumerate(owner):
            by_quote.setdefault(i, []).append(k)
        demand = e.readmodels.demand
        for i, ks in by_quote.items():
            short = self._short(batch, ks, state)
            results[i] = self._reply(cmds[i], at, [asks[k] for k in ks], [decided[k] for k in ks],
                                     [split.get(k) for k in ks], short)
            # unmet demand: what the nearest node (of the first way asked for) lacks, once per quote
            nearest = [s for s in short if s.node == short[0].node] if short else []
            if nearest and _nearest(batch, ks[0]) == nearest[0].node:
                demand.record_quote_short(nearest[0].node, {s.sku: s.wanted - s.available for s in nearest}, at)
        return results

    def _router(self, state: NetworkState) -> tuple[RouterSettings, NodeArrays]:
        router = self.engine.router
        settings = getattr(router, "settings", RouterSettings())
        if hasattr(router, "nodes"):
            return settings, router.nodes(state)
        if self._arrays is None or self._arrays[0] is not state.network:
            self._arrays = (state.network, NodeArrays.of(state.network))
        return settings, self._arrays[1]

    def _asks(self, cmd: QuoteOrder, qid: str, at: float, nodes: NodeArrays) -> list[OrderToRoute]:
        """The carts to route alone: a delivery to the address, pickups at the
        chosen store or at the stores of the pickup area, nearest first.
        Checked as a submit of the cart would be (the same errors)."""
        located = cmd.lat is not None and cmd.lon is not None
        out = []
        if cmd.modes != "pickup" and (located or cmd.modes == "delivery"):
            out.append(self._ask(self._as_submit(cmd, qid, "delivery", None), at))
        if cmd.modes != "delivery":
            if cmd.pickup_node is not None:
                stores = [cmd.pickup_node]
            elif located:
                stores = self._pickup_area(cmd, nodes)
            elif not out:
                raise InvalidInput("lat", "a quote needs the address or pickup area (lat, lon), or a pickup_node")
            else:
                stores = []
            out += [self._ask(self._as_submit(cmd, qid, "pickup", s), at) for s in stores]
        if not out:  # no store in the pickup area: the cart's own errors still answered
            self.engine.check_order(self._as_submit(cmd, qid, "delivery", None))
        return out

    @staticmethod
    def _as_submit(cmd: QuoteOrder, qid: str, mode: str, node: str | None) -> SubmitOrder:
        return SubmitOrder(channel="quote", external_id=qid, lines=cmd.lines, mode=mode, lat=cmd.lat, lon=cmd.lon,
                           pickup_node=node, promise_minutes=cmd.promise_minutes, member=cmd.member)

    def _ask(self, sub: SubmitOrder, at: float) -> OrderToRoute:
        """The cart as Engine._place and Engine._route would hand it to the router."""
        e = self.engine
        lines, lat, lon, money = e.check_order(sub)
        minutes = sub.promise_minutes or (
            e.settings.pickup_promise_minutes if sub.mode == "pickup" else e.settings.delivery_promise_minutes)
        members = e.readmodels.members
        return OrderToRoute(key=sub.external_id, lines=lines, mode=sub.mode, lat=lat, lon=lon, placed_at=at,
                            promised_at=at + minutes * 60, value=e._value(lines, money), pickup_node=sub.pickup_node,
                            home_node=members[sub.member]["node"] if sub.member in members else None)

    def _pickup_area(self, cmd: QuoteOrder, nodes: NodeArrays) -> list[str]:
        dist = _distances(np.array([cmd.lat]), np.array([cmd.lon]), nodes)[0]
        inside = np.flatnonzero(nodes.picks_up & (dist <= cmd.within_km))
        nearest = inside[np.argsort(dist[inside], kind="stable")][:PICKUP_TRIED]
        return [nodes.ids[k] for k in nearest.tolist()]

    def _splits(self, asks: list[OrderToRoute], decided: list[Decision], state: NetworkState,
                settings: RouterSettings, nodes: NodeArrays) -> dict[int, Decision]:
        """Delivery carts no single node can serve, in parts (greedy: each
        line at the cheapest node that has it), when splitting is off."""
        if settings.allow_split:
            return {}
        ks = [k for k, (a, d) in enumerate(zip(asks, decided)) if a.mode == "delivery" and not d.parts
              and len(a.lines) > 1]
        if not ks:
            return {}
        b = build([asks[k] for k in ks], state, msgspec.structs.replace(settings, allow_split=True), nodes)
        return {k: d for k, d in zip(ks, decisions(b, solve_greedy(b.problem))) if d.parts}

    def _short(self, b: Batch, ks: list[int], state: NetworkState) -> list[Shortage]:
        """The nearest nodes in reach (a pickup: its store) that cannot promise a line of the cart."""
        out: dict[tuple[str, str], Shortage] = {}
        sku_col = {s: j for j, s in enumerate(state.sku_ids)}
        for k in ks:
            ask = b.orders[k]
            reach = np.flatnonzero(b.reach[k])
            near = reach[np.argsort(b.dist[k, reach], kind="stable")][:SHORT_NODES]
            for n in near.tolist():
                node = b.nodes.ids[n]
                for sku, qty in ask.lines.items():
                    j = sku_col.get(sku)
                    have = max(int(state.atp[n, j]), 0) if j is not None else 0
                    if have < qty and (node, sku) not in out:
                        out[(node, sku)] = Shortage(node=node, sku=sku, wanted=qty, available=have)
        return list(out.values())

    def _reply(self, cmd: QuoteOrder, at: float, asks: list[OrderToRoute], decided: list[Decision],
               splits: list[Decision | None], short: list[Shortage]) -> QuoteReply:
        """The options, best first: the delivery the router would decide, else
        the nearest pickup store that can serve it; a split the router would
        not make (splitting off) is shown, never best."""
        delivery: list[QuoteOption] = []
        pickup: list[QuoteOption] = []
        reason = None
        for ask, d, s in zip(asks, decided, splits):
            if d.parts:
                (delivery if ask.mode == "delivery" else pickup).append(_option(ask, d, best=ask.mode == "delivery"))
            elif s is not None:
                delivery.append(_option(ask, s, best=False))
            if not d.parts and reason is None:
                reason = d.reason
        pickup = pickup[:PICKUP_OPTIONS]
        if pickup and not any(o.best for o in delivery):
            pickup[0] = msgspec.structs.replace(pickup[0], best=True)
        options = delivery[:1] + pickup
        options.sort(key=lambda o: not o.best)
        return QuoteReply(quote_id=asks[0].key, at=ts(at), options=options, short=short,
                          reason=None if options else reason)


def alone(b: Batch) -> Solution:
    """Each order of the batch at its cheapest candidate, or unserved where
    its penalty is less: what routing it alone would decide (see above)."""
    p = b.problem
    first = p.pair_ptr[:-1]
    has = p.pair_ptr[1:] > first
    at = np.minimum(first, max(len(p.pair_cost) - 1, 0))
    served = has & (p.pair_cost[at] <= p.penalty) if len(p.pair_cost) else has
    node = p.pair_node[at] if len(p.pair_node) else np.zeros(len(has), np.int64)
    counts = (p.line_ptr[1:] - p.line_ptr[:-1]).tolist()
    parts = [{n: list(range(c))} if s else {} for n, c, s in zip(node.tolist(), counts, served.tolist())]
    return Solution(parts, "optimal", 0.0)


def _nearest(b: Batch, k: int) -> str | None:
    """The nearest node in reach of ask k (a pickup: its store)."""
    reach = np.flatnonzero(b.reach[k])
    return b.nodes.ids[reach[np.argmin(b.dist[k, reach])]] if len(reach) else None


def _option(ask: OrderToRoute, d: Decision, best: bool) -> QuoteOption:
    parts = [QuotePart(node=p.node, lines=dict(p.lines), eta_at=ts(p.eta_at), distance_km=p.cost.distance_km,
                       cost=p.cost.total) for p in d.parts]
    return QuoteOption(mode=ask.mode, node=parts[0].node, parts=parts, eta_at=max(p.eta_at for p in parts),
                       promised_at=ts(ask.promised_at), split=len(parts) > 1, best=best)
