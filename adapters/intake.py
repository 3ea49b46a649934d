"""Durable intake for channels that cannot wait for a reply: orders
published to `o2o.intake.<channel>` land in a JetStream stream,
de-duplicated by `Nats-Msg-Id` (channel + external order id), and are
consumed by a durable pull consumer. A message is acknowledged only after
its events are stored, so a crash before that means redelivery, which the
idempotent engine answers once. Bad messages are terminated and reported on
`o2o.intake.rejected`."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig

from adapters.engine_worker import EngineWorker
from adapters.event_publisher import ensure_stream
from adapters.wire import WireError, decode, encode, from_exception, wants_msgpack
from domain.commands import SubmitOrder
from domain.errors import DomainError

log = logging.getLogger("o2o.intake")

STREAM = "O2O_INTAKE"
SUBJECTS = ["o2o.intake.>"]
REJECTED = "o2o.rejected.intake"
DURABLE = "o2o-engine"


def order_msg_id(channel: str, external_id: str) -> str:
    """An order's JetStream de-duplication key: the same (channel, external id) as the engine's idempotence."""
    return f"{channel}:{external_id}"


class Intake:
    def __init__(self, nc: Client, worker: EngineWorker, batch: int = 500, ack_wait: float = 10.0):
        self.nc = nc
        self.js = nc.jetstream()
        self.worker = worker
        self.batch = batch
        self.ack_wait = ack_wait
        self.consumed = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.sub: Any = None

    async def start(self) -> None:
        await ensure_stream(self.js, STREAM, SUBJECTS, duplicate_window=24 * 3600)
        config = ConsumerConfig(durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT, ack_wait=self.ack_wait,
                                max_ack_pending=self.batch * 4)
        self.sub = await self.js.pull_subscribe("o2o.intake.>", durable=DURABLE, stream=STREAM, config=config)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="intake")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                msgs = await self.sub.fetch(self.batch, timeout=0.5)
            except (NatsTimeout, asyncio.TimeoutError):
                continue
            except Exception as e:  # server away: the client reconnects
                log.warning("intake fetch failed (%s)", e)
                await asyncio.sleep(0.5)
                continue
            await self._handle(msgs)

    async def _handle(self, msgs: list[Any]) -> None:
        good: list[tuple[Any, SubmitOrder]] = []
        for m in msgs:
            try:
                good.append((m, decode(m.data, SubmitOrder, wants_msgpack(m.headers))))
            except WireError as e:
                await self._reject(m, e)
        if not good:
            return
        try:
            results = await self.worker.submit_many([cmd for _, cmd in good])
        except Exception as e:  # nothing stored: let JetStream redeliver
            log.warning("intake batch not stored (%s); will be redelivered", e)
            for m, _ in good:
                await m.nak(delay=1.0)
            return
        for (m, _), result in zip(good, results):
            if isinstance(result, DomainError):
                await self._reject(m, from_exception(result))
            else:
                await m.ack()
        self.consumed += len(good)

    async def _reject(self, m: Any, e: WireError) -> None:
        body = {"code": e.code, "error": e.description, "subject": m.subject,
                "msg_id": (m.headers or {}).get("Nats-Msg-Id")}
        await self.nc.publish(REJECTED, encode(body))
        await m.term()

    async def stop(self) -> None:
        self._stopping.set()
        if self._task:
            await self._task
        if self.sub is not None:
            # a pull subscription's queue is never marked done, so a later drain would wait on it forever
            await self.sub.unsubscribe()


async def publish_orders(js: Any, cmds: list[SubmitOrder]) -> list[Any]:
    """Publishes orders to the intake as a channel does, all in flight at once; their acks, in order."""
    acks = []
    for cmd in cmds:
        subject, payload, headers = intake_message(cmd)
        acks.append(await js.publish_async(subject, payload, headers=headers))
    return list(await asyncio.gather(*acks))


def intake_message(cmd: SubmitOrder) -> tuple[str, bytes, dict[str, str]]:
    """Subject, payload and headers a channel uses to publish an order."""
    return f"o2o.intake.{cmd.channel}", msgspec.json.encode(cmd), {"Nats-Msg-Id": order_msg_id(cmd.channel, cmd.external_id)}
