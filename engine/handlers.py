"""The command table: every command the engine takes, with its handler.

A write handler runs inside a transaction (`step(engine, uow, cmd, at)`:
guards first, then changes to the aggregates of the unit of work) and
returns what its reply is read from; `reply(engine, cmd, key)` reads the
reply from the read models after the commit. A query only reads. Orders
are micro-batched: `SubmitOrder` goes through `Engine.submit_batch`.
The NATS endpoints, the simulations and `Engine`'s facades all dispatch
through COMMANDS; adding a command is one handler and one entry here.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

from domain.commands import (
    AcceptOrder, AdjustStock, BindIdentity, CancelOrder, CancelRedemption, ClosePeriod, CollectGift, Command,
    CountStock, DeclineOrder, FindStock, GetMember, GetOrder, GetStatement, GetStock, PayStatements, PublishBenefitRules,
    QuoteOrder, RebindMember, ReceiveStock, RedeemPoints, RefundOrder, RefundSale, ReportProgress, SellOverCounter, SignUpMember, SubmitOrder,
    SetSafetyStock, SuggestStock,
)
from domain import ids
from domain.errors import Conflict, InvalidInput, NotFound
from domain.benefit import PartyLedger
from domain.member import Member
from domain.money import OrderMoney, Refund, Refunds, portion
from domain.sale import Sale
from engine.points import bucket_times, eligible_cash, points_for
from engine.replies import (
    BenefitRulesReply, MemberReply, OrderReply, QuoteReply, SaleReply, StatementsReply, StockNearby, StockReply, statement_replies,
)
from domain.benefit import period_end
from engine import benefit
from engine.replenish import Suggestions, suggest
from engine.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from engine.app import Engine


@dataclass(frozen=True)
class Write:
    step: Callable[["Engine", UnitOfWork, Any, float], Any]
    reply: Callable[["Engine", Any, Any], Any]


@dataclass(frozen=True)
class Query:
    answer: Callable[["Engine", Any], Any]


@dataclass(frozen=True)
class Many:
    """A query answered many at a time (`answer(engine, cmds)`: a reply or a
    DomainError per command): quotes share one candidate build per batch."""

    answer: Callable[["Engine", list[Any]], list[Any]]


@dataclass(frozen=True)
class Batched:
    """Orders: gathered into micro-batches and routed together."""


Handler = Write | Query | Many | Batched


CLOCK_SKEW_S = 300.0  # a till's clock may run this far ahead of the engine's

# -- replies, read after the commit ---------------------------------------
def order_answer(e: "Engine", cmd: Any, key: str) -> OrderReply:
    return e.order_reply(key)


def stock_answer(e: "Engine", cmd: Any, touched: tuple[str, list[str]]) -> StockReply:
    """The reply shows the SKUs the command touched."""
    return e.stock(*touched)


def member_answer(e: "Engine", cmd: Any, member: str) -> MemberReply:
    return e.member(member)


# -- orders ---------------------------------------------------------------
def cancel(e: "Engine", uow: UnitOfWork, cmd: CancelOrder, at: float) -> str:
    order = uow.order(cmd.order_id)
    order.cancel_check()
    e.give_back(uow, order, "cancelled", at)
    for node in order.cancel(cmd.reason, at):
        uow.inventory(node).release(str(order.id), reason="order cancelled", at=at)
    return str(order.id)


def refund(e: "Engine", uow: UnitOfWork, cmd: RefundOrder, at: float) -> str:
    """Money back; before hand-over the order is cancelled, after it the goods come back to a node or are written off."""
    order = uow.order(cmd.order_id)
    lines = e.lines(cmd.lines)
    if cmd.return_to is not None and cmd.return_to not in e.nodes:
        raise NotFound("return_to", f"unknown node {cmd.return_to!r}")
    before = not order.handed_over
    done = order.refund(cmd.refund_id, refund_fingerprint(cmd), lines, cmd.reason, at, cmd.return_to, cmd.write_off)
    if done is None:  # a repeat: answered as it was
        return str(order.id)
    settle_points(e, uow, order.member, f"order/{order.id}", order.money, order.refunds.refunded, done, at)
    benefit.reverse(e, uow, f"order/{order.id}", f"refund/order/{order.id}/{cmd.refund_id}", done,
                    all_back(order.money, order.refunds), at)
    if before:
        for node in order.cancel(cmd.reason, at):
            uow.inventory(node).release(str(order.id), reason="order refunded", at=at)
    elif cmd.return_to:
        uow.inventory(cmd.return_to).take_back(f"refund/{order.id}/{cmd.refund_id}", done.lines, at)
    return str(order.id)


def all_back(money: OrderMoney | None, refunds: Refunds) -> bool:
    """Every unit of the purchase has been returned."""
    return money is not None and all(refunds.returned.get(sku, 0) >= line.qty for sku, line in money.lines.items())


def refund_fingerprint(cmd: Any) -> str:
    """What makes two refund requests the same refund: everything but the reason's wording."""
    lines = sorted((line.sku, line.qty) for line in cmd.lines)
    return f"{lines}|{cmd.return_to}|{cmd.write_off}"


