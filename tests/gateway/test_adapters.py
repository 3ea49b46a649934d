"""Each adapter on realistic pushes written from the documented field names:
the signature accepted and refused, a replayed timestamp refused, the
mapping exact (money to the fen, coordinates within 1 m of the reference
transform, times in UTC, ids as strings), the platform's own answer."""
from __future__ import annotations

import asyncio
import json
import math
import time
from datetime import datetime, timezone

import aiohttp
import eviltransform
import pytest
from multidict import CIMultiDict

from adapters.channels import ChannelConfigError, build_channels
from adapters.channels.base import Push, Refusal
from domain import ids
from domain.commands import CancelOrder, Discount, Line, RefundOrder, RefundSale, SellOverCounter, SignUpMember
from engine.store.network_file import SAMPLE_NETWORK, load_network
from tests.gateway.platforms import (SECRETS, FakePlatforms, eleme_order, eleme_push, gateway_config, jddj_order,
                                     jddj_push, meituan_order, meituan_push, pos_headers, shopify_headers,
                                     shopify_order)

NETWORK = load_network(SAMPLE_NETWORK)
HOOK = "https://gw.example.com/hooks/meituan"


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dlat = (a[0] - b[0]) * 111_320
    dlon = (a[1] - b[1]) * 111_320 * math.cos(math.radians(a[0]))
    return math.hypot(dlat, dlon)


@pytest.fixture
def channels(tmp_path):
    config = gateway_config(tmp_path, public_url="https://gw.example.com")
    return build_channels(config.gateway, NETWORK, SECRETS)


def push(body: bytes, url: str = HOOK, tail: str = "order", headers: dict | None = None, method: str = "POST",
         at: float | None = None) -> Push:
    return Push(method=method, url=url, tail=tail, headers=CIMultiDict(headers or {}), body=body, query={},
                received_at=at or time.time())


def accept(channel, p: Push, http=None) -> list:
    channel.verify(p)
    return [(i.cmd, i.msg_id) for i in asyncio.run(channel.parse(p, http))]


def refused(channel, p: Push) -> Refusal:
    with pytest.raises(Refusal) as e:
        channel.verify(p)
        asyncio.run(channel.parse(p, None))
    return e.value


# -- Meituan -----------------------------------------------------------------
def test_a_meituan_order_form_url_encoded_twice_becomes_our_order_in_fen_and_wgs84(channels):
    mt = channels["meituan"]
    body = meituan_push(f"{HOOK}/order", meituan_order())
    assert b"%255B%257B%2522app_food_code" in body  # as captured: encoded twice
    [(cmd, msg_id)] = accept(mt, push(body, f"{HOOK}/order"))
    assert msg_id == "meituan:27001234567890123"
    assert cmd.channel == "meituan" and cmd.external_id == "27001234567890123" and cmd.mode == "delivery"
    assert cmd.lines == [Line(sku="SAN-001", qty=2, unit_price=1800), Line(sku="SNA-002", qty=1, unit_price=650)]
    # shipping 5 yuan + boxes 2 x 1 yuan + bag 100 fen; paid 41.5 yuan; the rest off as the platform's discount
    assert cmd.delivery_fee == 500 + 200 + 100 and cmd.paid == 4150
    assert cmd.discounts == [Discount(amount=3600 + 650 + 800 - 4150, code="platform")]
    assert metres((cmd.lat, cmd.lon), eviltransform.gcj2wgs_exact(31.200403, 121.531576)) < 1.0
    assert metres((cmd.lat, cmd.lon), (31.200403, 121.531576)) > 300  # the shift was applied
    assert mt.ok(push(body)).body == b'{"data":"ok"}'


def test_a_meituan_pickup_and_a_scheduled_delivery(channels):
    mt = channels["meituan"]
    [(pickup, _)] = accept(mt, push(meituan_push(f"{HOOK}/order", meituan_order(pick_type="1")), f"{HOOK}/order"))
    assert pickup.mode == "pickup" and pickup.pickup_node == "S001" and pickup.lat is None
    old = meituan_order("27001234567890124", caution="到店自取 少辣")
    del old["pick_type"]  # not subscribed: only the caution says so
    [(caution, _)] = accept(mt, push(meituan_push(f"{HOOK}/order", old), f"{HOOK}/order"))
    assert caution.mode == "pickup"
    later = int(time.time()) + 3 * 3600
    [(scheduled, _)] = accept(mt, push(meituan_push(f"{HOOK}/order", meituan_order(delivery_time=str(later))),
                                       f"{HOOK}/order"))
    assert scheduled.promise_minutes is None  # a pre-order: booked for the half hour up to its time
    assert scheduled.window_end.timestamp() == later and scheduled.window_start.timestamp() == later - 1800


