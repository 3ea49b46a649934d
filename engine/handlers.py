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
from typing import TYPE_CHECKING, Any, Callable

from domain.commands import (
    AcceptOrder, AdjustStock, BindIdentity, CancelOrder, Command, CountStock, DeclineOrder, FindStock, GetMember,
    GetOrder, GetStock, ReceiveStock, RedeemPoints, RefundOrder, RefundSale, ReportProgress, SellOverCounter, SignUpMember, SubmitOrder,
)
from domain.errors import Conflict, NotFound
from domain.member import Member, points_earned
from domain.sale import Sale
from engine.replies import MemberReply, OrderReply, SaleReply, StockNearby, StockReply
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
class Batched:
    """Orders: gathered into micro-batches and routed together."""


Handler = Write | Query | Batched


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
    if before:
        for node in order.cancel(cmd.reason, at):
            uow.inventory(node).release(str(order.id), reason="order refunded", at=at)
    elif cmd.return_to:
        uow.inventory(cmd.return_to).take_back(f"refund/{order.id}/{cmd.refund_id}", done.lines, at)
    return str(order.id)


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
        if order.outcome == "completed" and order.member:
            _earn(e, uow, order.member, order.value, f"order/{order.id}", at)
    return str(order.id)


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


def sell(e: "Engine", uow: UnitOfWork, cmd: SellOverCounter, at: float) -> tuple[str, list[str]]:
    """A POS sale takes from the same stock as online orders; its money is a Sale of its own."""
    lines = e.lines(cmd.lines)
    money = e.money(cmd.lines, cmd.discounts, 0, cmd.points_used, cmd.points_value, cmd.paid, cmd.member)
    uow.inventory(cmd.node).sell_over_counter(cmd.sale_id, lines, at)
    if uow.sale(cmd.node, cmd.sale_id, missing_ok=True) is not None:
        raise Conflict("sale_id", f"POS sale {cmd.sale_id} is already recorded at {cmd.node}")
    uow.add(Sale(node=cmd.node, sale_id=cmd.sale_id, member=cmd.member, money=money, at=at))
    if cmd.member:
        _earn(e, uow, cmd.member, sum(e.skus[s].price * q for s, q in lines.items()), f"pos/{cmd.node}/{cmd.sale_id}", at)
    return cmd.node, list(lines)


def refund_sale(e: "Engine", uow: UnitOfWork, cmd: RefundSale, at: float) -> str:
    """Money back for a counter sale; the goods come back to a node or are written off."""
    lines = e.lines(cmd.lines)
    if cmd.return_to is not None and cmd.return_to not in e.nodes:
        raise NotFound("return_to", f"unknown node {cmd.return_to!r}")
    sale = uow.sale(cmd.node, cmd.sale_id)
    done = sale.refund(cmd.refund_id, refund_fingerprint(cmd), lines, cmd.reason, at, cmd.return_to, cmd.write_off)
    if done is not None and cmd.return_to:
        uow.inventory(cmd.return_to).take_back(f"refund/{sale.id}/{cmd.refund_id}", done.lines, at)
    return f"{cmd.node}/{cmd.sale_id}"


def sale_answer(e: "Engine", cmd: Any, key: str) -> SaleReply:
    return e.sale(key)


def get_stock(e: "Engine", q: GetStock) -> StockReply:
    return e.stock(q.node, q.skus or None)


def find_stock(e: "Engine", q: FindStock) -> StockNearby:
    return e.find_stock(q)


# -- members --------------------------------------------------------------
def sign_up(e: "Engine", uow: UnitOfWork, cmd: SignUpMember, at: float) -> str:
    node = e.nodes.get(cmd.node)
    if node is None:
        raise NotFound("node", f"unknown node {cmd.node!r}")
    if cmd.member in e.readmodels.members:
        raise Conflict("member", f"member {cmd.member} is already signed up")
    phone_hash = hashlib.sha256((e.settings.phone_salt + cmd.phone).encode()).hexdigest() if cmd.phone else None
    uow.add(Member.sign_up(member=cmd.member, node=cmd.node, via=cmd.via, at=at, clerk=cmd.clerk,
                           dealer=node.dealer, phone_hash=phone_hash))
    return cmd.member


def bind(e: "Engine", uow: UnitOfWork, cmd: BindIdentity, at: float) -> str:
    uow.member(cmd.member).bind(cmd.kind, cmd.external_id, at)
    return cmd.member


def redeem(e: "Engine", uow: UnitOfWork, cmd: RedeemPoints, at: float) -> str:
    uow.member(cmd.member).redeem(cmd.points, cmd.gift, cmd.ref, at)
    return cmd.member


def get_member(e: "Engine", q: GetMember) -> MemberReply:
    return e.member(q.member)


def _earn(e: "Engine", uow: UnitOfWork, member: str, value: float, ref: str, at: float) -> None:
    points = points_earned(value, e.settings.points_per_rmb)
    if points > 0:
        uow.member(member).earn(points, ref=ref, at=at)


COMMANDS: dict[type[Command], Handler] = {
    SubmitOrder: Batched(),
    CancelOrder: Write(cancel, order_answer),
    RefundOrder: Write(refund, order_answer),
    AcceptOrder: Write(accept, order_answer),
    DeclineOrder: Write(decline, order_answer),
    ReportProgress: Write(progress, order_answer),
    GetOrder: Query(order_status),
    ReceiveStock: Write(receive, stock_answer),
    AdjustStock: Write(adjust, stock_answer),
    CountStock: Write(count, stock_answer),
    SellOverCounter: Write(sell, stock_answer),
    RefundSale: Write(refund_sale, sale_answer),
    GetStock: Query(get_stock),
    FindStock: Query(find_stock),
    SignUpMember: Write(sign_up, member_answer),
    BindIdentity: Write(bind, member_answer),
    RedeemPoints: Write(redeem, member_answer),
    GetMember: Query(get_member),
}
