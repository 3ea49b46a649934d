"""Benefit sharing end to end over NATS on a test clock: a member signed up
by a clerk in store A (S001) buys online (picked up at A) and at store B's
counter (S002) across two periods, the online order is refunded after
March closed; A's clerk, manager, store and dealer get the statements
computed by hand below (rule R1: clerk 2%, manager 1%, store 3%, dealer 2%
of the net paid; pools rounded half to even, shared by largest remainder)."""
from __future__ import annotations

import msgspec
import pytest

from domain.benefit import RoleRate, RuleSet
from domain.commands import (
    AcceptOrder, ClosePeriod, Discount, GetStatement, Line, PayStatements, PublishBenefitRules, ReceiveStock,
    RefundOrder, ReportProgress, SellOverCounter, SignUpMember, SubmitOrder,
)
from engine.store.network_file import SAMPLE_NETWORK, load_network
from tests.integration.conftest import run, running_service
from tests.integration.test_test_clock import ask, local, ok, set_clock

pytestmark = pytest.mark.e2e
A = ("clerk:c7", "manager:mgr-S001", "store:S001", "dealer:dealer-1")


def totals(reply: dict) -> dict[str, tuple[int, int, int]]:
    """party -> (opening, total, closing) of A's parties."""
    return {s["party"]: (s["opening"], s["total"], s["closing"]) for s in reply["statements"] if s["party"] in A}


