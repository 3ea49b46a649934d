"""`o2o serve` with a short retention, over a real nats-server: an order
finished and retired is still answered the same by status, a repeat and a
refund (engine/readmodels/orders.py)."""
from __future__ import annotations

import asyncio

from tests.integration.conftest import run, running_service
from tests.integration.test_service import order, request

RETAIN_HOURS = 0.0003  # about a second of the service's clock


async def finish(nc, ext: str) -> dict:
    code, placed = await request(nc, "o2o.orders.submit", order(ext))
    assert code == 200 and placed["status"] == "routed", placed
    oid = placed["order_id"]
    code, _ = await request(nc, "o2o.orders.accept", {"order_id": oid})
    assert code == 200
    for step in ("picked", "dispatched", "delivered"):
        code, done = await request(nc, "o2o.orders.progress", {"order_id": oid, "step": step})
        assert code == 200, done
    return done


def test_a_retired_order_is_answered_as_before_by_status_repeat_and_refund(nats_server, tmp_path):
    async def go():
        async with running_service(nats_server.url, store=f"sqlite:///{tmp_path}/events.db",
                                   retain_hours=RETAIN_HOURS) as (engine, nc):
            done = await finish(nc, "R-0001")
            assert done["status"] == "completed"
            await asyncio.sleep(RETAIN_HOURS * 3600 + 0.5)
            await finish(nc, "R-0002")  # its hand-over retires the first
            oid = done["order_id"]
            assert oid not in engine.readmodels.orders

            code, status = await request(nc, "o2o.orders.status", {"order_id": oid})
            assert code == 200 and status == done
            stored = engine.recorder.max_notification_id()
            code, again = await request(nc, "o2o.orders.submit", order("R-0001"))
            assert code == 200 and again["repeat"] and {**again, "repeat": False} == done
            assert engine.recorder.max_notification_id() == stored  # nothing stored for the repeat
            code, refunded = await request(nc, "o2o.orders.refund", {"order_id": oid, "refund_id": "r1",
                                                                      "reason": "returned", "write_off": True})
            assert code == 200 and refunded["money"]["refunded"] == done["money"]["paid"] > 0
            assert refunded["money"]["refunds"] == ["r1"]

    run(go())
