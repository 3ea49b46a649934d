"""Status back to the platforms: a durable consumer (`o2o-gateway`) on the
engine's event stream turns each order event of a channel's order into the
call the platform expects, written to the outbox before the event is
acknowledged; a sender makes the owed calls, each order's in order, with
back-off, until the platform says yes or the attempts run out (then the call
is parked and reported on `o2o.rejected.gateway`).

A call is made at least once: a crash after the platform answered and before
the outbox heard of it means one more call on restart. The calls used are
ones the platforms treat as idempotent (a second confirm of a confirmed
order, a close of a closed one), so that is harmless."""
from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import Any, Callable

import msgspec
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from adapters.channels.base import Call, Channel, OrderEvent
from adapters.gateway.outbox import Outbox

log = logging.getLogger("o2o.gateway.status")

EVENTS_STREAM = "O2O_EVENTS"
DURABLE = "o2o-gateway"
FILTER = "o2o.events.order.>"
REJECTED = "o2o.rejected.gateway"
# the event's subject suffix -> our kind (handed_over is delivered or collected by its `how`)
# booked: a pre-order the engine took for its slot is confirmed as a routed one is (its routing later is not news)
KINDS = {"routed": "routed", "booked": "routed", "accepted": "accepted", "declined": "declined", "rejected": "rejected",
         "ready_for_pickup": "ready", "dispatched": "dispatched", "cancelled": "cancelled"}
_call_encoder = msgspec.json.Encoder()
_call_decoder = msgspec.json.Decoder(Call)
_event_decoder = msgspec.json.Decoder()  # an event as a dict, as json.loads gives it, at C speed