def accept(e: "Engine", uow: UnitOfWork, cmd: AcceptOrder, at: float) -> str:
    order = uow.order(cmd.order_id)
    order.accept(cmd.node, at)
    return str(order.id)


def decline(e: "Engine", uow: UnitOfWork, cmd: DeclineOrder, at: float) -> str:
    """The part goes back to routing in the next batch, never to this node."""
    order = uow.order(cmd.order_id)
    node = order.decline(cmd.node, cmd.reason, at)
    uow.inventory(node).release(str(order.id), reason=f"declined: {cmd.reason}", at=at)
    return str(order.id)


def progress(e: "Engine", uow: UnitOfWork, cmd: ReportProgress, at: float) -> str:
    order = uow.order(cmd.order_id)
    if cmd.step == "picked":
        order.pick(cmd.node, at)
    elif cmd.step == "ready":
        order.make_ready(cmd.node, at)
    elif cmd.step == "dispatched":
        order.dispatch(cmd.node, at)
    else:
        node = order.deliver(cmd.node, at) if cmd.step == "delivered" else order.collect(cmd.node, at)
        uow.inventory(node).consume(str(order.id), at)
        benefit.credit(e, uow, order.member, f"order/{order.id}", f"order/{order.id}/{node}", order.money,
                       order.parts[node].lines, at)
        if order.outcome == "completed" and order.member:
            earn_points(e, uow, order.member, _cash(order.money, order.lines, e), f"order/{order.id}", at)
    return str(order.id)


def quotes(e: "Engine", qs: list[QuoteOrder]) -> list[QuoteReply | Any]:
    return e.quote_batch(qs)


def order_status(e: "Engine", q: GetOrder) -> OrderReply:
    return e.order_status(q.order_id)


# -- stock ----------------------------------------------------------------
def receive(e: "Engine", uow: UnitOfWork, cmd: ReceiveStock, at: float) -> tuple[str, list[str]]:
    lines = e.lines(cmd.lines)
    uow.inventory(cmd.node).receive(lines, cmd.ref, at)
    return cmd.node, list(lines)


def adjust(e: "Engine", uow: UnitOfWork, cmd: AdjustStock, at: float) -> tuple[str, list[str]]:
    sku = e.sku(cmd.sku)
    uow.inventory(cmd.node).adjust(sku, cmd.delta, cmd.reason, at)
    return cmd.node, [sku]


def count(e: "Engine", uow: UnitOfWork, cmd: CountStock, at: float) -> tuple[str, list[str]]:
    sku = e.sku(cmd.sku)
    uow.inventory(cmd.node).count(sku, cmd.counted, at)
    return cmd.node, [sku]


def set_safety(e: "Engine", uow: UnitOfWork, cmd: SetSafetyStock, at: float) -> tuple[str, list[str]]:
    if cmd.node not in e.nodes:
        raise NotFound("node", f"unknown node {cmd.node!r}")
    levels = {e.sku(sku, f"levels.{sku}"): q for sku, q in cmd.levels.items()}
    uow.inventory(cmd.node).set_safety_stock(levels, at)
    return cmd.node, list(levels)


def sell(e: "Engine", uow: UnitOfWork, cmd: SellOverCounter, at: float) -> tuple[str, list[str]]:
    """A POS sale takes from the same stock as online orders; its money is a Sale of its own.
    A till that was offline uploads its sales late, each with the time it was made."""
    if cmd.sold_at is not None:
        if cmd.sold_at > at + CLOCK_SKEW_S:
            raise InvalidInput("sold_at", "a sale cannot be made in the future")
        at = cmd.sold_at
    lines = e.lines(cmd.lines)
    money = e.money(cmd.lines, cmd.discounts, 0, cmd.points_used, cmd.points_value, cmd.paid, cmd.member)
    inventory = uow.inventory(cmd.node)
    short = {sku: qty for sku, qty in lines.items() if inventory.free(sku) < qty}
    if short:  # refused below; what the customer asked for is demand the shelf did not meet
        e.readmodels.demand.record_pos_short(cmd.node, short, at)
    inventory.sell_over_counter(cmd.sale_id, lines, at)
    if _sale_known(e, uow, cmd.node, cmd.sale_id):
        raise Conflict("sale_id", f"POS sale {cmd.sale_id} is already recorded at {cmd.node}")
    if cmd.points_used:
        uow.member(cmd.member).spend(cmd.points_used, f"pos/{cmd.node}/{cmd.sale_id}", at, field="points_used")
    uow.add(Sale.make(cmd.node, cmd.sale_id, cmd.member, money, at))
    sale = f"pos/{cmd.node}/{cmd.sale_id}"
    benefit.credit(e, uow, cmd.member, sale, sale, money, lines, at)
    if cmd.member:
        earn_points(e, uow, cmd.member, _cash(money, lines, e), f"pos/{cmd.node}/{cmd.sale_id}", at)
    return cmd.node, list(lines)


