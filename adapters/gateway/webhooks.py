"""Platform webhooks: `POST /hooks/<channel>[/<push>]`. Each push is checked
on its raw bytes (size, signature, replayed timestamp), mapped to our
commands, each validated as the engine would, published to JetStream
`o2o.intake.<channel>` with its `Nats-Msg-Id` (a repeat within the stream's
window is dropped there), and answered the platform's way once JetStream
has it, before any routing. A refused push is answered with the platform's
refusal, counted and reported on `o2o.rejected.gateway` (the reason, never
the body or a header), and stored nowhere."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from typing import Any, Callable

import msgspec
from aiohttp import web

from adapters.channels.base import Answer, Channel, Intake, Push, Refusal
from adapters.wire import WireError, decode

log = logging.getLogger("o2o.gateway")

REJECTED = "o2o.rejected.gateway"
_encoder = msgspec.json.Encoder()


def intake_subject(channel: str) -> str:
    return f"o2o.intake.{channel}"


class Webhooks:
    def __init__(self, nc: Any, channels: dict[str, Channel], http: Any, max_body: int, public_url: str = "",
                 clock: Callable[[], float] = time.time, publish_timeout: float = 5.0):
        self.nc = nc
        self.js = nc.jetstream()
        self.channels = channels
        self.http = http
        self.max_body = max_body
        self.public_url = public_url.rstrip("/")
        self.clock = clock
        self.publish_timeout = publish_timeout
        self.counts: Counter[tuple[str, str]] = Counter()  # (channel, outcome)

    def routes(self) -> list[web.RouteDef]:
        return [web.route("*", "/hooks/{channel}", self.handle), web.route("*", "/hooks/{channel}/{tail:.*}", self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["channel"]
        channel = self.channels.get(name)
        if channel is None:
            self.counts[(name, "unknown_channel")] += 1
            return web.json_response({"error": f"no channel {name!r}"}, status=404)
        try:
            body = await self._read(request)
        except Refusal as r:
            return await self._refuse(channel, r, request.match_info.get("tail", ""))
        url = (self.public_url + request.path) if self.public_url else str(request.url.with_query(None))
        push = Push(method=request.method, url=url, tail=request.match_info.get("tail", ""), headers=request.headers,
                    body=body, query=dict(request.query), received_at=self.clock())
        if channel.is_probe(push):
            self.counts[(name, "probe")] += 1
            return _response(channel.ok(push))
        try:
            channel.verify(push)
            intakes = [self._validated(i) for i in await channel.parse(push, self.http)]  # (msg id, bytes)
        except Refusal as r:
            return await self._refuse(channel, r, push.tail)
        except Exception as e:  # a bug in an adapter: refused, never a 500 that leaks a traceback
            log.exception("%s: push not mapped", name)
            return await self._refuse(channel, Refusal("malformed", f"$: not understood ({type(e).__name__})"),
                                      push.tail)
        try:
            if len(intakes) == 1:  # most pushes: no gather, no task
                acks = [await asyncio.wait_for(self._publish(name, *intakes[0]), self.publish_timeout)]
            else:
                acks = await asyncio.wait_for(asyncio.gather(*(self._publish(name, *i) for i in intakes)),
                                              self.publish_timeout)
        except Exception as e:  # JetStream away: the platform retries later; nothing was stored
            log.warning("%s: intake not reachable (%s)", name, type(e).__name__)
            self.counts[(name, "unavailable")] += 1
            return _response(channel.refuse(Refusal("unavailable", "intake not reachable, retry later", 503)))
        new = sum(1 for a in acks if not a.duplicate)
        self.counts[(name, "accepted")] += new
        self.counts[(name, "duplicate")] += len(acks) - new
        if not intakes:
            self.counts[(name, "acknowledged")] += 1
        return _response(channel.ok(push))

    async def _read(self, request: web.Request) -> bytes:
        if request.content_length is not None and request.content_length > self.max_body:
            raise Refusal("too_large", f"$: body of {request.content_length} bytes over the limit of {self.max_body}",
                          413)
        chunks, size = [], 0
        async for chunk in request.content.iter_chunked(65536):
            size += len(chunk)
            if size > self.max_body:
                raise Refusal("too_large", f"$: body over the limit of {self.max_body} bytes", 413)
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _validated(i: Intake) -> tuple[str, bytes]:
        """The command as the engine will decode it (a bad one is refused here, not later), and the bytes
        published: the ones just checked."""
        data = _encoder.encode(i.cmd)
        try:
            decode(data, type(i.cmd))
        except WireError as e:
            raise Refusal("malformed", e.description) from None
        return i.msg_id, data

    async def _publish(self, name: str, msg_id: str, data: bytes) -> Any:
        return await self.js.publish(intake_subject(name), data, headers={"Nats-Msg-Id": msg_id},
                                     timeout=self.publish_timeout)

    async def _refuse(self, channel: Channel, r: Refusal, tail: str) -> web.Response:
        self.counts[(channel.name, r.why)] += 1
        report = {"channel": channel.name, "kind": channel.kind, "push": tail, "why": r.why, "reason": r.reason,
                  "at": self.clock()}
        try:
            await self.nc.publish(REJECTED, json.dumps(report, ensure_ascii=False).encode())
        except Exception:  # the report is best effort; the refusal is not
            pass
        log.info("%s refused (%s): %s", channel.name, r.why, r.reason)
        return _response(channel.refuse(r))


def _response(a: Answer) -> web.Response:
    return web.Response(status=a.status, body=a.body, content_type=a.content_type.split(";")[0], charset="utf-8")
