"""The webhooks `o2o bench gateway` sends: Meituan and Ele.me order pushes
as the platforms sign them (the documented formats, built the way the
gateway tests' platforms build them, not with the gateway's own code),
each with an order id of its own, and the gateway configuration that
receives them (shop and item maps onto the sample city)."""
from __future__ import annotations

import hashlib
import json
import time
from urllib.parse import quote

from benchmarks.gateway.httpgen import Pushes

SECRETS = {"MT_SECRET": "bench-mt-s3cret", "ELE_SECRET": "bench-ele-s3cret", "ELE_TOKEN": "bench-ele-token"}
MT_SHOPS = {"SH-017": "S001", "SH-018": "S002"}
MT_ITEMS = {"MT-SAN": "SAN-001", "MT-SNA": "SNA-002"}
ELE_SHOPS = {"E-017": "S001"}
ELE_ITEMS = {"EL-SAN": "SAN-001", "EL-SNA": "SNA-002"}
MT_OK, ELE_OK = b'{"data":"ok"}', b'{"message":"ok"}'
FORM, JSON = "application/x-www-form-urlencoded", "application/json"
ELEME_EVERY = 4  # one push in four is Ele.me's, the others Meituan's


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def meituan_push(url: str, order_id: str, now: float) -> bytes:
    """A paid-order push as captured: form values URL-encoded twice; sig = md5(url?sorted k=v + secret)."""
    detail = [{"app_food_code": "MT-SAN", "sku_id": "MT-SAN", "food_name": "三明治", "quantity": 2, "price": 18.0,
               "box_num": 2, "box_price": 1.0},
              {"app_food_code": "MT-SNA", "sku_id": "MT-SNA", "food_name": "薯片", "quantity": 1, "price": 6.5,
               "box_num": 0, "box_price": 0}]
    fields = {"app_id": "5308", "timestamp": str(int(now)), "order_id": order_id, "wm_order_id_view": order_id,
              "app_poi_code": "SH-017" if int(order_id) % 2 else "SH-018", "recipient_phone": "13812345678_1234",
              "recipient_address": "漕溪北路88号@#上海市徐汇区漕溪北路88号", "latitude": "31.200403",
              "longitude": "121.531576", "pick_type": "0", "delivery_time": "0", "ctime": str(int(now)),
              "status": "2", "total": "41.5", "original_price": "49.5", "shipping_fee": "5",
              "package_bag_money": "100", "caution": "少辣", "detail": json.dumps(detail, ensure_ascii=False)}
    plain = "&".join(f"{k}={fields[k]}" for k in sorted(fields))
    fields["sig"] = _md5(f"{url}?{plain}{SECRETS['MT_SECRET']}")
    return "&".join(f"{k}={quote(quote(str(v), safe=''), safe='')}" for k, v in fields.items()).encode()


def eleme_push(order_id: str, now: float) -> bytes:
    """A new-order push (type 10): the order as a JSON string in `message`, signed over the sorted envelope."""
    message = {"id": order_id, "openId": "E-017", "createdAt": "2024-06-10T14:13:20", "deliverTime": None,
               "deliveryGeo": "121.531576,31.200403", "totalPrice": 39.5, "originalPrice": 41.5, "deliverFee": 5.0,
               "packageFee": 0.5, "book": False,
               "groups": [{"type": "normal", "items": [
                   {"id": 556687981, "skuId": 200000001, "name": "三明治", "price": 18.0, "quantity": 2,
                    "total": 36.0, "extendCode": "EL-SAN"}]}]}
    env = {"requestId": f"100000001_{int(now)}_{order_id[-6:]}", "type": 10, "appId": 30000001,
           "shopId": 170000001, "userId": 3000001, "timestamp": int(now * 1000),
           "message": json.dumps(message, ensure_ascii=False)}
    plain = "".join(f"{k}={env[k]}" for k in sorted(env))
    env["signature"] = _md5(plain + SECRETS["ELE_SECRET"]).upper()
    return json.dumps(env, ensure_ascii=False).encode()


def order_ids(first: int, n: int) -> list[tuple[str, str]]:
    """(channel, platform order id) of pushes first .. first + n - 1: every fourth Ele.me's."""
    return [("eleme", f"30230000{k:011d}") if k % ELEME_EVERY == ELEME_EVERY - 1 else ("meituan", f"27001{k:012d}")
            for k in range(first, first + n)]


def pushes(base: str, ids: list[tuple[str, str]], now: float | None = None) -> Pushes:
    """The signed pushes for these orders, timestamped now (the gateway's replay window is 10 minutes)."""
    now = now or time.time()
    out = Pushes(paths=[], bodies=[], content_types=[], ok_bodies=[])
    for channel, oid in ids:
        if channel == "meituan":
            path = "/hooks/meituan/order"
            body, ctype, ok = meituan_push(base + path, oid, now), FORM, MT_OK
        else:
            path, body, ctype, ok = "/hooks/eleme", eleme_push(oid, now), JSON, ELE_OK
        out.paths.append(path)
        out.bodies.append(body)
        out.content_types.append(ctype)
        out.ok_bodies.append(ok)
    return out


def gateway_toml(folder, network_file: str, port: int, platform_url: str) -> str:
    """The gateway's configuration (Meituan and Ele.me), its maps written next to it."""
    maps = {}
    for name, data in (("mt-shops", MT_SHOPS), ("mt-items", MT_ITEMS), ("ele-shops", ELE_SHOPS),
                       ("ele-items", ELE_ITEMS)):
        path = folder / f"{name}.json"
        path.write_text(json.dumps(data))
        maps[name] = str(path)
    return f"""[network]
file = "{network_file}"
[gateway]
host = "127.0.0.1"
port = {port}
outbox = "{folder / 'outbox.db'}"
[gateway.channels.meituan]
kind = "meituan"
app_id = "5308"
secret_env = "MT_SECRET"
shops = "{maps['mt-shops']}"
items = "{maps['mt-items']}"
api_url = "{platform_url}/meituan/api/v1"
[gateway.channels.eleme]
kind = "eleme"
app_id = "30000001"
secret_env = "ELE_SECRET"
token_env = "ELE_TOKEN"
shops = "{maps['ele-shops']}"
items = "{maps['ele-items']}"
api_url = "{platform_url}/eleme/api/v1/"
"""
