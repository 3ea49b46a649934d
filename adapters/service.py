"""The engine as a NATS micro service `o2o-engine`.

Handlers never block: a request is decoded and checked, handed to the
engine worker, and answered when its batch is stored. Errors found while
decoding are raised from the handler so they count in `$SRV.STATS`; those
found later are counted the same way (see `_count_error`).
"""
from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.micro import ServiceConfig, add_service
from nats.micro.request import Request, ServiceError

from adapters.endpoints import CLOCK_ENDPOINTS, ENDPOINTS, Endpoint
from adapters.engine_worker import EngineWorker, Overloaded
from adapters.event_publisher import EventPublisher, ForeignStream
from adapters.intake import Intake
from adapters.nats_connection import hold_reading, publish_all
from adapters.partition_routes import PartitionRoutes
from adapters.query_batches import QueryBatches
from adapters.schemas import all_schemas
from adapters.wire import WireError, decode, encode, encode_into, from_exception, wants_msgpack
from engine.app import Engine
from engine.clock import AdvanceClock, ClockReply, TestClock, parse_time
from engine.config import Backpressure, Batching
from engine.handlers import COMMANDS, Batched, Many, Write
from engine.memory import untraced
from engine.ownership import Misdirected
from engine.replies import ts

WRITES = frozenset(ep.name for ep in ENDPOINTS if isinstance(COMMANDS.get(ep.request), Write))
log = logging.getLogger("o2o.service")

NAME = "o2o-engine"
VERSION = "0.1.0"