class StatusRelay:
    def __init__(self, nc: Any, channels: dict[str, Channel], outbox: Outbox, http: Any, timeout_s: float = 5.0,
                 max_attempts: int = 12, clock: Callable[[], float] = time.time, batch: int = 100,
                 backoff_s: float = 1.0):
        self.nc = nc
        self.js = nc.jetstream()
        self.channels = channels
        self.outbox = outbox
        self.http = http
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.clock = clock
        self.batch = batch
        self.backoff_s = backoff_s
        self.sub: Any = None
        self._tasks: list[asyncio.Task] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self.made = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._consume(), name="status-consumer"),
                       loop.create_task(self._send(), name="status-sender")]

    async def _subscribe(self) -> None:
        config = ConsumerConfig(durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT, ack_wait=30,
                                deliver_policy=DeliverPolicy.ALL, filter_subject=FILTER, max_ack_pending=1000)
        self.sub = await self.js.pull_subscribe(FILTER, durable=DURABLE, stream=EVENTS_STREAM, config=config)

    async def _consume(self) -> None:
        while not self._stopping:
            if self.sub is None:
                try:
                    await self._subscribe()
                except Exception as e:  # the engine has not made its stream yet, or the server is away
                    log.info("event stream not ready (%s); retrying", type(e).__name__)
                    await asyncio.sleep(1.0)
                    continue
            try:
                msgs = await self.sub.fetch(self.batch, timeout=0.5)
            except (NatsTimeout, asyncio.TimeoutError):
                continue
            except Exception as e:
                log.warning("event fetch failed (%s)", type(e).__name__)
                await asyncio.sleep(0.5)
                continue
            try:
                await self.outbox.run(self.take_all, [(m.subject, m.data) for m in msgs])
            except Exception:
                log.exception("events not taken; they will be redelivered")
                for m in msgs:
                    await m.nak(delay=5.0)
                continue
            for m in msgs:
                await m.ack()  # after the outbox has them
            self._wake.set()

    def take_all(self, events: list[tuple[str, bytes]]) -> None:
        """A fetch of events in one commit (on the outbox's thread)."""
        with self.outbox.batch():
            for subject, data in events:
                self.take(subject, data)

    def take(self, subject: str, data: bytes) -> Call | None:
        """One event: remembers a channel's order when placed, records the call another owes. Idempotent."""
        suffix = subject.rpartition(".")[2]
        event = _event_decoder.decode(data)
        order_id, body = event["originator_id"], event.get("data") or {}
        if suffix == "placed":
            channel = self.channels.get(body.get("channel", ""))
            if channel is not None and channel.ACTIONS:
                self.outbox.remember(order_id, channel.name, body["external_id"], body.get("mode", "delivery"))
            return None
        kind = KINDS.get(suffix) or (body.get("how") if suffix == "handed_over" else None)
        if kind is None:
            return None
        order = self.outbox.order(order_id)
        if order is None or (kind == "routed" and order.confirmed):
            return None  # not a channel's order, or a reroute of one the platform already has confirmed
        channel = self.channels.get(order.channel)
        if channel is None:
            return None
        reason = str(body.get("reason") or "")
        call = channel.call_for(OrderEvent(kind=kind, external_id=order.external_id, mode=order.mode, reason=reason,
                                           node=str(body.get("node") or ""),
                                           by_platform=reason.startswith(f"{order.channel}:")))
        if call is None:
            return None
        key = f"{event.get('notification_id')}:{suffix}"
        self.outbox.owe(key, order_id, order.channel, _call_encoder.encode(call), self.clock(),
                        confirms=kind == "routed")
        return call

    async def _send(self) -> None:
        while not self._stopping:
            owed = await self.outbox.run(self.outbox.due, self.clock())
            if not owed:
                nxt = await self.outbox.run(self.outbox.next_due)
                wait = 1.0 if nxt is None else min(max(nxt - self.clock(), 0.05), 1.0)
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except asyncio.TimeoutError:
                    pass
                continue
            outcomes = await asyncio.gather(*(self._make(c) for c in owed))
            # one commit (one fsync) for the round's outcomes, not one per call: a crash before it repeats
            # the round's calls once on restart, which the platforms take as idempotent (module docstring)
            await self.outbox.run(self._record, owed, outcomes)
            self.made += sum(1 for error, _, _ in outcomes if error is None)
            for c, (error, park, _) in zip(owed, outcomes):
                if park:
                    await self._report_parked(c, error)

    def _record(self, owed: list[Any], outcomes: list[tuple[str | None, bool, float]]) -> None:
        with self.outbox.batch():
            for c, (error, park, due) in zip(owed, outcomes):
                if error is None:
                    self.outbox.done(c.id)
                else:
                    self.outbox.failed(c.id, error, due, park)

    async def _make(self, owed: Any) -> tuple[str | None, bool, float]:
        """One call made: (None, ...) when the platform said yes, else (the error, parked?, when it is due again)."""
        channel = self.channels.get(owed.channel)
        call = _call_decoder.decode(owed.call)
        error = "channel no longer configured"
        if channel is not None:
            try:
                req = channel.request_for(call)
                async with self.http.request(req.method, req.url, data=req.body or None, headers=req.headers,
                                             timeout=self.timeout_s) as r:
                    body = await r.read()
                    if channel.call_succeeded(r.status, body):
                        return None, False, 0.0
                    error = f"HTTP {r.status}: {body[:200].decode(errors='replace')}"
            except Exception as e:  # the platform away or slow: try again later
                error = f"{type(e).__name__}: {e}"[:300]
        attempts = owed.attempts + 1
        park = attempts >= self.max_attempts
        delay = min(self.backoff_s * 2.0 ** (attempts - 1), 300.0) * (0.5 + random.random() / 2)
        log.warning("%s %s for %s failed (attempt %d): %s", owed.channel, call.action, call.external_id, attempts,
                    error)
        return error, park, self.clock() + delay

    async def _report_parked(self, owed: Any, error: str) -> None:
        call = _call_decoder.decode(owed.call)
        report = {"channel": owed.channel, "why": "call_failed", "action": call.action,
                  "external_id": call.external_id, "reason": error}
        try:
            await self.nc.publish(REJECTED, json.dumps(report).encode())
        except Exception:
            pass

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        for t in self._tasks:
            try:
                await asyncio.wait_for(t, 5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                t.cancel()
        if self.sub is not None:
            try:
                await self.sub.unsubscribe()
            except Exception:
                pass
