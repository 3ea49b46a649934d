"""`o2o replenish` suggests from a store what the endpoint would, read-only."""
from __future__ import annotations

import csv
import json
from datetime import datetime
from zoneinfo import ZoneInfo

from adapters.cli import main
from domain.commands import Line, ReplenishPolicy, SellOverCounter, SuggestStock
from engine.app import Engine
from engine.clock import SimClock
from engine.store.network_file import dump_network
from tests.engine.network_fixture import small_network


def local(day: int, hhmm: str) -> float:
    h, m = map(int, hhmm.split(":"))
    return datetime(2026, 12, 1 + day, h, m, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


def test_the_suggestion_from_a_store_is_the_running_engine_s_and_is_written_per_node(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/events.db"
    network = small_network()
    dump_network(network, tmp_path / "town.json")
    engine = Engine(network, clock=SimClock(local(0, "07:00")), store=url).start()
    for k in range(4):
        engine.clock.advance_to(local(0, f"1{2 + k}:00"))
        engine.sell(SellOverCounter(node="S1", sale_id=f"p{k}", lines=[Line("A", 1)]))
        engine.sell(SellOverCounter(node="S3", sale_id=f"q{k}", lines=[Line("B", 1)]))
    engine.clock.advance_to(local(1, "06:00"))
    engine.sell(SellOverCounter(node="S2", sale_id="late", lines=[Line("A", 1)]))  # the store's last sale
    live = engine.handle(SuggestStock(policy=ReplenishPolicy()))
    stored = engine.last_notification_id()
    engine.close()

    out = tmp_path / "out"
    assert main(["replenish", "--store", url, "--network", str(tmp_path / "town.json"), "--out", str(out)]) == 0
    assert "1 days of demand" in capsys.readouterr().out
    written = json.loads((out / "suggestions.json").read_text())
    assert written["delivery_at"].startswith("2026-12-02T03:00:00")  # 11:00 in Shanghai the day after
    assert written["units_to_buy"] == live.units_to_buy > 0
    assert written["purchases"] == [{"node": p.node, "sku": p.sku, "qty": p.qty} for p in live.purchases]
    rows = list(csv.DictReader((out / "purchases.csv").open()))
    assert [(r["node"], r["sku"], int(r["qty"])) for r in rows] == [(p.node, p.sku, p.qty) for p in live.purchases]
    s1 = list(csv.DictReader((out / "nodes" / "S1.csv").open()))
    assert {r["node"] for r in s1} == {"S1"} and any(r["sku"] == "A" and int(r["buy"]) > 0 for r in s1)
    again = Engine(network, clock=SimClock(local(1, "07:00")), store=url).start()
    assert again.last_notification_id() == stored  # read-only
    again.close()


def test_a_bad_policy_or_node_is_named_and_nothing_is_written(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/events.db"
    network = small_network()
    dump_network(network, tmp_path / "town.json")
    Engine(network, clock=SimClock(local(0, "07:00")), store=url).start().close()
    args = ["replenish", "--store", url, "--network", str(tmp_path / "town.json"), "--out", str(tmp_path / "out")]
    assert main(args + ["--policy", '{"service_level": 2}']) == 2
    assert "--policy.service_level" in capsys.readouterr().err
    assert main(args + ["--node", "S1", "--node", "X9"]) == 2
    assert "--node[1]: unknown node 'X9'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_store_of_less_than_a_day_says_why_nothing_is_suggested(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/events.db"
    network = small_network()
    dump_network(network, tmp_path / "town.json")
    engine = Engine(network, clock=SimClock(local(0, "12:00")), store=url).start()
    engine.sell(SellOverCounter(node="S1", sale_id="p0", lines=[Line("A", 1)]))
    engine.close()
    assert main(["replenish", "--store", url, "--network", str(tmp_path / "town.json"), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "0 days of demand" in out and "nothing suggested" in out and "buy 0 units" in out
