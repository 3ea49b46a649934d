"""An online order and its way through the network.

placed [-> booked] -> routed -> accepted -> picked -> ready (pickup) | dispatched (delivery)
-> collected | delivered. An order may be split into parts, one per node; each
part moves on its own and the order's status is that of its least advanced
part. A declined or expired part's lines go back to `pending` and are routed
again, never to the same node. Terminal states: completed, cancelled, rejected.
An order for a later slot is booked first (a node and its slot planned, no
stock held) and routed at its lead time, when its stock is reserved.
"""
from __future__ import annotations

from typing import ClassVar, Literal

from eventsourcing.domain import Aggregate, event
from msgspec import Struct

from domain import ids
from domain.errors import Conflict, InvalidInput
from domain.money import NO_REFUNDS, OrderMoney, Refund, Refunds, refund_of, returned_goods
from domain.quantities import NO_LINES, check_lines, merge_lines
from domain.trigger import create, trigger

Mode = Literal["delivery", "pickup"]

# Part states in order of progress; a part that leaves (declined, expired,
# released) is removed from the order rather than kept in a state.
PROGRESS = ("routed", "accepted", "picked", "ready", "dispatched", "handed_over")
TERMINAL = ("completed", "cancelled", "rejected")


class RoutedPart(Struct, frozen=True):
    node: str
    lines: dict[str, int]
    eta_at: float  # expected hand-over, epoch seconds
    cost: dict[str, float]  # the cost terms that decided it


class Loss(Struct, frozen=True):
    node: str
    reason: str


class Booking(Struct, frozen=True):
    """A slot booked for an order: planned at `nodes` (one, unless split), routed (stock reserved) at `due_at`."""

    nodes: list[str]
    window_start: float  # epoch seconds: hand-over from then ...
    window_end: float  # ... to then (the order's promise)
    due_at: float


class PartState(Struct):
    node: str
    lines: dict[str, int]
    eta_at: float
    status: str
    routed_at: float


SHORTED = "shorted"  # id prefix of the refund the engine makes when it drops an order's unserved rest
ENGINE_REFUNDS = ("cancelled", "rejected")  # refund ids the engine makes when an order ends unserved


def made_by_engine(refund_id: str) -> bool:
    """A refund the engine made itself (cancellation, rejection, a dropped rest), not one asked for."""
    return refund_id in ENGINE_REFUNDS or refund_id.startswith(SHORTED + "-")


def check_pickup(mode: str, pickup_node: str | None) -> None:
    """The pickup rule: a pickup order names the store the customer chose."""
    if mode == "pickup" and not pickup_node:
        raise InvalidInput("pickup_node", "a pickup order names the store the customer chose")


class PartMoved(Aggregate.Event):
    """A part moved on at its node (Order.Accepted, Picked, ...): each step's
    class says the status it moves to."""

    node: str
    at: float
    status: ClassVar[str] = ""

    def apply(self, order: "Order") -> None:
        order.parts[self.node].status = self.status


class PartGivenBack(Aggregate.Event):
    """A part its node gave back (Order.Declined, Expired): routed again elsewhere."""

    def apply(self, order: "Order") -> None:
        order._give_back(self.node)  # type: ignore[attr-defined]


class OrderEnded(Aggregate.Event):
    """The order ended without being served (Order.Rejected, Cancelled): each class says its outcome."""

    outcome: ClassVar[str] = ""

    def apply(self, order: "Order") -> None:
        order.outcome = self.outcome
        order.reason = self.reason  # type: ignore[attr-defined]
        order.parts = {}


