"""A day the service recorded replays to the same day: orders routed in the
batches the record decided them in, node actions at their recorded times,
the service's timer when it ran, the other recorded commands at theirs."""
from __future__ import annotations

import heapq
from collections import Counter
import json
import random
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from adapters.bootstrap import build_engine
from adapters.cli import main
from domain.benefit import RoleRate, RuleSet
from domain.commands import (
    AcceptOrder, BindIdentity, CountStock, DeclineOrder, Line, PublishBenefitRules, ReceiveStock, RedeemPoints,
    ReportProgress, SellOverCounter, SignUpMember,
)
from domain.errors import DomainError
from engine.clock import SimClock
from engine.config import Config, StoreSettings
from engine.store.network_file import SAMPLE_NETWORK, load_sample
from simulations import replay, results
from simulations.demo import customer_orders, lunch_time

STEPS = {"delivery": ["picked", "dispatched", "delivered"], "pickup": ["picked", "ready", "collected"]}


def record_as_serve_does(url: str, seed: int = 7, n_orders: int = 60) -> tuple[dict, Counter]:
    """A lunch hour written through the engine the way `o2o serve` writes it:
    batches of new orders at irregular moments (each routes what waits too),
    every node action, sale and sign-up in a transaction of its own, the
    timer (expiry, then routing again) now and then, a part never answered
    that expires. Returns the engine's KPIs and the commands it refused, by
    kind and error."""
    network = load_sample()
    rng = random.Random(seed)
    clock = SimClock(lunch_time(network.timezone) + 0.123)
    engine = build_engine(Config(store=StoreSettings(url=url)), network=network, clock=clock)
    stores = [n.id for n in network.nodes if n.kind == "store"]
    engine.handle(PublishBenefitRules(RuleSet(
        version="R1", effective_from=clock.now() + 1.0, window_months=3, hold_days=0,
        roles={"clerk": RoleRate(200), "store": RoleRate(300)})))
    members = [f"m{i}" for i in range(5)]
    for m in members:
        clock.advance_to(clock.now() + rng.uniform(0.001, 0.05))
        node = rng.choice(stores)
        engine.sign_up(SignUpMember(m, node, via="clerk", clerk=f"{node}-clerk1"))
        engine.bind(BindIdentity(m, "wechat", f"wx-{m}"))
    orders = iter(customer_orders(network, n_orders, seed, "rr"))
    todo: list[tuple[float, int, str, object]] = []
    seq = 0

    def later(dt: float, kind: str, item: object = None) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(todo, (clock.now() + dt, seq, kind, item))

    for i in range(0, n_orders, 4):
        later(i * 0.7 + rng.uniform(0, 0.6), "batch", rng.randint(1, 5))
    for i in range(8):
        later(rng.uniform(0, 20), "sale", i)
    later(15.3, "count")
    later(9.9, "receive")
    refused: Counter = Counter()
    unanswered = 2  # parts no node answers: the timer expires them
    seen: set[tuple[str, str]] = set()
    while todo:
        t, _, kind, item = heapq.heappop(todo)
        clock.advance_to(max(t, clock.now()))
        if kind == "batch":
            cmds = [o for o in (next(orders, None) for _ in range(item)) if o is not None]
            cmds = [msgspec.structs.replace(c, member=rng.choice(members)) if rng.random() < 0.3 else c
                    for c in cmds]  # some members order, as the demo's customers do
            answered = engine.submit_batch(cmds)
        elif kind == "tick":
            engine.expire_due()
            if engine.readmodels.to_route:
                engine.route_pending()
            answered = []
        else:
            answered = []
            try:
                if kind == "node":
                    engine.handle(item)
                elif kind == "sale":
                    node = rng.choice(stores)
                    sku = rng.choice(sorted(s for s, q in network.stock[node].items() if q > 0))
                    engine.sell(SellOverCounter(node, f"pos{item}", [Line(sku, 1)], member=rng.choice(members)))
                elif kind == "count":
                    engine.count(CountStock("S001", next(iter(network.stock["S001"])), 3))
                elif kind == "receive":
                    engine.receive(ReceiveStock("S002", [Line(s, 5) for s in list(network.stock["S002"])[:3]],
                                                ref="noon delivery"))
            except DomainError as e:  # refused, as serve refuses it: nothing written, nothing to replay
                refused[kind, type(e).__name__] += 1
        # parts routed now: the node answers later, one command at a time
        for key, r in list(engine.readmodels.orders.items()):
            for node, part in r.parts.items():
                if part.status != "routed" or (key, node) in seen:
                    continue
                seen.add((key, node))
                if unanswered and rng.random() < 0.1:
                    unanswered -= 1
                    later(engine.settings.accept_timeout_s + rng.uniform(0.1, 0.9), "tick")
                    continue
                if rng.random() < 0.15:
                    later(rng.uniform(0.2, 2.0), "node", DeclineOrder(key, node, reason="too busy"))
                    later(rng.uniform(2.0, 3.0), "tick")  # the service's timer routes it again
                    continue
                at = rng.uniform(0.2, 2.0)
                later(at, "node", AcceptOrder(key, node))
                for k, step in enumerate(STEPS[r.mode]):
                    later(at + 0.5 * (k + 1) + rng.uniform(0, 0.4), "node", ReportProgress(key, step, node))
    clock.advance_to(clock.now() + 0.5)
    rich = max(members, key=lambda m: engine.member(m).points)
    if engine.member(rich).points:
        engine.redeem(RedeemPoints(rich, 1, gift="sticker", ref="g1"))
    kpis = engine.readmodels.kpis()
    engine.close()
    return kpis, refused