def _sale_known(e: "Engine", uow: UnitOfWork, node: str, sale_id: str) -> bool:
    """Whether the sale is recorded already: in the counter sales' memory or
    this unit of work. A new sale is not looked up in the store (half of a
    sale's cost, benchmarks/README.md); one whose record left memory meets
    its stored self at the save (a write conflict), and the run after that
    reads the store (`Engine.rechecking`)."""
    if f"{node}/{sale_id}" in e.readmodels.sales:
        return True
    if e.rechecking:
        return uow.sale(node, sale_id, missing_ok=True) is not None
    return ids.sale_id(node, sale_id) in uow.touched


def refund_sale(e: "Engine", uow: UnitOfWork, cmd: RefundSale, at: float) -> tuple[str, str]:
    """Money back for a counter sale; the goods come back to a node or are written off."""
    lines = e.lines(cmd.lines)
    if cmd.return_to is not None and cmd.return_to not in e.nodes:
        raise NotFound("return_to", f"unknown node {cmd.return_to!r}")
    sale = uow.sale(cmd.node, cmd.sale_id)
    done = sale.refund(cmd.refund_id, refund_fingerprint(cmd), lines, cmd.reason, at, cmd.return_to, cmd.write_off)
    if done is not None:
        settle_points(e, uow, sale.member, f"pos/{cmd.node}/{cmd.sale_id}", sale.money, sale.refunds.refunded, done, at)
        benefit.reverse(e, uow, f"pos/{cmd.node}/{cmd.sale_id}", f"refund/pos/{cmd.node}/{cmd.sale_id}/{cmd.refund_id}",
                        done, all_back(sale.money, sale.refunds), at)
        if cmd.return_to:
            uow.inventory(cmd.return_to).take_back(f"refund/{sale.id}/{cmd.refund_id}", done.lines, at)
    return cmd.node, cmd.sale_id


def sale_answer(e: "Engine", cmd: Any, sale: tuple[str, str]) -> SaleReply:
    return e.sale(*sale)


def get_stock(e: "Engine", q: GetStock) -> StockReply:
    return e.stock(q.node, q.skus or None)


def find_stock(e: "Engine", q: FindStock) -> StockNearby:
    return e.find_stock(q)


def suggest_stock(e: "Engine", q: SuggestStock) -> Suggestions:
    for k, node in enumerate(q.nodes):
        if node not in e.nodes:
            raise NotFound(f"nodes[{k}]", f"unknown node {node!r}")
    at = q.at if q.at is not None else e.clock.now()
    return suggest(e.network, e.readmodels.atp, e.readmodels.demand, q.policy, at, list(q.nodes) or None)


# -- members --------------------------------------------------------------
def sign_up(e: "Engine", uow: UnitOfWork, cmd: SignUpMember, at: float) -> str:
    node = e.nodes.get(cmd.node)
    if node is None:
        raise NotFound("node", f"unknown node {cmd.node!r}")
    if cmd.member in e.readmodels.members:
        raise Conflict("member", f"member {cmd.member} is already signed up")
    phone_hash = hashlib.sha256((e.settings.phone_salt + cmd.phone).encode()).hexdigest() if cmd.phone else None
    uow.add(Member.sign_up(member=cmd.member, node=cmd.node, via=cmd.via, at=at, clerk=cmd.clerk,
                           dealer=node.dealer, phone_hash=phone_hash, manager=node.manager or "", region=node.region))
    return cmd.member


def rebind(e: "Engine", uow: UnitOfWork, cmd: RebindMember, at: float) -> str:
    node = e.nodes.get(cmd.node)
    if node is None:
        raise NotFound("node", f"unknown node {cmd.node!r}")
    uow.member(cmd.member).rebind(cmd.node, cmd.clerk, node.dealer, cmd.reason, at, node.manager or "", node.region)
    return cmd.member


