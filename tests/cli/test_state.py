"""`o2o state` rebuilds stock and order counts from a store, read-only."""
from __future__ import annotations

import json

import pytest

from adapters.cli import main
from domain.commands import Line, SubmitOrder
from engine.app import Engine
from engine.clock import SimClock
from engine.store.network_file import load_sample

NOON = 1_767_225_600.0 + 4 * 3600  # 12:00 in Shanghai


def test_state_prints_stock_and_orders_of_a_sqlite_store_and_writes_nothing(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/events.db"
    network = load_sample()
    engine = Engine(network, clock=SimClock(NOON), store=url).start()
    store = network.nodes[0]
    reply = engine.submit(SubmitOrder(channel="app", external_id="1", lines=[Line(network.skus[0].id, 1)],
                                      lat=store.lat, lon=store.lon))
    events = engine.last_notification_id()
    live = engine.readmodels.state()
    engine.close()

    assert main(["state", "--store", url]) == 0
    out = capsys.readouterr().out
    assert f"({events} events)" in out and "orders  1" in out and store.id in out
    price = round(network.skus[0].price * 100)  # the order at the price list, in fen: kept, not refunded
    assert any(line.split() == ["online_revenue", f"{price:,}"] for line in out.splitlines()), out
    assert main(["state", "--store", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["orders"][reply.order_id]["status"] == live["orders"][reply.order_id]["status"]
    again = Engine(network, clock=SimClock(NOON), store=url).start()
    assert again.last_notification_id() == events
    again.close()


def test_state_of_a_missing_store_says_so(tmp_path, capsys):
    assert main(["state", "--store", f"sqlite:///{tmp_path}/none.db"]) == 2
    assert "no event store" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "state", "network", "solve", "bench"):
        assert command in out


def test_state_shows_a_member_s_points_buckets_with_their_local_expiry_and_the_points_liability(tmp_path, capsys):
    from domain.commands import SellOverCounter, SignUpMember
    from engine.config import EngineSettings, ExpiryRule, PointsRules

    url = f"sqlite:///{tmp_path}/events.db"
    network = load_sample()
    rules = PointsRules(expiry=ExpiryRule(kind="end_of_month"), pending_days=1)
    engine = Engine(network, EngineSettings(points=rules), clock=SimClock(NOON), store=url).start()
    engine.sign_up(SignUpMember(member="m1", node="S001"))
    engine.sell(SellOverCounter(node="S001", sale_id="p1", lines=[Line("SAN-001", 2)], member="m1"))  # 47.80
    engine.close()

    assert main(["state", "--store", url, "--member", "m1", "--at", "2026-01-02T11:00:00+08:00"]) == 0
    out = capsys.readouterr().out
    assert "points_liability     47" in out
    assert "balance 0  available 0  pending 47  reserved 0  owed 0" in out
    assert "pos/S001/p1" in out and "2026-02-01 00:00" in out  # the end of January, local time
    assert main(["state", "--store", url, "--member", "nobody"]) == 2
