"""Quotes over NATS: many in flight answered in batches, each its own reply;
a bad one refused naming the field; a submit of the quoted cart gets the
best option."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime

import msgspec

from domain.commands import Line, QuoteOrder, SubmitOrder
from engine.store.network_file import load_sample
from tests.integration.conftest import run, running_service
from tests.integration.test_service import request

NETWORK = load_sample()
STORE = NETWORK.nodes[5]
SKUS = [s.id for s in NETWORK.skus[:3]]


def test_quotes_in_flight_together_are_answered_each_and_the_best_is_what_a_submit_gets(nats_server):
    async def go():
        async with running_service(nats_server.url) as (engine, nc):
            carts = [QuoteOrder(lines=[Line(SKUS[k % 3], 1 + k % 2)], lat=STORE.lat + k * 1e-3, lon=STORE.lon,
                                quote_id=f"q{k}") for k in range(40)]
            stored = engine.recorder.max_notification_id()
            replies = await asyncio.gather(*(request(nc, "o2o.orders.quote", c) for c in carts))
            assert [r[1]["quote_id"] for r in replies] == [c.quote_id for c in carts]
            assert all(code == 200 and r["options"][0]["best"] for code, r in replies)
            assert engine.recorder.max_notification_id() == stored  # nothing stored

            code, error = await request(nc, "o2o.orders.quote", {"lines": [{"sku": "NOPE", "qty": 1}],
                                                                 "lat": STORE.lat, "lon": STORE.lon})
            assert code == 404 and error.startswith("$.lines[0].sku")
            code, error = await request(nc, "o2o.orders.quote", {"lines": [{"sku": SKUS[0], "qty": 0}]})
            assert code == 400 and "qty" in error

            msg = await nc.request("o2o.orders.quote", msgspec.msgpack.encode(carts[1]), timeout=10,
                                   headers={"Content-Type": "application/msgpack"})
            assert msgspec.msgpack.decode(msg.data)["quote_id"] == "q1"
            stats = json.loads((await nc.request("$SRV.STATS.o2o-engine", b"", timeout=5)).data)
            quote = next(e for e in stats["endpoints"] if e["name"] == "quote")
            assert quote["num_requests"] == 43 and quote["num_errors"] == 2

            best = replies[0][1]["options"][0]
            code, reply = await request(nc, "o2o.orders.submit", SubmitOrder(
                channel="app", external_id="after-quote", lines=carts[0].lines, lat=carts[0].lat, lon=carts[0].lon,
                mode=best["mode"], pickup_node=best["node"] if best["mode"] == "pickup" else None))
            assert code == 200 and reply["node"] == best["node"]
            # the service's clock moved on between the two (the engine tests hold it still)
            assert abs(_t(reply["promised_at"]) - _t(best["promised_at"])) < 5
            assert all(abs(_t(a["eta_at"]) - _t(b["eta_at"])) < 5 for a, b in zip(reply["parts"], best["parts"]))

    run(go())


def _t(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
