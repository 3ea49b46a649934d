"""The gateway against a real nats-server and the engine (the composition
root's service on the sample city at noon), with the platforms as real HTTP
servers: a signed webhook is answered the platform's way once JetStream has
it, the engine routes it, and the platform receives its confirm call;
duplicates are dropped; a cancel that overtakes its create is applied once
the order exists; refusals store nothing; the REST API answers per client."""
from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager

import aiohttp
import nats
import pytest

from adapters.gateway.app import gateway_running
from adapters.intake import STREAM as INTAKE_STREAM
from domain import ids
from tests.gateway.platforms import (SECRETS, FakePlatforms, eleme_order, eleme_push, gateway_config, meituan_order,
                                     meituan_push, pos_headers)
from tests.integration.conftest import nats_server, run, running_service  # noqa: F401  (a fixture)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def until(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


@asynccontextmanager
async def stack(nats_url: str, tmp_path):
    """The engine, the fake platforms, the gateway and an HTTP client, started and stopped in order."""
    async with running_service(nats_url) as (engine, nc):
        platforms = await FakePlatforms().start()
        try:
            config = gateway_config(tmp_path, nats_url, api=platforms.url)
            async with gateway_running(config, SECRETS) as gw, aiohttp.ClientSession() as http:
                yield engine, nc, platforms, gw, http
        finally:
            await platforms.stop()


async def intake_count(nc) -> int:
    """Messages in the intake stream (none when nothing ever made the gateway create it)."""
    try:
        return (await nc.jetstream().stream_info(INTAKE_STREAM)).state.messages
    except nats.js.errors.NotFoundError:
        return 0


def test_a_signed_meituan_order_is_answered_routed_and_confirmed_to_meituan_once(nats_server, tmp_path):
    async def go():
        async with stack(nats_server.url, tmp_path) as (engine, nc, platforms, gw, http):
            url = f"{gw.url}/hooks/meituan/order"
            body = meituan_push(url, meituan_order())
            for _ in range(3):  # the platform's retries: the same push
                async with http.post(url, data=body, headers=FORM) as r:
                    assert r.status == 200 and await r.json() == {"data": "ok"}
            confirm = await until(lambda: platforms.made("meituan", "order/confirm"))
            order_id = str(ids.order_id("meituan", "27001234567890123"))
            assert engine.readmodels.orders[order_id].status == "routed"
            assert confirm[0]["query"]["order_id"] == "27001234567890123" and confirm[0]["signed"]
            assert await intake_count(nc) == 1  # the repeats were dropped by Nats-Msg-Id
            async with http.get(f"{gw.url}/metrics") as r:
                text = await r.text()
            assert 'outcome="accepted"} 1' in text and 'outcome="duplicate"} 2' in text
            await asyncio.sleep(0.5)
            assert len(platforms.made("meituan", "order/confirm")) == 1

    run(go())


def test_a_rejected_order_is_cancelled_at_the_platform_with_its_reason_code(nats_server, tmp_path):
    async def go():
        async with stack(nats_server.url, tmp_path) as (engine, nc, platforms, gw, http):
            huge = eleme_order("3023000000000000009")
            huge["groups"][0]["items"][0]["quantity"] = 90000  # no node holds that many
            async with http.post(f"{gw.url}/hooks/eleme", data=eleme_push(10, huge)) as r:
                assert r.status == 200 and await r.json() == {"message": "ok"}
            cancel = await until(lambda: platforms.made("eleme", "cancelOrderLite"))
            assert cancel[0]["signed"] and cancel[0]["body"]["params"]["orderId"] == "3023000000000000009"
            assert cancel[0]["body"]["params"]["type"] == "foodSoldOut"
            assert not platforms.made("eleme", "confirmOrderLite")

    run(go())


@pytest.mark.slow
def test_a_cancel_that_overtakes_its_create_is_applied_when_the_order_arrives(nats_server, tmp_path):
    async def go():
        async with stack(nats_server.url, tmp_path) as (engine, nc, platforms, gw, http):
            cancel_url, order_url = f"{gw.url}/hooks/meituan/cancel", f"{gw.url}/hooks/meituan/order"
            cancel = meituan_push(cancel_url, {"order_id": "27001234567890555", "reason_code": "1001",
                                               "reason": "用户取消"})
            async with http.post(cancel_url, data=cancel, headers=FORM) as r:
                assert r.status == 200
            await asyncio.sleep(0.3)
            async with http.post(order_url, data=meituan_push(order_url, meituan_order("27001234567890555")),
                                 headers=FORM) as r:
                assert r.status == 200
            order_id = str(ids.order_id("meituan", "27001234567890555"))
            await until(lambda: order_id in engine.readmodels.orders
                        and engine.readmodels.orders[order_id].status == "cancelled", 15)
            await asyncio.sleep(0.5)
            assert not platforms.made("meituan", "order/cancel")  # the platform's own cancel: nothing back

    run(go())