class Order(Aggregate):
    # The events every order has (placed, routed, its steps) are classes of their
    # own, triggered directly (domain/trigger.py): the @event decorator's argument
    # handling is costly on the hot path (benchmarks/README.md). The rarer ones
    # (Shorted, Booked, Transferred) use @event.
    class Placed(Aggregate.Created):
        channel: str
        external_id: str
        lines: dict[str, int]
        value: float
        mode: Mode
        lat: float
        lon: float
        promised_at: float
        at: float
        pickup_node: str | None
        member: str | None
        money: OrderMoney | None  # None: placed before amounts were recorded
        region: str | None  # its home region, where partitions are owned (docs/scale-out.md); else None

        class_version = 3

        @staticmethod
        def upcast_v1_v2(state: dict) -> None:
            state["money"] = None

        @staticmethod
        def upcast_v2_v3(state: dict) -> None:
            state["region"] = None

    class Routed(Aggregate.Event):
        parts: list[RoutedPart]
        lost: list[Loss]
        at: float

        def apply(self, order: "Order") -> None:
            at = self.at
            for p in self.parts:
                # by position (keywords cost msgspec a lookup each); the part keeps the event's lines,
                # as the read model's record does: neither changes them
                order.parts[p.node] = PartState(p.node, p.lines, p.eta_at, "routed", at)
            order.pending = NO_LINES

    # an order the engine rejects is refunded and rejected in the batch that
    # routed it: triggered directly too (they were @event methods; the same
    # topics, fields and stored JSON)
    class Rejected(OrderEnded):
        reason: str
        lost: list[Loss]
        released: list[str]
        at: float
        outcome = "rejected"

    class Refunded(Aggregate.Event):
        refund_id: str
        fingerprint: str
        reason: str
        lines: dict[str, int]
        cash: dict[str, int]
        points: dict[str, int]
        delivery_fee: int
        return_to: str | None
        write_off: bool
        at: float

        def apply(self, order: "Order") -> None:
            if order.refunds is NO_REFUNDS:
                order.refunds = Refunds()
            order.refunds.record(self.refund_id, self.fingerprint, self.lines, self.cash, self.points,
                                 self.delivery_fee)

    # an order's steps at its node (PartMoved, and the alternatives), which every order
    # that is served goes through: triggered directly too (they were @event
    # methods; the same topics, fields and stored JSON: tests/domain/test_step_events.py)
    class Accepted(PartMoved):
        status = "accepted"

    class Declined(PartGivenBack):
        node: str
        reason: str
        at: float

    class Expired(PartGivenBack):
        node: str
        at: float

    class Picked(PartMoved):
        status = "picked"

    class ReadyForPickup(PartMoved):
        status = "ready"

    class Dispatched(PartMoved):
        status = "dispatched"

    class HandedOver(Aggregate.Event):
        node: str
        how: str
        at: float

        def apply(self, order: "Order") -> None:
            order.parts[self.node].status = "handed_over"
            if not order.pending and all(p.status == "handed_over" for p in order.parts.values()):
                order.outcome = "completed"

    class Cancelled(OrderEnded):
        reason: str
        released: list[str]
        at: float
        outcome = "cancelled"

    def __init__(
        self,
        channel: str,
        external_id: str,
        lines: dict[str, int],
        value: float,
        mode: Mode,
        lat: float,
        lon: float,
        promised_at: float,
        at: float,
        pickup_node: str | None = None,
        member: str | None = None,
        money: OrderMoney | None = None,
        region: str | None = None,
    ) -> None:
        self.channel = channel
        self.external_id = external_id
        self.lines = lines
        self.value = value
        self.mode = mode
        self.lat = lat
        self.lon = lon
        self.promised_at = promised_at
        self.placed_at = at
        self.pickup_node = pickup_node
        self.member = member
        self.pending: dict[str, int] = lines  # the lines until routed: replaced, never changed in place
        self.parts: dict[str, PartState] = {}  # node -> part
        self.excluded: tuple[str, ...] = ()  # nodes that declined or let it expire
        self.outcome: str | None = None  # terminal state, once reached
        self.reason: str | None = None
        self.reroutes = 0
        self.money = money
        self.refunds = NO_REFUNDS  # shared until the first refund: most orders have none
        self.shorted: dict[str, int] = NO_LINES  # lines dropped unserved after goods were handed over
        self.region = region
        self.regions_tried: tuple[str, ...] = (region,) if region else ()  # home, then each region it was moved to
        self.booking: Booking | None = None  # a later slot's booking, kept after routing (capacity is counted by it)

    @classmethod
    def place(
        cls,
        channel: str,
        external_id: str,
        lines: dict[str, int],
        value: float,
        mode: Mode,
        lat: float,
        lon: float,
        promised_at: float,
        at: float,
        pickup_node: str | None = None,
        member: str | None = None,
        money: OrderMoney | None = None,
        region: str | None = None,
    ) -> "Order":
        if not channel:
            raise InvalidInput("channel", "must not be empty")
        if not external_id:
            raise InvalidInput("external_id", "must not be empty")
        check_lines(lines, empty="an order needs at least one line")
        check_pickup(mode, pickup_node)
        if mode not in ("delivery", "pickup"):
            raise InvalidInput("mode", f"must be delivery or pickup, got {mode!r}")
        if promised_at <= at:
            raise InvalidInput("promised_at", "must be after the time the order is placed")
        return create(
            cls, cls.Placed, id=ids.order_id(channel, external_id), channel=channel, external_id=external_id,
            lines=dict(lines), value=value, mode=mode, lat=lat, lon=lon, promised_at=promised_at, at=at,
            pickup_node=pickup_node, member=member, money=money, region=region,
        )

    # -- queries -------------------------------------------------------
    @property
    def status(self) -> str:
        if self.outcome:
            return self.outcome
        if self.pending:
            return "booked" if self.booking is not None and not self.parts and not self.reroutes else "placed"
        return min((p.status for p in self.parts.values()), key=PROGRESS.index)

    @property
    def handed_over(self) -> bool:
        """Some goods of the order reached the customer."""
        return any(p.status == "handed_over" for p in self.parts.values())

    @property
    def kept(self) -> int:
        """What the customer paid and did not get back."""
        return (self.money.paid if self.money else 0) - self.refunds.total

    @property
    def is_terminal(self) -> bool:
        return self.outcome is not None

    def part(self, node: str | None) -> PartState:
        if node is None:
            if len(self.parts) != 1:
                raise InvalidInput("node", f"order has {len(self.parts)} parts; name the node")
            return next(iter(self.parts.values()))
        if node not in self.parts:
            raise Conflict("node", f"node {node} holds no part of this order")
        return self.parts[node]

    # -- routing -------------------------------------------------------
    def route(self, parts: list[RoutedPart], lost: list[Loss], at: float) -> None:
        self._check_open()
        if not parts:
            raise InvalidInput("parts", "a routing names at least one node")
        routed: dict[str, int] = {}
        for p in parts:
            if p.node in self.parts or p.node in self.excluded:
                raise Conflict("node", f"node {p.node} already served or declined this order")
            routed = merge_lines(routed, p.lines) if routed else p.lines  # most orders: one part, compared as it is
        if routed != self.pending:
            raise Conflict("parts", f"routed lines {routed} differ from pending lines {self.pending}")
        trigger(self, self.Routed, parts=list(parts), lost=list(lost), at=at)

    def book(self, nodes: list[str], window_start: float, window_end: float, due_at: float, at: float,
             lost: list[Loss] = ()) -> None:
        """Books a later slot at `nodes`: routed (and its stock reserved) at `due_at`.
        `lost`: why cheaper nodes were not planned, as a routing records it."""
        self._check_open()
        if not nodes:
            raise InvalidInput("nodes", "a booking names at least one node")
        if self.parts or self.booking is not None:
            raise Conflict("order", "only an order not yet routed or booked is booked")
        if not window_start < window_end:
            raise InvalidInput("window_end", "must be after window_start")
        if not at <= due_at <= window_start:
            raise InvalidInput("due_at", "an order is due for routing between now and its window's start")
        self._booked(nodes=list(nodes), window_start=window_start, window_end=window_end, due_at=due_at,
                     lost=list(lost), at=at)

    def reject(self, reason: str, lost: list[Loss], at: float) -> None:
        self._check_open()
        if any(p.status == "handed_over" for p in self.parts.values()):
            raise Conflict("order", "part of the order was already handed over")
        self._rejected(reason=reason, lost=list(lost), released=sorted(self.parts), at=at)

    def short(self, reason: str, lost: list[Loss], at: float) -> Refund | None:
        """What is still pending cannot be served, but goods were already
        handed over: the order keeps those, drops the rest and refunds it
        (partial fulfilment). Returns the refund, None if nothing was paid."""
        self._check_open()
        if not self.handed_over:
            raise Conflict("order", "nothing was handed over: the whole order is rejected instead")
        if not self.pending:
            raise Conflict("order", "nothing is pending to drop")
        lines = dict(self.pending)
        self._shorted(reason=reason, lost=list(lost), lines=lines, at=at)
        if self.money is None or not (self.money.paid or self.money.points_used):
            return None
        refund = refund_of(self.money, self.refunds.returned, self.refunds.refunded, lines)
        refund_id = f"{SHORTED}-{len(self.refunds.ids)}"  # refund ids only grow: never reused
        self._refunded(refund_id=refund_id, fingerprint=refund_id, reason=f"not served: {reason}", lines=refund.lines,
                       cash=refund.cash, points=refund.points, delivery_fee=0, return_to=None, write_off=False, at=at)
        return refund

    def accept(self, node: str | None, at: float) -> str:
        part = self._advance(node, "routed")
        self._accepted(node=part.node, at=at)
        return part.node

    def decline(self, node: str | None, reason: str, at: float) -> str:
        part = self._advance(node, "routed")
        self._declined(node=part.node, reason=reason, at=at)
        return part.node

    def expire(self, node: str, at: float) -> None:
        self._advance(node, "routed")
        self._expired(node=node, at=at)

    # -- fulfilment ----------------------------------------------------
    def pick(self, node: str | None, at: float) -> str:
        part = self._advance(node, "accepted")
        self._picked(node=part.node, at=at)
        return part.node

    def make_ready(self, node: str | None, at: float) -> str:
        if self.mode != "pickup":
            raise Conflict("mode", "only a pickup order is made ready for collection; dispatch a delivery")
        part = self._advance(node, "picked")
        self._ready(node=part.node, at=at)
        return part.node

    def dispatch(self, node: str | None, at: float) -> str:
        if self.mode != "delivery":
            raise Conflict("mode", "a pickup order is not dispatched; make it ready")
        part = self._advance(node, "picked")
        self._dispatched(node=part.node, at=at)
        return part.node

    def deliver(self, node: str | None, at: float) -> str:
        part = self._advance(node, "dispatched")
        self._handed_over(node=part.node, how="delivered", at=at)
        return part.node

    def collect(self, node: str | None, at: float) -> str:
        part = self._advance(node, "ready")
        self._handed_over(node=part.node, how="collected", at=at)
        return part.node

    def cancel_check(self) -> None:
        """Raises if the order can no longer be cancelled."""
        if self.outcome == "cancelled":
            raise Conflict("order", "already cancelled")
        if self.outcome:
            raise Conflict("order", f"order is {self.outcome}; it can no longer be cancelled")
        if self.handed_over:
            raise Conflict("order", "goods were already handed over")

    def cancel(self, reason: str, at: float) -> list[str]:
        """Returns the nodes whose reservations must be released."""
        self.cancel_check()
        released = sorted(self.parts)
        self._cancelled(reason=reason, released=released, at=at)
        return released

    # -- refunds -------------------------------------------------------
    def refund(self, refund_id: str, fingerprint: str, lines: dict[str, int], reason: str, at: float,
               return_to: str | None = None, write_off: bool = False) -> Refund | None:
        """Money back. Before any hand-over: the whole order (no lines), a
        cancellation the caller then makes. After: handed-over lines by
        units (none: all that was handed over, and the delivery fee once the
        order is complete), their goods back to a node or written off.
        None for a repeat of a refund already made (same id and request)."""
        if self.refunds.seen(refund_id, fingerprint):
            return None
        if self.money is None:
            raise Conflict("order_id", "this order was placed before amounts were recorded: nothing to refund by")
        if self.outcome in ("cancelled", "rejected"):
            raise Conflict("order_id", f"the order is {self.outcome}: it keeps nothing to refund")
        handed = {}
        for part in self.parts.values():
            if part.status == "handed_over":
                handed = merge_lines(handed, part.lines)
        if not handed:
            if lines:
                raise Conflict("lines", "before hand-over a refund is of the whole order (a cancellation)")
            if return_to or write_off:
                raise InvalidInput("return_to" if return_to else "write_off", "no goods were handed over to take back")
            refund = refund_of(self.money, {}, {}, dict(self.money.lines_qty), self.money.delivery_fee)
        else:
            whole = not lines
            if whole and self.outcome != "completed":
                raise Conflict("lines", "part of the order is still open: name the handed-over lines to refund")
            fee = self.money.delivery_fee - self.refunds.delivery_fee if whole else 0
            refund = returned_goods(self.money, handed, self.refunds.returned, self.refunds.refunded, lines, fee,
                                    return_to, write_off, self.shorted)
        self._refunded(refund_id=refund_id, fingerprint=fingerprint, reason=reason, lines=refund.lines,
                       cash=refund.cash, points=refund.points, delivery_fee=refund.delivery_fee,
                       return_to=return_to, write_off=write_off, at=at)
        return refund

    # -- partitions ----------------------------------------------------
    def transfer(self, region: str, reason: str, at: float) -> None:
        """Moves the order to another region's partition, whose owner routes
        what is pending among its own nodes (docs/scale-out.md: home first,
        then hand the order over). Only an order waiting for routing moves."""
        self._check_open()
        if self.parts:
            raise Conflict("order", "an order with routed parts stays where its parts are")
        if not self.pending:
            raise Conflict("order", "nothing is pending to route elsewhere")
        if region in self.regions_tried:
            raise Conflict("region", f"the order was already in region {region!r}")
        self._transferred(region=region, reason=reason, at=at)

    def _check_open(self) -> None:
        if self.outcome:
            raise Conflict("order", f"order is already {self.outcome}")

    def _advance(self, node: str | None, expected: str) -> PartState:
        self._check_open()
        part = self.part(node)
        if part.status != expected:
            raise Conflict("status", f"part at {part.node} is {part.status}, expected {expected}")
        return part

    # -- events --------------------------------------------------------
    def _rejected(self, reason: str, lost: list[Loss], released: list[str], at: float) -> None:
        trigger(self, self.Rejected, reason=reason, lost=lost, released=released, at=at)

    @event("Shorted")
    def _shorted(self, reason: str, lost: list[Loss], lines: dict[str, int], at: float) -> None:
        self.pending = NO_LINES
        self.shorted = merge_lines(self.shorted, lines)
        self.reason = reason
        if all(p.status == "handed_over" for p in self.parts.values()):
            self.outcome = "completed"

    @event("Booked")
    def _booked(self, nodes: list[str], window_start: float, window_end: float, due_at: float, lost: list[Loss],
                at: float) -> None:
        self.booking = Booking(nodes=list(nodes), window_start=window_start, window_end=window_end, due_at=due_at)
        self.promised_at = window_end

    def _accepted(self, node: str, at: float) -> None:
        trigger(self, self.Accepted, node=node, at=at)

    def _declined(self, node: str, reason: str, at: float) -> None:
        trigger(self, self.Declined, node=node, reason=reason, at=at)

    def _expired(self, node: str, at: float) -> None:
        trigger(self, self.Expired, node=node, at=at)

    def _give_back(self, node: str) -> None:
        part = self.parts.pop(node)
        self.pending = merge_lines(self.pending, part.lines)
        self.excluded = (*self.excluded, node)
        self.reroutes += 1

    def _picked(self, node: str, at: float) -> None:
        trigger(self, self.Picked, node=node, at=at)

    def _ready(self, node: str, at: float) -> None:
        trigger(self, self.ReadyForPickup, node=node, at=at)

    def _dispatched(self, node: str, at: float) -> None:
        trigger(self, self.Dispatched, node=node, at=at)

    def _handed_over(self, node: str, how: str, at: float) -> None:
        trigger(self, self.HandedOver, node=node, how=how, at=at)

    def _refunded(self, refund_id: str, fingerprint: str, reason: str, lines: dict[str, int], cash: dict[str, int],
                  points: dict[str, int], delivery_fee: int, return_to: str | None, write_off: bool, at: float) -> None:
        trigger(self, self.Refunded, refund_id=refund_id, fingerprint=fingerprint, reason=reason, lines=lines,
                cash=cash, points=points, delivery_fee=delivery_fee, return_to=return_to, write_off=write_off, at=at)

    @event("Transferred")
    def _transferred(self, region: str, reason: str, at: float) -> None:
        self.region = region
        self.regions_tried = (*self.regions_tried, region)

    def _cancelled(self, reason: str, released: list[str], at: float) -> None:
        trigger(self, self.Cancelled, reason=reason, released=released, at=at)
