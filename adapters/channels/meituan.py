"""Meituan Waimai / Shangou (美团外卖/闪购 open platform).

In: form-urlencoded POSTs, one URL per push (`/hooks/<channel>/order` paid
orders, `/cancel`, `/refund`; `/confirmed`, `/completed`, `/logistics`,
`/reminder` are acknowledged and change nothing here). Values arrive URL-encoded
twice, `detail` is a JSON string. `sig = md5(<push URL> + "?" + sorted k=v
joined by & (without sig, decoded values) + app_secret)`. Amounts in yuan
(`total`, `shipping_fee`, `price`, `box_price`) and fen (`package_bag_money`);
`latitude`/`longitude` GCJ-02; `pick_type` 1 = self-pickup (or "到店自取" in
`caution`); `delivery_time` epoch seconds, 0 = as soon as possible (else a
pre-order, booked for the half hour up to it). Answer
`{"data":"ok"}`; a refusal `{"data":"ng","error":{...}}`.

Out: signed GETs to `<api_url>/order/confirm`, `/order/cancel` (`reason_code`
2008 busy, 2009 sold out, 2010 undeliverable, 2011 closed),
`/order/preparationMealComplete`, `/order/delivering`, `/order/arrived`;
success is `{"data":"ok"}`. Sources: ../shared/CHANNELS.md section 1.
"""
from __future__ import annotations

import codecs
import re
import time
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlencode

import msgspec

from adapters.channels.base import (Answer, Call, Channel, HttpCall, Intake, Push, Refusal, answer_json, check_fresh,
                                    coordinate, decode_json, delivery_window, epoch, ident, key, md5_hex, need,
                                    same, settle)
from adapters.channels.geo import gcj02_to_wgs84
from domain import ids
from domain.commands import CancelOrder, Line, RefundOrder, ReturnLine, SubmitOrder

_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")
INFO_PUSHES = {"confirmed", "completed", "logistics", "reminder", "status"}


class Food(msgspec.Struct):
    quantity: int
    price: Decimal
    app_food_code: str = ""
    sku_id: str = ""
    food_name: str = ""
    box_num: Decimal = Decimal(0)
    box_price: Decimal = Decimal(0)


class RefundFood(msgspec.Struct):
    app_food_code: str = ""
    sku_id: str = ""
    count: int = 0


def form(push: Push) -> dict[str, str]:
    """The query and the form, each value decoded until no %XX is left (twice in captured bodies); decoded once
    per push."""
    if "form" not in push.parsed:
        push.parsed["form"] = _decode_form(push)
    return push.parsed["form"]


def _decode_form(push: Push) -> dict[str, str]:
    fields = dict(push.query)
    try:
        text = push.body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refusal("malformed", "$: the form is not UTF-8") from None
    fields.update(form_pairs(text))
    for k, v in fields.items():
        for _ in range(2):
            if not _ENCODED.search(v):
                break
            v = _unquote(v)
        fields[k] = v
    return fields


_escape_decode = getattr(codecs, "escape_decode", None)  # CPython's, undocumented: without it, urllib's unquote


def form_pairs(text: str) -> list[tuple[str, str]]:
    """parse_qsl(text, keep_blank_values=True), its unquoting done in C."""
    out = []
    for pair in text.split("&"):
        if pair:
            k, _, v = pair.partition("=")
            out.append((_unquote(k.replace("+", " ")), _unquote(v.replace("+", " "))))
    return out


def _unquote(v: str) -> str:
    """urllib's unquote (UTF-8, errors replaced), at C speed: %XX as \\xXX through codecs.escape_decode (every
    backslash doubled first, so none other is read as an escape); a % not followed by two hex digits falls back
    to unquote, which leaves it as it is. Webhook forms carry long JSON (an order's lines) encoded twice."""
    if "%" not in v or _escape_decode is None:
        return unquote(v)
    try:
        return _escape_decode(v.replace("\\", "\\\\").replace("%", "\\x").encode())[0].decode("utf-8", "replace")
    except ValueError:
        return unquote(v)


def signature(url: str, fields: dict[str, str], secret: str) -> str:
    plain = "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "sig")
    return md5_hex(f"{url}?{plain}{secret}")


