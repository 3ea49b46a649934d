"""Durable intake for channels that cannot wait for a reply: orders
published to `o2o.intake.<channel>` land in a JetStream stream,
de-duplicated by `Nats-Msg-Id` (channel + external order id), and are
consumed by a durable pull consumer. A message is acknowledged only after
its events are stored, so a crash before that means redelivery, which the
idempotent engine answers once. Bad messages are terminated and reported on
`o2o.rejected.intake`.

Besides orders the intake takes the other commands a channel sends without
waiting (told apart by the Command union's `type` tag; a message without one
is an order): cancels and refunds of orders, counter sales, their refunds
and sign-ups at the till. They run after the orders of the same fetch, in
arrival order. A cancel or refund of an order the engine does not know yet
(the platform's cancel overtook its create) is redelivered later, with a
growing delay, up to `EARLY_DELIVERIES` times, before it is refused."""
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
from domain.commands import (CancelOrder, Command, RefundOrder, RefundSale, SellOverCounter, SignUpMember,
                             SubmitOrder)
from domain.errors import DomainError, NotFound
from engine.handlers import COMMANDS
from engine.ownership import Misdirected
from engine.writes import is_write

log = logging.getLogger("o2o.intake")

STREAM = "O2O_INTAKE"
SUBJECTS = ["o2o.intake.>"]
REJECTED = "o2o.rejected.intake"
DURABLE = "o2o-engine"
# scale-out (docs/scale-out.md): what an engine pulls from the shared intake
# for a partition it does not own goes on to that partition's owner here
HANDOFF_STREAM = "O2O_HANDOFF"
HANDOFF_SUBJECTS = ["o2o.handoff.>"]
IntakeCommand = SubmitOrder | CancelOrder | RefundOrder | RefundSale | SellOverCounter | SignUpMember
EARLY_DELIVERIES = 30  # a cancel or refund of an unknown order is tried this often (about 7 minutes) before refused
NOT_YET_SUPPORTED_DELAY = 30.0  # s: a command this engine has no handler for yet waits for one that has


def order_msg_id(channel: str, external_id: str) -> str:
    """An order's JetStream de-duplication key: the same (channel, external id) as the engine's idempotence."""
    return f"{channel}:{external_id}"


def handoff_subject(partition: str) -> str:
    return f"o2o.handoff.{partition}.intake"