def test_a_meituan_signature_over_another_url_or_secret_or_body_is_refused(channels):
    mt = channels["meituan"]
    good = meituan_push(f"{HOOK}/order", meituan_order())
    assert refused(mt, push(good, "http://gw.example.com/hooks/meituan/order")).why == "signature"  # http vs https
    assert refused(mt, push(meituan_push(f"{HOOK}/order", meituan_order(), secret="wrong"), f"{HOOK}/order")).why == "signature"
    assert refused(mt, push(good.replace(b"41.5", b"11.5"), f"{HOOK}/order")).why == "signature"
    no_sig = b"&".join(p for p in good.split(b"&") if not p.startswith(b"sig="))
    r = refused(mt, push(no_sig, f"{HOOK}/order"))
    assert r.why == "signature" and r.status == 401
    answer = json.loads(mt.refuse(r).body)
    assert answer["data"] == "ng" and "sig" in answer["error"]["msg"]


def test_a_meituan_push_signed_long_ago_is_refused_as_a_replay(channels):
    stale = meituan_push(f"{HOOK}/order", meituan_order(), now=time.time() - 3600)
    assert refused(channels["meituan"], push(stale, f"{HOOK}/order")).why == "replay"


def test_a_meituan_order_from_an_unknown_shop_or_item_is_refused_naming_it(channels):
    mt = channels["meituan"]
    r = refused(mt, push(meituan_push(f"{HOOK}/order", meituan_order(app_poi_code="SH-999")), f"{HOOK}/order"))
    assert r.why == "unmapped" and "SH-999" in r.reason
    detail = json.dumps([{"app_food_code": "MT-NOPE", "quantity": 1, "price": 3.0}])
    r = refused(mt, push(meituan_push(f"{HOOK}/order", meituan_order(detail=detail)), f"{HOOK}/order"))
    assert r.why == "unmapped" and "detail[0].app_food_code" in r.reason and "MT-NOPE" in r.reason


def test_a_meituan_cancel_and_refund_become_ours_for_the_same_order(channels):
    mt = channels["meituan"]
    [(cancel, key)] = accept(mt, push(meituan_push(f"{HOOK}/cancel", {"order_id": "27001234567890123", "reason_code": "1001",
                                                                       "reason": "用户取消"}), f"{HOOK}/cancel", "cancel"))
    assert isinstance(cancel, CancelOrder) and key == "meituan:27001234567890123:cancel"
    assert cancel.order_id == str(ids.order_id("meituan", "27001234567890123")) and cancel.reason.startswith("meituan:")
    food = json.dumps([{"app_food_code": "MT-SAN", "count": 1}])
    [(refund, key)] = accept(mt, push(meituan_push(f"{HOOK}/refund", {"order_id": "27001234567890123", "refund_id": "R77",
                                                                       "notify_type": "agree", "food": food}),
                                      f"{HOOK}/refund", "refund"))
    assert isinstance(refund, RefundOrder) and refund.refund_id == "R77" and refund.lines[0].sku == "SAN-001"
    assert key == "meituan:27001234567890123:refund:R77"
    applied = meituan_push(f"{HOOK}/refund", {"order_id": "27001234567890123", "notify_type": "apply"})
    assert accept(mt, push(applied, f"{HOOK}/refund", "refund")) == []


# -- Ele.me ------------------------------------------------------------------
def test_an_eleme_order_inside_the_envelope_as_a_json_string_becomes_our_order(channels):
    ele = channels["eleme"]
    body = eleme_push(10, eleme_order())
    assert b'"message": "{\\"id\\": \\"3023000000000000001\\"' in body  # the order is a string
    [(cmd, msg_id)] = accept(ele, push(body, tail=""))
    assert msg_id == "eleme:3023000000000000001" and cmd.external_id == "3023000000000000001"
    assert cmd.lines == [Line(sku="SAN-001", qty=2, unit_price=1800)]
    assert cmd.delivery_fee == 550 and cmd.paid == 3950 and cmd.discounts == [Discount(amount=200, code="platform")]
    # deliveryGeo is "lng,lat"
    assert metres((cmd.lat, cmd.lon), eviltransform.gcj2wgs_exact(31.200403, 121.531576)) < 1.0
    assert ele.ok(push(body)).body == b'{"message":"ok"}'


