"""Commands: what other systems ask the engine to do.

They are the wire format too (msgspec decodes and validates them, naming the
bad field), so their constraints are part of the public contract.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from domain.benefit import PERIOD_ID, RuleSet

Key = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$")]
NodeId = Annotated[str, Meta(min_length=1, max_length=64)]
Sku = Annotated[str, Meta(min_length=1, max_length=64)]
Qty = Annotated[int, Meta(ge=1, le=100_000)]
Text = Annotated[str, Meta(max_length=500)]
Channel = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$")]

Fen = Annotated[int, Meta(ge=0, le=10**12)]  # money: integer minor units of the network's currency (fen for CNY)
Points = Annotated[int, Meta(ge=0, le=10**12)]

MAX_LINES = 200


class Line(Struct, frozen=True, forbid_unknown_fields=True):
    sku: Sku
    qty: Qty
    unit_price: Fen | None = None  # what one unit sold for before discounts; absent: the network's price list
    discount: Fen = 0  # off this line in all (its qty together)


class Discount(Struct, frozen=True, forbid_unknown_fields=True):
    """An order-level discount (a coupon, a promotion), shared out over the lines."""

    amount: Fen
    code: Annotated[str, Meta(max_length=64)] = ""


class ReturnLine(Struct, frozen=True, forbid_unknown_fields=True):
    sku: Sku
    qty: Qty


Lines = Annotated[list[Line], Meta(min_length=1, max_length=MAX_LINES)]


class Command(Struct, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    pass


# -- orders -------------------------------------------------------------
class SubmitOrder(Command, tag="submit_order"):
    channel: Channel  # app, mall, meituan, eleme, wechat_mini, alipay_mini, pos ...
    external_id: Key  # the channel's own order id; (channel, external_id) is idempotent
    lines: Lines
    mode: Literal["delivery", "pickup"] = "delivery"
    lat: Annotated[float, Meta(ge=-90, le=90)] | None = None  # delivery address
    lon: Annotated[float, Meta(ge=-180, le=180)] | None = None
    pickup_node: NodeId | None = None  # pickup: the store the customer chose
    promise_minutes: Annotated[int, Meta(ge=5, le=7 * 1440)] | None = None  # default per mode
    # a later slot (today or a later day, within the engine's horizon): hand-over between these, with their offset
    window_start: datetime | None = None
    window_end: datetime | None = None
    later_ok: bool = False  # placed while the nodes are closed: book the first slot after opening, not reject it
    member: Key | None = None
    # money, all optional (absent: the price list, no discounts or fees); checked to add up when `paid` is given
    discounts: Annotated[list[Discount], Meta(max_length=20)] = []
    delivery_fee: Fen = 0
    points_used: Points = 0  # the member's points spent on this order
    points_value: Fen = 0  # what those points took off the price
    paid: Fen | None = None  # lines - line discounts - order discounts - points value + delivery fee
    hold: Key | None = None  # a quote's id whose hold this order uses (the same cart, mode and pickup store)


class QuoteOrder(Command, tag="quote_order"):
    """A cart's options before checkout: delivery to the address from the best
    node, pickup at the chosen store or at stores near the address (the
    pickup area), a split when no single node has it all, and what is short
    where. Nothing is reserved."""

    lines: Lines
    lat: Annotated[float, Meta(ge=-90, le=90)] | None = None  # the address, or the pickup area's centre
    lon: Annotated[float, Meta(ge=-180, le=180)] | None = None
    modes: Literal["delivery", "pickup", "both"] = "both"
    pickup_node: NodeId | None = None  # pickup at this store only
    within_km: Annotated[float, Meta(gt=0, le=50)] = 3.0  # the pickup area around lat/lon
    promise_minutes: Annotated[int, Meta(ge=5, le=7 * 1440)] | None = None  # as SubmitOrder's
    window_start: datetime | None = None  # a later slot, as SubmitOrder's
    window_end: datetime | None = None
    later_ok: bool = False  # as SubmitOrder's: while the nodes are closed, the first slot after opening
    member: Key | None = None
    quote_id: Key | None = None  # the caller's id for the quote; absent: one is made
    hold_minutes: Annotated[int, Meta(ge=0, le=30)] = 0  # > 0: the best option's stock is held this long


class CancelOrder(Command, tag="cancel_order"):
    order_id: Key
    reason: Text = "cancelled by customer"


class RefundOrder(Command, tag="refund_order"):
    """Money back for an order: the whole of what is left of it (no lines), or
    lines by quantity. Before hand-over a refund is a cancellation; goods
    handed over come back to a node (`return_to`) or are written off."""

    order_id: Key
    refund_id: Key  # the refund's own id: a repeat with the same body is answered, not refunded again
    reason: Annotated[str, Meta(min_length=1, max_length=500)]
    lines: Annotated[list[ReturnLine], Meta(max_length=MAX_LINES)] = []
    return_to: NodeId | None = None
    write_off: bool = False


class AcceptOrder(Command, tag="accept_order"):
    order_id: Key
    node: NodeId | None = None  # needed only when the order is split


class DeclineOrder(Command, tag="decline_order"):
    order_id: Key
    node: NodeId | None = None
    reason: Text = "declined by node"


Progress = Literal["picked", "ready", "dispatched", "delivered", "collected"]
# what a node reports after accepting a part, in order, up to hand-over, by the order's mode
STEPS = {"delivery": ("picked", "dispatched", "delivered"), "pickup": ("picked", "ready", "collected")}


class ReportProgress(Command, tag="report_progress"):
    order_id: Key
    step: Progress
    node: NodeId | None = None


# -- stock --------------------------------------------------------------
class ReceiveStock(Command, tag="receive_stock"):
    node: NodeId
    lines: Lines
    ref: Text = ""  # delivery note


class AdjustStock(Command, tag="adjust_stock"):
    node: NodeId
    sku: Sku
    delta: Annotated[int, Meta(ge=-100_000, le=100_000)]
    reason: Annotated[str, Meta(min_length=1, max_length=500)]


class CountStock(Command, tag="count_stock"):
    node: NodeId
    sku: Sku
    counted: Annotated[int, Meta(ge=0, le=10_000_000)]


class SetSafetyStock(Command, tag="set_safety_stock"):
    """Units of these SKUs at a node that online orders cannot take (a counter sale can): replaces their levels."""

    node: NodeId
    levels: Annotated[dict[Sku, Annotated[int, Meta(ge=0, le=10_000_000)]], Meta(min_length=1, max_length=100_000)]


class SellOverCounter(Command, tag="sell_over_counter"):
    node: NodeId
    sale_id: Key
    lines: Lines
    member: Key | None = None
    discounts: Annotated[list[Discount], Meta(max_length=20)] = []
    points_used: Points = 0
    points_value: Fen = 0
    paid: Fen | None = None
    sold_at: Annotated[float, Meta(ge=0)] | None = None  # UTC epoch s of a sale made offline and uploaded late; absent: now


class RefundSale(Command, tag="refund_sale"):
    """Money back for a counter sale, as RefundOrder for an order handed over."""

    node: NodeId  # the store that made the sale
    sale_id: Key
    refund_id: Key
    reason: Annotated[str, Meta(min_length=1, max_length=500)]
    lines: Annotated[list[ReturnLine], Meta(max_length=MAX_LINES)] = []
    return_to: NodeId | None = None
    write_off: bool = False


# -- members ------------------------------------------------------------
class SignUpMember(Command, tag="sign_up_member"):
    member: Key
    node: NodeId
    via: Literal["clerk", "qr", "pos", "online"] = "qr"
    clerk: Key | None = None
    phone: Annotated[str, Meta(pattern=r"^\+?[0-9]{6,15}$")] | None = None  # hashed, never stored


class RebindMember(Command, tag="rebind_member"):
    """Moves a member's origin (who benefit sharing credits) from now on, never before."""

    member: Key
    node: NodeId
    reason: Annotated[str, Meta(min_length=1, max_length=500)]
    clerk: Key | None = None