class O2OService:
    def __init__(self, engine: Engine, nc: Client, batching: Batching = Batching(),
                 backpressure: Backpressure = Backpressure(), intake: bool = True, publish_events: bool = True,
                 tick_s: float = 1.0):
        self.engine = engine
        self.nc = nc
        self.worker = EngineWorker(engine, self._answer, batching, backpressure, lambda: hold_reading(nc))
        self.queries = QueryBatches(self.worker, self._answer, batching.max_batch, backpressure.max_queue)
        self.intake = Intake(nc, self.worker, ack_wait=backpressure.ack_wait_s) if intake else None
        self.publisher = EventPublisher(nc, engine.recorder, self.worker.committed) if publish_events else None
        if self.publisher:
            engine.on_commit.append(self.publisher.feed)
        self.routes = PartitionRoutes(nc, engine.owner, self._dispatch, self.intake) \
            if engine.ownership is not None else None  # scale-out: several engines, each owning partitions
        self.tick_s = tick_s
        self.pending: set[asyncio.Task] = set()
        self._ticker: asyncio.Task | None = None
        self.svc: Any = None
        self._schemas: bytes | None = None
        self._scratch = bytearray()  # each JSON reply of a batch is encoded here, then copied out

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.routes:
            self.engine.on_partition_lost.append(self._lost)
        self.worker.start()
        if self.publisher:
            await self.publisher.start()
        self.svc = await add_service(self.nc, ServiceConfig(
            name=NAME, version=VERSION, description="O2O order routing and inventory engine",
            metadata={"schemas": "o2o.schema"}, stats_handler=self._stats,
        ))
        self._by_subject = {ep.subject: ep for ep in ENDPOINTS}
        self._direct: dict[int, tuple[Endpoint, Callable[..., Any], Callable[..., Any]]] = {}  # sid -> intake
        clock = self.engine.clock
        test_clock = clock if isinstance(clock, TestClock) else None
        for ep in ENDPOINTS + (CLOCK_ENDPOINTS if test_clock else []):
            handler = self._clock_handler(ep, test_clock) if ep in CLOCK_ENDPOINTS else self._handler(ep)
            await self.svc.add_endpoint(name=ep.name, subject=ep.subject, handler=handler,
                                        metadata={"description": ep.doc, "request": ep.request.__name__,
                                                  "reply": ep.reply.__name__})
            if isinstance(COMMANDS.get(ep.request), (Batched, Many, Write)):
                endpoint = self.svc._endpoints[-1]
                assert endpoint._name == ep.name and endpoint._subscription is not None
                # the subscription nats.micro made (subject, queue group, $SRV INFO and STATS stay its),
                # with the lean callback in place of the Request and handler coroutine it makes per order
                take = self._intake(ep, endpoint)
                endpoint._subscription._cb = self._lean(ep, take)
                self._direct[endpoint._subscription._id] = (ep, take, self._intake_many(ep, endpoint, take))
        if self._direct:
            self._receive_directly()
        await self.svc.add_endpoint(name="schema", subject="o2o.schema", handler=self._schema,
                                    metadata={"description": "JSON Schemas of every request, reply and event"})
        if self.intake:
            await self.intake.start()
        self._ticker = asyncio.get_running_loop().create_task(self._tick(), name="ticker")

    def _handler(self, ep: Endpoint) -> Callable[[Request], Any]:
        handler = COMMANDS[ep.request]
        batched = isinstance(handler, Batched)  # orders go through the micro-batches
        many = handler if isinstance(handler, Many) else None  # quotes: answered many at a time
        write = isinstance(handler, Write)  # the rest of the writes: committed together (EngineWorker.write)

        async def handle(req: Request) -> None:
            mp = wants_msgpack(req.headers)
            try:
                cmd = decode(req.data, ep.request, mp)
                if batched:
                    checked = self.engine.check_order(cmd)  # now, so they count in the stats; not made again
                    self.worker.offer(cmd, (ep, req, mp), checked)  # answered with its batch, by _answer
                    return
                if many is not None:
                    self.queries.offer(many, cmd, (ep, req._msg, mp))  # answered with its batch, by _answer
                    return
                fut = (self.worker.write(cmd) if write else
                       asyncio.ensure_future(self.worker.call(self.engine.handle, cmd)))
            except Overloaded as e:
                raise ServiceError("503", f"overloaded: {e}") from None
            except Exception as e:
                w = from_exception(e)
                raise ServiceError(str(w.code), w.description) from None
            task = asyncio.ensure_future(self._reply(ep, req, fut, mp))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

        return handle

    def _intake(self, ep: Endpoint, endpoint: Any) -> Callable[[bytes, bool, Any], WireError | str | None]:
        """An order's (or a quote's, or a write command's) way in, as nats.micro's endpoint and `_handler` take it,
        without a Request object and a handler coroutine per order: the same
        decode, check and queue, and the endpoint's statistics (requests,
        errors, last error, processing time) kept as nats.micro keeps them.
        Returns the error to answer at once, if any, or (scale-out) the
        partition whose owner the order must be forwarded to."""
        request, check, offer = ep.request, self.engine.check_order, self.worker.offer
        clock = time.perf_counter_ns
        own, order_of = self.engine.ownership, self.engine.order_of
        handler = COMMANDS[request]
        many, ask = (handler, self.queries.offer) if isinstance(handler, Many) else (None, None)  # quotes
        write = self.worker.offer_write if isinstance(handler, Write) else None  # committed with others waiting

        def take(data: bytes, mp: bool, to: Any) -> WireError | str | None:
            start = clock()
            endpoint._num_requests += 1
            error = None
            try:
                cmd = decode(data, request, mp)
                if many is not None:
                    ask(many, cmd, to)  # answered with its batch, by _answer
                elif write is not None:
                    write(cmd, to)  # answered with its commit's, by _answer
                else:
                    # scale-out: an order of another partition goes to its owner before it costs a check and a batch
                    foreign = own.foreign(cmd.lat, cmd.lon, cmd.pickup_node, order_of(cmd.channel, cmd.external_id)) \
                        if own is not None else None
                    if foreign is not None:
                        endpoint._processing_time += clock() - start
                        return foreign  # the caller forwards it
                    offer(cmd, to, check(cmd))  # answered with its batch, by _answer
            except Exception as e:
                error = _refusal(e)
                endpoint._num_errors += 1
                endpoint._last_error = repr(ServiceError(str(error.code), error.description))
            endpoint._processing_time += clock() - start
            endpoint._average_processing_time = int(endpoint._processing_time / endpoint._num_requests)
            return error

        return take

    def _intake_many(self, ep: Endpoint, endpoint: Any, take: Callable[[bytes, bool, Any], WireError | str | None]
                     ) -> Callable[[list[tuple[bytes, bytes]]], list[tuple[int, WireError | str]]]:
        """`take` for the orders of one read from the connection, `(data,
        reply)` each: decoded and checked one by one, queued together (one
        `offer_many`), the statistics added once. Returns the outcomes to act
        on (as `take`'s), by position. Quotes, write commands and, with scale-out, orders go
        one by one through `take`."""
        request, check, offer_many = ep.request, self.engine.check_order, self.worker.offer_many
        clock = time.perf_counter_ns
        one_by_one = isinstance(COMMANDS[request], (Many, Write)) or self.engine.ownership is not None

        def take_many(batch: list[tuple[bytes, bytes]]) -> list[tuple[int, WireError | str]]:
            if one_by_one:
                return [(i, o) for i, (data, reply) in enumerate(batch)
                        if (o := take(data, False, (ep, reply, False))) is not None]
            start = clock()
            outcomes: list[tuple[int, WireError | str]] = []
            taken, where = [], []
            for i, (data, reply) in enumerate(batch):
                try:
                    cmd = decode(data, request)
                    taken.append((cmd, (ep, reply, False), check(cmd)))
                    where.append(i)
                except Exception as e:
                    outcomes.append((i, _refusal(e)))
            if taken:
                outcomes += [(where[j], _refusal(e)) for j, e in offer_many(taken)]
                outcomes.sort(key=lambda o: o[0])
            endpoint._num_requests += len(batch)
            if outcomes:
                endpoint._num_errors += len(outcomes)
                error = outcomes[-1][1]
                endpoint._last_error = repr(ServiceError(str(error.code), error.description))
            endpoint._processing_time += clock() - start
            endpoint._average_processing_time = int(endpoint._processing_time / endpoint._num_requests)
            return outcomes

        return take_many

    def _lean(self, ep: Endpoint, take: Callable[[bytes, bool, Any], WireError | str | None]) -> Callable[[Msg], Any]:
        """The subscription's callback: orders with headers (MessagePack) come this way."""

        async def on_msg(msg: Msg) -> None:
            headers = msg.headers
            mp = bool(headers) and wants_msgpack(headers)
            await self._taken(msg, take(msg.data, mp, (ep, msg, mp)))

        return on_msg

    async def _taken(self, msg: Msg, outcome: WireError | str | None) -> None:
        """Answers an order refused at once, or forwards it to its partition's owner."""
        if isinstance(outcome, str):
            if await self.routes.forward(msg, outcome):
                return
            outcome = WireError(421, f"the order is for partition {outcome}, which is moving: retry")
        if outcome is not None:
            await Request(msg).respond_error(str(outcome.code), outcome.description)

    async def _dispatch(self, msg: Msg, subject: str) -> None:
        """A request forwarded to this engine as its partition's owner
        (adapters/partition_routes.py), handled as on `subject`."""
        ep = self._by_subject.get(subject)
        if ep is None:
            await Request(msg).respond_error("404", f"no endpoint {subject}")
            return
        if isinstance(COMMANDS.get(ep.request), Batched):
            mp = bool(msg.headers) and wants_msgpack(msg.headers)
            try:
                cmd = decode(msg.data, ep.request, mp)
                self.worker.offer(cmd, (ep, msg, mp), self.engine.check_order(cmd))
            except Exception as e:
                w = _refusal(e)
                self._count_error(ep.name, w)
                await Request(msg).respond_error(str(w.code), w.description)
            return
        try:
            await self._handler(ep)(Request(msg))
        except ServiceError as e:
            self._count_error(ep.name, WireError(int(e.code), e.description))
            await Request(msg).respond_error(e.code, e.description)

    # -- scale-out ---------------------------------------------------------
    async def take(self, partition: str, epoch: int) -> int:
        """Takes the partition over (fence, load) on the engine's thread, then serves its subjects."""
        nodes = await self.worker.call(self.engine.take, partition, epoch)
        await self.routes.serve(partition)
        return nodes

    async def drop(self, partition: str) -> None:
        """Stops serving the partition's subjects, then lets the engine drop it."""
        await self.routes.leave(partition)
        await self.worker.call(self.engine.drop, partition)

    def _lost(self, partition: str) -> None:
        """The engine found the partition taken over (its thread): stop serving its subjects."""
        loop = self._loop
        loop.call_soon_threadsafe(lambda: self._track(loop.create_task(self.routes.leave(partition))))

    def _track(self, task: asyncio.Task) -> None:
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    def _receive_directly(self) -> None:
        """Orders without headers go from the connection straight to their
        endpoint's intake: no Msg, no trip through the subscription's queue and
        task, no coroutines per order (what the subscription counts is counted
        here; anything else goes the client's own way). The orders of one read
        are parsed here (`_parse`) and taken together (`_intake_many`); what
        nats-py's parser meets on its own goes through `process_msg`."""
        nc, direct = self.nc, self._direct
        process = nc._process_msg

        async def process_msg(sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes) -> None:
            route = direct.get(sid)
            if route is None or headers or not reply:
                return await process(sid, subject, reply, data, headers)
            sub = nc._subs.get(sid)
            if sub is None:  # unsubscribed (stopping): dropped, as the client drops it
                return
            nc.stats["in_msgs"] += 1
            nc.stats["in_bytes"] += len(data)
            sub._received += 1
            ep, take, _ = route
            outcome = take(data, False, (ep, reply, False))
            if outcome is not None:
                await self._taken(nc._build_message(sid, subject, reply, data, None), outcome)

        nc._process_msg = process_msg
        parser = nc._ps
        parser.parse = self._parse(parser, parser.parse)

    def _parse(self, parser: Any, parse: Callable[..., Any]) -> Callable[..., Any]:
        """nats-py's `Parser.parse` with the messages (MSG, HMSG) read here:
        the orders of one read without headers, in a row, go to their intake
        in one call; other messages to the client's `_process_msg` as its
        parser would send them, in order. Anything else (PING, INFO, -ERR, a
        line that does not read as expected) and what follows it in the
        buffer is left to nats-py's parser, which also keeps its own state
        while it waits for a payload."""
        nc, direct = self.nc, self._direct
        stats, subs = nc.stats, nc._subs
        AWAITING_CONTROL_LINE = 1  # nats.protocol.parser's state

        async def flush(run: list[tuple[bytes, bytes, bytes, int]], route: Any) -> None:
            ep, _, take_many = route
            outcomes = take_many([(data, reply) for _, reply, data, _ in run])
            if not outcomes:
                return
            # refusals (bad input, 503) in one buffer, as nats.micro's respond_error would send each
            refused = [(run[i][1], o) for i, o in outcomes if type(o) is WireError]
            if refused and not await publish_all(nc, b"".join([_error_reply(reply, w) for reply, w in refused]),
                                                 len(refused), 0):
                refused = []  # publish's own rules: one by one
            for i, outcome in outcomes:
                if refused and type(outcome) is WireError:
                    continue
                subject, reply, data, sid = run[i]
                await self._taken(nc._build_message(sid, subject, reply, data, None), outcome)

        async def fast_parse(data: bytes = b"") -> None:
            buf = parser.buf
            buf.extend(data)
            if parser.state != AWAITING_CONTROL_LINE:
                return await parse()
            view = bytes(buf)
            size = len(view)
            pos = 0
            run: list[tuple[bytes, bytes, bytes, int]] = []  # orders in a row for one intake
            run_route = None
            waiting = False  # for the rest of a message: kept in the buffer for the next read
            try:
                while pos < size:
                    if view.startswith(b"MSG ", pos):
                        headed = False
                    elif view.startswith(b"HMSG ", pos):
                        headed = True
                    else:
                        break  # another operation, or not all of it read yet: nats-py's parser
                    end = view.find(b"\r\n", pos)
                    if end < 0:
                        waiting = size - pos < 4096  # nats-py's MAX_CONTROL_LINE_SIZE; longer: its error
                        break
                    args = view[pos + (5 if headed else 4):end].split()
                    if len(args) not in ((4, 5) if headed else (3, 4)) or not args[-1].isdigit() or \
                            not args[1].isdigit() or headed and not args[-2].isdigit():
                        break  # malformed: nats-py's parser raises its ProtocolError
                    start = end + 2
                    stop = start + int(args[-1])
                    if stop + 2 > size:
                        waiting = True  # the payload is not all here yet
                        break
                    sid = int(args[1])
                    reply = args[2] if len(args) == (5 if headed else 4) else b""
                    pos = stop + 2
                    route = direct.get(sid) if not headed and reply else None
                    if route is not None and sid in subs:
                        payload = view[start:stop]
                        if route is not run_route and run:
                            await flush(run, run_route)
                            run = []
                        run_route = route
                        run.append((args[0], reply, payload, sid))
                        stats["in_msgs"] += 1
                        stats["in_bytes"] += len(payload)
                        subs[sid]._received += 1
                        continue
                    if run:
                        await flush(run, run_route)
                        run = []
                    split = start + int(args[-2]) if headed else start
                    await nc._process_msg(sid, args[0], reply, view[split:stop], view[start:split] if headed else None)
                if run:
                    await flush(run, run_route)
            finally:
                del buf[:pos]
            if pos < size and not waiting:
                await parse()

        return fast_parse

    def _clock_handler(self, ep: Endpoint, clock: TestClock) -> Callable[[Request], Any]:
        """Moves the test clock on the engine's thread (after what was queued
        there), runs the timers at once, then answers with the new time."""

        def move(cmd: Any) -> ClockReply:
            at = clock.advance(cmd.seconds) if isinstance(cmd, AdvanceClock) else clock.set(parse_time(cmd.at))
            timers = self.engine.expire_due()
            if self.engine.readmodels.to_route:
                self.engine.route_pending()
            return ClockReply(at=ts(at), epoch=at, timers=timers)

        async def handle(req: Request) -> None:
            mp = wants_msgpack(req.headers)
            try:
                cmd = decode(req.data, ep.request, mp)
            except Exception as e:
                w = from_exception(e)
                raise ServiceError(str(w.code), w.description) from None
            await self._reply(ep, req, asyncio.ensure_future(self.worker.call(move, cmd)), mp)

        return handle

    async def _reply(self, ep: Endpoint, req: Request, fut: asyncio.Future, mp: bool) -> None:
        try:
            result = await fut
        except Exception as e:
            result = e
        await self._respond(ep, req, mp, result)

    async def _answer(self, answers: list[tuple[tuple[Endpoint, Any, bool], Any]]) -> None:
        """A batch of orders' replies, sent in one go: the JSON ones encoded
        into one buffer of PUB commands written to the connection at once (not
        a publish each, with its checks and flush); errors and MessagePack
        replies (their header) one by one. An order taken straight from the
        parser carries its reply subject (bytes), not a Msg."""
        nc = self.nc
        ok: list[tuple[tuple[Endpoint, Any, bool], Any]] = []
        replies: list[bytes] = []
        one_by_one = []
        for item in answers:
            (ep, msg, mp), result = item
            reply = msg if type(msg) is bytes else msg.reply.encode()
            if mp or isinstance(result, Exception) or not reply:
                one_by_one.append(item)
                continue
            ok.append(item)
            replies.append(reply)
        if ok:
            out, scratch, size = bytearray(), self._scratch, 0
            for reply, (_, result) in zip(replies, ok):
                encode_into(result, scratch)
                out += b"PUB %s %d\r\n" % (reply, len(scratch))
                out += scratch
                out += b"\r\n"
                size += len(scratch)
            if not await publish_all(nc, out, len(ok), size):
                one_by_one = ok + one_by_one  # publish's own rules apply (buffered while reconnecting, or refused)
        for (ep, msg, mp), result in one_by_one:
            if type(msg) is bytes:
                msg = Msg(_client=nc, reply=msg.decode())
            try:
                await self._respond(ep, Request(msg), mp, result)
            except Exception as e:  # the connection is gone: the rest of the batch still gets its answers
                log.warning("could not answer %s: %s", ep.name, untraced(e))

    def _stats(self, endpoint: Any) -> dict[str, int] | None:
        """The micro-batches' count and orders, in the submit endpoint's $SRV STATS
        data (CPU per order depends on their size: `o2o bench load` reports it);
        in a write endpoint's, the service's commits of write commands and the
        commands in them (EngineWorker.write: what a commit served)."""
        if endpoint.name == "submit":
            return {"batches": self.worker.batches, "orders": self.worker.batched}
        if endpoint.name in WRITES:
            return {"commits": self.worker.write_groups, "writes": self.worker.writes}
        return None

    async def _respond(self, ep: Endpoint, req: Request, mp: bool, result: Any) -> None:
        if isinstance(result, Misdirected) and self.routes and await self.routes.forward(req._msg, result.partition):
            return  # the partition's owner answers
        if not isinstance(result, Exception):  # not raised: a raised error's traceback would hold this frame
            try:
                await req.respond(encode(result, mp), headers={"Content-Type": "application/msgpack"} if mp else None)
                return
            except Exception as e:
                result = e
        w = from_exception(result)
        if w.code == 500:
            log.error("endpoint %s failed", ep.name, exc_info=result)
        untraced(result)  # logged: its frames may go
        self._count_error(ep.name, w)
        await req.respond_error(str(w.code), w.description)

    def _count_error(self, name: str, w: WireError) -> None:
        # nats-py counts only exceptions raised by the handler itself; ours are
        # found after the handler returned, so add them to its counters here.
        for endpoint in self.svc._endpoints:
            if endpoint._name == name:
                endpoint._num_errors += 1
                endpoint._last_error = f"{w.code}:{w.description}"

    async def _schema(self, req: Request) -> None:
        if self._schemas is None:
            self._schemas = msgspec.json.encode(all_schemas())
        await req.respond(self._schemas)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self.worker.tick()
            except Exception:
                log.exception("timer tick failed")

    async def stop(self) -> None:
        """Stop taking requests, finish the batch in flight, store it, reply, drain."""
        if self._ticker:
            self._ticker.cancel()
        if self.routes:
            await self.routes.stop()
        if self.intake:
            await self.intake.stop()
        if self.svc is not None:
            await self.svc.stop()
        self.nc.__dict__.pop("_process_msg", None)  # the client's own receive path again
        self.nc._ps.__dict__.pop("parse", None)
        await self.queries.stop()  # before the worker's thread goes
        await self.worker.stop()
        if self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)
        if self.publisher:
            await self.publisher.stop()
            self.engine.on_commit.remove(self.publisher.feed)