def test_bad_signatures_stale_timestamps_and_oversized_bodies_are_refused_counted_reported_and_not_stored(
        nats_server, tmp_path):
    async def go():
        async with running_service(nats_server.url) as (engine, nc):
            reports = []

            async def heard(m):
                reports.append(json.loads(m.data))

            await nc.subscribe("o2o.rejected.gateway", cb=heard)
            config = gateway_config(tmp_path, nats_server.url)
            async with gateway_running(config, SECRETS) as gw, aiohttp.ClientSession() as http:
                url = f"{gw.url}/hooks/meituan/order"
                cases = [(meituan_push(url, meituan_order(), secret="forged"), 401, "signature"),
                         (meituan_push(url, meituan_order(), now=time.time() - 86400), 401, "replay"),
                         (meituan_push(url, meituan_order(app_poi_code="SH-404")), 400, "unmapped"),
                         (b"order_id=1&" + b"x" * (70 * 1024), 413, "too_large")]
                for body, status, why in cases:
                    async with http.post(url, data=body, headers=FORM) as r:
                        assert r.status == status and (await r.json())["data"] == "ng", why
                pos = json.dumps({"type": "sale", "store": "S001", "sale_id": "P1",
                                  "lines": [{"item": "SNA-002", "qty": 1}]}).encode()
                async with http.post(f"{gw.url}/hooks/pos", data=pos, headers=pos_headers(pos, secret="x")) as r:
                    assert r.status == 401 and (await r.json())["ok"] is False
                await until(lambda: len(reports) == 5)
                assert [r["why"] for r in reports] == ["signature", "replay", "unmapped", "too_large", "signature"]
                assert all("s3cret" not in json.dumps(r) and "forged" not in json.dumps(r) for r in reports)
                async with http.get(f"{gw.url}/metrics") as r:
                    text = await r.text()
                assert 'channel="meituan",outcome="signature"} 1' in text and 'outcome="too_large"} 1' in text
            assert await intake_count(nc) == 0

    run(go())


def test_the_rest_api_submits_reads_cancels_finds_stock_and_signs_members_up_per_client(nats_server, tmp_path):
    async def go():
        async with running_service(nats_server.url) as (engine, nc):
            config = gateway_config(tmp_path, nats_server.url)
            async with gateway_running(config, SECRETS) as gw, aiohttp.ClientSession() as http:
                app = {"X-Api-Key": SECRETS["APP_KEY"]}
                order = {"channel": "app", "external_id": "A-1", "lat": 31.2025, "lon": 121.527,
                         "lines": [{"sku": "SAN-001", "qty": 1}]}
                async with http.post(f"{gw.url}/v1/orders", json=order, headers=app) as r:
                    assert r.status == 200 and (await r.json())["status"] == "routed"
                async with http.post(f"{gw.url}/v1/orders", json=order, headers={"X-Api-Key": "guess"}) as r:
                    assert r.status == 401
                async with http.post(f"{gw.url}/v1/orders", json={**order, "channel": "meituan"}, headers=app) as r:
                    assert r.status == 403 and "$.channel" in (await r.json())["error"]
                async with http.post(f"{gw.url}/v1/orders", json={**order, "lines": []}, headers=app) as r:
                    assert r.status == 400 and "$.lines" in (await r.json())["error"]
                async with http.get(f"{gw.url}/v1/orders/A-1", headers=app) as r:
                    assert r.status == 200 and (await r.json())["external_id"] == "A-1"
                async with http.get(f"{gw.url}/v1/orders/NOPE", headers=app) as r:
                    assert r.status == 404
                async with http.post(f"{gw.url}/v1/orders/A-1/cancel", json={"reason": "changed my mind"},
                                     headers=app) as r:
                    assert r.status == 200 and (await r.json())["status"] == "cancelled"
                async with http.get(f"{gw.url}/v1/stock/nearby?sku=SAN-001&lat=31.2025&lon=121.527",
                                    headers=app) as r:
                    assert r.status == 200 and (await r.json())["nodes"]
                async with http.post(f"{gw.url}/v1/quotes", json={"lines": [{"sku": "SAN-001", "qty": 1}],
                                                                  "lat": 31.2025, "lon": 121.527}, headers=app) as r:
                    assert r.status == 200 and (await r.json())["options"][0]["best"]
                async with http.post(f"{gw.url}/v1/quotes", json={"lines": [{"sku": "SAN-001", "qty": 0}]},
                                     headers=app) as r:
                    assert r.status == 400 and "qty" in (await r.json())["error"]
                async with http.post(f"{gw.url}/v1/members", json={"member": "M-9", "node": "S001", "via": "online"},
                                     headers=app) as r:
                    assert r.status == 200
                async with http.get(f"{gw.url}/v1/members/M-9", headers=app) as r:
                    assert r.status == 200 and (await r.json())["points"] == 0
                async with http.post(f"{gw.url}/v1/members/M-9/redeem", json={"points": 5, "gift": "mug", "ref": "G1"},
                                     headers=app) as r:
                    assert r.status == 409  # no points yet
                mall = {"Authorization": f"Bearer {SECRETS['MALL_KEY']}"}
                statuses = []
                for _ in range(4):  # burst 2 at 1/s
                    async with http.get(f"{gw.url}/v1/members/M-9", headers=mall) as r:
                        statuses.append(r.status)
                        retry = r.headers.get("Retry-After")
                assert statuses[:2] == [200, 200] and statuses[-1] == 429 and retry == "1"
                async with http.get(f"{gw.url}/openapi.json") as r:
                    doc = await r.json()
                assert doc["openapi"] == "3.1.0" and "/v1/orders" in doc["paths"]

    run(go())
