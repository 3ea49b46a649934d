"""Ele.me (饿了么 open platform).

In: one JSON POST per push, the envelope `{requestId, type, appId, shopId,
userId, timestamp, message, signature}` with the order as a JSON *string* in
`message`. `signature = UPPER(md5(sorted "k=v" concatenated, no separator,
over appId, message, requestId, shopId, timestamp, type, userId, + secret))`,
`message` signed exactly as received. Types: 10 new order; 14, 15, 17
cancelled or invalidated; 33 refund agreed (unverified); the rest (12
accepted, 18 completed, 20-26 cancel requests, 30-32 and 34-36 refund steps,
45 reminders, 51-76 delivery, 91/92 shop) are acknowledged and change
nothing here. In `message`: `id` (a string), `openId` (the merchant's store
id, else `shopId`), `groups[].items[]` with `extendCode` (merchant SKU, else
`skuId`), `price`, `quantity`, amounts in yuan (`totalPrice` paid,
`deliverFee`, `packageFee`), `deliveryGeo` = "lng,lat" in GCJ-02 (longitude
first), `deliverTime` naive GMT+8 (null: as soon as possible; with `book`, a
pre-order booked for the half hour up to it). Answer
`{"message":"ok"}` (GET probes too).

Out: the JSON-RPC API (`nop`, `id`, `action`, `token`, `metas{app_key,
timestamp}`, `params`, `signature = UPPER(md5(action + token + sorted
"k=json(v)" over metas and params + secret))`): `eleme.order.confirmOrderLite`,
`cancelOrderLite` (`type` foodSoldOut, restaurantClosed, distanceTooFar,
restaurantTooBusy), `deliveryBySelfLite`, `receivedOrderLite`. The RPC
envelope follows the official SDK (dllen/eleme-openapi-java-sdk);
../shared/CHANNELS.md section 2.
"""
from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal
from typing import Any

import msgspec

from adapters.channels.base import (Answer, Call, Channel, HttpCall, Intake, Push, Refusal, answer_json, check_fresh,
                                    decode_json, delivery_window, epoch, key, local_time, md5_hex, promise_minutes, same,
                                    settle)
from adapters.channels.geo import gcj02_to_wgs84
from domain import ids
from domain.commands import CancelOrder, Line, RefundOrder, SubmitOrder

NEW, CANCELLED, REFUNDED = {10}, {14, 15, 17}, {33}
SIGNED = ("appId", "message", "requestId", "shopId", "timestamp", "type", "userId")


class Envelope(msgspec.Struct):
    requestId: str
    type: int
    appId: int | str
    shopId: int | str
    timestamp: int
    message: str
    signature: str
    userId: int | str = 0


class Item(msgspec.Struct):
    price: Decimal
    quantity: int
    extendCode: str | None = None
    skuId: int | str | None = None
    id: int | str | None = None
    name: str = ""


class Group(msgspec.Struct):
    items: list[Item] = []
    type: str = "normal"


class Order(msgspec.Struct):
    id: str
    groups: list[Group]
    openId: str | None = None
    shopId: int | str | None = None
    deliveryGeo: str | None = None
    deliverTime: str | None = None
    totalPrice: Decimal | None = None
    deliverFee: Decimal = Decimal(0)
    packageFee: Decimal = Decimal(0)
    book: bool = False


class Changed(msgspec.Struct):
    orderId: str
    reason: str = ""
    refundId: str | None = None


def envelope(push: Push) -> Envelope:
    return decode_json(push.body, "$", Envelope)


def signature(env: Envelope, secret: str) -> str:
    plain = "".join(f"{k}={getattr(env, k)}" for k in SIGNED)
    return md5_hex(plain + secret).upper()


