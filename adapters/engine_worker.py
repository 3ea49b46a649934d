"""Runs the engine on one thread (it is the single writer of its nodes) and
gathers submitted orders into micro-batches by the batching rule
(engine.config.Batching, the simulations' too). Other write commands wait
`write_window_ms` for more, then all that queued by then are committed
together (`offer_write`, engine/writes.py). The
orders' queue is bounded twice: by count (`max_queue`) and by time
(`max_wait_ms`: the orders ahead would take longer than that to route,
judged by how fast full batches drained the queue lately). Past either
bound callers are told at once (503), instead of waiting in a queue longer
than their own timeout and never hearing of the order.

While the engine routes a batch, the connection is not read (`hold_reads`,
for up to HOLD_MAX_S): what arrives meanwhile waits in the socket and is
read in one go when the batch is done, instead of the event loop waking
for every few orders and taking the GIL from the engine's thread mid-batch
(figures in benchmarks/README.md, fifteenth round)."""
from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable

from domain.commands import SubmitOrder
from engine.app import Engine
from engine.config import Backpressure, Batching
from engine.threads import name_os_thread


# a batch held up longer (a store waiting on a lock) lets reading go on: the queue's bounds then answer
# 503 at once, and the server never finds this client's socket full long enough to drop it
HOLD_MAX_S = 0.5
# write commands in one commit at most: a refused command that had changed something has the rest run
# again, and the engine alone takes about 50 us a step in a group (benchmarks/README.md): 25 ms for 500
MAX_WRITES = 500


class Overloaded(Exception):
    pass


