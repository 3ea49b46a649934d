"""One node's inventory, shared by online orders and over-the-counter sales.

ATP (available to promise) = on hand - reserved - safety stock. Reservations
are all-or-nothing per order and never take ATP below zero; nothing but a
hand-over or a release touches reserved goods, so POS sales, adjustments and
stocktakes may not take on-hand below what is reserved.
"""
from __future__ import annotations

from eventsourcing.domain import Aggregate, event

from domain import ids
from domain.errors import Conflict, InvalidInput
from domain.quantities import available, check_lines
from domain.trigger import trigger

POS_DEDUP_SECONDS = 2 * 86400


class NodeInventory(Aggregate):
    # the owner's fencing epoch (its lease's revision) and name: a process
    # holding an older epoch must stop writing this node (docs/scale-out.md)
    owner_epoch = 0
    owner = ""

    class Reserved(Aggregate.Event):
        """One order's reservation: no longer written (ReservedMany is), kept so stores that hold it replay."""

        order_id: str
        lines: dict[str, int]
        at: float

        def apply(self, inv: "NodeInventory") -> None:
            _hold(inv, self.order_id, self.lines)

    class ReservedMany(Aggregate.Event):
        """Triggered directly, as Order.Routed: the reservations a routed batch
        made at this node, one event for all its orders."""

        orders: dict[str, dict[str, int]]  # order id -> lines
        at: float

        def apply(self, inv: "NodeInventory") -> None:
            for order_id, lines in self.orders.items():
                _hold(inv, order_id, lines)

    class Released(Aggregate.Event):
        """Triggered directly, as the order's steps are (it was an @event method: the same stored JSON)."""

        order_id: str
        lines: dict[str, int]
        reason: str
        at: float

        def apply(self, inv: "NodeInventory") -> None:
            _unhold(inv, self.order_id, self.lines)

    class Consumed(Aggregate.Event):
        """Every served order's goods leaving the shelf: triggered directly, as Released."""

        order_id: str
        lines: dict[str, int]
        at: float

        def apply(self, inv: "NodeInventory") -> None:
            _unhold(inv, self.order_id, self.lines)
            _off_shelf(inv, self.lines)

    class SoldOverCounter(Aggregate.Event):
        """A counter sale's goods off the shelf: triggered directly, as Consumed (every sale has one)."""

        sale_id: str
        lines: dict[str, int]
        at: float

        def apply(self, inv: "NodeInventory") -> None:
            # Redeliveries come within minutes; keeping two days bounds the state. The oldest
            # go first, as long as they are out of the window: a sale uploaded late stays until
            # those before it in the dict go (a resend of it is refused by the sale itself too).
            pos = inv.pos_sales
            pos[self.sale_id] = self.at
            cutoff = self.at - POS_DEDUP_SECONDS
            while (oldest := next(iter(pos))) != self.sale_id and pos[oldest] <= cutoff:
                del pos[oldest]
            _off_shelf(inv, self.lines)

    @staticmethod
    def create_id(node_id: str, at: float) -> object:
        return ids.inventory_id(node_id)

    @event("Opened")
    def __init__(self, node_id: str, at: float) -> None:
        self.node_id = node_id
        self.on_hand: dict[str, int] = {}
        self.reserved: dict[str, int] = {}
        self.safety: dict[str, int] = {}
        self.reservations: dict[str, dict[str, int]] = {}  # order id -> lines
        self.pos_sales: dict[str, float] = {}  # recent sale id -> at, for idempotence

    # -- queries -------------------------------------------------------
    def atp(self, sku: str) -> int:
        return available(self.on_hand.get(sku, 0), self.reserved.get(sku, 0), self.safety.get(sku, 0))

    def free(self, sku: str) -> int:
        """Goods not set aside for an order (safety stock included)."""
        return self.on_hand.get(sku, 0) - self.reserved.get(sku, 0)

    # -- commands ------------------------------------------------------
    def receive(self, lines: dict[str, int], ref: str, at: float) -> None:
        check_lines(lines)
        self._received(lines=dict(lines), ref=ref, at=at)

    def adjust(self, sku: str, delta: int, reason: str, at: float) -> None:
        if not isinstance(delta, int) or isinstance(delta, bool) or delta == 0:
            raise InvalidInput("delta", f"must be a non-zero integer, got {delta!r}")
        if not reason.strip():
            raise InvalidInput("reason", "an adjustment needs a reason")
        if delta < 0 and self.free(sku) + delta < 0:
            raise Conflict("delta", f"{sku}: only {self.free(sku)} unreserved on hand, cannot remove {-delta}")
        self._adjusted(sku=sku, delta=delta, reason=reason, at=at)

    def count(self, sku: str, counted: int, at: float) -> None:
        if not isinstance(counted, int) or isinstance(counted, bool) or counted < 0:
            raise InvalidInput("counted", f"must be an integer >= 0, got {counted!r}")
        if counted < self.reserved.get(sku, 0):
            raise Conflict("counted", f"{sku}: {self.reserved.get(sku, 0)} are reserved for orders; release or reroute them first")
        self._counted(sku=sku, counted=counted, delta=counted - self.on_hand.get(sku, 0), at=at)

    def set_safety_stock(self, levels: dict[str, int], at: float) -> None:
        for sku, qty in levels.items():
            if not isinstance(qty, int) or isinstance(qty, bool) or qty < 0:
                raise InvalidInput(f"levels.{sku}", f"must be an integer >= 0, got {qty!r}")
        if levels:
            self._safety_set(levels=dict(levels), at=at)

    def can_reserve(self, lines: dict[str, int], held: dict[str, int] | None = None) -> str | None:
        """None if the lines fit within ATP (less `held`: SKU -> quantity about
        to be reserved), else the first SKU short."""
        on_hand, reserved, safety = self.on_hand, self.reserved, self.safety  # atp() inlined: twice per part routed
        held = held or {}
        for sku, qty in lines.items():
            # available() written out: a call per line routed was a share of routing an order
            if on_hand.get(sku, 0) - reserved.get(sku, 0) - safety.get(sku, 0) - held.get(sku, 0) < qty:
                return sku
        return None

    def reserve(self, order_id: str, lines: dict[str, int], at: float) -> None:
        self.reserve_many({order_id: lines}, at)

    def reserve_many(self, orders: dict[str, dict[str, int]], at: float) -> None:
        """Reserves each order's lines, all or none, as one event."""
        holding = self.holding()
        for order_id, lines in orders.items():
            short = holding.add(order_id, dict(lines))
            if short is not None:
                left = max(self.atp(short) - holding.held.get(short, 0), 0)
                raise Conflict(f"lines.{short}", f"only {left} available to promise at {self.node_id}")
        self.reserve_held(holding, at)

    def holding(self) -> "Holding":
        """Reservations to gather order by order (a routed batch's at this node),
        each checked once as it is added, then made by `reserve_held`."""
        return Holding(self)

    def reserve_held(self, holding: "Holding", at: float) -> None:
        """The orders of `holding` reserved here, as one event; checked again
        only if this inventory changed since the holding began."""
        if holding.inventory is not self:
            raise Conflict("node", f"a holding of {holding.inventory.node_id} is not {self.node_id}'s")
        if holding.version != self._version:
            self.reserve_many(holding.orders, at)
            return
        if holding.orders:
            trigger(self, self.ReservedMany, orders=holding.orders, at=at)

    def release(self, order_id: str, reason: str, at: float) -> None:
        if order_id not in self.reservations:
            raise Conflict("order_id", f"order {order_id} holds no reservation at {self.node_id}")
        self._released(order_id=order_id, lines=dict(self.reservations[order_id]), reason=reason, at=at)

    def consume(self, order_id: str, at: float) -> None:
        if order_id not in self.reservations:
            raise Conflict("order_id", f"order {order_id} holds no reservation at {self.node_id}")
        self._consumed(order_id=order_id, lines=dict(self.reservations[order_id]), at=at)

    def sell_over_counter(self, sale_id: str, lines: dict[str, int], at: float) -> None:
        check_lines(lines)
        if sale_id in self.pos_sales:
            raise Conflict("sale_id", f"POS sale {sale_id} is already recorded at {self.node_id}")
        for sku, qty in lines.items():
            if self.free(sku) < qty:
                raise Conflict(f"lines.{sku}", f"only {max(self.free(sku), 0)} unreserved on hand at {self.node_id}")
        self._sold(sale_id=sale_id, lines=dict(lines), at=at)

    def take_back(self, ref: str, lines: dict[str, int], at: float) -> None:
        """Goods a customer returned, back on this node's shelf (`ref`: the refund)."""
        check_lines(lines)
        self._taken_back(ref=ref, lines=dict(lines), at=at)

    def fence(self, epoch: int, owner: str, at: float) -> None:
        """A new owner takes the node: writes made against an older epoch conflict from now on."""
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch <= self.owner_epoch:
            raise Conflict("epoch", f"{self.node_id} is fenced at epoch {self.owner_epoch} by {self.owner or '?'}; "
                                    f"epoch {epoch!r} is not newer")
        self._fenced(epoch=epoch, owner=owner, at=at)

    # -- events --------------------------------------------------------
    @event("Fenced")
    def _fenced(self, epoch: int, owner: str, at: float) -> None:
        self.owner_epoch = epoch
        self.owner = owner

    @event("TakenBack")
    def _taken_back(self, ref: str, lines: dict[str, int], at: float) -> None:
        for sku, qty in lines.items():
            self.on_hand[sku] = self.on_hand.get(sku, 0) + qty

    @event("Received")
    def _received(self, lines: dict[str, int], ref: str, at: float) -> None:
        for sku, qty in lines.items():
            self.on_hand[sku] = self.on_hand.get(sku, 0) + qty

    @event("Adjusted")
    def _adjusted(self, sku: str, delta: int, reason: str, at: float) -> None:
        self.on_hand[sku] = self.on_hand.get(sku, 0) + delta

    @event("Counted")
    def _counted(self, sku: str, counted: int, delta: int, at: float) -> None:
        self.on_hand[sku] = counted

    @event("SafetyStockSet")
    def _safety_set(self, levels: dict[str, int], at: float) -> None:
        self.safety.update(levels)

    def _released(self, order_id: str, lines: dict[str, int], reason: str, at: float) -> None:
        trigger(self, self.Released, order_id=order_id, lines=lines, reason=reason, at=at)

    def _consumed(self, order_id: str, lines: dict[str, int], at: float) -> None:
        trigger(self, self.Consumed, order_id=order_id, lines=lines, at=at)

    def _sold(self, sale_id: str, lines: dict[str, int], at: float) -> None:
        trigger(self, self.SoldOverCounter, sale_id=sale_id, lines=lines, at=at)