def test_a_store_signed_members_purchases_online_and_in_another_store_across_two_periods(nats_server, tmp_path):
    net = load_network(SAMPLE_NETWORK)
    net = msgspec.structs.replace(net, nodes=[
        msgspec.structs.replace(n, manager="mgr-S001") if n.id == "S001" else n for n in net.nodes])
    path = tmp_path / "city.json"
    path.write_bytes(msgspec.json.encode(net))

    async def go():
        async with running_service(nats_server.url, test_clock="2026-03-20T10:00:00+08:00", network=str(path)) as (_, nc):
            rules = RuleSet(version="R1", effective_from=local(2026, 3, 20, 10), window_months=3, hold_days=7, roles={
                "clerk": RoleRate(200), "manager": RoleRate(100), "store": RoleRate(300), "dealer": RoleRate(200)})
            await ok(nc, "o2o.benefit.rules.publish", PublishBenefitRules(rules=rules))
            await ok(nc, "o2o.members.signup", SignUpMember(member="m1", node="S001", via="clerk", clerk="c7"))
            for node, sku in (("S001", "SAN-001"), ("S002", "TEA-003"), ("S002", "SAN-001")):
                await ok(nc, "o2o.stock.receive", ReceiveStock(node=node, lines=[Line(sku, 10)], ref="top-up"))

            # online, picked up at A: 2 x 23.90 less a 7.80 coupon = 40.00 -> pool 3.20: 0.80 / 0.40 / 1.20 / 0.80
            placed = await ok(nc, "o2o.orders.submit", SubmitOrder(
                channel="app", external_id="web-1", lines=[Line("SAN-001", 2, unit_price=2390)], mode="pickup",
                pickup_node="S001", member="m1", discounts=[Discount(780)]))
            oid = placed["order_id"]
            assert placed["node"] == "S001"
            await ok(nc, "o2o.orders.accept", AcceptOrder(order_id=oid))
            for step in ("picked", "ready", "collected"):
                await ok(nc, "o2o.orders.progress", ReportProgress(order_id=oid, step=step))

            # at B's counter on 03-25: 3 x 21.70 = 65.10 -> pool 5.208 -> 5.21; exact parts 1.302 / 0.651 / 1.953 /
            # 1.302 -> floors 1.30 / 0.65 / 1.95 / 1.30, the last fen to the largest remainder (the store's .3)
            await set_clock(nc, 2026, 3, 25, 15)
            await ok(nc, "o2o.pos.sale", SellOverCounter(node="S002", sale_id="b-1", member="m1",
                                                         lines=[Line("TEA-003", 3, unit_price=2170)]))
            march = await ok(nc, "o2o.benefit.statement", GetStatement(period="2026-03"))
            assert totals(march) == {"clerk:c7": (0, 210, 210), "manager:mgr-S001": (0, 105, 105),
                                     "store:S001": (0, 316, 316), "dealer:dealer-1": (0, 210, 210)}
            assert {s["status"] for s in march["statements"]} == {"draft"}

            await set_clock(nc, 2026, 4, 2, 9)
            closed = await ok(nc, "o2o.benefit.close", ClosePeriod(period="2026-03"))
            assert {s["status"] for s in closed["statements"]} == {"closed"} and totals(closed) == totals(march)

            # April 3rd: the online order comes back whole, after March closed: reversed at the frozen rates, here
            await set_clock(nc, 2026, 4, 3, 11)
            await ok(nc, "o2o.orders.refund", RefundOrder(order_id=oid, refund_id="rf-1", reason="changed mind",
                                                          return_to="S001"))
            await ok(nc, "o2o.orders.refund", RefundOrder(order_id=oid, refund_id="rf-1", reason="changed mind",
                                                          return_to="S001"))  # redelivered: reversed once
            # April 5th at B: 23.90 -> pool 1.912 -> 1.91; parts 0.478 / 0.239 / 0.717 / 0.478 -> floors 0.47 /
            # 0.23 / 0.71 / 0.47 = 1.88; 3 fen to the largest remainders: manager .9, clerk .8, dealer .8
            await set_clock(nc, 2026, 4, 5, 12)
            await ok(nc, "o2o.pos.sale", SellOverCounter(node="S002", sale_id="b-2", member="m1",
                                                         lines=[Line("SAN-001", 1, unit_price=2390)]))
            april = await ok(nc, "o2o.benefit.statement", GetStatement(period="2026-04"))
            assert totals(april) == {"clerk:c7": (0, -32, -32), "manager:mgr-S001": (0, -16, -16),
                                     "store:S001": (0, -49, -49), "dealer:dealer-1": (0, -32, -32)}
            store = next(s for s in april["statements"] if s["party"] == "store:S001")
            assert [(line["amount"], line["cites"], line["bp"]) for line in store["lines"]] == [
                (-120, "2026-03", 300), (71, None, 300)]
            assert totals(await ok(nc, "o2o.benefit.statement", GetStatement(period="2026-03"))) == totals(march)

            # March is paid once its lines are past their 7 hold days (the last from 03-25: from 04-01)
            await set_clock(nc, 2026, 4, 10, 10)
            paid = await ok(nc, "o2o.benefit.paid", PayStatements(period="2026-03", reference="bank-0410"))
            assert {s["party"]: s["paid"] for s in paid["statements"] if s["party"] in A} == {
                "clerk:c7": 210, "manager:mgr-S001": 105, "store:S001": 316, "dealer:dealer-1": 210}

            # April closes negative: nothing paid, the balance carried into May
            await set_clock(nc, 2026, 5, 3, 10)
            await ok(nc, "o2o.benefit.close", ClosePeriod(period="2026-04"))
            _, error = await ask(nc, "o2o.benefit.paid", PayStatements(period="2026-04", party="store:S001",
                                                                       reference="bank-0503"))
            assert error["Nats-Service-Error-Code"] == "409" and "carries forward" in error["Nats-Service-Error"]
            may = await ok(nc, "o2o.benefit.statement", GetStatement(period="2026-05", party="store:S001"))
            assert (may["statements"][0]["opening"], may["statements"][0]["payable"]) == (-49, 0)
            _, error = await ask(nc, "o2o.benefit.statement", GetStatement(period="2026-05", party="store:S999"))
            assert error["Nats-Service-Error-Code"] == "404"
            _, error = await ask(nc, "o2o.benefit.close", ClosePeriod(period="2026-06"))  # a future period
            assert error["Nats-Service-Error-Code"] == "409"
    run(go())