def bind(e: "Engine", uow: UnitOfWork, cmd: BindIdentity, at: float) -> str:
    uow.member(cmd.member).bind(cmd.kind, cmd.external_id, at)
    return cmd.member


def redeem(e: "Engine", uow: UnitOfWork, cmd: RedeemPoints, at: float) -> str:
    """A gift sent: the points are spent. A gift picked up at a store: the
    points and one unit of the gift are reserved there until collected."""
    if cmd.pickup_node is None:
        if cmd.gift_sku is not None:
            e.sku(cmd.gift_sku, "gift_sku")
        uow.member(cmd.member).redeem(cmd.points, cmd.gift, cmd.ref, at)
        return cmd.member
    if cmd.gift_sku is None:
        raise InvalidInput("gift_sku", "a gift picked up at a store names its SKU")
    node = e.nodes.get(cmd.pickup_node)
    if node is None:
        raise NotFound("pickup_node", f"unknown node {cmd.pickup_node!r}")
    if "pickup" not in node.modes:
        raise InvalidInput("pickup_node", f"node {cmd.pickup_node!r} does not offer pickup")
    sku = e.sku(cmd.gift_sku, "gift_sku")
    member = uow.member(cmd.member)
    held = member.holds.get(cmd.ref)
    if held is not None and held.points == cmd.points:
        return cmd.member  # a repeat: answered, nothing new
    inventory = uow.inventory(cmd.pickup_node)
    if inventory.can_reserve({sku: 1}) is not None:
        raise Conflict("gift_sku", f"no {sku} available to promise at {cmd.pickup_node}")
    until = at + e.settings.points.gift_pickup_hours * 3600
    member.reserve(cmd.points, cmd.ref, at, gift=cmd.gift, node=cmd.pickup_node, sku=sku, until=until)
    inventory.reserve(gift_key(cmd.member, cmd.ref), {sku: 1}, at)
    return cmd.member


def collect_gift(e: "Engine", uow: UnitOfWork, cmd: CollectGift, at: float) -> str:
    member = uow.member(cmd.member)
    hold = member.holds.get(cmd.ref)
    if hold is not None and cmd.node is not None and cmd.node != hold.node:
        raise Conflict("node", f"the gift of {cmd.ref} waits at {hold.node}, not {cmd.node}")
    hold = member.spend_reserved(cmd.ref, at)  # raises naming the ref if not reserved (collected twice ...)
    if hold.node is not None:
        uow.inventory(hold.node).consume(gift_key(cmd.member, cmd.ref), at)
    return cmd.member


def cancel_redemption(e: "Engine", uow: UnitOfWork, cmd: CancelRedemption, at: float) -> str:
    release_gift(uow, cmd.member, cmd.ref, cmd.reason, at)
    return cmd.member


def release_gift(uow: UnitOfWork, member: str, ref: str, reason: str, at: float) -> None:
    """The points go back to their buckets, the gift back to the store's stock."""
    hold = uow.member(member).release(ref, at, reason)
    if hold.node is not None:
        uow.inventory(hold.node).release(gift_key(member, ref), reason=reason, at=at)


def gift_key(member: str, ref: str) -> str:
    """What a gift's unit is reserved under in the store's inventory."""
    return f"gift/{member}/{ref}"


def publish_rules(e: "Engine", uow: UnitOfWork, cmd: PublishBenefitRules, at: float) -> None:
    uow.benefit_rules(at).publish(cmd.rules, at)


def close_period(e: "Engine", uow: UnitOfWork, cmd: ClosePeriod, at: float) -> None:
    view = e.readmodels.benefit
    open_before = sorted({p for _, p in view.statements if p < cmd.period and p not in view.closed})
    if uow.benefit_rules(at).close(cmd.period, period_end(cmd.period, e.network.timezone), at, open_before):
        e.store.evict(lambda agg: isinstance(agg, PartyLedger) and agg.period == cmd.period)  # no more lines there


def pay(e: "Engine", uow: UnitOfWork, cmd: PayStatements, at: float) -> None:
    """Pays each statement of the closed period with a positive balance once
    all its lines are past their hold days; a negative one carries forward."""
    book = uow.benefit_rules()
    if book is None or cmd.period not in book.closed:
        raise Conflict("period", f"{cmd.period} is not closed: only a closed period's statements are paid")
    due = [s for s in statements(e, GetStatement(period=cmd.period, party=cmd.party)).statements
           if s.closing > 0 or cmd.party is not None]
    for s in due:
        if s.closing <= 0:
            raise Conflict("party", f"{s.party}'s balance for {cmd.period} is {s.closing}: nothing to pay, "
                                    "a negative balance carries forward")
        held = max((line.payable_at for line in s.lines), default=at)
        if held > at:
            raise Conflict("period", f"{s.party} has lines on hold in {cmd.period} until "
                                     f"{datetime.fromtimestamp(held, timezone.utc).isoformat()}")
    for s in due:
        uow.ledger(s.party, cmd.period, at).pay(s.closing, cmd.reference, at)