def test_an_eleme_pre_order_carries_its_delivery_time_from_beijing_time(channels):
    at = time.time() + 2 * 3600
    local = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at + 8 * 3600))
    [(cmd, _)] = accept(channels["eleme"], push(eleme_push(10, eleme_order(deliverTime=local, book=True)), tail=""))
    assert cmd.promise_minutes is None and cmd.window_end.timestamp() == int(at)  # booked for the half hour up to it
    assert (cmd.window_end - cmd.window_start).total_seconds() == 1800


def test_an_eleme_signature_is_checked_over_the_message_exactly_as_sent(channels):
    ele = channels["eleme"]
    body = json.loads(eleme_push(10, eleme_order()))
    body["message"] = body["message"].replace("39.5", "9.5")
    assert refused(ele, push(json.dumps(body).encode(), tail="")).why == "signature"
    assert refused(ele, push(eleme_push(10, eleme_order(), secret="nope"), tail="")).why == "signature"
    assert refused(ele, push(eleme_push(10, eleme_order(), now=time.time() - 7200), tail="")).why == "replay"
    assert json.loads(ele.refuse(Refusal("signature", "signature: does not match", 401)).body)["message"].startswith("fail")


def test_an_eleme_cancel_becomes_our_cancel_and_other_pushes_are_only_acknowledged(channels):
    ele = channels["eleme"]
    [(cmd, key)] = accept(ele, push(eleme_push(14, {"orderId": "3023000000000000001", "reason": "用户取消"}), tail=""))
    assert isinstance(cmd, CancelOrder) and key == "eleme:3023000000000000001:cancel"
    assert accept(ele, push(eleme_push(12, {"orderId": "3023000000000000001"}), tail="")) == []


# -- JD Daojia ---------------------------------------------------------------
def test_a_jd_push_is_thin_the_order_is_fetched_and_its_fen_and_coordinate_type_kept(channels):
    jd = channels["jddj"]

    async def go():
        platforms = await FakePlatforms().start()
        try:
            jd.settings = jd.settings.__class__(**{**{f: getattr(jd.settings, f) for f in jd.settings.__struct_fields__},
                                                   "api_url": f"{platforms.url}/jddj/djapi"})
            platforms.jd_orders["2100123456789012"] = jddj_order(coord_type=1)
            platforms.jd_orders["2100123456789013"] = jddj_order("2100123456789013", coord_type=2)
            async with aiohttp.ClientSession() as http:
                out = []
                for bill in ("2100123456789012", "2100123456789013"):
                    p = push(jddj_push(bill), "https://gw.example.com/hooks/jddj/newOrder", "newOrder")
                    jd.verify(p)
                    out += await jd.parse(p, http)
                return out
        finally:
            await platforms.stop()

    gps, tencent = asyncio.run(go())
    assert gps.msg_id == "jddj:2100123456789012" and gps.cmd.external_id == "2100123456789012"
    assert gps.cmd.lines == [Line(sku="SAN-001", qty=2, unit_price=1800), Line(sku="SNA-002", qty=1, unit_price=600)]
    assert gps.cmd.delivery_fee == 500 and gps.cmd.paid == 4400 and gps.cmd.discounts == [Discount(amount=300, code="platform")]
    assert (gps.cmd.lat, gps.cmd.lon) == (31.200403, 121.531576)  # buyerCoordType 1: GPS, kept as it is
    assert metres((tencent.cmd.lat, tencent.cmd.lon), eviltransform.gcj2wgs_exact(31.200403, 121.531576)) < 1.0


def test_a_jd_push_badly_signed_or_stale_is_refused_with_jds_answer(channels):
    jd = channels["jddj"]
    url = "https://gw.example.com/hooks/jddj/newOrder"
    assert refused(jd, push(jddj_push("1", secret="x"), url, "newOrder")).why == "signature"
    assert refused(jd, push(jddj_push("1", now=time.time() - 3600), url, "newOrder")).why == "replay"
    assert json.loads(jd.refuse(Refusal("signature", "sign: does not match", 401)).body)["code"] == "-1"
    assert json.loads(jd.ok(push(b"")).body) == {"code": "0", "msg": "success", "data": ""}


def test_a_jd_cancel_becomes_ours(channels):
    [(cmd, key)] = accept(channels["jddj"], push(jddj_push("2100123456789012", "20030", remark="用户取消"),
                                                 "https://gw.example.com/hooks/jddj/userCancelOrder", "userCancelOrder"))
    assert isinstance(cmd, CancelOrder) and key == "jddj:2100123456789012:cancel"