class Intake:
    """The durable consumer `durable` of `subject` in `stream`: by default the
    shared intake; with scale-out also one per partition held, on its
    hand-off subject (`Intake.of_partition`)."""

    def __init__(self, nc: Client, worker: EngineWorker, batch: int = 500, ack_wait: float = 10.0,
                 stream: str = STREAM, subjects: list[str] = SUBJECTS, durable: str = DURABLE,
                 subject: str = "o2o.intake.>"):
        self.nc = nc
        self.js = nc.jetstream()
        self.worker = worker
        self.batch = batch
        self.ack_wait = ack_wait
        self.stream, self.subjects, self.durable, self.subject = stream, subjects, durable, subject
        self.handed_off = 0  # messages passed on to the owner of their partition
        self.consumed = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.sub: Any = None

    @classmethod
    def of_partition(cls, intake: "Intake", partition: str) -> "Intake":
        """The consumer of what other engines handed off for `partition`."""
        return cls(intake.nc, intake.worker, intake.batch, intake.ack_wait, HANDOFF_STREAM, HANDOFF_SUBJECTS,
                   f"{DURABLE}-{partition}", handoff_subject(partition))

    async def start(self) -> None:
        await ensure_stream(self.js, self.stream, self.subjects, duplicate_window=24 * 3600)
        config = ConsumerConfig(durable_name=self.durable, ack_policy=AckPolicy.EXPLICIT, ack_wait=self.ack_wait,
                                max_ack_pending=self.batch * 4)
        self.sub = await self.js.pull_subscribe(self.subject, durable=self.durable, stream=self.stream, config=config)
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
        others: list[tuple[Any, Command]] = []
        for m in msgs:
            try:
                cmd = decode_intake(m.data, wants_msgpack(m.headers))
            except WireError as e:
                await self._reject(m, e)
                continue
            if isinstance(cmd, SubmitOrder):
                good.append((m, cmd))
            else:
                others.append((m, cmd))
        if good:
            await self._orders(good)
        if others:  # queued in their order as they start: the writes among them share commits (EngineWorker.write)
            await asyncio.gather(*(self._other(m, cmd) for m, cmd in others))

    async def _other(self, m: Any, cmd: Command) -> None:
        if type(cmd) not in COMMANDS:  # an engine older than the channel: wait for one that knows it
            log.warning("intake: no handler for %s yet; redelivered in %g s", type(cmd).__name__,
                        NOT_YET_SUPPORTED_DELAY)
            await m.nak(delay=NOT_YET_SUPPORTED_DELAY)
            return
        try:
            await (self.worker.write(cmd) if is_write(cmd) else self.worker.call(self.worker.engine.handle, cmd))
        except Misdirected as e:
            await self._hand_off(m, e)
            return
        except NotFound as e:
            delivered = _delivered(m)
            if e.field == "order_id" and delivered < EARLY_DELIVERIES:  # its order may still be on the way
                await m.nak(delay=min(2.0 * delivered, 30.0))
                return
            await self._reject(m, from_exception(e))
            return
        except DomainError as e:
            if not (isinstance(cmd, CancelOrder) and e.reason == "already cancelled"):  # else a redelivered cancel
                await self._reject(m, from_exception(e))
                return
        except Exception as e:  # nothing stored: let JetStream redeliver
            log.warning("intake %s not stored (%s); will be redelivered", type(cmd).__name__, e)
            await m.nak(delay=1.0)
            return
        await m.ack()
        self.consumed += 1

    async def _orders(self, good: list[tuple[Any, SubmitOrder]]) -> None:
        try:
            results = await self.worker.submit_many([cmd for _, cmd in good])
        except Exception as e:  # nothing stored: let JetStream redeliver
            log.warning("intake batch not stored (%s); will be redelivered", e)
            for m, _ in good:
                await m.nak(delay=1.0)
            return
        for (m, _), result in zip(good, results):
            if isinstance(result, Misdirected):
                await self._hand_off(m, result)
            elif isinstance(result, DomainError):
                await self._reject(m, from_exception(result))
            else:
                await m.ack()
        self.consumed += len(good)

    async def _hand_off(self, m: Any, e: Misdirected) -> None:
        """Passes a message of a partition this engine does not own to its
        owner's hand-off subject, then acknowledges it (never before: a crash
        in between redelivers it, and the owner answers a repeat once). A
        message already handed off waits for the partition's new owner."""
        if self.stream == HANDOFF_STREAM:  # its partition moved since: the next owner binds this durable
            await m.nak(delay=1.0)
            return
        try:
            await self.js.publish(handoff_subject(e.partition), m.data, headers=m.headers, stream=HANDOFF_STREAM)
        except Exception as err:  # not passed on: keep it and try again
            log.warning("intake hand-off to partition %s failed (%s); will be redelivered", e.partition, err)
            await m.nak(delay=1.0)
            return
        self.handed_off += 1
        await m.ack()

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


def decode_intake(data: bytes, msgpack: bool = False) -> Command:
    """A command by its `type` tag; without one, an order (what channels published before the tag was read)."""
    try:
        return decode(data, IntakeCommand, msgpack)
    except WireError as e:
        if not e.description.startswith("$.type: required field is missing"):
            raise
    return decode(data, SubmitOrder, msgpack)


def _delivered(m: Any) -> int:
    try:
        return int(m.metadata.num_delivered)
    except Exception:  # not a JetStream message (tests): its first delivery
        return 1


def intake_message(cmd: SubmitOrder) -> tuple[str, bytes, dict[str, str]]:
    """Subject, payload and headers a channel uses to publish an order."""
    return f"o2o.intake.{cmd.channel}", msgspec.json.encode(cmd), {"Nats-Msg-Id": order_msg_id(cmd.channel, cmd.external_id)}
