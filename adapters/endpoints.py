"""The service's endpoints, one row each: subject, request and reply types,
the engine call, and the description `$SRV.INFO` shows. The JSON Schemas
are generated from the same rows."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from domain import commands as c
from engine import replies as r

if TYPE_CHECKING:
    from engine.app import Engine


@dataclass(frozen=True)
class Endpoint:
    name: str
    subject: str
    request: type
    reply: type
    call: Callable[[Engine], Callable[[Any], Any]] | None  # None: the micro-batched submit
    doc: str


ENDPOINTS = [
    Endpoint("submit", "o2o.orders.submit", c.SubmitOrder, r.OrderReply, None, "Submit an online order; the reply carries the routing decision"),
    Endpoint("cancel", "o2o.orders.cancel", c.CancelOrder, r.OrderReply, lambda e: e.cancel, "Cancel an order before hand-over; its stock is released"),
    Endpoint("accept", "o2o.orders.accept", c.AcceptOrder, r.OrderReply, lambda e: e.accept, "A node accepts the order routed to it"),
    Endpoint("decline", "o2o.orders.decline", c.DeclineOrder, r.OrderReply, lambda e: e.decline, "A node declines; the order is routed again elsewhere"),
    Endpoint("progress", "o2o.orders.progress", c.ReportProgress, r.OrderReply, lambda e: e.progress, "Fulfilment progress: picked, ready, dispatched, delivered, collected"),
    Endpoint("status", "o2o.orders.status", c.GetOrder, r.OrderReply, lambda e: lambda q: e.order_status(q.order_id), "Order status with its routing explanation"),
    Endpoint("receive", "o2o.stock.receive", c.ReceiveStock, r.StockReply, lambda e: e.receive, "Goods received at a node"),
    Endpoint("adjust", "o2o.stock.adjust", c.AdjustStock, r.StockReply, lambda e: e.adjust, "Stock adjustment with a reason"),
    Endpoint("count", "o2o.stock.count", c.CountStock, r.StockReply, lambda e: e.count, "Stocktake: sets on-hand"),
    Endpoint("nearby", "o2o.stock.nearby", c.FindStock, r.StockNearby, lambda e: e.find_stock, "Which nodes that could serve a location have a SKU"),
    Endpoint("pos_sale", "o2o.pos.sale", c.SellOverCounter, r.StockReply, lambda e: e.sell, "Over-the-counter sale from the same stock"),
    Endpoint("sign_up", "o2o.members.signup", c.SignUpMember, r.MemberReply, lambda e: e.sign_up, "Sign a member up at a node"),
    Endpoint("bind", "o2o.members.bind", c.BindIdentity, r.MemberReply, lambda e: e.bind, "Bind a channel identity to a member"),
    Endpoint("redeem", "o2o.members.redeem", c.RedeemPoints, r.MemberReply, lambda e: e.redeem, "Redeem points for a gift"),
    Endpoint("member", "o2o.members.get", c.GetMember, r.MemberReply, lambda e: lambda q: e.member(q.member), "A member's points and identities"),
]
