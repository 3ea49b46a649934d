"""The service's endpoints, one row each: subject, request and reply types,
and the description `$SRV.INFO` shows. The request type names the handler
in the engine's command table; the JSON Schemas are generated from the
same rows."""
from __future__ import annotations

from dataclasses import dataclass

from domain import commands as c
from engine import clock as k
from engine import replenish as rp
from engine import replies as r


@dataclass(frozen=True)
class Endpoint:
    name: str
    subject: str
    request: type
    reply: type
    doc: str


ENDPOINTS = [
    Endpoint("submit", "o2o.orders.submit", c.SubmitOrder, r.OrderReply, "Submit an online order; the reply carries the routing decision"),
    Endpoint("quote", "o2o.orders.quote", c.QuoteOrder, r.QuoteReply,
             "A cart's options before checkout: delivery, pickup nearby, a split, what is short; nothing reserved"),
    Endpoint("cancel", "o2o.orders.cancel", c.CancelOrder, r.OrderReply, "Cancel an order before hand-over; its stock is released"),
    Endpoint("refund", "o2o.orders.refund", c.RefundOrder, r.OrderReply, "Money back, whole or by line: before hand-over a cancellation, after it the goods return to a node or are written off"),
    Endpoint("accept", "o2o.orders.accept", c.AcceptOrder, r.OrderReply, "A node accepts the order routed to it"),
    Endpoint("decline", "o2o.orders.decline", c.DeclineOrder, r.OrderReply, "A node declines; the order is routed again elsewhere"),
    Endpoint("progress", "o2o.orders.progress", c.ReportProgress, r.OrderReply, "Fulfilment progress: picked, ready, dispatched, delivered, collected"),
    Endpoint("status", "o2o.orders.status", c.GetOrder, r.OrderReply, "Order status with its routing explanation"),
    Endpoint("receive", "o2o.stock.receive", c.ReceiveStock, r.StockReply, "Goods received at a node"),
    Endpoint("adjust", "o2o.stock.adjust", c.AdjustStock, r.StockReply, "Stock adjustment with a reason"),
    Endpoint("count", "o2o.stock.count", c.CountStock, r.StockReply, "Stocktake: sets on-hand"),
    Endpoint("safety", "o2o.stock.safety", c.SetSafetyStock, r.StockReply,
             "Safety stock per SKU at a node: units online orders cannot take (a counter sale can); replaces their levels"),
    Endpoint("stock", "o2o.stock.get", c.GetStock, r.StockReply, "A node's stock: on hand and available to promise"),
    Endpoint("nearby", "o2o.stock.nearby", c.FindStock, r.StockNearby, "Which nodes that could serve a location have a SKU"),
    Endpoint("suggest", "o2o.stock.suggest", c.SuggestStock, rp.Suggestions,
             "Replenishment: transfers and purchases per node and SKU for the next delivery, from recent demand"),
    Endpoint("pos_sale", "o2o.pos.sale", c.SellOverCounter, r.StockReply, "Over-the-counter sale from the same stock"),
    Endpoint("pos_refund", "o2o.pos.refund", c.RefundSale, r.SaleReply, "Money back for a counter sale; the goods return to a node or are written off"),
    Endpoint("sign_up", "o2o.members.signup", c.SignUpMember, r.MemberReply, "Sign a member up at a node"),
    Endpoint("rebind", "o2o.members.rebind", c.RebindMember, r.MemberReply,
             "Move a member's origin (who benefit sharing credits) from now on, with a reason"),
    Endpoint("bind", "o2o.members.bind", c.BindIdentity, r.MemberReply, "Bind a channel identity to a member"),
    Endpoint("redeem", "o2o.members.redeem", c.RedeemPoints, r.MemberReply,
             "Redeem points for a gift: sent, or reserved with the gift at a store until collected"),
    Endpoint("collect", "o2o.members.collect", c.CollectGift, r.MemberReply,
             "The member collects a gift reserved at a store: points spent, the unit leaves the stock"),
    Endpoint("cancel_redemption", "o2o.members.cancel_redemption", c.CancelRedemption, r.MemberReply,
             "Cancel a gift reserved at a store: its points and stock are released"),
    Endpoint("benefit_rules", "o2o.benefit.rules.publish", c.PublishBenefitRules, r.BenefitRulesReply, "Publish a version of the benefit-sharing rules (immutable, in force from its time)"),
    Endpoint("benefit_statement", "o2o.benefit.statement", c.GetStatement, r.StatementsReply, "Benefit statements of a period: one party's or all"),
    Endpoint("benefit_close", "o2o.benefit.close", c.ClosePeriod, r.StatementsReply, "Close a benefit period that has ended; its statements never change after"),
    Endpoint("benefit_paid", "o2o.benefit.paid", c.PayStatements, r.StatementsReply,
             "Record a closed period's statements as paid (one party's or every positive one)"),
    Endpoint("member", "o2o.members.get", c.GetMember, r.MemberReply,
             "A member's points (balance, pending, reserved, owed, buckets with expiry), gifts and identities"),
]

# Only with a test clock (o2o serve --test-clock); without it these subjects do not exist.
CLOCK_ENDPOINTS = [
    Endpoint("clock_advance", "o2o.clock.advance", k.AdvanceClock, k.ClockReply,
             "Test clock: move forwards by seconds; the timers run at once"),
    Endpoint("clock_set", "o2o.clock.set", k.SetClock, k.ClockReply,
             "Test clock: set the time (never backwards); the timers run at once"),
]
