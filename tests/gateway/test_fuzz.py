"""10,000 malformed pushes per adapter, each correctly signed so it reaches
the parser: every one is either refused with a Refusal (answered in the
platform's words) or maps to commands the engine would accept; nothing else
escapes (the gateway never answers 500 or dies on a push)."""
from __future__ import annotations

import asyncio
import json
import random
import time
from contextlib import asynccontextmanager

import pytest
from multidict import CIMultiDict

from adapters.channels import build_channels
from adapters.channels.base import Push, Refusal
from adapters.gateway.webhooks import Webhooks
from engine.store.network_file import SAMPLE_NETWORK, load_network
from tests.gateway.platforms import (SECRETS, eleme_order, eleme_push, gateway_config, jddj_order, jddj_push,
                                     meituan_order, meituan_push, pos_headers, shopify_headers, shopify_order)

N = 10_000
WEIRD = [None, "", "x", -1, 0, 10**30, 1e308, float("inf") if False else 1.5e-9, True, [], {}, "１２", "1e5", "NaN",
         "-0.001", "9" * 40, "\u0000", "👍", [1, 2], {"a": 1}]


def mutate(rng: random.Random, value):
    """A JSON-like value with one thing broken somewhere inside it."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        k = rng.choice(list(value))
        out = dict(value)
        r = rng.random()
        if r < 0.2:
            del out[k]
        else:
            out[k] = mutate(rng, value[k])
        return out
    if isinstance(value, list) and value and rng.random() < 0.8:
        out = list(value)
        i = rng.randrange(len(out))
        out[i] = mutate(rng, out[i])
        return out
    if isinstance(value, str) and value.startswith(("[", "{")) and rng.random() < 0.7:
        try:
            return json.dumps(mutate(rng, json.loads(value)), ensure_ascii=False)
        except ValueError:
            return rng.choice(WEIRD)  # it only looked like JSON
    return rng.choice(WEIRD)


class FakeHttp:
    def __init__(self):
        self.body = b""

    @asynccontextmanager
    async def request(self, *a, **kw):
        body = self.body

        class R:
            status = 200

            async def read(self):
                return body
        yield R()


@pytest.fixture(scope="module")
def channels(tmp_path_factory):
    config = gateway_config(tmp_path_factory.mktemp("fuzz"), public_url="https://gw.example.com")
    return build_channels(config.gateway, load_network(SAMPLE_NETWORK), SECRETS)


def signed_pushes(kind: str, rng: random.Random, http: FakeHttp):
    url = "https://gw.example.com/hooks"
    for _ in range(N):
        now = time.time()
        if kind == "meituan":
            fields = meituan_order()
            k = rng.choice(list(fields))
            fields[k] = mutate(rng, fields[k])
            fields = {k: ("" if v is None else v if isinstance(v, str) else json.dumps(v)) for k, v in fields.items()}
            yield Push("POST", f"{url}/meituan/order", "order", CIMultiDict(), meituan_push(f"{url}/meituan/order", fields),
                       {}, now)
        elif kind == "eleme":
            yield Push("POST", f"{url}/eleme", "", CIMultiDict(), eleme_push(10, mutate(rng, eleme_order())), {}, now)
        elif kind == "jddj":
            http.body = json.dumps({"code": "0", "data": json.dumps({"result": {"resultList": [
                mutate(rng, jddj_order(coord_type=2))]}})}).encode()
            yield Push("POST", f"{url}/jddj/newOrder", "newOrder", CIMultiDict(), jddj_push("2100123456789012"), {}, now)
        elif kind == "shopify":
            body = json.dumps(mutate(rng, shopify_order())).encode()
            yield Push("POST", f"{url}/shopify", "", CIMultiDict(shopify_headers(body)), body, {}, now)
        else:
            body = json.dumps(mutate(rng, {"type": "sale", "store": "S001", "sale_id": "P-1", "sold_at": "2026-11-30 09:15:00",
                                           "lines": [{"item": "SNA-002", "qty": 2, "price": "6.50"}], "paid": "13.00"})).encode()
            yield Push("POST", f"{url}/pos", "", CIMultiDict(pos_headers(body)), body, {}, now)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["meituan", "eleme", "jddj", "shopify", "pos"])
def test_ten_thousand_malformed_pushes_are_refused_or_map_to_valid_commands(channels, kind):
    channel, rng, http = channels[kind], random.Random(kind), FakeHttp()

    async def go():
        refused = mapped = 0
        for push in signed_pushes(kind, rng, http):
            try:
                channel.verify(push)
                [Webhooks._validated(i) for i in await channel.parse(push, http)]
                mapped += 1
            except Refusal as r:
                assert r.status in (400, 401, 413, 503) and channel.refuse(r).body
                refused += 1
        return refused, mapped

    refused, mapped = asyncio.run(go())
    assert refused + mapped == N and refused > N // 4, (refused, mapped)  # many fields are not read: still valid
