"""Queries answered many at a time (engine.handlers.Many: quotes). A batch
closes `window_s` after its first query arrived (or at `max_batch`), and
what arrives while the engine thread answers it goes in the next: a quote
costs a fixed part per batch (the candidate build's numpy calls) and a
small part per cart, so a few milliseconds of waiting cut the CPU per quote
several times over (figures in benchmarks/README.md)."""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Awaitable, Callable

from adapters.engine_worker import EngineWorker, Overloaded
from engine.handlers import Many


class QueryBatches:
    def __init__(self, worker: EngineWorker, answer: Callable[[list[tuple[Any, Any]]], Awaitable[None]],
                 max_batch: int = 500, max_queue: int = 20_000, window_s: float = 0.005):
        self.worker = worker
        self.answer = answer  # takes a batch's (to, result) pairs, as EngineWorker's
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.window_s = window_s
        self.waiting: dict[Many, deque[tuple[Any, Any]]] = {}
        self.running: dict[Many, asyncio.Task] = {}
        self.batches = 0

    def offer(self, handler: Many, cmd: Any, to: Any) -> None:
        """Queues a query; its result (a reply or a DomainError) goes to `answer` with its batch."""
        if not self.worker.accepting:
            raise Overloaded("shutting down")
        queue = self.waiting.setdefault(handler, deque())
        if len(queue) >= self.max_queue:
            raise Overloaded(f"query queue full ({self.max_queue} waiting)")
        queue.append((cmd, to))
        if handler not in self.running:
            self.running[handler] = asyncio.get_running_loop().create_task(self._drain(handler), name="queries")

    async def _drain(self, handler: Many) -> None:
        queue = self.waiting[handler]
        engine = self.worker.engine
        try:
            while queue:
                if len(queue) < self.max_batch and self.window_s > 0:
                    await asyncio.sleep(self.window_s)
                batch = [queue.popleft() for _ in range(min(self.max_batch, len(queue)))]
                self.batches += 1
                try:
                    results: list[Any] = await self.worker.call(handler.answer, engine, [b[0] for b in batch])
                except Exception as e:  # every caller hears of it
                    results = [e] * len(batch)
                await self.answer([(b[1], result) for b, result in zip(batch, results)])
        finally:
            del self.running[handler]

    async def stop(self) -> None:
        """Answers what is queued (call after the worker stopped accepting)."""
        if self.running:
            await asyncio.gather(*self.running.values(), return_exceptions=True)