class Eleme(Channel):
    kind = "eleme"
    ACTIONS = {"routed": "confirm", "rejected": "cancel", "cancelled": "cancel", "dispatched": "delivering",
               "delivered": "delivered"}
    REASONS = {"stock": "foodSoldOut", "closed": "restaurantClosed", "far": "distanceTooFar",
               "deliver": "distanceTooFar"}
    DEFAULT_REASON = "restaurantTooBusy"
    RPC = {"confirm": "eleme.order.confirmOrderLite", "cancel": "eleme.order.cancelOrderLite",
           "delivering": "eleme.order.deliveryBySelfLite", "delivered": "eleme.order.receivedOrderLite"}

    def is_probe(self, push: Push) -> bool:
        return push.method == "GET" or push.body.strip() in (b"", b"{}")

    def verify(self, push: Push) -> None:
        env = envelope(push)
        if not env.signature:
            raise Refusal("signature", "signature: missing", 401)
        if not same(env.signature.upper(), signature(env, self.secret)):
            raise Refusal("signature", "signature: does not match", 401)
        check_fresh(epoch(env.timestamp, "timestamp"), push.received_at, self.settings.replay_window_s, "timestamp")

    async def parse(self, push: Push, http: Any = None) -> list[Intake]:
        env = envelope(push)
        if env.type in NEW:
            return [self._order(decode_json(env.message, "message", Order))]
        if env.type in CANCELLED or env.type in REFUNDED:
            change = decode_json(env.message, "message", Changed)
            external_id = key(change.orderId, "message.orderId")
            order_id = str(ids.order_id(self.name, external_id))
            reason = f"{self.name}: {change.reason or ('cancelled' if env.type in CANCELLED else 'refund')} ({env.type})"
            if env.type in CANCELLED:
                return [Intake(CancelOrder(order_id=order_id, reason=reason[:500]), f"{self.name}:{external_id}:cancel")]
            refund_id = key(change.refundId or env.requestId, "message.refundId")
            return [Intake(RefundOrder(order_id=order_id, refund_id=refund_id, reason=reason[:500]),
                           f"{self.name}:{external_id}:refund:{refund_id}")]
        return []

    def _order(self, o: Order) -> Intake:
        catalog = self.catalog
        external_id = key(o.id, "message.id")
        catalog.node(o.openId or o.shopId or "", "message.openId")
        lines = []
        for g, group in enumerate(o.groups):
            for i, item in enumerate(group.items):
                where = f"message.groups[{g}].items[{i}]"
                if item.quantity < 1:
                    raise Refusal("malformed", f"{where}.quantity: must be at least 1")
                sku = catalog.sku(item.extendCode or item.skuId or "", f"{where}.extendCode")
                lines.append(Line(sku=sku, qty=item.quantity, unit_price=catalog.minor(item.price, f"{where}.price")))
        if not lines:
            raise Refusal("malformed", "message.groups: no items")
        fees = catalog.minor(o.deliverFee, "message.deliverFee") + catalog.minor(o.packageFee, "message.packageFee")
        paid = catalog.minor(o.totalPrice, "message.totalPrice") if o.totalPrice is not None else None
        discounts, fees, paid = settle(lines, fees, paid)
        geo = (o.deliveryGeo or "").split(",")
        if len(geo) != 2:
            raise Refusal("malformed", "message.deliveryGeo: expected \"lng,lat\"")
        try:
            lon, lat = float(geo[0]), float(geo[1])
        except ValueError:
            raise Refusal("malformed", "message.deliveryGeo: not numbers") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise Refusal("malformed", "message.deliveryGeo: out of range")
        lat, lon = gcj02_to_wgs84(lat, lon)
        deliver_at = (local_time(o.deliverTime, self.settings.timezone_hours, "message.deliverTime")
                      if o.deliverTime else None)
        when = (delivery_window(deliver_at, self.clock()) if o.book  # a pre-order: booked for its slot
                else {"promise_minutes": promise_minutes(deliver_at, self.clock())})
        cmd = SubmitOrder(channel=self.name, external_id=external_id, lines=lines, mode="delivery", lat=lat, lon=lon,
                          discounts=discounts, delivery_fee=fees, paid=paid, **when)
        return Intake(cmd, f"{self.name}:{external_id}")

    def ok(self, push: Push) -> Answer:
        return answer_json({"message": "ok"})

    def refuse(self, refusal: Refusal) -> Answer:
        return answer_json({"message": f"fail: {refusal.reason}"}, refusal.status)

    def request_for(self, call: Call) -> HttpCall:
        action = self.RPC[call.action]
        metas = {"app_key": self.settings.app_id, "timestamp": int(time.time())}
        params: dict[str, Any] = {"orderId": call.external_id}
        if call.action == "cancel":
            params.update(type=call.args.get("reason_code", self.DEFAULT_REASON), remark=call.args.get("reason", ""))
        both = {**metas, **params}
        plain = "".join(f"{k}={json.dumps(both[k], ensure_ascii=False, separators=(',', ':'))}" for k in sorted(both))
        sig = md5_hex(action + self.token + plain + self.secret).upper()
        body = {"nop": "1.0.0", "id": str(uuid.uuid4()), "action": action, "token": self.token, "metas": metas,
                "params": params, "signature": sig}
        return HttpCall("POST", self.settings.api_url, {"Content-Type": "application/json; charset=utf-8"},
                        json.dumps(body, ensure_ascii=False).encode())

    def call_succeeded(self, status: int, body: bytes) -> bool:
        if status != 200:
            return False
        try:
            return json.loads(body).get("error") is None
        except (ValueError, AttributeError):
            return False
