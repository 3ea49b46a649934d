"""Read models: projections of the stored events, never queries over
aggregates. The engine applies each committed event in commit order; a
rebuild applies the same events from the store and must reach the same state.

One module per model, each with a table of handlers keyed by event class:
- atp: on hand / reserved / safety per node x SKU (the router's view of stock);
- orders: every order's status, parts and first answer, the orders waiting
  for routing and the parts waiting for their node's decision;
- capacity: orders each node takes per slot (routed now, or booked for a later slot);
- members: members, their identities and points, sign-ups per node;
- counter_sales: POS sales and units, each sale's money and refunds;
- demand: units sold, lost and short per node and SKU (the replenishment policy's input);
- benefit: benefit-sharing rules, credited lines and statements;
- kpis: queries over the models above.

`ReadModels` composes them and dispatches each event on its class (as the
eventsourcing library's ftsprojection example does), with one dict lookup.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Iterable
from uuid import UUID

import msgspec
import numpy as np

from domain.hold import Hold
from domain.inventory import NodeInventory
from domain.member import Member
from domain.network import Network
from domain.benefit import BenefitRules, PartyLedger
from domain.order import Order
from domain.sale import Sale
from engine.readmodels import kpis as _kpis
from engine.readmodels.atp import AtpView
from engine.readmodels.benefit import BenefitView
from engine.readmodels.capacity import CapacityView
from engine.readmodels.counter_sales import CounterSales
from engine.readmodels.demand import DemandView
from engine.readmodels.holds import HoldView
from engine.readmodels.members import MemberView
from engine.readmodels.orders import OrderRecord, OrderView, PartRecord
from engine.readmodels.retention import EventsOf

__all__ = ["AGGREGATES", "AtpView", "OrderRecord", "PartRecord", "ReadModels", "UnhandledEvent"]

Handler = Callable[[Any], None]

# Every event of these aggregates must have a handler; events of others are ignored.
AGGREGATES = (NodeInventory, Order, Member, Sale, BenefitRules, PartyLedger, Hold)


class UnhandledEvent(TypeError):
    """An event of a known aggregate that no read model handles: a handler is
    missing or keyed by the wrong class, and the event would be dropped live
    and in a rebuild alike, where "rebuild equals live" cannot see it."""


class ReadModels:
    """All read models, fed one event at a time in commit order."""

    def __init__(self, network: Network, retain_s: float | None = None,
                 events_of: EventsOf | None = None):
        """`retain_s`: how long a finished order's record, a counter sale's
        and an ended hold's stay in memory; `events_of(aggregate id, up to
        version)`: the stored events a record that left is built again from
        (engine.readmodels.orders)."""
        self.retain_s = retain_s
        self.events_of = events_of
        self.reset(network)

    def reset(self, network: Network | None = None) -> None:
        """Empty models, before a rebuild (the same object: its holders keep it)."""
        network = network or self.network
        self.network = network
        self.atp = AtpView([n.id for n in network.nodes], [s.id for s in network.skus])
        self.order_view = OrderView(self.retain_s, self.events_of)
        self.capacity = CapacityView(network)
        self.member_view = MemberView()
        self.counter_sales = CounterSales(self.retain_s, self.events_of)
        self.benefit = BenefitView()
        self.demand = DemandView(self.order_view.orders)  # after the order view: it reads a rejected order's lines
        self.holds = HoldView(self.retain_s)
        self.last_notification_id = 0
        self._handlers = _dispatch_table(
            (self.atp, self.order_view, self.capacity, self.member_view, self.counter_sales, self.benefit,
             self.demand, self.holds))

    # -- the models' state, as the engine and its clients read it --------
    @property
    def orders(self) -> dict[str, OrderRecord]:
        return self.order_view.orders

    @property
    def to_route(self) -> dict[str, None]:
        return self.order_view.to_route

    @property
    def awaiting(self) -> dict[tuple[str, str], float]:
        return self.order_view.awaiting

    @property
    def slot_used(self) -> dict[str, tuple[int, int]]:
        return self.capacity.slot_used

    @property
    def members(self) -> dict[str, dict[str, Any]]:
        return self.member_view.members

    @property
    def member_ids(self) -> dict[UUID, str]:
        return self.member_view.member_ids

    @property
    def signups(self) -> Counter[str]:
        return self.member_view.signups

    @property
    def pos(self) -> dict[str, int]:
        return self.counter_sales.counts

    @property
    def sales(self) -> dict[str, Any]:
        return self.counter_sales.sales

    # -- feeding -------------------------------------------------------
    def apply(self, event: Any, notification_id: int | None = None) -> None:
        try:
            handler = self._handlers[event.__class__]
        except KeyError:
            handler = self._unknown(event.__class__)
        handler(event)
        if notification_id is not None:
            self.last_notification_id = notification_id

    def apply_all(self, events: Iterable[Any]) -> None:
        for e in events:
            self.apply(e)

    def handled(self) -> list[type]:
        """The event classes some read model handles."""
        return [c for c, h in self._handlers.items() if h is not _ignore]

    def handles(self, event_class: type) -> bool:
        handler = self._handlers.get(event_class)
        return handler is not None and handler is not _ignore

    def _unknown(self, cls: type) -> Handler:
        """Raises for an event of a known aggregate; remembers to ignore the
        events of an aggregate no read model follows."""
        aggregate = _aggregate_of(cls)
        if aggregate is not None:
            raise UnhandledEvent(f"no read model handles {cls.__module__}.{cls.__qualname__}, "
                                 f"an event of {aggregate.__qualname__}")
        self._handlers[cls] = _ignore
        return _ignore

    # -- queries -------------------------------------------------------
    def capacity_left(self, now: float) -> np.ndarray:
        return self.capacity.capacity_left(now)

    def kpis(self) -> dict[str, Any]:
        return _kpis.kpis(self)

    def state(self) -> dict[str, Any]:
        """Everything, in comparable form (used to prove a rebuild equals live)."""
        return {
            "atp": self.atp.state(),
            "orders": {k: msgspec.to_builtins(v) for k, v in self.orders.items()},
            "to_route": list(self.to_route),
            "awaiting": sorted(f"{o}/{n}@{t}" for (o, n), t in self.awaiting.items()),
            "slot_used": dict(sorted(self.slot_used.items())),
            "slot_booked": {n: dict(sorted(s.items())) for n, s in sorted(self.capacity.slot_booked.items())},
            "sales": {k: msgspec.to_builtins(v) for k, v in self.sales.items()},
            "statements": {"/".join(k): msgspec.to_builtins(v) for k, v in sorted(self.benefit.statements.items())},
            "members": self.members,
            "demand": self.demand.state(),
            "holds": self.holds.state(),
            "kpis": self.kpis(),
        }


def _dispatch_table(models: Iterable[Any]) -> dict[type, Handler]:
    """event class -> handler; an event two models follow gets one handler calling both."""
    by_class: dict[type, list[Handler]] = {}
    for model in models:
        for cls, handler in model.handlers().items():
            by_class.setdefault(cls, []).append(handler)
    return {cls: hs[0] if len(hs) == 1 else _each(tuple(hs)) for cls, hs in by_class.items()}


def _each(handlers: tuple[Handler, ...]) -> Handler:
    if len(handlers) == 2:  # the cases there are (Routed, Consumed, ...): no loop on a hot event
        first, second = handlers

        def both(event: Any) -> None:
            first(event)
            second(event)
        return both
    if len(handlers) == 3:  # SoldOverCounter
        one, two, three = handlers

        def three_of(event: Any) -> None:
            one(event)
            two(event)
            three(event)
        return three_of

    def each(event: Any) -> None:
        for h in handlers:
            h(event)
    return each


def _aggregate_of(cls: type) -> type | None:
    """The known aggregate an event class belongs to. By name as well: the
    classes an aggregate's body defines (Order.Routed) are replaced by
    subclasses of its Event, and the originals do not subclass it."""
    for aggregate in AGGREGATES:
        if issubclass(cls, aggregate.Event):
            return aggregate
        if cls.__module__ == aggregate.__module__ and cls.__qualname__.startswith(f"{aggregate.__qualname__}."):
            return aggregate
    return None


def _ignore(event: Any) -> None:
    pass
