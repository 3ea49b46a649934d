"""JD Daojia (京东到家).

In: form POSTs of `token, app_key, sign, timestamp, format, v, jd_param_json`,
one URL per push (`/hooks/<channel>/newOrder`, `/userCancelOrder`; others
such as `orderAdjust`, `deliveryOrder`, `finishOrder` are acknowledged and
change nothing here). `sign = UPPER(md5(secret + sorted k+v (without sign) +
secret))`; `timestamp` is "yyyy-MM-dd HH:mm:ss" GMT+8. The push is thin
(`jd_param_json = {"billId", "statusId", "timestamp"}`): the order is then
fetched from `<api_url>/order/es/query` (`data` is a JSON string holding
`result.resultList`). In the order: `orderId`, `deliveryStationNoIsv` (the
merchant's store, else `deliveryStationNo`), `orderProductList[]{skuIdIsv,
skuCount, skuJdPrice}`, amounts in **fen** (`orderBuyerPayableMoney` paid,
`orderFreightMoney`, `packagingMoney`), `deliveryType` 4 = self-pickup,
`orderPreEndDeliveryTime` GMT+8, `orderExtend{buyerCoordType, buyerLng,
buyerLat}`: an empty or 1 `buyerCoordType` is GPS (WGS-84), anything else
GCJ-02. Answer `{"code":"0","msg":"success","data":""}`.

Out: signed form POSTs: `ocs/orderAcceptOperate {orderId, isAgreed,
operator}` (confirm), `orderStatus/cancelAndRefund` (cancel),
`bm/open/api/order/OrderJDZBDelivery` (dispatched), `ocs/deliveryEndOrder`
(delivered); success `code` "0". Sources: ../shared/CHANNELS.md ("Also: JD
Daojia").
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode

import msgspec

from adapters.channels.base import (Answer, Call, Channel, HttpCall, Intake, Push, Refusal, answer_json, check_fresh,
                                    decode_json, key, local_time, md5_hex, need, promise_minutes, same, settle)
from adapters.channels.geo import gcj02_to_wgs84
from domain import ids
from domain.commands import CancelOrder, Line, SubmitOrder

INFO_PUSHES = {"orderAdjust", "deliveryOrder", "finishOrder", "orderWaitOutStore", "pickFinishOrder"}


class Product(msgspec.Struct):
    skuCount: int
    skuJdPrice: int
    skuIdIsv: str | None = None
    skuId: int | str | None = None
    skuName: str = ""


class Extend(msgspec.Struct):
    buyerCoordType: int | str | None = None
    buyerLng: Decimal | None = None
    buyerLat: Decimal | None = None


class JdOrder(msgspec.Struct):
    orderId: int | str
    orderProductList: list[Product]
    deliveryStationNoIsv: str | None = None
    deliveryStationNo: str | None = None
    orderBuyerPayableMoney: int | None = None
    orderFreightMoney: int = 0
    packagingMoney: int = 0
    deliveryType: int | str | None = None
    orderPreEndDeliveryTime: str | None = None
    orderExtend: Extend | None = None
    buyerLng: Decimal | None = None  # some versions carry them on the order itself
    buyerLat: Decimal | None = None
    buyerCoordType: int | str | None = None


class Bill(msgspec.Struct):
    billId: int | str
    statusId: int | str | None = None
    remark: str = ""


def fields(push: Push) -> dict[str, str]:
    try:
        return {**push.query, **dict(parse_qsl(push.body.decode("utf-8"), keep_blank_values=True))}
    except UnicodeDecodeError:
        raise Refusal("malformed", "$: the form is not UTF-8") from None


def signature(params: dict[str, str], secret: str) -> str:
    plain = "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign")
    return md5_hex(secret + plain + secret).upper()


def beijing_now() -> str:
    return datetime.now(timezone(timedelta(hours=8))).strftime("%Y-%m-%d %H:%M:%S")


class Jddj(Channel):
    kind = "jddj"
    ACTIONS = {"routed": "confirm", "rejected": "cancel", "cancelled": "cancel", "dispatched": "delivering",
               "delivered": "delivered"}
    PATHS = {"confirm": "ocs/orderAcceptOperate", "cancel": "orderStatus/cancelAndRefund",
             "delivering": "bm/open/api/order/OrderJDZBDelivery", "delivered": "ocs/deliveryEndOrder"}

    def is_probe(self, push: Push) -> bool:
        return push.method == "GET"

    def verify(self, push: Push) -> None:
        f = fields(push)
        if not f.get("sign"):
            raise Refusal("signature", "sign: missing", 401)
        if not same(f["sign"].upper(), signature(f, self.secret)):
            raise Refusal("signature", "sign: does not match", 401)
        check_fresh(local_time(need(f, "timestamp"), self.settings.timezone_hours, "timestamp"), push.received_at,
                    self.settings.replay_window_s, "timestamp")

    async def parse(self, push: Push, http: Any = None) -> list[Intake]:
        if push.tail in INFO_PUSHES:
            return []
        bill = decode_json(need(fields(push), "jd_param_json"), "jd_param_json", Bill)
        external_id = key(bill.billId, "jd_param_json.billId")
        if push.tail == "newOrder":
            return [self._order(await self._fetch(external_id, http))]
        if push.tail == "userCancelOrder":
            order_id = str(ids.order_id(self.name, external_id))
            reason = f"{self.name}: {bill.remark or 'cancelled by the customer'} ({bill.statusId})"
            return [Intake(CancelOrder(order_id=order_id, reason=reason[:500]), f"{self.name}:{external_id}:cancel")]
        raise Refusal("unmapped", f"push {push.tail!r}: not a JD Daojia push this gateway takes")

    async def _fetch(self, external_id: str, http: Any) -> JdOrder:
        call = self._signed("order/es/query", {"orderId": external_id})
        try:
            async with http.request(call.method, call.url, data=call.body, headers=call.headers) as r:
                body = await r.read()
        except Exception as e:  # the platform did not answer: it pushes again later
            raise Refusal("upstream", f"order/es/query: {type(e).__name__}", 503) from None
        outer = decode_json(body, "order/es/query")
        data = outer.get("data") if isinstance(outer, dict) else None
        if isinstance(data, str):
            data = decode_json(data, "order/es/query.data")
        found = ((data or {}).get("result") or {}).get("resultList") or []
        if not found:
            raise Refusal("upstream", f"order/es/query: order {external_id} not found (code {outer.get('code')})", 503)
        try:
            return msgspec.convert(found[0], JdOrder)
        except msgspec.ValidationError as e:
            raise Refusal("malformed", f"order/es/query: {e}") from None

    def _order(self, o: JdOrder) -> Intake:
        catalog = self.catalog
        external_id = key(o.orderId, "orderId")
        node = catalog.node(o.deliveryStationNoIsv or o.deliveryStationNo or "", "deliveryStationNoIsv")
        lines = []
        for i, p in enumerate(o.orderProductList):
            if p.skuCount < 1:
                raise Refusal("malformed", f"orderProductList[{i}].skuCount: must be at least 1")
            lines.append(Line(sku=catalog.sku(p.skuIdIsv or p.skuId or "", f"orderProductList[{i}].skuIdIsv"),
                              qty=p.skuCount,
                              unit_price=catalog.minor(p.skuJdPrice, f"orderProductList[{i}].skuJdPrice", "minor")))
        if not lines:
            raise Refusal("malformed", "orderProductList: no items")
        fees = catalog.minor(o.orderFreightMoney, "orderFreightMoney", "minor")
        fees += catalog.minor(o.packagingMoney, "packagingMoney", "minor")
        paid = catalog.minor(o.orderBuyerPayableMoney, "orderBuyerPayableMoney", "minor") \
            if o.orderBuyerPayableMoney is not None else None
        discounts, fees, paid = settle(lines, fees, paid)
        deliver_at = (local_time(o.orderPreEndDeliveryTime, self.settings.timezone_hours, "orderPreEndDeliveryTime")
                      if o.orderPreEndDeliveryTime else None)
        common = dict(channel=self.name, external_id=external_id, lines=lines, discounts=discounts, delivery_fee=fees,
                      paid=paid, promise_minutes=promise_minutes(deliver_at, self.clock()))
        if str(o.deliveryType) == "4":
            return Intake(SubmitOrder(mode="pickup", pickup_node=node, **common), f"{self.name}:{external_id}")
        ext = o.orderExtend or Extend(o.buyerCoordType, o.buyerLng, o.buyerLat)
        if ext.buyerLat is None or ext.buyerLng is None:
            raise Refusal("malformed", "orderExtend.buyerLat: required field is missing")
        lat, lon = float(ext.buyerLat), float(ext.buyerLng)
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise Refusal("malformed", "orderExtend.buyerLat: out of range")
        if str(ext.buyerCoordType or "") not in ("", "1"):  # 1 or empty: GPS; else Tencent's GCJ-02
            lat, lon = gcj02_to_wgs84(lat, lon)
        return Intake(SubmitOrder(mode="delivery", lat=lat, lon=lon, **common), f"{self.name}:{external_id}")

    def ok(self, push: Push) -> Answer:
        return answer_json({"code": "0", "msg": "success", "data": ""})

    def refuse(self, refusal: Refusal) -> Answer:
        return answer_json({"code": "-1", "msg": refusal.reason, "data": ""}, refusal.status)

    def _signed(self, path: str, param: dict[str, Any]) -> HttpCall:
        params = {"token": self.token, "app_key": self.settings.app_id, "timestamp": beijing_now(), "format": "json",
                  "v": "1.0", "jd_param_json": json.dumps(param, ensure_ascii=False, separators=(",", ":"))}
        params["sign"] = signature(params, self.secret)
        return HttpCall("POST", f"{self.settings.api_url.rstrip('/')}/{path}",
                        {"Content-Type": "application/x-www-form-urlencoded"}, urlencode(params).encode())

    def request_for(self, call: Call) -> HttpCall:
        param: dict[str, Any] = {"orderId": call.external_id, "operator": "o2o-engine"}
        if call.action == "confirm":
            param["isAgreed"] = True
        elif call.action == "cancel":
            param = {"orderId": call.external_id, "operPin": "o2o-engine", "operRemark": call.args.get("reason", ""),
                     "operTime": beijing_now()}
        return self._signed(self.PATHS[call.action], param)

    def call_succeeded(self, status: int, body: bytes) -> bool:
        try:
            return status == 200 and str(json.loads(body).get("code")) == "0"
        except (ValueError, AttributeError):
            return False
