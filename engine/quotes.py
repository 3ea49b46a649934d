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

from domain import ids
from domain.commands import QuoteOrder, SubmitOrder
from domain.hold import Hold, reservation_key
from domain.errors import DomainError, InvalidInput, NotFound
from engine.memory import untraced
from engine.replies import HoldReply, QuoteOption, QuotePart, QuoteReply, Shortage, ts
from engine.routing.candidates import Batch, NodeArrays, _distances, _sku_index, build
from engine.routing.explain import chosen_parts, decisions
from engine.routing.greedy import solve_greedy
from engine.routing.problem import Solution
from engine.routing.types import NetworkState, OrderToRoute, Part, RouterSettings

PICKUP_OPTIONS = 3  # pickup options per quote, nearest first
PICKUP_TRIED = 5  # stores of the pickup area tried for them (nearest first): each is a candidate row
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
        DomainError in its slot, naming the field. One candidate build for the
        batch; losses are explained only for quotes with no option at all."""
        e = self.engine
        at = e.clock.now()
        state = e.network_state(at)
        settings, nodes = self._router(state)
        results: list[Any] = [None] * len(cmds)
        asks: list[OrderToRoute] = []
        owner: list[int] = []  # per ask: its quote
        areas = self._pickup_areas(cmds, nodes)
        for i, cmd in enumerate(cmds):
            qid = cmd.quote_id or uuid.uuid4().hex
            try:
                mine = self._asks(cmd, qid, at, areas.get(i, []))
            except DomainError as err:
                results[i] = untraced(err)
                continue
            if not mine:
                results[i] = QuoteReply(quote_id=qid, at=ts(at), options=[], short=[],
                                        reason=f"no pickup store within {cmd.within_km:g} km")
            asks += mine
            owner += [i] * len(mine)
        if not asks:
            return results
        whole = msgspec.structs.replace(settings, allow_split=False) if settings.allow_split else settings
        batch = build(asks, state, whole, nodes)  # a pickup is at one store: whole there, or not at all
        decided = chosen_parts(batch, alone(batch).parts)[0]
        if settings.allow_split:  # parts may beat whole: the router decides each delivery cart, alone
            for k, ask in enumerate(asks):
                if ask.mode == "delivery":
                    decided[k] = e.router.route([ask], state)[0].parts
        split = self._splits(asks, decided, state, settings, nodes)
        by_quote: dict[int, list[int]] = {}
        for k, i in enumerate(owner):
            by_quote.setdefault(i, []).append(k)
        near = _near(batch)
        atp, col = state.atp, _sku_index(state.sku_ids)
        demand = e.readmodels.demand
        for i, ks in by_quote.items():
            short = _short(batch, ks, near, atp, col)
            results[i] = self._reply(at, [asks[k] for k in ks], [decided[k] for k in ks], [split.get(k) for k in ks],
                                     short)
            # unmet demand: what the nearest node (of the first way asked for) lacks, once per quote
            first = nodes.ids[near[ks[0]][0]] if near[ks[0]] else None
            lacking = {s.sku: s.wanted - s.available for s in short if s.node == first}
            if lacking:
                demand.record_quote_short(first, lacking, at)
        self._explain_none(results, by_quote, asks, state, whole, nodes)
        wanted = [i for i, c in enumerate(cmds) if c.hold_minutes and isinstance(results[i], QuoteReply)]
        if wanted:
            self._hold(cmds, results, wanted, at)
        return results

    def _hold(self, cmds: list[QuoteOrder], results: list[Any], wanted: list[int], at: float) -> None:
        """The best options' stock held for the quotes that asked (domain/hold.py), in one
        transaction; a quote whose best option cannot be held says why."""
        def work(uow: Any) -> dict[int, tuple[HoldReply | None, str | None]]:
            out: dict[int, tuple[HoldReply | None, str | None]] = {}
            for i in wanted:
                r = results[i]
                best = next((o for o in r.options if o.best), None)
                if best is None or best.split:
                    out[i] = (None, "no option to hold" if best is None else "a split is not held")
                    continue
                if uow._get(ids.hold_id(r.quote_id)) is not None:
                    out[i] = (None, f"quote {r.quote_id} placed a hold before: quote again under another id")
                    continue
                lines = best.parts[0].lines
                inventory = uow.inventory(best.node)
                short = inventory.can_reserve(lines)
                if short is not None:  # another hold of this batch took it
                    out[i] = (None, f"the stock of {short} at {best.node} is held for another quote")
                    continue
                hold = uow.add(Hold.place(r.quote_id, best.node, best.mode, lines, cmds[i].hold_minutes, at))
                inventory.reserve(reservation_key(r.quote_id), lines, at)
                out[i] = (HoldReply(node=best.node, lines=dict(lines), expires_at=ts(hold.expires_at)), None)
            return out

        for i, (made, why) in self.engine._transaction(work).items():
            results[i] = msgspec.structs.replace(results[i], hold=made, hold_refused=why)

    def held(self, ask: OrderToRoute, node: str, lines: dict[str, int]) -> Part | None:
        """The part a submit using a hold gets at the held node, if the node can
        still take it now (open, in time, with capacity); the held stock counts
        as available. None: the order is routed as any other."""
        e = self.engine
        state = e.network_state(ask.placed_at)
        settings, nodes = self._router(state)
        n = nodes.index[node]
        atp = state.atp.copy()
        col = _sku_index(state.sku_ids)
        for sku, qty in lines.items():
            atp[n, col[sku]] += qty  # the read model still counts the hold's reservation
        state.atp = atp
        whole = msgspec.structs.replace(settings, allow_split=False, candidates=len(nodes.ids))
        b = build([ask], state, whole, nodes)
        p = b.problem
        if n not in p.pair_node[p.pair_ptr[0]:p.pair_ptr[1]].tolist():
            return None
        return chosen_parts(b, [{n: list(range(len(ask.lines)))}])[0][0][0]

    def _explain_none(self, results: list[Any], by_quote: dict[int, list[int]], asks: list[OrderToRoute],
                      state: NetworkState, settings: RouterSettings, nodes: NodeArrays) -> None:
        """Why a quote has no option: the losses of its first way asked for, as routing explains them."""
        none = [i for i in by_quote if not results[i].options]
        if not none:
            return
        b = build([asks[by_quote[i][0]] for i in none], state, settings, nodes)
        for i, d in zip(none, decisions(b, alone(b))):
            results[i] = msgspec.structs.replace(results[i], reason=d.reason)

    def _router(self, state: NetworkState) -> tuple[RouterSettings, NodeArrays]:
        router = self.engine.router
        settings = getattr(router, "settings", RouterSettings())
        if hasattr(router, "nodes"):
            return settings, router.nodes(state)
        if self._arrays is None or self._arrays[0] is not state.network:
            self._arrays = (state.network, NodeArrays.of(state.network))
        return settings, self._arrays[1]

    def _asks(self, cmd: QuoteOrder, qid: str, at: float, area: list[str]) -> list[OrderToRoute]:
        """The carts to route alone: a delivery to the address, pickups at the
        chosen store or at the stores of the pickup area, nearest first.
        Checked as a submit of the cart would be (the same errors), once."""
        e = self.engine
        located = cmd.lat is not None and cmd.lon is not None
        ways: list[tuple[str, str | None]] = []
        if cmd.modes != "pickup" and (located or cmd.modes == "delivery"):
            ways.append(("delivery", None))
        if cmd.modes != "delivery":
            if cmd.pickup_node is not None:
                ways.append(("pickup", cmd.pickup_node))
            elif located:
                ways += [("pickup", s) for s in area]
            elif not ways:
                raise InvalidInput("lat", "a quote needs the address or pickup area (lat, lon), or a pickup_node")
        first = ways[0] if ways else ("delivery", None)  # no store in the pickup area: the cart is still checked
        lines, _, _, money = e.check_order(self._as_submit(cmd, qid, *first))
        if cmd.pickup_node is not None and len(ways) > 1:
            e.check_order(self._as_submit(cmd, qid, "pickup", cmd.pickup_node))  # the store offers pickup
        value = e._value(lines, money)
        members = e.readmodels.members
        home = members[cmd.member]["node"] if cmd.member in members else None
        out = []
        for mode, node in ways:
            minutes = cmd.promise_minutes or (
                e.settings.pickup_promise_minutes if mode == "pickup" else e.settings.delivery_promise_minutes)
            lat, lon = (cmd.lat, cmd.lon) if located else (e.nodes[node].lat, e.nodes[node].lon)
            # as Engine._place and Engine._route hand an order to the router
            out.append(OrderToRoute(key=qid, lines=lines, mode=mode, lat=lat, lon=lon, placed_at=at,
                                    promised_at=at + minutes * 60, value=value, pickup_node=node, home_node=home))
        return out

    @staticmethod
    def _as_submit(cmd: QuoteOrder, qid: str, mode: str, node: str | None) -> SubmitOrder:
        return SubmitOrder(channel="quote", external_id=qid, lines=cmd.lines, mode=mode, lat=cmd.lat, lon=cmd.lon,
                           pickup_node=node, promise_minutes=cmd.promise_minutes, member=cmd.member)

    @staticmethod
    def _pickup_areas(cmds: list[QuoteOrder], nodes: NodeArrays) -> dict[int, list[str]]:
        """Per quote asking for pickup in an area: its stores offering pickup, nearest first (all quotes at once)."""
        which = [i for i, c in enumerate(cmds) if c.modes != "delivery" and c.pickup_node is None
                 and c.lat is not None and c.lon is not None]
        if not which:
            return {}
        dist = _distances(np.array([cmds[i].lat for i in which]), np.array([cmds[i].lon for i in which]), nodes)
        dist[:, ~nodes.picks_up] = np.inf
        dist[dist > np.array([cmds[i].within_km for i in which])[:, None]] = np.inf
        top = _nearest_first(dist, PICKUP_TRIED)
        ids = nodes.ids
        return {i: [ids[n] for n in row] for i, row in zip(which, top)}

    def _splits(self, asks: list[OrderToRoute], decided: list[list[Part]], state: NetworkState,
                settings: RouterSettings, nodes: NodeArrays) -> dict[int, list[Part]]:
        """Delivery carts no single node can serve, in parts (greedy: each
        line at the cheapest node that has it), when splitting is off."""
        if settings.allow_split:
            return {}
        ks = [k for k, (a, d) in enumerate(zip(asks, decided)) if a.mode == "delivery" and not d and len(a.lines) > 1]
        if not ks:
            return {}
        b = build([asks[k] for k in ks], state, msgspec.structs.replace(settings, allow_split=True), nodes)
        return {k: parts for k, parts in zip(ks, chosen_parts(b, solve_greedy(b.problem).parts)[0]) if parts}

    def _reply(self, at: float, asks: list[OrderToRoute], decided: list[list[Part]],
               splits: list[list[Part] | None], short: list[Shortage]) -> QuoteReply:
        """The options, best first: the delivery the router would decide, else
        the nearest pickup store that can serve it; a split the router would
        not make (splitting off) is shown, never best."""
        delivery: list[QuoteOption] = []
        pickup: list[QuoteOption] = []
        for ask, d, s in zip(asks, decided, splits):
            if d:
                (delivery if ask.mode == "delivery" else pickup).append(_option(ask, d, best=ask.mode == "delivery"))
            elif s is not None:
                delivery.append(_option(ask, s, best=False))
        pickup = pickup[:PICKUP_OPTIONS]
        if pickup and not any(o.best for o in delivery):
            pickup[0] = msgspec.structs.replace(pickup[0], best=True)
        options = delivery[:1] + pickup
        options.sort(key=lambda o: not o.best)
        return QuoteReply(quote_id=asks[0].key, at=ts(at), options=options, short=short)


def _nearest_first(dist: np.ndarray, k: int) -> list[list[int]]:
    """Per row, the columns of the k smallest finite values, smallest first (ties: lower column)."""
    top = np.argsort(dist, axis=1, kind="stable")[:, :k]  # one call: rows are few and short (a batch x nodes)
    finite = np.isfinite(np.take_along_axis(dist, top, axis=1))
    return [row[ok].tolist() for row, ok in zip(top, finite)]


def _near(b: Batch) -> list[list[int]]:
    """Per ask, the nearest nodes in reach whose shortages are reported (a pickup: its store)."""
    out: list[list[int]] = [[] for _ in b.orders]
    rows = np.flatnonzero(~b.pickup)
    if len(rows):
        dist = np.where(b.reach[rows], b.dist[rows], np.inf)
        for k, top in zip(rows.tolist(), _nearest_first(dist, SHORT_NODES)):
            out[k] = top
    index = b.nodes.index
    for k in np.flatnonzero(b.pickup).tolist():
        n = index.get(b.orders[k].pickup_node, -1)
        if n >= 0 and b.reach[k, n]:
            out[k] = [n]
    return out


def _short(b: Batch, ks: list[int], near: list[list[int]], atp: np.ndarray, col: dict[str, int]) -> list[Shortage]:
    """The nodes near the quote's asks that cannot promise a line of the cart."""
    out: dict[tuple[int, str], Shortage] = {}
    ids = b.nodes.ids
    lines = b.orders[ks[0]].lines  # one cart per quote
    for k in ks:
        for n in near[k]:
            for sku, qty in lines.items():
                j = col.get(sku)
                have = max(int(atp.item(n, j)), 0) if j is not None else 0
                if have < qty and (n, sku) not in out:
                    out[(n, sku)] = Shortage(node=ids[n], sku=sku, wanted=qty, available=have)
    return list(out.values())


