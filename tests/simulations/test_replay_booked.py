"""A recorded night with booked orders replays to the same orders: orders for
a later slot and orders placed while the stores are closed (booked for the
first slot after opening) are booked again, and routed, their stock
reserved, when the record's timer routed them."""
from __future__ import annotations

import heapq
import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec

from adapters.bootstrap import build_engine
from domain.commands import AcceptOrder, ReportProgress
from engine.clock import SimClock
from engine.config import Config, StoreSettings
from engine.store.network_file import load_sample
from simulations import replay, results
from simulations.demo import customer_orders
from tests.simulations.test_replay_recorded import STEPS, orders_of


def record_a_night(url: str, seed: int = 3) -> dict:
    """From 22:40 to the next lunch, written as `o2o serve` writes it: orders
    for now before closing, orders for tomorrow's slots, orders placed at
    night that allow the first slot after opening; the service's timer a
    moment after each booked order falls due; nodes answering one command at
    a time. Returns the engine's KPIs."""
    network = load_sample()
    tz = ZoneInfo(network.timezone)
    evening = datetime(2026, 12, 1, 22, 40, tzinfo=tz)
    clock = SimClock(evening.timestamp() + 0.123)
    engine = build_engine(Config(store=StoreSettings(url=url)), network=network, clock=clock)
    rng = random.Random(seed)
    orders = iter(customer_orders(network, 40, seed, "night"))
    todo: list[tuple[float, int, str, object]] = []
    seq = 0

    def at(t: float, kind: str, item: object = None) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(todo, (t, seq, kind, item))

    now = clock.now()
    at(now + 1.0, "batch", [next(orders) for _ in range(4)])  # for now: the stores are open until 23:00
    tomorrow = evening + timedelta(days=1)
    for i, (h, m) in enumerate([(7, 30), (12, 0), (12, 0), (18, 30)]):  # a slot tomorrow, asked for
        start = tomorrow.replace(hour=h, minute=m)
        cmd = msgspec.structs.replace(next(orders), window_start=start, window_end=start + timedelta(minutes=30),
                                      promise_minutes=None)
        at(now + 60.0 + i * 7.3, "batch", [cmd])
    night = (evening + timedelta(minutes=50)).timestamp()  # 23:30: every node closed
    for i in range(3):
        at(night + i * 40.7, "batch", [msgspec.structs.replace(next(orders), later_ok=True) for _ in range(2)])
    seen: set[tuple[str, str]] = set()
    ticked: set[str] = set()
    end = tomorrow.replace(hour=20).timestamp()
    while todo:
        t, _, kind, item = heapq.heappop(todo)
        if t > end:
            break
        clock.advance_to(max(t, clock.now()))
        if kind == "batch":
            engine.submit_batch(item)
        elif kind == "tick":
            engine.expire_due()
        else:
            engine.handle(item)
        for key, r in list(engine.readmodels.orders.items()):
            if r.status == "booked" and key not in ticked:  # the service's timer ticks every second
                ticked.add(key)
                at(r.due_at + rng.uniform(0.0, 1.0), "tick")
            for node, part in r.parts.items():
                if part.status != "routed" or (key, node) in seen:
                    continue
                seen.add((key, node))
                accept = clock.now() + rng.uniform(5.0, 60.0)
                at(accept, "node", AcceptOrder(key, node))
                ready = max(accept + 60.0, r.window_start or 0.0)  # handed over in its window
                for k, step in enumerate(STEPS[r.mode]):
                    at(ready + 120.0 * k + rng.uniform(0, 30.0), "node", ReportProgress(key, step, node))
    kpis = engine.readmodels.kpis()
    engine.close()
    return kpis


def test_a_night_of_booked_orders_recorded_as_the_service_writes_it_replays_to_the_same_orders(tmp_path):
    url = f"sqlite:///{tmp_path}/night.db"
    live = record_a_night(url)
    network = load_sample()
    rec, views, events = replay.read(url, network)
    booked = [r for r in views.orders.values() if r.due_at is not None]
    assert len(booked) >= 6 and all(r.status == "completed" for r in booked)  # a night worth replaying
    assert live["orders_by_status"]["completed"] == len(views.orders)
    outcome = replay.run(rec, replay.replay_scenario(), network)
    try:
        replayed = results.kpis(outcome)
        recorded = results.kpis_of(views, network, None, events)
        assert orders_of(outcome.engine.readmodels) == orders_of(views)
        assert {k: v for k, v in replayed.items() if k != "stockouts_pos"} == \
               {k: v for k, v in recorded.items() if k != "stockouts_pos"}
        assert [(r.window_start, r.window_end, r.due_at, r.booked_nodes) for r in outcome.engine.readmodels.orders.values()] \
            == [(r.window_start, r.window_end, r.due_at, r.booked_nodes) for r in views.orders.values()]
        assert outcome.commands_refused == 0
    finally:
        outcome.engine.close()
