"""Points over time, end to end through NATS on a test clock (as `o2o serve
--test-clock` runs): earned, pending, spent soonest-to-expire first,
expired at the right local midnight in Shanghai, reserved for a gift
across that midnight, released when the gift is not collected. Without a
test clock the clock subjects do not exist."""
from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec
import nats.errors
import pytest

from domain.commands import CollectGift, GetMember, Line, RedeemPoints, SellOverCounter, SignUpMember
from tests.integration.conftest import run, running_service

SHANGHAI = ZoneInfo("Asia/Shanghai")
RULES = {"expiry": {"kind": "days", "days": 10}, "pending_days": 1, "gift_pickup_hours": 24.0}
GIFT = "SNA-002"


def local(*args: int) -> float:
    return datetime(*args, tzinfo=SHANGHAI).timestamp()


async def ask(nc, subject: str, body) -> tuple[dict, dict]:
    """(reply, error headers): one of them is empty."""
    data = body if isinstance(body, bytes) else msgspec.json.encode(body)
    msg = await nc.request(subject, data, timeout=10)
    headers = msg.headers or {}
    if headers.get("Nats-Service-Error-Code"):
        return {}, headers
    return json.loads(msg.data), {}


async def ok(nc, subject: str, body) -> dict:
    reply, error = await ask(nc, subject, body)
    assert not error, (subject, error)
    return reply


async def set_clock(nc, *when: int) -> dict:
    return await ok(nc, "o2o.clock.set", {"at": datetime(*when, tzinfo=SHANGHAI).isoformat()})


def sale(sale_id: str, qty: int) -> SellOverCounter:
    return SellOverCounter(node="S001", sale_id=sale_id, lines=[Line("SAN-001", qty)], member="m1")  # 23.90 each


def test_points_through_their_life_on_a_test_clock_over_nats(nats_server):
    async def go():
        async with running_service(nats_server.url, test_clock="2026-03-20T10:00:00+08:00", points=RULES) as (engine, nc):
            member = lambda: ok(nc, "o2o.members.get", GetMember(member="m1"))  # noqa: E731
            await ok(nc, "o2o.members.signup", SignUpMember(member="m1", node="S001"))
            await ok(nc, "o2o.pos.sale", sale("p1", 1))  # 23 points, expire at 03-31 00:00 local
            m = await member()
            assert (m["points"], m["pending"]) == (0, 23)
            assert m["buckets"][0]["expires_at"] == "2026-03-30T16:00:00Z"  # 03-31 00:00 in Shanghai

            moved = await ok(nc, "o2o.clock.advance", {"seconds": 2 * 86_400})  # 03-22 10:00
            assert moved["epoch"] == local(2026, 3, 22, 10)
            await ok(nc, "o2o.pos.sale", sale("p2", 2))  # 47 points, expire at 04-02 00:00
            m = await member()
            assert (m["points"], m["pending"]) == (23, 47)

            await set_clock(nc, 2026, 3, 23, 10)
            m = await ok(nc, "o2o.members.redeem", RedeemPoints(member="m1", points=10, gift="sticker", ref="r1"))
            assert [(b["ref"], b["left"]) for b in m["buckets"]] == [("pos/S001/p1", 13), ("pos/S001/p2", 47)]

            await set_clock(nc, 2026, 3, 30, 12)
            m = await ok(nc, "o2o.members.redeem", RedeemPoints(member="m1", points=8, gift="snack pack", ref="g1",
                                                                pickup_node="S001", gift_sku=GIFT))
            assert (m["points"], m["reserved"], m["buckets"][0]["reserved"]) == (52, 8, 8)
            available = engine.stock("S001", [GIFT]).available[GIFT]

            assert (await set_clock(nc, 2026, 3, 30, 23, 59, 59))["timers"] == 0
            assert (await ok(nc, "o2o.clock.advance", {"seconds": 1}))["timers"] == 1  # local midnight
            m = await member()
            assert (m["points"], m["reserved"]) == (47, 8)  # p1's 5 unreserved points expired, its 8 held did not
            assert [(b["ref"], b["left"], b["reserved"]) for b in m["buckets"]] == [("pos/S001/p1", 0, 8),
                                                                                    ("pos/S001/p2", 47, 0)]

            moved = await set_clock(nc, 2026, 3, 31, 12)  # 24 h after the redemption: not collected
            assert moved["timers"] == 2  # the gift released, and its points expired at once
            m = await member()
            assert (m["points"], m["reserved"], m["gifts"]) == (47, 0, [])
            assert engine.stock("S001", [GIFT]).available[GIFT] == available + 1
            assert engine.readmodels.kpis()["points_liability"] == 47

            before = engine.last_notification_id()
            _, error = await ask(nc, "o2o.members.collect", CollectGift(member="m1", ref="g1"))
            assert error["Nats-Service-Error-Code"] == "409" and "$.ref" in error["Nats-Service-Error"]
            _, error = await ask(nc, "o2o.members.redeem", RedeemPoints(member="m1", points=48, gift="mug", ref="r2"))
            assert error["Nats-Service-Error-Code"] == "409" and "$.points" in error["Nats-Service-Error"]
            _, error = await ask(nc, "o2o.clock.set", {"at": "2026-03-01T00:00:00+08:00"})
            assert error["Nats-Service-Error-Code"] == "400" and "$.at" in error["Nats-Service-Error"]
            _, error = await ask(nc, "o2o.clock.advance", {"seconds": -5})
            assert error["Nats-Service-Error-Code"] == "400" and "seconds" in error["Nats-Service-Error"]
            assert engine.last_notification_id() == before and engine.clock.now() == local(2026, 3, 31, 12)

    run(go())


def test_without_a_test_clock_the_clock_subjects_have_no_responders(nats_server):
    async def go():
        async with running_service(nats_server.url) as (engine, nc):
            for subject in ("o2o.clock.advance", "o2o.clock.set"):
                with pytest.raises(nats.errors.NoRespondersError):
                    await nc.request(subject, b'{"seconds": 1}', timeout=5)

    run(go())