# -- Shopify -----------------------------------------------------------------
def test_a_shopify_order_with_decimal_strings_and_a_base64_hmac(channels):
    shop = channels["shopify"]
    body = json.dumps(shopify_order()).encode()
    [(cmd, key)] = accept(shop, push(body, tail="", headers=shopify_headers(body)))
    assert key == "shopify:5551234567890123456" and cmd.external_id == "5551234567890123456"  # no float round trip
    assert cmd.lines == [Line(sku="SAN-001", qty=2, unit_price=1695, discount=200)]
    assert cmd.delivery_fee == 500 and cmd.paid == 3690 and cmd.discounts == []
    assert (cmd.lat, cmd.lon) == (31.2025, 121.527)  # WGS-84 already
    assert shop.ok(push(body)).status == 200


def test_a_shopify_hex_digest_or_another_secret_is_refused(channels):
    shop = channels["shopify"]
    body = json.dumps(shopify_order()).encode()
    import hashlib
    import hmac
    hex_digest = hmac.new(SECRETS["SHOP_SECRET"].encode(), body, hashlib.sha256).hexdigest()
    assert refused(shop, push(body, tail="", headers={**shopify_headers(body), "X-Shopify-Hmac-Sha256": hex_digest})).why == "signature"
    assert refused(shop, push(body, tail="", headers=shopify_headers(body, secret="old"))).why == "signature"
    assert refused(shop, push(body, tail="", headers={"X-Shopify-Topic": "orders/create"})).status == 401


def test_a_shopify_pickup_goes_to_the_mapped_location_and_other_currencies_or_no_coordinates_are_refused(channels):
    shop = channels["shopify"]
    body = json.dumps(shopify_order(location_id=66001, shipping_address=None,
                                    shipping_lines=[{"code": "Pickup", "title": "Store pickup", "price": "0.00"}])).encode()
    [(cmd, _)] = accept(shop, push(body, tail="", headers=shopify_headers(body)))
    assert cmd.mode == "pickup" and cmd.pickup_node == "S002"
    euro = json.dumps(shopify_order(currency="EUR")).encode()
    assert "currency" in refused(shop, push(euro, tail="", headers=shopify_headers(euro))).reason
    nowhere = json.dumps(shopify_order(shipping_address=None)).encode()
    assert refused(shop, push(nowhere, tail="", headers=shopify_headers(nowhere))).why == "unmapped"


def test_shopify_cancels_and_refunds_become_ours(channels):
    shop = channels["shopify"]
    body = json.dumps(shopify_order(cancel_reason="customer")).encode()
    [(cmd, key)] = accept(shop, push(body, tail="", headers=shopify_headers(body, "orders/cancelled")))
    assert isinstance(cmd, CancelOrder) and key == "shopify:5551234567890123456:cancel"
    refund = json.dumps({"id": 909, "order_id": 5551234567890123456, "note": "damaged",
                         "refund_line_items": [{"quantity": 1, "line_item": {"sku": "SAN-001", "quantity": 2, "price": "16.95"}}]}).encode()
    [(cmd, key)] = accept(shop, push(refund, tail="", headers=shopify_headers(refund, "refunds/create")))
    assert isinstance(cmd, RefundOrder) and cmd.refund_id == "909" and key == "shopify:5551234567890123456:refund:909"


# -- POS ---------------------------------------------------------------------
def test_a_pos_upload_of_offline_sales_keeps_each_sales_own_time_in_utc(channels):
    pos = channels["pos"]
    body = json.dumps({"events": [
        {"type": "sale", "store": "S001", "sale_id": "POS-S001-1", "sold_at": "2026-11-30 09:15:00",
         "lines": [{"item": "SNA-002", "qty": 2, "price": "6.50"}], "member": "M-1", "paid": "12.00"},
        {"type": "signup", "store": "S001", "member": "M-2", "clerk": "C-7", "phone": "13800000000"},
        {"type": "refund", "store": "S001", "sale_id": "POS-S001-1", "refund_id": "RF-1", "reason": "broken",
         "lines": [{"item": "SNA-002", "qty": 1}]},
    ]}).encode()
    [(sale, k1), (signup, k2), (refund, k3)] = accept(pos, push(body, tail="", headers=pos_headers(body)))
    assert isinstance(sale, SellOverCounter) and sale.node == "S001" and k1 == "pos:sale:S001:POS-S001-1"
    assert sale.sold_at == datetime(2026, 11, 30, 1, 15, tzinfo=timezone.utc).timestamp()  # 09:15 in Shanghai
    assert sale.lines == [Line(sku="SNA-002", qty=2, unit_price=650)] and sale.paid == 1200
    assert sale.discounts == [Discount(amount=100, code="platform")]
    assert isinstance(signup, SignUpMember) and signup.via == "pos" and k2 == "pos:signup:M-2"
    assert isinstance(refund, RefundSale) and k3 == "pos:refund:S001:POS-S001-1:RF-1"


