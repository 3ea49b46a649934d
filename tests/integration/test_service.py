"""The engine as a NATS micro service, against a real nats-server."""
from __future__ import annotations

import asyncio
import json

import msgspec
from nats.js.api import ConsumerConfig, DeliverPolicy

from adapters.intake import intake_message
from adapters.endpoints import ENDPOINTS
from domain.commands import Line, SubmitOrder
from engine.store.network_file import load_sample
from tests.integration.conftest import run, running_service

NETWORK = load_sample()
STORE = NETWORK.nodes[5]
SKU = NETWORK.skus[0].id


def order(ext: str, **kw) -> SubmitOrder:
    return SubmitOrder(channel="app", external_id=ext, lines=[Line(SKU, 1)], lat=STORE.lat, lon=STORE.lon, **kw)


async def request(nc, subject: str, payload, headers=None):
    data = payload if isinstance(payload, bytes) else msgspec.json.encode(payload)
    msg = await nc.request(subject, data, timeout=10, headers=headers)
    error = (msg.headers or {}).get("Nats-Service-Error")
    return (int(msg.headers["Nats-Service-Error-Code"]), error) if error else (200, json.loads(msg.data))


def test_discovery_lists_every_endpoint_and_stats_count_requests_and_errors(nats_server):
    async def go():
        async with running_service(nats_server.url) as (engine, nc):
            info = json.loads((await nc.request("$SRV.INFO.o2o-engine", b"", timeout=5)).data)
            subjects = {e["subject"] for e in info["endpoints"]}
            assert {ep.subject for ep in ENDPOINTS} <= subjects and "o2o.schema" in subjects
            schemas = json.loads((await nc.request("o2o.schema", b"", timeout=5)).data)
            for e in info["endpoints"]:  # every request and reply named in discovery has its schema
                if e["subject"] != "o2o.schema":
                    assert e["metadata"]["request"] in schemas["requests"]
                    assert e["metadata"]["reply"] in schemas["replies"]
            ping = json.loads((await nc.request("$SRV.PING", b"", timeout=5)).data)
            assert ping["name"] == "o2o-engine"
            assert (await request(nc, "o2o.orders.submit", order("d1")))[0] == 200
            assert (await request(nc, "o2o.orders.submit", b"not json"))[0] == 400
            assert (await request(nc, "o2o.orders.status", {"order_id": "nope"}))[0] == 400
            stats = json.loads((await nc.request("$SRV.STATS.o2o-engine", b"", timeout=5)).data)
            by_name = {e["name"]: e for e in stats["endpoints"]}
            assert by_name["submit"]["num_requests"] == 2 and by_name["submit"]["num_errors"] == 1
            assert by_name["submit"]["last_error"].startswith("400:$: not valid JSON")
            assert by_name["submit"]["processing_time"] > 0
            assert by_name["status"]["num_errors"] == 1
            assert "SubmitOrder" in schemas["requests"] and "OrderReply" in schemas["replies"]
            assert "o2o.events.order.routed" in schemas["events"]

    run(go())


def test_orders_in_flight_together_each_get_their_own_reply_in_the_format_they_asked_for(nats_server):
    async def go():
        async with running_service(nats_server.url) as (engine, nc):
            mp = {"Content-Type": "application/msgpack"}
            asks = [nc.request("o2o.orders.submit", msgspec.msgpack.encode(order(f"f{i}")) if i % 5 == 0
                               else msgspec.json.encode(order(f"f{i}")), timeout=10, headers=mp if i % 5 == 0 else None)
                    for i in range(40)]
            bad = SubmitOrder(channel="app", external_id="bad", lines=[Line(SKU, 1)])  # delivery without a location
            asks.append(nc.request("o2o.orders.submit", msgspec.json.encode(bad), timeout=10))
            replies = await asyncio.gather(*asks)
            for i, msg in enumerate(replies[:40]):
                body = msgspec.msgpack.decode(msg.data) if i % 5 == 0 else json.loads(msg.data)
                assert body["external_id"] == f"f{i}" and body["status"] in ("routed", "rejected")
            assert replies[40].headers["Nats-Service-Error-Code"] == "400"

    run(go())