_NEWLINES = str.maketrans({"\r": " ", "\n": " "})  # as nats-py writes a header value


def _error_reply(reply: bytes, w: WireError) -> bytes:
    """The HPUB command nats.micro's `respond_error` has the client send: its
    two headers in its order, no body."""
    hdr = b"NATS/1.0\r\nNats-Service-Error: %s\r\nNats-Service-Error-Code: %d\r\n\r\n" % (
        w.description.strip().translate(_NEWLINES).encode(), w.code)
    return b"HPUB %s %d %d\r\n%s\r\n" % (reply, len(hdr), len(hdr), hdr)


def _refusal(e: Exception) -> WireError:
    return WireError(503, f"overloaded: {e}") if isinstance(e, Overloaded) else from_exception(e)


@asynccontextmanager
async def serving(engine: Engine, nc: Client, command: str, **kw: Any) -> AsyncIterator[O2OService]:
    """The service started on `nc` (an event stream filled from another store
    ends the command, naming it); on the way out it stops taking requests,
    finishes the batch in flight, stores it, replies, publishes and drains."""
    service = O2OService(engine, nc, **kw)
    try:
        try:
            await service.start()
        except ForeignStream as e:
            raise SystemExit(f"{command}: {e}") from None
        yield service
    finally:
        await service.stop()
        await nc.drain()
