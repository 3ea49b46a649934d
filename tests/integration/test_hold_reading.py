"""`hold_reading` on a real connection: while held, nothing published to
it is delivered; let go, all of it is, in order, nothing lost."""
from __future__ import annotations

import asyncio

import nats

from adapters.nats_connection import hold_reading


def test_a_held_connection_receives_nothing_until_let_go_then_everything(nats_server):
    async def go():
        reader, writer = await nats.connect(nats_server.url), await nats.connect(nats_server.url)
        got: list[bytes] = []
        probes: list[bytes] = []

        async def keep(msg):
            (probes if msg.subject == "held.probe" else got).append(msg.data)

        await reader.subscribe("held.>", cb=keep)
        await reader.flush()
        for _ in range(250):  # until a message of the writer's gets through (the server's interest can lag)
            await writer.publish("held.probe", b"probe")
            await writer.flush()
            await asyncio.sleep(0.02)
            if probes:
                break
        resume = hold_reading(reader)
        assert resume is not None
        for i in range(500):
            await writer.publish("held.x", b"%d" % i)
        await writer.flush()
        await asyncio.sleep(0.3)
        while_held = len(got)
        resume()
        for _ in range(100):
            if len(got) == 500:
                break
            await asyncio.sleep(0.02)
        await reader.close()
        await writer.close()
        return while_held, got

    while_held, got = asyncio.run(go())
    assert while_held == 0
    assert got == [b"%d" % i for i in range(500)]