class BindIdentity(Command, tag="bind_identity"):
    member: Key
    kind: Literal["app", "wechat", "alipay", "mini_program", "platform"]
    external_id: Key


class RedeemPoints(Command, tag="redeem_points"):
    """Points for a gift: sent to the member (spent at once), or, with
    `pickup_node`, reserved with one unit of the gift's SKU at that store
    until collected (CollectGift), cancelled (CancelRedemption) or not
    collected in time (released by the engine's timer)."""

    member: Key
    points: Annotated[int, Meta(ge=1, le=10**12)]
    gift: Annotated[str, Meta(min_length=1, max_length=200)]
    ref: Key  # the redemption's own id: a repeat with the same points is answered, not redeemed again
    pickup_node: NodeId | None = None  # the store where the member collects the gift
    gift_sku: Sku | None = None  # the gift as a SKU of the network (needed with pickup_node)


class CollectGift(Command, tag="collect_gift"):
    """The member collects a reserved gift: the points are spent, the unit leaves the store's stock."""

    member: Key
    ref: Key  # the redemption's ref
    node: NodeId | None = None  # where it is collected: must be the pickup node when given


class CancelRedemption(Command, tag="cancel_redemption"):
    """A gift reserved for pickup is not wanted: its points and stock are released."""

    member: Key
    ref: Key
    reason: Text = "cancelled by member"