class Meituan(Channel):
    kind = "meituan"
    ACTIONS = {"routed": "confirm", "rejected": "cancel", "cancelled": "cancel", "ready": "ready",
               "dispatched": "delivering", "delivered": "delivered"}
    REASONS = {"stock": 2009, "far": 2010, "deliver": 2010, "closed": 2011}
    DEFAULT_REASON = 2008
    PATHS = {"confirm": "order/confirm", "cancel": "order/cancel", "ready": "order/preparationMealComplete",
             "delivering": "order/delivering", "delivered": "order/arrived"}

    def is_probe(self, push: Push) -> bool:  # the URL check and heartbeats come unsigned, without an order
        return push.method == "GET" or not push.body and "sig" not in push.query

    def verify(self, push: Push) -> None:
        fields = form(push)
        sig = fields.get("sig", "")
        if not sig:
            raise Refusal("signature", "sig: missing", 401)
        url = push.url.split("?", 1)[0]
        if not same(sig.lower(), signature(url, fields, self.secret)):
            raise Refusal("signature", "sig: does not match", 401)
        if "timestamp" not in fields:
            raise Refusal("replay", "timestamp: missing", 401)
        check_fresh(epoch(fields["timestamp"], "timestamp"), push.received_at, self.settings.replay_window_s,
                    "timestamp")

    async def parse(self, push: Push, http: Any = None) -> list[Intake]:
        fields = form(push)
        if push.tail in INFO_PUSHES:
            return []
        external_id = ident(fields, "order_id")
        if push.tail in ("", "order"):
            return [self._order(fields, external_id)]
        order_id = str(ids.order_id(self.name, external_id))
        if push.tail == "cancel":
            reason = f"{self.name}: {fields.get('reason', '')} ({fields.get('reason_code', '')})"
            return [Intake(CancelOrder(order_id=order_id, reason=reason[:500]), f"{self.name}:{external_id}:cancel")]
        if push.tail == "refund":
            if fields.get("notify_type", "agree") != "agree":
                return []  # an application or its withdrawal: the money moves with "agree"
            refund_id = fields.get("refund_id") or f"{external_id}-{fields.get('timestamp', '')}"
            foods = decode_json(fields.get("food") or "[]", "food", list[RefundFood])
            lines = [ReturnLine(sku=self.catalog.sku(f.app_food_code or f.sku_id, f"food[{i}].app_food_code"),
                                qty=f.count) for i, f in enumerate(foods) if f.count > 0]
            reason = f"{self.name}: {fields.get('reason') or 'refund'}"
            return [Intake(RefundOrder(order_id=order_id, refund_id=key(refund_id), reason=reason[:500], lines=lines),
                           f"{self.name}:{external_id}:refund:{refund_id}")]
        raise Refusal("unmapped", f"push {push.tail!r}: not a Meituan push this gateway takes")

    def _order(self, f: dict[str, str], external_id: str) -> Intake:
        catalog = self.catalog
        node = catalog.node(need(f, "app_poi_code"), "app_poi_code")
        foods = decode_json(need(f, "detail"), "detail", list[Food])
        if not foods:
            raise Refusal("malformed", "detail: no items")
        lines, boxes = [], 0
        for i, food in enumerate(foods):
            if food.quantity < 1:
                raise Refusal("malformed", f"detail[{i}].quantity: must be at least 1")
            sku = catalog.sku(food.app_food_code or food.sku_id, f"detail[{i}].app_food_code")
            lines.append(Line(sku=sku, qty=food.quantity, unit_price=catalog.minor(food.price, f"detail[{i}].price")))
            boxes += catalog.minor(food.box_num * food.box_price, f"detail[{i}].box_price")
        fees = catalog.minor(f.get("shipping_fee") or 0, "shipping_fee") + boxes
        fees += catalog.minor(f.get("package_bag_money") or 0, "package_bag_money", unit="minor")
        paid = catalog.minor(f["total"], "total") if f.get("total") else None
        discounts, fees, paid = settle(lines, fees, paid)
        pickup = f.get("pick_type") == "1" or (not f.get("pick_type") and "到店自取" in f.get("caution", ""))
        deliver_at = epoch(f.get("delivery_time") or 0, "delivery_time")
        common = dict(channel=self.name, external_id=external_id, lines=lines, discounts=discounts,
                      delivery_fee=fees, paid=paid, **delivery_window(deliver_at, self.clock()))
        if pickup:
            cmd = SubmitOrder(mode="pickup", pickup_node=node, **common)
        else:
            lat, lon = coordinate(f, "latitude"), coordinate(f, "longitude")
            lat, lon = gcj02_to_wgs84(lat, lon)
            cmd = SubmitOrder(mode="delivery", lat=lat, lon=lon, **common)
        return Intake(cmd, f"{self.name}:{external_id}")

    def ok(self, push: Push) -> Answer:
        return answer_json({"data": "ok"})

    def refuse(self, refusal: Refusal) -> Answer:
        return answer_json({"data": "ng", "error": {"code": refusal.status, "msg": refusal.reason}}, refusal.status)

    def request_for(self, call: Call) -> HttpCall:
        url = f"{self.settings.api_url.rstrip('/')}/{self.PATHS[call.action]}"
        params = {"app_id": self.settings.app_id, "timestamp": str(int(time.time())), "order_id": call.external_id}
        params.update({k: str(v) for k, v in call.args.items()})
        params["sig"] = signature(url, params, self.secret)
        return HttpCall("GET", f"{url}?{urlencode(params)}")

    def call_succeeded(self, status: int, body: bytes) -> bool:
        return status == 200 and b'"ok"' in body