def test_a_submitted_order_its_reply_its_stored_events_and_its_published_events_agree(nats_server):
    async def go():
        async with running_service(nats_server.url) as (engine, nc):
            code, reply = await request(nc, "o2o.orders.submit", order("agree-1"))
            assert code == 200 and reply["status"] in ("routed", "rejected")
            stored = [(nid, e) for nid, e in engine.stored_events() if str(e.originator_id) == reply["order_id"]]
            kinds = [type(e).__name__ for _, e in stored]
            assert kinds[0] == "Placed" and kinds[1] in ("Routed", "Rejected")
            if reply["status"] == "routed":
                assert stored[1][1].parts[0].node == reply["node"]
            js = nc.jetstream()
            sub = await js.subscribe("o2o.events.order.>", config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
                                     ordered_consumer=True)
            published = {}
            while len(published) < len(stored):
                msg = await sub.next_msg(timeout=5)
                body = json.loads(msg.data)
                if body["originator_id"] == reply["order_id"]:
                    published[body["notification_id"]] = msg.subject
            assert sorted(published) == [nid for nid, _ in stored]
            assert published[stored[1][0]] == f"o2o.events.order.{kinds[1].lower()}"

    run(go())


def test_malformed_input_gets_an_error_naming_the_field_stores_nothing_and_the_service_goes_on(nats_server):
    good = msgspec.to_builtins(order("m-ok"))
    cases = [
        (b"{not json", 400, "not valid JSON"),
        ({**good, "lines": "apple"}, 400, "$.lines"),
        ({k: v for k, v in good.items() if k != "channel"}, 400, "$.channel"),
        ({**good, "lines": [{"sku": SKU, "qty": 0}]}, 400, "$.lines[0].qty"),
        ({**good, "lines": [{"sku": SKU, "qty": -3}]}, 400, "$.lines[0].qty"),
        ({**good, "lines": [{"sku": "NO-SUCH", "qty": 1}]}, 404, "$.lines[0].sku"),
        ({**good, "mode": "pickup", "pickup_node": "NOWHERE"}, 404, "$.pickup_node"),
        ({**good, "lines": [{"sku": SKU, "qty": 1}] * 10_000}, 400, "$.lines"),
        (b'{"x": "' + b"y" * 5_000_000 + b'"}', 400, "exceeds the limit"),
        ({**good, "lines": [{"sku": SKU, "qty": 1, "unit_price": 1.5}]}, 400, "$.lines[0].unit_price"),  # no floats
        ({**good, "delivery_fee": -100}, 400, "$.delivery_fee"),
        ({**good, "lines": [{"sku": SKU, "qty": 1, "unit_price": 500}], "paid": 499}, 400, "$.paid: 499 does not add up"),
        ({**good, "points_used": 10, "points_value": 100}, 400, "$.points_used"),
    ]

    async def go():
        async with running_service(nats_server.url) as (engine, nc):
            before = engine.last_notification_id()
            for payload, code, words in cases:
                got, error = await request(nc, "o2o.orders.submit", payload)
                assert (got, words in error) == (code, True), (payload if isinstance(payload, dict) else payload[:40], error)
            assert engine.last_notification_id() == before
            assert (await request(nc, "o2o.stock.receive", {"node": "NOWHERE", "lines": [{"sku": SKU, "qty": 1}]}))[0] == 404
            for body, code, words in [({"node": "NOWHERE", "levels": {SKU: 1}}, 404, "node"),
                                      ({"node": "S001", "levels": {"NO-SUCH": 1}}, 404, "levels.NO-SUCH"),
                                      ({"node": "S001", "levels": {SKU: -1}}, 400, "$.levels"),
                                      ({"node": "S001", "levels": {}}, 400, "$.levels")]:
                got, error = await request(nc, "o2o.stock.safety", body)
                assert (got, words in error) == (code, True), (body, error)
            assert engine.last_notification_id() == before
            assert (await request(nc, "o2o.orders.submit", order("m-ok")))[0] == 200

    run(go())


def test_the_same_order_over_request_reply_and_over_jetstream_is_routed_once(nats_server):
    async def go():
        async with running_service(nats_server.url) as (engine, nc):
            cmd = order("twice-1", )
            code, first = await request(nc, "o2o.orders.submit", cmd)
            assert code == 200 and not first["repeat"]
            js = nc.jetstream()
            subject, data, headers = intake_message(cmd)
            await js.publish(subject, data, headers=headers)
            ack = await js.publish(subject, data, headers=headers)
            assert ack.duplicate  # JetStream itself drops the second within its window
            for _ in range(100):
                if engine.readmodels.kpis()["orders"] >= 1 and not await _intake_pending(js):
                    break
                await asyncio.sleep(0.05)
            code, again = await request(nc, "o2o.orders.submit", cmd)
            assert again["repeat"] and again["order_id"] == first["order_id"]
            placed = [e for _, e in engine.stored_events()
                      if type(e).__name__ == "Placed" and str(e.originator_id) == first["order_id"]]
            assert len(placed) == 1

    run(go())