def use_hold(uow: Any, quote_id: str, order: Any, key: str, at: float,
             held: dict[str, tuple[str, dict[str, int]]]) -> None:
    """An order placed with a quote's hold: the hold is used, its stock goes
    back to the node, and the order is routed there first (`Quotes.held`);
    a hold lapsed or used already leaves the order to be routed as any other."""
    hold = uow._get(ids.hold_id(quote_id))
    if hold is None:
        raise NotFound("hold", f"no hold under quote {quote_id!r}")
    if hold.check_use(order.lines, order.mode, order.pickup_node, at):
        hold.use(key, at)
        uow.inventory(hold.node).release(reservation_key(quote_id), reason=f"hold used by order {key}", at=at)
        held[key] = (hold.node, dict(hold.lines))


def expire_holds(engine: Any) -> int:
    """Holds not used by their time lapse, their stock released (the engine's timer)."""
    now = engine.clock.now()
    due = engine.readmodels.holds.due(now)
    if not due:
        return 0

    def work(uow: Any) -> int:
        for quote_id in due:
            hold = uow._get(ids.hold_id(quote_id))
            hold.lapse(now)
            uow.inventory(hold.node).release(reservation_key(quote_id), reason="hold lapsed", at=now)
        return len(due)

    return engine._transaction(work)


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


def _option(ask: OrderToRoute, chosen: list[Part], best: bool) -> QuoteOption:
    parts = [QuotePart(node=p.node, lines=dict(p.lines), eta_at=ts(p.eta_at), distance_km=p.cost.distance_km,
                       cost=p.cost.total) for p in chosen]
    return QuoteOption(mode=ask.mode, node=parts[0].node, parts=parts, eta_at=max(p.eta_at for p in parts),
                       promised_at=ts(ask.promised_at), split=len(parts) > 1, best=best)
