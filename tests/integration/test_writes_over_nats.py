"""Write commands sent together to `o2o serve` over a real nats-server are
committed together (EngineWorker.write, engine.writes): each caller still
gets its own reply or its own refusal, and $SRV STATS shows how many
commits served them."""
from __future__ import annotations

import asyncio
import json
import uuid

from tests.integration.conftest import run, running_service
from tests.integration.test_service import order, request

ORDERS = 40


def test_steps_in_flight_together_share_commits_and_each_gets_its_own_answer(nats_server, tmp_path):
    async def go():
        async with running_service(nats_server.url, store=f"sqlite:///{tmp_path}/events.db") as (engine, nc):
            placed = await asyncio.gather(*(request(nc, "o2o.orders.submit", order(f"W-{i:04d}"))
                                            for i in range(ORDERS)))
            assert all(code == 200 and p["status"] == "routed" for code, p in placed), placed
            ids = [p["order_id"] for _, p in placed]
            stored = engine.recorder.max_notification_id()
            sends = [("o2o.orders.accept", {"order_id": oid}) for oid in ids]
            sends.insert(7, ("o2o.orders.accept", {"order_id": str(uuid.uuid4())}))  # no such order
            sends.insert(20, ("o2o.orders.progress", {"order_id": ids[-1], "step": "dispatched"}))  # not picked
            answers = await asyncio.gather(*(request(nc, subject, body) for subject, body in sends))
            assert answers[7][0] == 404 and "order_id" in answers[7][1]
            assert answers[20][0] == 409
            accepted = [a for i, a in enumerate(answers) if i not in (7, 20)]
            assert [(code, a["order_id"], a["status"]) for code, a in accepted] == [
                (200, oid, "accepted") for oid in ids]
            assert engine.recorder.max_notification_id() == stored + ORDERS  # one Accepted each, nothing else

            steps = await asyncio.gather(*(request(nc, "o2o.orders.progress", {"order_id": oid, "step": "picked"})
                                           for oid in ids))
            assert all(code == 200 and a["status"] == "picked" for code, a in steps), steps
            stats = json.loads((await nc.request("$SRV.STATS.o2o-engine", b"", timeout=5)).data)
            by_name = {e["name"]: e for e in stats["endpoints"]}
            data = by_name["accept"]["data"]
            assert data == by_name["progress"]["data"]  # the service's, in every write endpoint
            assert data["writes"] == 2 * ORDERS + 2
            assert 1 <= data["commits"] < data["writes"], data
            assert by_name["accept"]["num_errors"] == 1 and by_name["progress"]["num_errors"] == 1

    run(go())
