"""Micro-batching: orders arriving within the window (or up to the batch
size) are routed together; a full queue refuses at once."""
from __future__ import annotations

import asyncio
import time

import pytest

from adapters.engine_worker import EngineWorker, Overloaded
from domain.commands import Line, SubmitOrder
from engine.app import Engine
from engine.config import Backpressure, Batching
from engine.clock import SimClock
from tests.engine.network_fixture import at_km, small_network


def order(i: int) -> SubmitOrder:
    lat, lon = at_km(0.1 * (i % 10))
    return SubmitOrder(channel="app", external_id=f"w{i}", lines=[Line("A", 1)], lat=lat, lon=lon)


def submit(n: int, **kw) -> tuple[list, int, Engine]:
    engine = Engine(small_network(), clock=SimClock(1_700_000_000.0)).start()

    async def go():
        answered: dict[int, object] = {}
        all_in = asyncio.Event()

        async def answer(batch):
            answered.update(batch)
            if len(answered) == n:
                all_in.set()

        worker = EngineWorker(engine, answer, Batching(**kw))
        worker.start()
        for i in range(n):
            worker.offer(order(i), i)
        await all_in.wait()
        await worker.stop()
        return [answered[i] for i in range(n)], worker.batches

    results, batches = asyncio.run(go())
    return results, batches, engine


def test_orders_within_the_window_are_routed_as_one_batch():
    results, batches, engine = submit(10, window_ms=200, max_batch=500)
    assert batches == 1 and all(r.status in ("routed", "rejected") for r in results)
    assert engine.readmodels.kpis()["orders"] == 10


def test_a_batch_closes_at_its_size():
    _, batches, _ = submit(10, window_ms=200, max_batch=4)
    assert batches == 3


def test_a_full_queue_refuses_at_once_and_a_stopped_worker_takes_nothing():
    engine = Engine(small_network(), clock=SimClock(1_700_000_000.0)).start()

    async def go():
        async def answer(batch):
            raise AssertionError(f"a worker never started answered {batch}")

        worker = EngineWorker(engine, answer, backpressure=Backpressure(max_queue=2))  # not started: nothing drains the queue
        worker.offer(order(1), 1)
        worker.offer(order(2), 2)
        with pytest.raises(Overloaded, match="queue full"):
            worker.offer(order(3), 3)
        worker.accepting = False
        with pytest.raises(Overloaded, match="shutting down"):
            worker.offer(order(4), 4)

    asyncio.run(go())


def test_an_order_checked_when_offered_is_not_checked_again_by_the_engine_and_is_placed_as_checked():
    engine = Engine(small_network(), clock=SimClock(1_700_000_000.0)).start()
    checks = []
    check = engine.check_order
    engine.check_order = lambda cmd: checks.append(cmd.external_id) or check(cmd)

    async def go():
        answered: dict[int, object] = {}
        done = asyncio.Event()

        async def answer(batch):
            answered.update(batch)
            done.set()

        worker = EngineWorker(engine, answer, Batching(window_ms=50, max_batch=10))
        worker.start()
        worker.offer(order(1), 1, engine.check_order(order(1)))  # as the service's handler does
        worker.offer(order(2), 2)  # not checked before: the engine checks it
        while len(answered) < 2:
            done.clear()
            await done.wait()
        await worker.stop()
        return answered

    answered = asyncio.run(go())
    assert checks == ["w1", "w2"]
    assert answered[1].status == answered[2].status == "routed"
    assert answered[1].money == answered[2].money


def test_orders_offered_together_are_queued_in_order_and_those_past_a_bound_are_refused_by_position():
    engine = Engine(small_network(), clock=SimClock(1_700_000_000.0)).start()

    async def go():
        async def answer(batch):
            raise AssertionError(f"a worker never started answered {batch}")

        worker = EngineWorker(engine, answer, backpressure=Backpressure(max_queue=3, max_wait_ms=500))  # not started
        worker.offer(order(0), 0)
        refused = worker.offer_many([(order(i), i, None) for i in range(1, 5)])
        assert [(i, str(e)) for i, e in refused] == [(2, "intake queue full (3 orders waiting)"),
                                                     (3, "intake queue full (3 orders waiting)")]
        assert [to for _, to, _, _ in worker.waiting] == [0, 1, 2]
        worker.waiting.clear()
        worker.seconds_per_order = 0.3  # what the last full batches cost: orders ahead take time to drain
        refused = worker.offer_many([(order(i), i, None) for i in range(10, 20)])
        assert [to for _, to, _, _ in worker.waiting] == [10, 11]
        assert [i for i, _ in refused] == [2, 3, 4, 5, 6, 7, 8, 9]
        assert str(refused[0][1]) == "about 0.6 s of orders waiting (limit 0.5 s)"
        worker.accepting = False
        assert [str(e) for _, e in worker.offer_many([(order(30), 30, None)])] == ["shutting down"]

    asyncio.run(go())


