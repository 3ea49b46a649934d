"""Fuzzing the running gateway: every operation of its own OpenAPI document
with random and mutated bodies and path values, and malformed signed
webhooks, against a real nats-server and engine. Every answer is a 2xx or a
4xx with a reason (never a 5xx, never a hang), the gateway stays up, and
nothing malformed is stored."""
from __future__ import annotations

import json
import random

import aiohttp
import pytest

from adapters.gateway.app import gateway_running
from tests.gateway.platforms import SECRETS, gateway_config, meituan_order, meituan_push
from tests.gateway.test_gateway import intake_count
from tests.integration.conftest import nats_server, run, running_service  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROUNDS = 40  # per operation


def junk(rng: random.Random, depth: int = 0):
    """A random JSON value: the shapes a broken or hostile client sends."""
    kind = rng.randrange(9 if depth < 2 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2**63, -(2**70), 7])
    if kind == 3:
        return rng.choice([0.5, -1e308, 1e308, 3.14])
    if kind in (4, 5):
        return rng.choice(["", "x" * rng.randrange(1, 300), "\u0000", "%ff", "S001", "SAN-001", "..", "' OR 1=1"])
    if kind == 6:
        return [junk(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["sku", "qty", "lines", "node", "member", "points", "x", "reason"]): junk(rng, depth + 1)
            for _ in range(rng.randrange(5))}


def mutate(rng: random.Random, body: dict) -> dict:
    """A valid-looking body with one field replaced, dropped or added."""
    out = dict(body)
    key = rng.choice(list(out) + ["unexpected"])
    action = rng.randrange(3)
    if action == 0 and key in out:
        del out[key]
    else:
        out[key] = junk(rng)
    return out


def test_every_api_operation_answers_random_and_mutated_input_with_a_reason_and_stores_nothing(nats_server, tmp_path):
    rng = random.Random(20261204)
    order = {"channel": "app", "external_id": "F-1", "lat": 31.2025, "lon": 121.527, "lines": [{"sku": "SAN-001", "qty": 1}]}

    async def go():
        async with running_service(nats_server.url) as (engine, nc):
            config = gateway_config(tmp_path, nats_server.url)
            async with gateway_running(config, SECRETS) as gw, aiohttp.ClientSession() as http:
                async with http.get(f"{gw.url}/openapi.json") as r:
                    doc = await r.json()
                key = {"X-Api-Key": SECRETS["APP_KEY"]}
                before = {r.external_id for r in engine.readmodels.orders.values()}
                accepted: set[str] = set()  # external ids of bodies answered 2xx (still valid after mutation)
                seen: dict[int, int] = {}
                for path, ops in doc["paths"].items():
                    for method, op in ops.items():
                        for i in range(ROUNDS):
                            url = gw.url + path
                            for name in [p["name"] for p in op.get("parameters", []) if p.get("in") == "path"]:
                                url = url.replace("{" + name + "}", rng.choice(["NOPE", "%2e%2e", "x" * 200, "F-1"]))
                            query = {p["name"]: str(junk(rng)) for p in op.get("parameters", [])
                                     if p.get("in") == "query" and rng.random() < 0.7}
                            body = mutate(rng, order) if i % 2 else junk(rng)
                            data = json.dumps(body) if i % 5 else "{not json"
                            async with http.request(method.upper(), url, params=query, data=data,
                                                    headers={**key, "Content-Type": "application/json"}) as r:
                                seen[r.status] = seen.get(r.status, 0) + 1
                                assert r.status < 500, (method, path, body, await r.text())
                                if r.status < 300 and isinstance(body, dict) and data != "{not json":
                                    accepted.add(str(body.get("external_id")))
                                if r.status >= 400:
                                    assert (await r.json()).get("error"), (method, path, r.status)
                placed = {r.external_id for r in engine.readmodels.orders.values()} - before
                assert placed <= accepted, "an order was stored that was not answered as accepted"
                async with http.get(f"{gw.url}/openapi.json") as r:  # still up
                    assert r.status == 200
                return seen

    seen = run(go())
    assert sum(seen.values()) >= ROUNDS and any(400 <= code < 500 for code in seen)


def test_malformed_signed_webhooks_to_the_running_gateway_are_refused_the_platforms_way_and_nothing_is_stored(
        nats_server, tmp_path):
    rng = random.Random(7)

    async def go():
        async with running_service(nats_server.url) as (engine, nc):
            config = gateway_config(tmp_path, nats_server.url)
            async with gateway_running(config, SECRETS) as gw, aiohttp.ClientSession() as http:
                url = f"{gw.url}/hooks/meituan/order"
                good = meituan_order()
                refused = 0
                for _ in range(300):
                    fields = mutate(rng, good)
                    fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
                    body = meituan_push(url, fields) if rng.random() < 0.8 else b"garbage=%zz&sig=1"
                    async with http.post(url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}) as r:
                        assert r.status < 500, await r.text()
                        answer = await r.json(content_type=None)
                        refused += answer.get("data") != "ok"
                assert refused > 0 and await intake_count(nc) <= 300 - refused
                async with http.get(f"{gw.url}/openapi.json") as r:
                    assert r.status == 200

    run(go())
