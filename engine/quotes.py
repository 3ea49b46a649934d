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
from dataclasses import dataclass, field
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
from engine.scheduling import Slot, requested, slot_after

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
        DomainError in its slot, naming the field. One candidate build per
        state (now, and each slot asked for); losses are explained only for
        quotes with no option at all."""
        e = self.engine
        at = e.clock.now()
        state = e.network_state(at)
        settings, nodes = self._router(state)
        results: list[Any] = [None] * len(cmds)
        ways: list[_Way] = []
        areas = self._pickup_areas(cmds, nodes)
        for i, cmd in enumerate(cmds):
            qid = cmd.quote_id or uuid.uuid4().hex
            try:
                slot = requested(cmd, at, e.schedule)
                if slot is not None and cmd.hold_minutes:
                    raise InvalidInput("hold_minutes", "a booked slot's stock is reserved at its lead time, not held")
                mine = self._asks(cmd, qid, at, areas.get(i, []), slot)
            except DomainError as err:
                results[i] = untraced(err)
                continue
            if not mine:
                results[i] = QuoteReply(quote_id=qid, at=ts(at), options=[], short=[],
                                        reason=f"no pickup store within {cmd.within_km:g} km")
            ways += [_Way(i, ask, slot) for ask in mine]
        if not ways:
            return results
        self._decide(ways, state, at, settings, nodes)
        # later_ok: a way nobody serves now is planned for the first slot after its closed nodes open, as a submit's
        later: list[tuple[_Way, _Way, str]] = []  # a way, the same for its slot, and why that slot is asked for
        for w in ways:
            if cmds[w.quote].later_ok and not w.decided:
                opening = e._first_opening(w.ask, at)
                if opening is not None and opening <= at + e.schedule.horizon_days * 86_400:
                    slot = slot_after(opening, e.schedule, e._tz)
                    later.append((w, _Way(w.quote, msgspec.structs.replace(w.ask, promised_at=slot.end), slot),
                                  f"closed until {ts(opening).isoformat()}; no node can serve the slot "
                                  f"{ts(slot.start).isoformat()} to {ts(slot.end).isoformat()}: "))
        if later:
            self._decide([r for _, r, _ in later], state, at, settings, nodes, shorts=False)
            for w, r, why in later:
                if r.decided:
                    w.ask, w.slot, w.decided, w.split = r.ask, r.slot, r.decided, r.split
                elif r.reason is not None:  # as a submit's booking would be refused
                    w.reason = why + r.reason
        by_quote: dict[int, list[_Way]] = {}
        for w in ways:
            by_quote.setdefault(w.quote, []).append(w)
        demand = e.readmodels.demand
        for i, mine in by_quote.items():
            short = list({(s.node, s.sku): s for w in mine for s in w.short}.values())
            results[i] = _reply(at, mine, short, reason=mine[0].reason)
            # unmet demand: what the nearest node (of the first way asked for) lacks, once per quote
            first = mine[0].nearest
            lacking = {s.sku: s.wanted - s.available for s in mine[0].short if s.node == first}
            if lacking:
                demand.record_quote_short(first, lacking, at)
        wanted = [i for i, c in enumerate(cmds) if c.hold_minutes and isinstance(results[i], QuoteReply)]
        if wanted:
            self._hold(cmds, results, wanted, at)
        return results

    def _decide(self, ways: list[_Way], now: NetworkState, at: float, settings: RouterSettings, nodes: NodeArrays,
                shorts: bool = True) -> None:
        """Each way's parts as routing it alone would decide them, against
        the network now or, for a slot, as a booking plans it (the nodes'
        hours then, the capacity left in that slot); why a quote with no
        option has none; with `shorts`, what the nearest nodes lack."""
        e = self.engine
        whole = msgspec.structs.replace(settings, allow_split=False) if settings.allow_split else settings
        by_start: dict[float | None, list[_Way]] = {}
        for w in ways:
            by_start.setdefault(w.slot.start if w.slot is not None else None, []).append(w)
        for start, group in by_start.items():
            state = now if start is None else e._state_at(at, start, {}, [])
            asks = [w.ask for w in group]
            batch = build(asks, state, whole, nodes)  # a pickup is at one store: whole there, or not at all
            decided = chosen_parts(batch, alone(batch).parts)[0]
            if settings.allow_split:  # parts may beat whole: the router decides each delivery cart, alone
                for k, ask in enumerate(asks):
                    if ask.mode == "delivery":
                        decided[k] = e.router.route([ask], state)[0].parts
            split = self._splits(asks, decided, state, settings, nodes)
            for k, w in enumerate(group):
                w.decided, w.split = decided[k], split.get(k)
            if shorts:
                near = _near(batch)
                atp, col = state.atp, _sku_index(state.sku_ids)
                for k, w in enumerate(group):
                    w.short = _short(batch, k, near, atp, col)
                    w.nearest = nodes.ids[near[k][0]] if near[k] else None
            # why no option: the losses of the quote's first way asked for, as routing explains them
            firsts: dict[int, int] = {}
            served: set[int] = set()
            for k, w in enumerate(group):
                firsts.setdefault(w.quote, k)
                if w.decided or w.split:
                    served.add(w.quote)
            none = [k for q, k in firsts.items() if q not in served]
            if none:
                b = build([asks[k] for k in none], state, whole, nodes)
                for k, d in zip(none, decisions(b, alone(b))):
                    group[k].reason = d.reason

    def _hold(self, cmds: list[QuoteOrder], results: list[Any], wanted: list[int], at: float) -> None:
        """The best options' stock held for the quotes that asked (domain/hold.py), in one
        transaction; a quote whose best option cannot be held says why."""
        def work(uow: Any) -> dict[int, tuple[HoldReply | None, str | None]]:
            out: dict[int, tuple[HoldReply | None, str | None]] = {}
            for i in wanted:
                r = results[i]
                best = next((o for o in r.options if o.best), None)
                if best is None or best.split or best.window_start is not None:
                    out[i] = (None, "no option to hold" if best is None else "a split is not held" if best.split
                              else "a booked slot's stock is reserved at its lead time, not held")
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

    def _router(self, state: NetworkState) -> tuple[RouterSettings, NodeArrays]:
        router = self.engine.router
        settings = getattr(router, "settings", RouterSettings())
        if hasattr(router, "nodes"):
            return settings, router.nodes(state)
        if self._arrays is None or self._arrays[0] is not state.network:
            self._arrays = (state.network, NodeArrays.of(state.network))
        return settings, self._arrays[1]

    def _asks(self, cmd: QuoteOrder, qid: str, at: float, area: list[str], slot: Slot | None) -> list[OrderToRoute]:
        """The carts to route alone: a delivery to the address, pickups at the
        chosen store or at the stores of the pickup area, nearest first; for
        a slot, promised by its end. Checked as a submit of the cart would be
        (the same errors), once."""
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
            promised = slot.end if slot is not None else at + minutes * 60
            lat, lon = (cmd.lat, cmd.lon) if located else (e.nodes[node].lat, e.nodes[node].lon)
            # as Engine._place and Engine._route hand an order to the router
            out.append(OrderToRoute(key=qid, lines=lines, mode=mode, lat=lat, lon=lon, placed_at=at,
                                    promised_at=promised, value=value, pickup_node=node, home_node=home))
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


def _reply(at: float, ways: list[_Way], short: list[Shortage], reason: str | None) -> QuoteReply:
    """The options, best first: the delivery the router would decide, else
    the nearest pickup store that can serve it; a split the router would
    not make (splitting off) is shown, never best."""
    delivery: list[QuoteOption] = []
    pickup: list[QuoteOption] = []
    for w in ways:
        if w.decided:
            (delivery if w.ask.mode == "delivery" else pickup).append(_option(w, w.decided, w.ask.mode == "delivery"))
        elif w.split is not None:
            delivery.append(_option(w, w.split, best=False))
    pickup = pickup[:PICKUP_OPTIONS]
    if pickup and not any(o.best for o in delivery):
        pickup[0] = msgspec.structs.replace(pickup[0], best=True)
    options = delivery[:1] + pickup
    options.sort(key=lambda o: not o.best)
    return QuoteReply(quote_id=ways[0].ask.key, at=ts(at), options=options, short=short,
                      reason=None if options else reason)


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


def _short(b: Batch, k: int, near: list[list[int]], atp: np.ndarray, col: dict[str, int]) -> list[Shortage]:
    """The nodes near ask k that cannot promise a line of its cart."""
    out = []
    ids = b.nodes.ids
    for n in near[k]:
        for sku, qty in b.orders[k].lines.items():
            j = col.get(sku)
            have = max(int(atp.item(n, j)), 0) if j is not None else 0
            if have < qty:
                out.append(Shortage(node=ids[n], sku=sku, wanted=qty, available=have))
    return out


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


def _option(w: _Way, chosen: list[Part], best: bool) -> QuoteOption:
    parts = [QuotePart(node=p.node, lines=dict(p.lines), eta_at=ts(p.eta_at), distance_km=p.cost.distance_km,
                       cost=p.cost.total) for p in chosen]
    slot = w.slot
    return QuoteOption(mode=w.ask.mode, node=parts[0].node, parts=parts, eta_at=max(p.eta_at for p in parts),
                       promised_at=ts(w.ask.promised_at), split=len(parts) > 1, best=best,
                       window_start=ts(slot.start) if slot is not None else None,
                       window_end=ts(slot.end) if slot is not None else None)


@dataclass
class _Way:
    """One way a quote asks to be served (a delivery, a pickup at one store),
    for now or for a slot, and what routing it alone decides."""

    quote: int
    ask: OrderToRoute
    slot: Slot | None
    decided: list[Part] = field(default_factory=list)
    split: list[Part] | None = None
    short: list[Shortage] = field(default_factory=list)
    nearest: str | None = None  # the nearest node in reach, whose shortages feed the demand read model
    reason: str | None = None  # why no node serves it (the quote's first way only)