def closed_answer(e: "Engine", cmd: Any, _: None) -> StatementsReply:
    return statements(e, GetStatement(period=cmd.period, party=getattr(cmd, "party", None)))


def rules_answer(e: "Engine", cmd: Any, _: None) -> BenefitRulesReply:
    return BenefitRulesReply(versions=list(e.readmodels.benefit.versions))


def statements(e: "Engine", q: GetStatement) -> StatementsReply:
    return statement_replies(e.readmodels.benefit, q.period, q.party, e.clock.now())


def get_member(e: "Engine", q: GetMember) -> MemberReply:
    return e.member(q.member)


def earn_points(e: "Engine", uow: UnitOfWork, member: str, cash_by_sku: dict[str, int], ref: str, at: float) -> int:
    """Points on cash paid (minor units per SKU) under the points rules; returns the points earned."""
    rules = e.settings.points
    points = points_for(cash_by_sku, e.skus, rules, e.network.minor_units)
    if points > 0:
        available_at, expires_at = bucket_times(at, rules, e.network.timezone)
        if not uow.member(member).earn(points, ref=ref, at=at, available_at=available_at, expires_at=expires_at):
            return 0
    return points


def _cash(money: OrderMoney | None, lines: dict[str, int], e: "Engine") -> dict[str, int]:
    """Cash paid by SKU (minor units): points are earned on it, not on points used or delivery fees.
    An order placed before amounts were recorded: its lines at the price list."""
    if money is None:
        return {sku: e.list_price[sku] * qty for sku, qty in lines.items() if sku in e.list_price}
    return {sku: line.paid for sku, line in money.lines.items()}


def settle_points(e: "Engine", uow: UnitOfWork, member: str | None, ref: str, money: OrderMoney | None,
                  refunded: dict[str, list[int]], refund: Refund, at: float) -> None:
    """What a refund does to the member's points: the points used on the
    refunded lines go back to their buckets, and of what the purchase
    earned, the share of its earning cash this refund gives back is taken
    back (all that is left with the last of it). `refunded`: cash and
    points refunded by SKU, this refund included."""
    if member is None or money is None:
        return
    m = uow.member(member)
    used = sum(refund.points.values())
    if used:
        m.return_spent(ref, used, at)
    bucket = m.buckets.get(ref)
    if bucket is None or bucket.earned <= bucket.reversed:
        return
    rules = e.settings.points
    cash = eligible_cash(refund.cash, e.skus, rules)
    before = eligible_cash({sku: done[0] for sku, done in refunded.items()}, e.skus, rules) - cash
    back = portion(bucket.earned - bucket.reversed, eligible_cash(_cash(money, {}, e), e.skus, rules) - before, cash)
    if back:
        m.reverse_earned(ref, back, at, allow_negative=rules.allow_negative)


COMMANDS: dict[type[Command], Handler] = {
    SubmitOrder: Batched(),
    CancelOrder: Write(cancel, order_answer),
    RefundOrder: Write(refund, order_answer),
    AcceptOrder: Write(accept, order_answer),
    DeclineOrder: Write(decline, order_answer),
    ReportProgress: Write(progress, order_answer),
    GetOrder: Query(order_status),
    QuoteOrder: Many(quotes),
    ReceiveStock: Write(receive, stock_answer),
    AdjustStock: Write(adjust, stock_answer),
    CountStock: Write(count, stock_answer),
    SetSafetyStock: Write(set_safety, stock_answer),
    SellOverCounter: Write(sell, stock_answer),
    RefundSale: Write(refund_sale, sale_answer),
    GetStock: Query(get_stock),
    FindStock: Query(find_stock),
    SuggestStock: Query(suggest_stock),
    SignUpMember: Write(sign_up, member_answer),
    BindIdentity: Write(bind, member_answer),
    RedeemPoints: Write(redeem, member_answer),
    CollectGift: Write(collect_gift, member_answer),
    CancelRedemption: Write(cancel_redemption, member_answer),
    GetMember: Query(get_member),
    PublishBenefitRules: Write(publish_rules, rules_answer),
    GetStatement: Query(statements),
    ClosePeriod: Write(close_period, closed_answer),
    PayStatements: Write(pay, closed_answer),
    RebindMember: Write(rebind, member_answer),
}