async def _intake_pending(js) -> int:
    info = await js.consumer_info("O2O_INTAKE", "o2o-engine")
    return info.num_pending + info.num_ack_pending


def test_a_full_queue_answers_503_at_once(nats_server):
    async def go():
        async with running_service(nats_server.url, max_queue=3, window_ms=1500, max_batch=1000) as (engine, nc):
            results = await asyncio.gather(*(request(nc, "o2o.orders.submit", order(f"bp-{i}")) for i in range(12)))
            codes = [c for c, _ in results]
            assert codes.count(503) >= 1 and codes.count(200) >= 3
            assert all("overloaded" in r for c, r in results if c == 503)

    run(go())


class SlowRouter:
    """The real router, a fixed 0.2 s slower per batch: a busy engine."""

    def __init__(self):
        from engine.routing.router import make_router
        from engine.routing.types import RouterSettings

        self.inner = make_router(RouterSettings())

    def route(self, *args, **kw):
        import time

        time.sleep(0.2)
        return self.inner.route(*args, **kw)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_when_the_orders_ahead_would_take_too_long_a_submit_gets_503_instead_of_waiting(nats_server):
    async def go():
        async with running_service(nats_server.url, router=SlowRouter(), window_ms=5, max_batch=60,
                                   max_wait_ms=500) as (engine, nc):
            warm = await asyncio.gather(*(request(nc, "o2o.orders.submit", order(f"w-{i}")) for i in range(180)))
            assert {c for c, _ in warm} == {200}  # full batches back to back teach the service its speed
            results = await asyncio.gather(*(request(nc, "o2o.orders.submit", order(f"burst-{i}")) for i in range(600)))
            refused = [r for c, r in results if c == 503]
            assert refused and all("s of orders waiting" in r for r in refused)
            assert {c for c, _ in results} == {200, 503}  # every request answered: none timed out
            assert engine.readmodels.kpis()["orders"] == 180 + len(results) - len(refused)

    run(go())


def test_an_order_refused_in_its_batch_gets_its_error_and_counts_as_one_in_the_stats(nats_server):
    async def go():
        async with running_service(nats_server.url) as (engine, nc):
            signed = await request(nc, "o2o.members.signup", {"member": "m-poor", "node": STORE.id})
            assert signed[0] == 200
            # the member holds no points: found when the batch spends them, after the order was taken
            code, error = await request(nc, "o2o.orders.submit", order("p1", member="m-poor", points_used=10))
            assert code == 409 and "points_used" in error
            assert (await request(nc, "o2o.orders.submit", order("p2")))[0] == 200
            stats = json.loads((await nc.request("$SRV.STATS.o2o-engine", b"", timeout=5)).data)
            submit = {e["name"]: e for e in stats["endpoints"]}["submit"]
            assert submit["num_requests"] == 2 and submit["num_errors"] == 1

    run(go())


def test_orders_sent_in_one_go_are_each_answered_and_counted_with_the_bad_ones_errors(nats_server):
    async def go():
        async with running_service(nats_server.url) as (engine, nc):
            before = {e["name"]: e for e in json.loads(
                (await nc.request("$SRV.STATS.o2o-engine", b"", timeout=5)).data)["endpoints"]}["submit"]
            payloads = [msgspec.json.encode(order(f"g{i}")) for i in range(60)]
            payloads[17] = b"{not json"
            payloads[41] = msgspec.json.encode(msgspec.structs.replace(order("g41"), lines=[Line("NO-SUCH", 1)]))
            replies = await asyncio.gather(*(request(nc, "o2o.orders.submit", p) for p in payloads))
            assert replies[17][0] == 400 and "not valid JSON" in replies[17][1]
            assert replies[41] == (404, "$.lines[0].sku: unknown SKU 'NO-SUCH'")
            assert all(code == 200 and body["external_id"] == f"g{i}" for i, (code, body) in enumerate(replies)
                       if i not in (17, 41))
            stats = json.loads((await nc.request("$SRV.STATS.o2o-engine", b"", timeout=5)).data)
            submit = {e["name"]: e for e in stats["endpoints"]}["submit"]
            assert submit["num_requests"] - before["num_requests"] == 60
            assert submit["num_errors"] - before["num_errors"] == 2
            assert submit["processing_time"] > before["processing_time"]

    run(go())
