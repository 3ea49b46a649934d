"""Scheduled orders end to end through NATS on a test clock (as `o2o serve
--test-clock` runs), across a night when the stores are closed: an order
placed at 22:40 is booked for the first slot after opening and routed, its
stock reserved, at its lead time (08:15); bookings and orders for now
together never take more than a slot's capacity; a cancelled booking frees
its place; the booking and the routing come out on the event stream."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec
import pytest

from domain.commands import AcceptOrder, CancelOrder, GetStock, Line, SubmitOrder
from domain.network import Window
from engine.store.network_file import SAMPLE_NETWORK, load_network
from tests.integration.conftest import run, running_service
from tests.integration.test_test_clock import ask, ok, set_clock

pytestmark = pytest.mark.slow  # a service on a test clock through a night: about 4 s under load

SH = ZoneInfo("Asia/Shanghai")
SKU = "SAN-001"
STORE = "S001"  # takes 7 orders per 30-minute slot
NEAR = (31.1990, 121.5245)  # 0.1 km from S001


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


def nine_to_ten(tmp_path) -> str:
    """The sample city with every node open 09:00-22:00."""
    net = load_network(SAMPLE_NETWORK)
    net = msgspec.structs.replace(net, nodes=[msgspec.structs.replace(n, hours=[Window("09:00", "22:00")])
                                              for n in net.nodes])
    path = tmp_path / "nine-to-ten.json"
    path.write_bytes(msgspec.json.encode(net))
    return str(path)


def delivery(external_id: str, **kw) -> SubmitOrder:
    return SubmitOrder(channel="app", external_id=external_id, lines=[Line(SKU, 1)], lat=NEAR[0], lon=NEAR[1], **kw)


def pickup(external_id: str, **kw) -> SubmitOrder:
    return SubmitOrder(channel="app", external_id=external_id, lines=[Line(SKU, 1)], mode="pickup",
                       pickup_node=STORE, **kw)


def at_nine(external_id: str) -> SubmitOrder:
    return pickup(external_id, window_start=local(2026, 3, 21, 9, 0), window_end=local(2026, 3, 21, 9, 30))


def test_an_order_placed_at_night_is_booked_for_opening_and_routed_at_its_lead_time_within_slot_capacity(
        nats_server, tmp_path):
    async def go():
        async with running_service(nats_server.url, test_clock="2026-03-20T22:40:00+08:00",
                                   network=nine_to_ten(tmp_path)) as (engine, nc):
            seen: list[tuple[str, dict]] = []

            async def note(msg):
                seen.append((msg.subject, json.loads(msg.data)))

            await nc.subscribe("o2o.events.order.>", cb=note)
            submit = lambda cmd: ask(nc, "o2o.orders.submit", cmd)  # noqa: E731

            closed, _ = await submit(delivery("night-0"))
            assert closed["status"] == "rejected" and "closed" in closed["reason"]
            _, bad = await submit(delivery("half", window_start=local(2026, 3, 21, 9, 0)))
            assert bad["Nats-Service-Error-Code"] == "400" and "$.window_end" in bad["Nats-Service-Error"]
            late = await ok(nc, "o2o.orders.submit", delivery("night-1", later_ok=True))
            assert late["status"] == "booked"
            assert (late["window_start"], late["window_end"], late["due_at"]) == (
                "2026-03-21T01:00:00Z", "2026-03-21T01:30:00Z", "2026-03-21T00:15:00Z")  # 09:00-09:30, due 08:15
            assert late["promised_at"] == late["window_end"] and late["parts"] == []
            node = late["node"]
            stock = lambda n: ok(nc, "o2o.stock.get", GetStock(node=n, skus=[SKU]))  # noqa: E731
            before = (await stock(node))["available"][SKU]

            # S001's 09:00 slot: 7 places, whoever books them
            taken = 1 if node == STORE else 0
            booked = [await ok(nc, "o2o.orders.submit", at_nine(f"nine-{i}")) for i in range(7 - taken)]
            assert {b["status"] for b in booked} == {"booked"}
            full, _ = await submit(at_nine("nine-full"))
            assert full["status"] == "rejected" and "capacity full" in full["reason"]
            await ok(nc, "o2o.orders.cancel", CancelOrder(order_id=booked[0]["order_id"]))  # frees its place
            again = await ok(nc, "o2o.orders.submit", at_nine("nine-again"))
            assert again["status"] == "booked"
            booked = booked[1:] + [again]

            assert (await set_clock(nc, 2026, 3, 21, 8, 14, 59))["timers"] == 0
            moved = await ok(nc, "o2o.clock.advance", {"seconds": 1})  # 08:15: every booking is due
            assert moved["timers"] == 1 + len(booked)
            routed = await ok(nc, "o2o.orders.status", {"order_id": late["order_id"]})
            assert (routed["status"], routed["node"]) == ("routed", node)
            assert "2026-03-21T01:00:00Z" <= routed["parts"][0]["eta_at"] <= "2026-03-21T01:30:00Z"
            reserved = 1 + (len(booked) if node == STORE else 0)
            assert (await stock(node))["available"][SKU] == before - reserved  # reserved at the lead time
            for b in booked + [late]:
                accepted = await ok(nc, "o2o.orders.accept", AcceptOrder(order_id=b["order_id"]))
                assert accepted["status"] == "accepted"

            await set_clock(nc, 2026, 3, 21, 9, 5)  # open, and S001's slot is full of bookings
            now, _ = await submit(pickup("walk-in-1"))
            assert now["status"] == "rejected" and "capacity full" in now["reason"]
            await set_clock(nc, 2026, 3, 21, 9, 30)  # the next slot
            assert (await ok(nc, "o2o.orders.submit", pickup("walk-in-2")))["status"] == "routed"

            for _ in range(50):
                if sum(s.endswith(".routed") for s, _ in seen) >= 2 + len(booked):
                    break
                await asyncio.sleep(0.1)
            mine = [(s.rpartition(".")[2], e["data"]) for s, e in seen if e["originator_id"] == late["order_id"]]
            assert [k for k, _ in mine] == ["placed", "booked", "routed", "accepted"]
            assert mine[1][1]["nodes"] == [node] and mine[1][1]["due_at"] == local(2026, 3, 21, 8, 15).timestamp()

    run(go())