def held_worker(engine: Engine, events: list, answer, **kw) -> EngineWorker:
    """A worker whose `hold_reads` records when reading was held and let go."""
    def hold():
        loop = asyncio.get_running_loop()
        events.append(("held", loop.time()))
        return lambda: events.append(("resumed", loop.time()))

    route = engine.submit_batch

    def submit_batch(cmds, checked=None):
        events.append(("batch", len(cmds)))
        return route(cmds, checked)

    engine.submit_batch = submit_batch
    return EngineWorker(engine, answer, Batching(**kw), hold_reads=hold)


def test_reading_is_held_while_a_batch_is_routed_and_the_first_read_after_it_arrived_meanwhile():
    engine = Engine(small_network(), clock=SimClock(1_700_000_000.0)).start()
    events: list = []

    async def go():
        done = asyncio.Event()
        queued = []

        async def answer(batch):
            if len(events) == 3:  # the first batch answered: what is offered now was read after it
                worker.offer(order(1), 1)
                worker.offer(order(2), 2)
                queued.extend(w[2] for w in worker.waiting)
            else:
                done.set()

        worker = held_worker(engine, events, answer, window_ms=50, max_batch=500)
        worker.start()
        worker.offer(order(0), 0)
        await done.wait()
        await worker.stop()
        return queued

    queued = asyncio.run(go())
    assert [e[0] for e in events] == ["held", "batch", "resumed", "held", "batch", "resumed"]
    assert [e[1] for e in events if e[0] == "batch"] == [1, 2]
    held_at = events[0][1]
    assert queued[0] <= held_at < queued[1]  # it waited in the socket since the hold; the next read is its own
    assert engine.readmodels.kpis()["orders"] == 3


def answered_once(make_worker) -> EngineWorker:
    """Starts the worker `make_worker(answer)` builds, offers it one order, waits for the answer, stops it."""
    async def go():
        answered = asyncio.Event()

        async def answer(batch):
            answered.set()

        worker = make_worker(answer)
        worker.start()
        worker.offer(order(0), 0)
        await answered.wait()
        await worker.stop()
        return worker

    return asyncio.run(go())


def test_a_batch_held_up_lets_reading_go_on_after_the_bound(monkeypatch):
    monkeypatch.setattr("adapters.engine_worker.HOLD_MAX_S", 0.05)
    engine = Engine(small_network(), clock=SimClock(1_700_000_000.0)).start()
    events: list = []
    route = engine.submit_batch

    def slow(cmds, checked=None):
        time.sleep(0.3)  # a store waiting on a lock
        events.append(("stored", None))
        return route(cmds, checked)

    engine.submit_batch = slow
    answered_once(lambda answer: held_worker(engine, events, answer, window_ms=1, max_batch=500))
    assert [e[0] for e in events] == ["held", "batch", "resumed", "stored", "resumed"]  # let go before it ended


def test_a_connection_that_cannot_be_held_is_read_as_ever():
    engine = Engine(small_network(), clock=SimClock(1_700_000_000.0)).start()
    worker = answered_once(lambda answer: EngineWorker(engine, answer, Batching(window_ms=1), hold_reads=lambda: None))
    assert worker._held_since is None and worker.batches == 1


def writes_spread(n: int, gap_s: float, **kw) -> tuple[list, int]:
    """`n` stock receipts offered `gap_s` apart: their replies, and the commits that served them."""
    from domain.commands import ReceiveStock

    engine = Engine(small_network(), clock=SimClock(1_700_000_000.0)).start()

    async def go():
        async def answer(batch):
            raise AssertionError("writes answer their own futures")

        worker = EngineWorker(engine, answer, Batching(**kw))
        worker.start()
        futures = []
        for i in range(n):
            futures.append(worker.write(ReceiveStock(node="S1", lines=[Line("A", 1)], ref=f"po-{i}")))
            await asyncio.sleep(gap_s)
        results = await asyncio.gather(*futures)
        await worker.stop()
        return results, worker.write_groups

    return asyncio.run(go())


def test_writes_arriving_within_the_write_window_share_one_commit():
    results, commits = writes_spread(5, 0.01, write_window_ms=300)
    assert commits == 1 and [r.on_hand for r in results] == [{"A": 6 + i} for i in range(5)]  # each its own reply
    _, commits = writes_spread(5, 0.01, write_window_ms=0)  # no window: the idle engine takes the first at once
    assert commits >= 2