def _hold(inv: NodeInventory, order_id: str, lines: dict[str, int]) -> None:
    inv.reservations[order_id] = lines
    reserved = inv.reserved
    for sku, qty in lines.items():
        reserved[sku] = reserved.get(sku, 0) + qty


def _unhold(inv: NodeInventory, order_id: str, lines: dict[str, int]) -> None:
    """`_hold` undone: the order's reservation released or consumed."""
    del inv.reservations[order_id]
    reserved = inv.reserved
    for sku, qty in lines.items():
        reserved[sku] -= qty


def _off_shelf(inv: NodeInventory, lines: dict[str, int]) -> None:
    """Goods gone from the node: handed over (Consumed) or sold at the counter."""
    on_hand = inv.on_hand
    for sku, qty in lines.items():
        on_hand[sku] -= qty


class Holding:
    """Reservations being gathered at one node: each order's lines checked
    against its ATP less what the orders before it hold (the check
    `reserve_many` makes), so a routed batch checks every part once."""

    __slots__ = ("inventory", "version", "orders", "held")

    def __init__(self, inventory: NodeInventory):
        self.inventory = inventory
        self.version = inventory._version  # reserve_held checks again if the inventory moved since
        self.orders: dict[str, dict[str, int]] = {}  # order id -> lines
        self.held: dict[str, int] = {}  # SKU -> quantity the orders added hold

    def add(self, order_id: str, lines: dict[str, int]) -> str | None:
        """Holds the order's lines if they fit; else holds nothing and returns the first SKU short.
        The reservation keeps `lines` itself (the engine's routed parts, which nothing changes)."""
        check_lines(lines)
        inv = self.inventory
        if order_id in inv.reservations or order_id in self.orders:
            raise Conflict("order_id", f"order {order_id} already holds a reservation at {inv.node_id}")
        held = self.held
        short = inv.can_reserve(lines, held)
        if short is None:
            self.orders[order_id] = lines
            for sku, qty in lines.items():
                held[sku] = held.get(sku, 0) + qty
        return short

    def drop(self, order_id: str) -> None:
        """Lets go of an order added (another of its parts did not fit elsewhere)."""
        lines = self.orders.pop(order_id, None)
        if lines:
            held = self.held
            for sku, qty in lines.items():
                held[sku] -= qty
