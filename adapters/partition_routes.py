"""Requests and intake messages reach the owner of their partition
(docs/scale-out.md), whatever engine or server a client reached.

Every engine answers the service's subjects (one queue group). A request
the engine finds is for a partition it does not own (Misdirected) is
published again, with the client's reply subject, on the owner's subject
`o2o.p.<partition>.<subject after "o2o.">`, so the owner answers the client
directly. The owner of a partition subscribes those subjects and binds the
partition's hand-off consumer (adapters/intake.py) after it fenced and
loaded the partition, and lets them go before it drops it. A request
forwarded once and misdirected again (the partition is moving) is
answered 421: the client retries, and the engine answers a repeat once."""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg

from adapters.intake import Intake

log = logging.getLogger("o2o.partitions")

FORWARDED = "O2O-Forwarded"  # header: the engine that passed the request on


def owner_subject(partition: str, subject: str) -> str:
    """`o2o.orders.submit` for partition p: `o2o.p.p.orders.submit`."""
    return f"o2o.p.{partition}.{subject.removeprefix('o2o.')}"


def service_subject(owner_subj: str) -> str:
    """The service subject an owner's subject stands for."""
    return "o2o." + owner_subj.split(".", 3)[3]


class PartitionRoutes:
    def __init__(self, nc: Client, owner: str, dispatch: Callable[[Msg, str], Awaitable[None]],
                 intake: Intake | None):
        self.nc = nc
        self.owner = owner
        self.dispatch = dispatch  # (message, the service subject it stands for): handled as if sent there
        self.intake = intake
        self.subs: dict[str, Any] = {}
        self.intakes: dict[str, Intake] = {}
        self.forwarded = 0

    async def serve(self, partition: str) -> None:
        """Subscribes the partition's subjects and binds its hand-off consumer."""
        if partition in self.subs:
            return

        async def on_msg(msg: Msg) -> None:
            await self.dispatch(msg, service_subject(msg.subject))

        self.subs[partition] = await self.nc.subscribe(owner_subject(partition, "o2o.>"), queue="o2o-engine",
                                                       cb=on_msg)
        if self.intake is not None:
            handoff = Intake.of_partition(self.intake, partition)
            await handoff.start()
            self.intakes[partition] = handoff

    async def leave(self, partition: str) -> None:
        """Stops taking the partition's requests and hand-offs (before the engine drops it)."""
        sub = self.subs.pop(partition, None)
        if sub is not None:
            await sub.unsubscribe()
        handoff = self.intakes.pop(partition, None)
        if handoff is not None:
            await handoff.stop()

    async def forward(self, msg: Msg, partition: str) -> bool:
        """Passes the request on to the partition's owner, who answers the
        client; False when it was forwarded once already (answer it 421)."""
        headers = msg.headers or {}
        if FORWARDED in headers or not msg.reply or not msg.subject:  # (an answer's Msg has no subject)
            return False
        await self.nc.publish(owner_subject(partition, msg.subject), msg.data, reply=msg.reply,
                              headers={**headers, FORWARDED: self.owner})
        self.forwarded += 1
        return True

    async def stop(self) -> None:
        for partition in list(self.subs):
            await self.leave(partition)
