"""Shopify (a web mall; POS orders via `source_name`).

In: one JSON POST per topic, named by `X-Shopify-Topic`: `orders/create`
and `orders/paid` (both become the order, the second a duplicate dropped by
its key, so whichever comes first places it), `orders/cancelled` (our
cancel), `refunds/create` (our refund); other topics (`orders/updated`,
`orders/fulfilled`, ...) are acknowledged and change nothing here.
`X-Shopify-Hmac-Sha256` is the **base64** HMAC-SHA256 of the raw body keyed
with the app's client secret (during a rotation `secret_env` may hold the
new and the old secret, comma-separated). Shopify signs no timestamp and
retries for 4 hours, so there is no replay window: its retries are dropped
by the key. `id` is an int64 (kept as a string), prices are decimal strings
in `currency` (which must be the network's), coordinates are WGS-84 in
`shipping_address` (may be null: such a delivery is refused), a pickup is
told by its shipping line (`code`/`title` naming pickup) and served at the
mapped `location_id`. Answer 200 with `{}`.

Out: the Admin REST API with `X-Shopify-Access-Token`: `orders/{id}/cancel.json`
(`reason` inventory or other) for a rejection or a cancel of ours,
`orders/{id}/close.json` when it is delivered or collected. Confirm and
ready have no Shopify call. Sources: ../shared/CHANNELS.md section 5.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from decimal import Decimal
from typing import Any

import msgspec

from adapters.channels.base import (Answer, Call, Channel, HttpCall, Intake, Push, Refusal, answer_json,
                                    decode_json, key, settle)
from domain import ids
from domain.commands import CancelOrder, Line, RefundOrder, ReturnLine, SubmitOrder

ORDER_TOPICS = {"orders/create", "orders/paid"}
API_VERSION = "2024-10"


class LineItem(msgspec.Struct):
    quantity: int
    price: Decimal
    sku: str | None = None
    variant_id: int | None = None
    id: int | None = None
    total_discount: Decimal = Decimal(0)


class ShippingLine(msgspec.Struct):
    price: Decimal = Decimal(0)
    code: str | None = None
    title: str | None = None
    source: str | None = None


class Address(msgspec.Struct):
    latitude: float | None = None
    longitude: float | None = None


class ShopifyOrder(msgspec.Struct):
    id: int
    line_items: list[LineItem]
    currency: str = ""
    total_price: Decimal | None = None
    shipping_lines: list[ShippingLine] = []
    shipping_address: Address | None = None
    location_id: int | None = None
    source_name: str = ""
    cancel_reason: str | None = None


class RefundLineItem(msgspec.Struct):
    quantity: int
    line_item: LineItem


class Refund(msgspec.Struct):
    id: int
    order_id: int
    refund_line_items: list[RefundLineItem] = []
    note: str | None = None


def hmac_b64(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class Shopify(Channel):
    kind = "shopify"
    dedup_header = "X-Shopify-Webhook-Id"
    ACTIONS = {"rejected": "cancel", "cancelled": "cancel", "delivered": "close", "collected": "close"}
    REASONS = {"stock": "inventory"}
    DEFAULT_REASON = "other"

    def is_probe(self, push: Push) -> bool:
        return push.method == "GET"

    def verify(self, push: Push) -> None:
        given = push.headers.get("X-Shopify-Hmac-Sha256", "")
        if not given:
            raise Refusal("signature", "X-Shopify-Hmac-Sha256: missing", 401)
        secrets = [s for s in self.secret.split(",") if s] or [""]
        if not any(hmac.compare_digest(given.encode(), hmac_b64(push.body, s).encode()) for s in secrets):
            raise Refusal("signature", "X-Shopify-Hmac-Sha256: does not match", 401)

    async def parse(self, push: Push, http: Any = None) -> list[Intake]:
        topic = push.headers.get("X-Shopify-Topic", "")
        if topic in ORDER_TOPICS:
            return [self._order(decode_json(push.body, "$", ShopifyOrder))]
        if topic == "orders/cancelled":
            o = decode_json(push.body, "$", ShopifyOrder)
            external_id = key(o.id, "id")
            reason = f"{self.name}: {o.cancel_reason or 'cancelled'}"
            return [Intake(CancelOrder(order_id=str(ids.order_id(self.name, external_id)), reason=reason[:500]),
                           f"{self.name}:{external_id}:cancel")]
        if topic == "refunds/create":
            r = decode_json(push.body, "$", Refund)
            external_id = key(r.order_id, "order_id")
            lines = [ReturnLine(sku=self.catalog.sku(x.line_item.sku or "", f"refund_line_items[{i}].line_item.sku"),
                                qty=x.quantity) for i, x in enumerate(r.refund_line_items) if x.quantity > 0]
            return [Intake(RefundOrder(order_id=str(ids.order_id(self.name, external_id)), refund_id=key(r.id, "id"),
                                       reason=f"{self.name}: {r.note or 'refund'}"[:500], lines=lines),
                           f"{self.name}:{external_id}:refund:{r.id}")]
        return []

    def _order(self, o: ShopifyOrder) -> Intake:
        catalog = self.catalog
        if o.currency and o.currency != catalog.currency:
            raise Refusal("unmapped", f"currency: {o.currency} is not the network's {catalog.currency}")
        external_id = key(o.id, "id")
        lines = []
        for i, item in enumerate(o.line_items):
            if item.quantity < 1:
                raise Refusal("malformed", f"line_items[{i}].quantity: must be at least 1")
            unit = catalog.minor(item.price, f"line_items[{i}].price")
            off = min(catalog.minor(item.total_discount, f"line_items[{i}].total_discount"), unit * item.quantity)
            lines.append(Line(sku=catalog.sku(item.sku or "", f"line_items[{i}].sku"), qty=item.quantity,
                              unit_price=unit, discount=off))
        if not lines:
            raise Refusal("malformed", "line_items: no items")
        fees = sum(catalog.minor(s.price, f"shipping_lines[{i}].price") for i, s in enumerate(o.shipping_lines))
        paid = catalog.minor(o.total_price, "total_price") if o.total_price is not None else None
        discounts, fees, paid = settle(lines, fees, paid)
        common = dict(channel=self.name, external_id=external_id, lines=lines, discounts=discounts, delivery_fee=fees,
                      paid=paid)
        pickup = any("pickup" in f"{s.code or ''} {s.title or ''} {s.source or ''}".lower().replace(" ", "")
                     for s in o.shipping_lines)
        if pickup:
            if o.location_id is None:
                raise Refusal("unmapped", "location_id: a pickup order names no location")
            node = catalog.node(o.location_id, "location_id")
            return Intake(SubmitOrder(mode="pickup", pickup_node=node, **common), f"{self.name}:{external_id}")
        a = o.shipping_address
        if a is None or a.latitude is None or a.longitude is None:
            raise Refusal("unmapped", "shipping_address.latitude: a delivery needs the address's coordinates")
        if not (-90 <= a.latitude <= 90 and -180 <= a.longitude <= 180):
            raise Refusal("malformed", "shipping_address.latitude: out of range")
        return Intake(SubmitOrder(mode="delivery", lat=a.latitude, lon=a.longitude, **common),
                      f"{self.name}:{external_id}")

    def ok(self, push: Push) -> Answer:
        return answer_json({})

    def refuse(self, refusal: Refusal) -> Answer:
        return answer_json({"errors": refusal.reason}, refusal.status)

    def request_for(self, call: Call) -> HttpCall:
        base = f"{self.settings.api_url.rstrip('/')}/admin/api/{API_VERSION}/orders/{call.external_id}"
        headers = {"X-Shopify-Access-Token": self.token, "Content-Type": "application/json"}
        if call.action == "cancel":
            body = {"reason": call.args.get("reason_code", self.DEFAULT_REASON), "email": False}
            return HttpCall("POST", f"{base}/cancel.json", headers, json.dumps(body).encode())
        return HttpCall("POST", f"{base}/close.json", headers, b"{}")

    def call_succeeded(self, status: int, body: bytes) -> bool:
        # a repeat of a cancel or close is a 422 naming the state it is already in: done
        return 200 <= status < 300 or (status == 422 and b"already" in body)