def orders_of(views) -> dict:
    return {k: (r.status, sorted(r.parts), r.handed_over_at, sorted(p.routed_at for p in r.parts.values()))
            for k, r in views.orders.items()}


def replayed_as_recorded(url: str) -> replay.Recorded:
    """Replays the store against its own network: the same KPIs (but the
    counter's stock-outs, which no record holds) and the same orders, times included."""
    network = load_sample()
    rec, views, events = replay.read(url, network)
    outcome = replay.run(rec, replay.replay_scenario(), network)
    try:
        recorded = results.kpis_of(views, network, None, events)
        replayed = results.kpis(outcome)
        assert {k: v for k, v in replayed.items() if k != "stockouts_pos"} == \
               {k: v for k, v in recorded.items() if k != "stockouts_pos"}
        assert orders_of(outcome.engine.readmodels) == orders_of(views)
        assert outcome.commands_refused == 0
    finally:
        outcome.engine.close()
    return rec


def test_a_day_written_as_the_service_writes_it_replays_to_the_same_orders_and_kpis(tmp_path):
    url = f"sqlite:///{tmp_path}/served.db"
    live, refused = record_as_serve_does(url)
    rec = replayed_as_recorded(url)
    assert refused == Counter()  # every command of this day is one serve accepts
    assert live["reroutes"] > 0 and live["orders_by_status"]["completed"] > 0  # a day worth replaying
    assert rec.expired and len(rec.batches) > 10 and rec.day.sales  # parts expired; many batches; counter sales


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n_orders=st.integers(5, 80))
def test_any_day_written_as_the_service_writes_it_replays_to_the_same_orders(tmp_path_factory, seed, n_orders):
    url = f"sqlite:///{tmp_path_factory.mktemp('served')}/served.db"
    _, refused = record_as_serve_does(url, seed, n_orders)
    replayed_as_recorded(url)
    assert {kind for kind, _ in refused} <= {"sale"}  # only a counter sale may find its stock taken online


@pytest.mark.e2e
@pytest.mark.slow
def test_the_demos_store_replays_to_the_recorded_kpis(tmp_path):
    data = tmp_path / "o2o-data"
    demo = subprocess.run([sys.executable, "-m", "adapters.cli", "demo", "--data", str(data), "--orders", "150",
                           "--intake", "50"], capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert main(["replay", "--events", f"sqlite:///{data / 'events.db'}", "--network", str(SAMPLE_NETWORK),
                 "--out", str(tmp_path / "replay")]) == 0
    out = json.loads((tmp_path / "replay" / "kpis.json").read_text())
    recorded, replayed = out["variants"]["recorded"], out["variants"]["replayed"]
    assert recorded["completed"] > 0 and recorded["reroutes"] > 0
    assert recorded["stockouts_pos"] is None  # a stored sale never says what the customer went without
    assert {k: v for k, v in replayed.items() if k != "stockouts_pos"} == \
           {k: v for k, v in recorded.items() if k != "stockouts_pos"}
    assert out["nodes"]["recorded"] == out["nodes"]["replayed"]


@pytest.mark.e2e
@pytest.mark.slow
def test_a_store_bench_load_kept_replays_to_the_recorded_orders(tmp_path):
    kept = tmp_path / "kept"
    bench = subprocess.run([sys.executable, "-m", "adapters.cli", "bench", "load", "--rate", "200", "--seconds", "2",
                            "--intake", "50", "--no-echo", "--keep", str(kept), "--out", str(tmp_path / "bench")],
                           capture_output=True, text=True, timeout=300)
    assert bench.returncode == 0, bench.stderr[-2000:]
    assert main(["replay", "--events", f"sqlite:///{kept / 'session-0' / 'events.db'}",
                 "--network", str(kept / "network.json"), "--out", str(tmp_path / "replay")]) == 0
    out = json.loads((tmp_path / "replay" / "kpis.json").read_text())
    recorded, replayed = out["variants"]["recorded"], out["variants"]["replayed"]
    assert recorded["orders"] >= 450
    assert {k: v for k, v in replayed.items() if k != "stockouts_pos"} == \
           {k: v for k, v in recorded.items() if k != "stockouts_pos"}
    assert out["nodes"]["recorded"] == out["nodes"]["replayed"]