def test_a_pos_upload_badly_signed_or_replayed_is_refused(channels):
    pos = channels["pos"]
    body = json.dumps({"type": "signup", "store": "S001", "member": "M-2"}).encode()
    assert refused(pos, push(body, tail="", headers=pos_headers(body, secret="x"))).why == "signature"
    assert refused(pos, push(body, tail="", headers=pos_headers(body, now=time.time() - 3600))).why == "replay"
    assert refused(pos, push(body, tail="", headers={})).why == "signature"


# -- configuration -------------------------------------------------------------
def test_a_missing_secret_or_a_map_naming_an_unknown_node_is_one_clear_error(tmp_path):
    config = gateway_config(tmp_path)
    env = {k: v for k, v in SECRETS.items() if k != "MT_SECRET"}
    with pytest.raises(ChannelConfigError, match="channels.meituan.secret_env: the variable MT_SECRET is not set"):
        build_channels(config.gateway, NETWORK, env)
    (tmp_path / "mt-shops.json").write_text(json.dumps({"SH-017": "S999"}))
    with pytest.raises(ChannelConfigError, match=r"meituan.shops\['SH-017'\]: unknown node 'S999'"):
        build_channels(config.gateway, NETWORK, SECRETS)


def test_a_channel_never_shows_its_secret(channels):
    for channel in channels.values():
        assert channel.secret not in repr(channel) and channel.secret not in str(vars(channel).get("name"))


def test_the_shipped_gateway_sample_loads_and_its_maps_name_real_nodes_and_skus(monkeypatch):
    from pathlib import Path

    from engine.config import load_config
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    config = load_config(root / "docs/examples/channels/gateway.toml", environ={})
    env = {c.secret_env: "s" for c in config.gateway.channels.values()}
    env.update({c.token_env: "t" for c in config.gateway.channels.values() if c.token_env})
    built = build_channels(config.gateway, NETWORK, env)
    assert set(built) == {"meituan", "eleme", "jddj", "shopify", "pos"}
    assert built["meituan"].catalog.node("SH-017", "app_poi_code") == "S001"


def test_meituan_forms_decode_as_parse_qsl_and_unquote_would_on_any_text():
    """The form decoding done in C (codecs.escape_decode) gives what urllib gives, byte for byte, on arbitrary
    text: percent signs without hex digits, backslashes, plus signs, broken UTF-8 escapes, non-ASCII."""
    import random
    from urllib.parse import parse_qsl, unquote

    from adapters.channels.meituan import _unquote, form_pairs

    rng = random.Random(14)
    alphabet = ["%", "%4", "%41", "%e4%b8%89", "%E4%B8", "%5C", "%25", "\\", "\\x41", "+", "=", "&", "a", "Z", "9",
                "三", "é", " ", "%zz", "%2", "%%", "%2B"]
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        assert _unquote(text) == unquote(text), text
        assert form_pairs(text) == parse_qsl(text, keep_blank_values=True), text


def test_a_booked_pre_order_is_confirmed_to_its_platform_once_and_its_routing_later_owes_nothing(channels, tmp_path):
    from adapters.gateway.outbox import Outbox
    from adapters.gateway.status import StatusRelay

    class Nats:
        def jetstream(self):
            return None

    relay = StatusRelay(Nats(), channels, Outbox(str(tmp_path / "outbox.db")), http=None, clock=lambda: 0.0)
    oid = "6f1d7a3e-0000-4000-8000-000000000001"
    event = lambda n, data: json.dumps({"originator_id": oid, "notification_id": n, "data": data}).encode()  # noqa: E731
    relay.take("o2o.events.order.placed", event(1, {"channel": "meituan", "external_id": "2700", "mode": "delivery"}))
    confirm = relay.take("o2o.events.order.booked", event(2, {"nodes": ["S001"], "window_start": 1.0, "window_end": 2.0,
                                                               "due_at": 0.5, "lost": [], "at": 0.0}))
    assert confirm is not None and confirm.action == "confirm" and confirm.external_id == "2700"
    assert relay.take("o2o.events.order.routed", event(3, {"parts": [], "lost": [], "at": 0.5})) is None