# -- queries ------------------------------------------------------------
class GetOrder(Command, tag="get_order"):
    order_id: Key


class GetStock(Command, tag="get_stock"):
    """One node's stock: on hand and available to promise, of the SKUs named (none: every SKU it holds)."""

    node: NodeId
    skus: Annotated[list[Sku], Meta(max_length=MAX_LINES)] = []


class FindStock(Command, tag="find_stock"):
    """Which nodes that could serve this location have the SKU."""

    sku: Sku
    lat: Annotated[float, Meta(ge=-90, le=90)]
    lon: Annotated[float, Meta(ge=-180, le=180)]
    qty: Qty = 1
    mode: Literal["delivery", "pickup"] = "delivery"
    within_km: Annotated[float, Meta(gt=0, le=50)] = 5.0  # pickup: how far the customer would go


class GetMember(Command, tag="get_member"):
    member: Key


# -- replenishment --------------------------------------------------------
LocalTime = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class ReplenishPolicy(Struct, frozen=True, forbid_unknown_fields=True):
    """How stock suggestions are made: an order-up-to level per node and SKU
    from the demand of the same hours on recent days (sold, lost and short),
    at a service level, over the time to the delivery after the next one
    (docs/replenishment.md)."""

    deliveries: Annotated[list[LocalTime], Meta(min_length=1, max_length=24)] = msgspec.field(
        default_factory=lambda: ["11:00", "16:00"])  # local times goods arrive at every node, daily
    history_days: Annotated[int, Meta(ge=1, le=28)] = 7  # recent days whose demand is averaged
    service_level: Annotated[float, Meta(ge=0.5, le=0.999)] = 0.95  # chance a node-SKU's stock lasts to the next delivery
    transfer_km: Annotated[float, Meta(ge=0, le=50)] = 3.0  # surplus moved from kitchens and stores this near (0: none)
    min_transfer: Annotated[int, Meta(ge=1, le=100_000)] = 2  # fewer units are bought, not moved
    pack: Annotated[int, Meta(ge=1, le=10_000)] = 1  # purchases rounded up to whole packs
    quote_weight: Annotated[float, Meta(ge=0, le=1)] = 0.5  # a quote found short: that share of a unit of demand
    new_skus: bool = False  # suggest SKUs a node has never held (demand lost there for them)
    min_stock: Annotated[int, Meta(ge=0, le=100_000)] = 3  # units kept of every SKU a node carries, sold or not
    # the counter's own demand gets its own level at this service level, on top of online demand's: a walk-in
    # customer buys from this shelf only, while an online order can go to any node in reach
    counter_service_level: Annotated[float, Meta(ge=0.5, le=0.999)] = 0.999
    counter_reserve: Literal["none", "margin", "level"] = "none"  # kept for the counter, online orders cannot take it:
    # its level, or its margin over its mean; a measured trade of online orders for counter customers (docs)


class SuggestStock(Command, tag="suggest_stock"):
    """Transfers and purchases per node and SKU for the next delivery, from recent demand and stock."""

    nodes: Annotated[list[NodeId], Meta(max_length=10_000)] = []  # none: every node
    at: Annotated[float, Meta(ge=0)] | None = None  # UTC epoch s the suggestion is made at; absent: now
    policy: ReplenishPolicy = ReplenishPolicy()


# -- benefit sharing ----------------------------------------------------
class PublishBenefitRules(Command, tag="publish_benefit_rules"):
    """A new version of the benefit-sharing rules (domain/benefit.py's RuleSet);
    immutable once published, in force from its effective_from (never backwards)."""

    rules: RuleSet


class GetStatement(Command, tag="get_statement"):
    """Benefit statements of a period (2026-03, 2026-03-H2 or 2026-Q1 in the network's time zone): one party's or all."""

    period: Annotated[str, Meta(pattern=PERIOD_ID)]
    party: Annotated[str, Meta(min_length=1, max_length=200)] | None = None


class PayStatements(Command, tag="pay_statements"):
    """Records a closed period's statements as paid (one party's, or every one
    with a positive balance): once all their lines are past their hold days."""

    period: Annotated[str, Meta(pattern=PERIOD_ID)]
    reference: Annotated[str, Meta(min_length=1, max_length=200)]
    party: Annotated[str, Meta(min_length=1, max_length=200)] | None = None


class ClosePeriod(Command, tag="close_period"):
    """Closes a benefit period that has ended: its statements never change; later lines go to the current one."""

    period: Annotated[str, Meta(pattern=PERIOD_ID)]
