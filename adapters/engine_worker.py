"""Runs the engine on one thread (it is the single writer of its nodes) and
gathers submitted orders into micro-batches of up to `max_batch` orders or
`window_ms`, whichever comes first. The queue in front is bounded twice:
by count (`max_queue`) and by time (`max_wait_ms`: the orders ahead would
take longer than that to route, judged by how fast full batches drained
the queue lately). Past
either bound callers are told at once (503), instead of waiting in a queue
longer than their own timeout and never hearing of the order."""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from domain.commands import SubmitOrder
from engine.app import Engine


class Overloaded(Exception):
    pass


class EngineWorker:
    def __init__(self, engine: Engine, max_batch: int = 500, window_ms: float = 20.0, max_queue: int = 20_000,
                 max_wait_ms: float = 2000.0):
        self.engine = engine
        self.max_batch = max_batch
        self.window = window_ms / 1000.0
        self.max_wait = max_wait_ms / 1000.0
        self.seconds_per_order = 0.0  # what draining one order costs when busy, averaged over recent batches
        self.queue: asyncio.Queue[tuple[SubmitOrder, asyncio.Future] | None] = asyncio.Queue(max_queue)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="engine")
        self.accepting = True
        self.committed = asyncio.Event()  # set after every engine call: new events may be stored
        self.batches = 0
        self._runner: asyncio.Task | None = None

    def start(self) -> None:
        self._runner = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    def offer(self, cmd: SubmitOrder) -> asyncio.Future:
        if not self.accepting:
            raise Overloaded("shutting down")
        ahead = self.queue.qsize() * self.seconds_per_order
        if ahead > self.max_wait:
            raise Overloaded(f"about {ahead:.1f} s of orders waiting (limit {self.max_wait:g} s)")
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait((cmd, fut))
        except asyncio.QueueFull:
            raise Overloaded(f"intake queue full ({self.queue.maxsize} orders waiting)") from None
        return fut

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Runs one engine call on the engine thread, in arrival order."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
        finally:
            self.committed.set()

    async def submit_many(self, cmds: list[SubmitOrder]) -> list[Any]:
        """For callers that already hold a batch (JetStream intake)."""
        return await self.call(self.engine.submit_batch, cmds)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_start, last_size = 0.0, 0
        while True:
            first = await self.queue.get()
            if first is None:
                return
            batch = [first]
            deadline = loop.time() + self.window
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self.queue.get(), remaining)
                    except asyncio.TimeoutError:
                        break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            now = time.perf_counter()
            if last_size == self.max_batch:
                # a full batch means a backed-up queue: from its start to this one is what
                # draining that many orders costs, replies and the rest of the process included
                self._learn((now - last_start) / last_size)
            last_start, last_size = now, len(batch)
            await self._route(batch)
            if stop:
                return

    def _learn(self, seconds_per_order: float) -> None:
        old = self.seconds_per_order
        self.seconds_per_order = seconds_per_order if not old else 0.7 * old + 0.3 * seconds_per_order

    async def _route(self, batch: list[tuple[SubmitOrder, asyncio.Future]]) -> None:
        self.batches += 1
        try:
            results = await self.call(self.engine.submit_batch, [cmd for cmd, _ in batch])
        except Exception as e:  # nothing was stored: every caller hears of it
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        for (_, fut), result in zip(batch, results):
            if not fut.done():
                fut.set_result(result)

    async def tick(self) -> None:
        """Timers: expire reservations not accepted in time, route what waits."""
        await self.call(self.engine.expire_due)
        if self.engine.views.to_route:
            await self.call(self.engine.route_pending)

    async def stop(self) -> None:
        """Stops taking orders, routes and stores what is queued, then stops."""
        self.accepting = False
        if self._runner is not None:
            await self.queue.put(None)
            await self._runner
        self.pool.shutdown(wait=True)