class EngineWorker:
    def __init__(self, engine: Engine, answer: Callable[[list[tuple[Any, Any]]], Awaitable[None]],
                 batching: Batching = Batching(), backpressure: Backpressure = Backpressure(),
                 hold_reads: Callable[[], Callable[[], None] | None] | None = None):
        """`hold_reads()`: stops reading the orders' connection and returns
        what starts it again (None if it could not stop it)."""
        self.engine = engine
        self.answer = answer  # takes a batch's (to, result) pairs at once: no task or future per order
        self.batching = batching
        self.max_batch = batching.max_batch
        self.max_wait = backpressure.max_wait_ms / 1000.0
        self.seconds_per_order = 0.0  # what draining one order costs when busy, averaged over recent batches
        self.max_queue = backpressure.max_queue
        self.waiting: deque[tuple[SubmitOrder, Any, float, Any]] = deque()  # (cmd, to, arrived, checked), oldest first
        self._wake = asyncio.Event()  # an order arrived to an empty queue, or the worker stops
        self._enough = asyncio.Event()  # a full batch is queued: no need to wait out the window
        self._stopping = False
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="engine", initializer=name_os_thread)
        self.accepting = True
        self.committed = asyncio.Event()  # set after every engine call: new events may be stored
        self.batches = 0
        self.batched = 0  # orders in them (the service's $SRV stats give both)
        self._runner: asyncio.Task | None = None
        self.hold_reads = hold_reads
        self._held_since: float | None = None  # when reading was last held: what is read next arrived after it
        self._writes: deque[tuple[Any, Any]] = deque()  # write commands waiting for the engine's thread, (cmd, to)
        self._writer: asyncio.Task | None = None  # takes them there while any wait
        self.write_groups = 0  # commits of write commands, and the commands in them
        self.writes = 0

    def start(self) -> None:
        self._runner = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    def offer(self, cmd: SubmitOrder, to: Any, checked: Any = None) -> None:
        """Queues an order (`checked`: its `Engine.check_order` result, if made;
        the engine does not make it again). Its result (a reply or a
        DomainError) goes, with the rest of its batch, to `answer(...)` as
        `(to, result)`."""
        refused = self.offer_many([(cmd, to, checked)])
        if refused:
            raise refused[0][1]

    def offer_many(self, items: list[tuple[SubmitOrder, Any, Any]]) -> list[tuple[int, Overloaded]]:
        """`offer` for the orders of one read from the connection, `(cmd, to,
        checked)` each, queued in order with one arrival time: the same bounds
        order by order. Returns those refused, by position."""
        if not self.accepting:
            return [(i, Overloaded("shutting down")) for i in range(len(items))]
        waiting, spo, max_wait, max_queue = self.waiting, self.seconds_per_order, self.max_wait, self.max_queue
        queued = start = len(waiting)
        now = asyncio.get_running_loop().time()
        if self._held_since is not None:  # the first read after a batch: these waited in the socket
            now, self._held_since = self._held_since, None
        refused = []
        for i, (cmd, to, checked) in enumerate(items):
            ahead = queued * spo
            if ahead > max_wait:
                refused.append((i, Overloaded(f"about {ahead:.1f} s of orders waiting (limit {max_wait:g} s)")))
            elif queued >= max_queue:
                refused.append((i, Overloaded(f"intake queue full ({max_queue} orders waiting)")))
            else:
                waiting.append((cmd, to, now, checked))
                queued += 1
        if queued > start:
            if not start:
                self._wake.set()
            if self.batching.full(queued):
                self._enough.set()
        return refused

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Runs one engine call on the engine thread, in arrival order."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
        finally:
            self.committed.set()

    def write(self, cmd: Any) -> asyncio.Future:
        """A write command's outcome, its reply or the error it met (raised
        by the future), as `offer_write` runs it."""
        fut = asyncio.get_running_loop().create_future()
        self.offer_write(cmd, fut)
        return fut

    def offer_write(self, cmd: Any, to: Any) -> None:
        """Queues a write command. After the write window it runs with every
        write waiting by then, in one transaction and one commit (group
        commit, engine.writes): under load a commit serves many. Its result (a reply or the error it met) goes,
        with the rest of its group, to `answer(...)` as `(to, result)`, or
        to `to` itself where that is a future (`write`)."""
        self._writes.append((cmd, to))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_all(), name="writes")

    async def _write_all(self) -> None:
        window = self.batching.write_window_ms / 1000.0
        try:
            while self._writes:
                if window and len(self._writes) < MAX_WRITES:
                    await asyncio.sleep(window)  # those arriving meanwhile share the commit (and its fsync)
                try:
                    done = await self.call(self._write_group)
                except Exception as e:  # noqa: BLE001 (the engine's thread is gone: nothing queued was stored)
                    done = [(to, e) for _, to in self._writes]
                    self._writes.clear()
                answers = []
                for to, result in done:
                    if not isinstance(to, asyncio.Future):
                        answers.append((to, result))
                    elif to.done():  # its caller gave up waiting
                        continue
                    elif isinstance(result, BaseException):
                        to.set_exception(result)
                    else:
                        to.set_result(result)
                if answers:
                    await self.answer(answers)
        finally:
            self._writer = None

    def _write_group(self) -> list[tuple[Any, Any]]:
        """On the engine's thread: the writes queued by now (up to MAX_WRITES), in one commit."""
        writes, group = self._writes, []
        while writes and len(group) < MAX_WRITES:
            group.append(writes.popleft())
        self.write_groups += 1
        self.writes += len(group)
        try:
            results = self.engine.handle_writes([cmd for cmd, _ in group])
        except Exception as e:  # noqa: BLE001 (every caller hears of it)
            results = [e] * len(group)
        return list(zip((to for _, to in group), results))

    async def submit_many(self, cmds: list[SubmitOrder]) -> list[Any]:
        """For callers that already hold a batch (JetStream intake)."""
        return await self.call(self.engine.submit_batch, cmds)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_start, last_size = 0.0, 0
        waiting = self.waiting
        while True:
            while not waiting:
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
            # the window runs from the first order's arrival: under load it waited while
            # the engine was busy, and what queued meanwhile goes at once
            remaining = self.batching.closes_at(waiting[0][2]) - loop.time()
            if remaining > 0 and not self.batching.full(len(waiting)) and not self._stopping:
                self._enough.clear()
                try:
                    await asyncio.wait_for(self._enough.wait(), remaining)
                except asyncio.TimeoutError:
                    pass
            batch = [waiting.popleft() for _ in range(min(self.max_batch, len(waiting)))]
            now = time.perf_counter()
            if last_size == self.max_batch:
                # a full batch means a backed-up queue: from its start to this one is what
                # draining that many orders costs, replies and the rest of the process included
                self._learn((now - last_start) / last_size)
            last_start, last_size = now, len(batch)
            await self._route(batch)

    def _learn(self, seconds_per_order: float) -> None:
        old = self.seconds_per_order
        self.seconds_per_order = seconds_per_order if not old else 0.7 * old + 0.3 * seconds_per_order

    async def _route(self, batch: list[tuple[SubmitOrder, Any, float, Any]]) -> None:
        self.batches += 1
        self.batched += len(batch)
        resume = cap = None
        if self.hold_reads is not None:
            loop = asyncio.get_running_loop()
            held_since = loop.time()
            if (resume := self.hold_reads()) is not None:
                self._held_since = held_since
                cap = loop.call_later(HOLD_MAX_S, resume)
        try:
            results: list[Any] = await self.call(self.engine.submit_batch, [b[0] for b in batch],
                                                 [b[3] for b in batch])
        except Exception as e:  # nothing was stored: every caller hears of it
            results = [e] * len(batch)
        finally:
            if resume is not None:
                cap.cancel()
                resume()
        await self.answer([(b[1], result) for b, result in zip(batch, results)])

    async def tick(self) -> None:
        """Timers: expire reservations not accepted in time, route what waits
        (with scale-out also the orders other engines handed over: caught up first)."""
        if self.engine.ownership is not None:
            await self.call(self.engine.catch_up)
        await self.call(self.engine.expire_due)
        if self.engine.readmodels.to_route:
            await self.call(self.engine.route_pending)

    async def stop(self) -> None:
        """Stops taking orders, routes and stores what is queued, then stops."""
        self.accepting = False
        self._stopping = True
        self._wake.set()
        self._enough.set()
        if self._runner is not None:
            await self._runner
        if self._writer is not None:
            await self._writer
        self.pool.shutdown(wait=True)
