"""JetStream around `o2o bench load`'s runs: the intake burst timed until
stored, and the event stream waited for until it holds every stored event."""
from __future__ import annotations

import time
from typing import Any

from engine.store.eventlog import EventLog


def intake_burst(url: str, batch: list[Any], timeout: float = 300) -> dict[str, Any]:
    """The orders published at once to the JetStream intake; timed until the engine acknowledged them all."""
    import asyncio

    import nats

    from adapters.intake import DURABLE, STREAM, publish_orders

    async def burst() -> dict[str, Any]:
        nc = await nats.connect(url, pending_size=256 * 1024 * 1024)
        js = nc.jetstream()
        try:
            before = (await js.consumer_info(STREAM, DURABLE)).ack_floor.stream_seq
            start = time.perf_counter()
            await publish_orders(js, batch)
            published = time.perf_counter() - start
            while True:
                info = await js.consumer_info(STREAM, DURABLE)
                if info.ack_floor.stream_seq - before >= len(batch) and info.num_ack_pending == 0:
                    break
                if time.perf_counter() - start > timeout:
                    raise RuntimeError(f"intake not consumed after {timeout:g} s")
                await asyncio.sleep(0.02)
            stored = time.perf_counter() - start
            return {"orders": len(batch), "published_s": round(published, 2), "stored_s": round(stored, 2),
                    "stored_per_s": round(len(batch) / stored, 1)}
        finally:
            await nc.close()

    return asyncio.run(burst())


def events_caught_up(url: str, store: str, timeout: float = 60) -> dict[str, Any]:
    """Waits for the event stream to hold every stored event."""
    import asyncio

    import nats

    from adapters.event_publisher import STREAM

    async def wait() -> dict[str, Any]:
        nc = await nats.connect(url)
        log = EventLog(store)
        start = time.perf_counter()
        try:
            js = nc.jetstream()
            while True:
                stored = log.last_notification_id()
                published = (await js.stream_info(STREAM)).state.messages
                if published >= stored or time.perf_counter() - start > timeout:
                    return {"stored": stored, "published": published,
                            "caught_up_after_s": round(time.perf_counter() - start, 2)}
                await asyncio.sleep(0.1)
        finally:
            log.close()
            await nc.close()

    return asyncio.run(wait())
