"""The platforms, written in the tests from their documented formats
(../shared/CHANNELS.md): how each signs a push, and a real HTTP server per
platform that records the calls the gateway makes and answers as the
platform does. None of this uses the gateway's own code."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode

from aiohttp import web

from engine.config import Config

SECRETS = {"MT_SECRET": "mt-s3cret", "ELE_SECRET": "ele-s3cret", "ELE_TOKEN": "ele-token", "JD_SECRET": "jd-s3cret",
           "JD_TOKEN": "jd-token", "SHOP_SECRET": "shpss_abc", "SHOP_TOKEN": "shpat_xyz", "POS_SECRET": "pos-s3cret",
           "APP_KEY": "app-key-123", "MALL_KEY": "mall-key-456"}
MT_SHOPS = {"SH-017": "S001", "SH-018": "S002"}
MT_ITEMS = {"MT-SAN": "SAN-001", "MT-SNA": "SNA-002"}
ELE_SHOPS = {"E-017": "S001"}
ELE_ITEMS = {"EL-SAN": "SAN-001", "EL-SNA": "SNA-002"}
JD_SHOPS = {"JD-017": "S001"}
JD_ITEMS = {"JD-SAN": "SAN-001", "JD-SNA": "SNA-002"}
SHOP_LOCATIONS = {"66001": "S002"}


def md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def gateway_config(tmp_path: Path, nats_url: str | None = None, api: str = "http://127.0.0.1:9",
                   public_url: str = "", **gateway) -> Config:
    maps = {}
    for name, data in (("mt-shops", MT_SHOPS), ("mt-items", MT_ITEMS), ("ele-shops", ELE_SHOPS),
                       ("ele-items", ELE_ITEMS), ("jd-shops", JD_SHOPS), ("jd-items", JD_ITEMS),
                       ("shop-locations", SHOP_LOCATIONS)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        maps[name] = str(path)
    channels = {
        "meituan": {"kind": "meituan", "app_id": "5308", "secret_env": "MT_SECRET", "shops": maps["mt-shops"],
                    "items": maps["mt-items"], "api_url": f"{api}/meituan/api/v1"},
        "eleme": {"kind": "eleme", "app_id": "30000001", "secret_env": "ELE_SECRET", "token_env": "ELE_TOKEN",
                  "shops": maps["ele-shops"], "items": maps["ele-items"], "api_url": f"{api}/eleme/api/v1/"},
        "jddj": {"kind": "jddj", "app_id": "jd-app", "secret_env": "JD_SECRET", "token_env": "JD_TOKEN",
                 "shops": maps["jd-shops"], "items": maps["jd-items"], "api_url": f"{api}/jddj/djapi"},
        "shopify": {"kind": "shopify", "secret_env": "SHOP_SECRET", "token_env": "SHOP_TOKEN",
                    "shops": maps["shop-locations"], "api_url": f"{api}/shopify", "replay_window_s": 0.0},
        "pos": {"kind": "pos", "secret_env": "POS_SECRET"},
    }
    clients = {"app": {"key_env": "APP_KEY", "channel": "app", "rate_per_s": 50.0, "burst": 20},
               "mall": {"key_env": "MALL_KEY", "channel": "mall", "rate_per_s": 1.0, "burst": 2}}
    return Config().with_overrides({
        "nats": {"url": nats_url}, "store": {"url": "memory:"},
        "gateway": {"port": 0, "outbox": str(tmp_path / "outbox.db"), "public_url": public_url,
                    "channels": channels, "clients": clients, "max_body_bytes": 64 * 1024, **gateway}})


# -- how each platform signs its pushes ------------------------------------
def meituan_push(url: str, fields: dict, secret: str = SECRETS["MT_SECRET"], now: float | None = None) -> bytes:
    """A form body as captured: every value URL-encoded twice; sig over the decoded values."""
    fields = {"app_id": "5308", "timestamp": str(int(now or time.time())), **fields}
    plain = "&".join(f"{k}={fields[k]}" for k in sorted(fields))
    fields["sig"] = md5(f"{url}?{plain}{secret}")
    return "&".join(f"{k}={quote(quote(str(v), safe=''), safe='')}" for k, v in fields.items()).encode()


def eleme_push(push_type: int, message: dict, secret: str = SECRETS["ELE_SECRET"], now: float | None = None,
               request_id: str = "100000001_1718000000_ab12") -> bytes:
    env = {"requestId": request_id, "type": push_type, "appId": 30000001, "shopId": 170000001, "userId": 3000001,
           "timestamp": int((now or time.time()) * 1000), "message": json.dumps(message, ensure_ascii=False)}
    plain = "".join(f"{k}={env[k]}" for k in sorted(env))
    env["signature"] = md5(plain + secret).upper()
    return json.dumps(env, ensure_ascii=False).encode()


def beijing(t: float) -> str:
    return datetime.fromtimestamp(t, timezone(timedelta(hours=8))).strftime("%Y-%m-%d %H:%M:%S")


def jd_sign(params: dict, secret: str) -> str:
    return md5(secret + "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign") + secret).upper()


def jddj_push(bill_id: str, status: str = "32000", secret: str = SECRETS["JD_SECRET"], now: float | None = None,
              remark: str = "") -> bytes:
    param = {"billId": bill_id, "statusId": status, "timestamp": beijing(now or time.time())}
    if remark:
        param["remark"] = remark
    params = {"token": "jd-token", "app_key": "jd-app", "timestamp": beijing(now or time.time()), "format": "json",
              "v": "1.0", "jd_param_json": json.dumps(param, ensure_ascii=False)}
    params["sign"] = jd_sign(params, secret)
    return urlencode(params).encode()


def shopify_headers(body: bytes, topic: str = "orders/create", webhook_id: str = "b54557e4-1",
                    secret: str = SECRETS["SHOP_SECRET"]) -> dict:
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {"X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": digest, "X-Shopify-Shop-Domain": "demo.myshopify.com",
            "X-Shopify-Webhook-Id": webhook_id, "Content-Type": "application/json"}


def pos_headers(body: bytes, secret: str = SECRETS["POS_SECRET"], now: float | None = None) -> dict:
    stamp = str(int(now or time.time()))
    sig = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-O2o-Timestamp": stamp, "X-O2o-Signature": sig, "Content-Type": "application/json"}


# -- sample orders, with the documented field names ------------------------
def meituan_order(order_id: str = "27001234567890123", **over) -> dict:
    detail = [{"app_food_code": "MT-SAN", "sku_id": "MT-SAN", "food_name": "三明治", "quantity": 2, "price": 18.0,
               "box_num": 2, "box_price": 1.0},
              {"app_food_code": "MT-SNA", "sku_id": "MT-SNA", "food_name": "薯片", "quantity": 1, "price": 6.5,
               "box_num": 0, "box_price": 0}]
    return {"order_id": order_id, "wm_order_id_view": order_id, "app_poi_code": "SH-017",
            "recipient_phone": "13812345678_1234", "recipient_address": "漕溪北路88号@#上海市徐汇区漕溪北路88号",
            "latitude": "31.200403", "longitude": "121.531576", "pick_type": "0", "delivery_time": "0",
            "ctime": "1718000000", "status": "2", "total": "41.5", "original_price": "49.5", "shipping_fee": "5",
            "package_bag_money": "100", "caution": "少辣", "detail": json.dumps(detail, ensure_ascii=False), **over}


def eleme_order(order_id: str = "3023000000000000001", **over) -> dict:
    return {"id": order_id, "openId": "E-017", "createdAt": "2024-06-10T14:13:20", "deliverTime": None,
            "deliveryGeo": "121.531576,31.200403", "totalPrice": 39.5, "originalPrice": 41.5, "deliverFee": 5.0,
            "packageFee": 0.5, "book": False,
            "groups": [{"type": "normal", "items": [
                {"id": 556687981, "skuId": 200000001, "name": "三明治", "price": 18.0, "quantity": 2, "total": 36.0,
                 "extendCode": "EL-SAN"}]}], **over}


def jddj_order(order_id: str = "2100123456789012", coord_type: int | None = 1, **over) -> dict:
    return {"orderId": int(order_id), "deliveryStationNoIsv": "JD-017", "deliveryStationNo": "11223344",
            "orderTotalMoney": 4200, "orderDiscountMoney": 300, "orderFreightMoney": 500, "packagingMoney": 0,
            "orderBuyerPayableMoney": 4400, "deliveryType": 2, "orderPreEndDeliveryTime": None,
            "orderExtend": {"buyerCoordType": coord_type, "buyerLng": 121.531576, "buyerLat": 31.200403},
            "orderProductList": [{"skuIdIsv": "JD-SAN", "skuId": 2001, "skuName": "三明治", "skuCount": 2,
                                  "skuJdPrice": 1800},
                                 {"skuIdIsv": "JD-SNA", "skuId": 2002, "skuName": "薯片", "skuCount": 1,
                                  "skuJdPrice": 600}], **over}


def shopify_order(order_id: int = 5551234567890123456, **over) -> dict:
    return {"id": order_id, "name": "#1042", "created_at": "2024-06-10T12:13:20+08:00", "currency": "CNY",
            "total_price": "36.90", "subtotal_price": "31.90", "total_discounts": "2.00", "source_name": "web",
            "line_items": [{"id": 1301, "variant_id": 4401, "sku": "SAN-001", "title": "Sandwich", "quantity": 2,
                            "price": "16.95", "total_discount": "2.00"},
                           {"id": 1302, "variant_id": 4402, "sku": "SNA-002", "title": "Crisps", "quantity": 0,
                            "price": "0.00", "total_discount": "0.00"}][:1],
            "shipping_lines": [{"code": "local-delivery", "title": "Local delivery", "price": "5.00"}],
            "shipping_address": {"address1": "Pudong Ave 1", "zip": "200120", "country_code": "CN",
                                 "latitude": 31.2025, "longitude": 121.527}, **over}


# -- the platforms' APIs, as real HTTP servers -----------------------------
class FakePlatforms:
    """One server for every platform's API, under /meituan, /eleme, /jddj,
    /shopify; records each call (method, path, query, form or JSON body)."""

    def __init__(self):
        self.calls: list[dict] = []
        self.jd_orders: dict[str, dict] = {}
        self.failing = 0  # answer this many calls with 500 first
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, port: int = 0) -> "FakePlatforms":
        app = web.Application()
        app.add_routes([web.route("*", "/{tail:.*}", self.handle)])
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()

    def made(self, platform: str, action: str = "") -> list[dict]:
        return [c for c in self.calls if c["platform"] == platform and action in c["action"]]

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        platform, _, rest = request.path.lstrip("/").partition("/")
        call = {"platform": platform, "path": request.path, "query": dict(request.query), "headers": dict(request.headers)}
        if platform == "jddj" and rest.endswith("order/es/query"):
            form = dict(parse_qsl(raw.decode()))
            assert form["sign"] == jd_sign(form, SECRETS["JD_SECRET"])
            order = self.jd_orders.get(str(json.loads(form["jd_param_json"])["orderId"]))
            data = {"code": "0", "msg": "成功", "result": {"resultList": [order] if order else [], "totalCount": 1}}
            return web.json_response({"code": "0", "msg": "操作成功", "data": json.dumps(data, ensure_ascii=False)})
        if self.failing > 0:
            self.failing -= 1
            return web.Response(status=500, text="busy")
        if platform == "meituan":
            q = dict(request.query)
            url = str(request.url.with_query(None))
            plain = "&".join(f"{k}={q[k]}" for k in sorted(q) if k != "sig")
            call.update(action=rest.removeprefix("api/v1/"), body=q, signed=q.get("sig") == md5(f"{url}?{plain}mt-s3cret"))
            self.calls.append(call)
            return web.json_response({"data": "ok"})
        if platform == "eleme":
            body = json.loads(raw)
            both = {**body["metas"], **body["params"]}
            plain = "".join(f"{k}={json.dumps(both[k], ensure_ascii=False, separators=(',', ':'))}" for k in sorted(both))
            sig = md5(body["action"] + body["token"] + plain + SECRETS["ELE_SECRET"]).upper()
            call.update(action=body["action"], body=body, signed=sig == body["signature"])
            self.calls.append(call)
            return web.json_response({"id": body["id"], "result": None, "error": None})
        if platform == "jddj":
            form = dict(parse_qsl(raw.decode()))
            call.update(action=rest, body=form, signed=form.get("sign") == jd_sign(form, SECRETS["JD_SECRET"]))
            self.calls.append(call)
            return web.json_response({"code": "0", "msg": "操作成功", "data": "{\"code\":\"0\"}"})
        if platform == "shopify":
            call.update(action=rest.rpartition("/")[2], body=json.loads(raw or b"{}"),
                        signed=request.headers.get("X-Shopify-Access-Token") == SECRETS["SHOP_TOKEN"])
            self.calls.append(call)
            return web.json_response({"order": {}})
        return web.Response(status=404)
