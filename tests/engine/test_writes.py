"""Write commands in one commit (engine.writes): each as if handled alone.
The same commands handled one by one and together must leave the same
stored events in the same order, the same replies and refusals, and the
same read models; a group is one save."""
from __future__ import annotations

from typing import Any

import msgspec
import pytest

from domain.commands import (
    AcceptOrder, AdjustStock, CancelOrder, CountStock, DeclineOrder, Line, ReceiveStock, RedeemPoints, ReportProgress,
    SellOverCounter, SignUpMember, SubmitOrder,
)
from domain.errors import Conflict, DomainError, InvalidInput
from engine.app import Engine, EngineSettings
from engine.clock import SimClock
from engine.readmodels import ReadModels
from engine.store.eventlog import EventLog
from engine.writes import reads_views
from tests.engine.network_fixture import at_km, small_network

T0 = 1_700_000_000.0
DAY = 86_400.0


def order(ext: str, km: float = 0.0, member: str | None = None, **lines: int) -> SubmitOrder:
    lat, lon = at_km(km)
    return SubmitOrder(channel="app", external_id=ext, lines=[Line(s, q) for s, q in (lines or {"A": 1}).items()],
                       lat=lat, lon=lon, member=member)


def engine_with_orders() -> tuple[Engine, SimClock, list[str]]:
    clock = SimClock(T0)
    e = Engine(small_network(), EngineSettings(), clock=clock, store="memory:").start()
    e.sign_up(SignUpMember(member="m1", node="S1"))
    replies = e.submit_batch([order("o1"), order("o2", km=2, B=1), order("o3", km=1, member="m1", A=1),
                              order("o4", km=4, A=2), order("o5", km=0.5, member="m1", B=1)])
    return e, clock, [r.order_id for r in replies]


def commands(ids: list[str]) -> list[Any]:
    a, b, c, d, m = ids
    return [
        AcceptOrder(order_id=a), ReportProgress(order_id=a, step="picked"),
        ReportProgress(order_id=b, step="delivered"),  # not accepted: refused, changes nothing
        AcceptOrder(order_id=b), AcceptOrder(order_id=c), DeclineOrder(order_id=d, reason="busy"),
        ReceiveStock(node="S1", lines=[Line("A", 3)], ref="po-7"),
        SellOverCounter(node="S2", sale_id="p1", lines=[Line("A", 1)]),
        SellOverCounter(node="S2", sale_id="p1", lines=[Line("A", 1)]),  # the same sale again: refused
        ReportProgress(order_id=a, step="dispatched"), ReportProgress(order_id=a, step="delivered"),
        ReportProgress(order_id=c, step="picked"), ReportProgress(order_id=c, step="dispatched"),
        ReportProgress(order_id=c, step="delivered"),  # a member's: points, read from the views' members
        SignUpMember(member="m2", node="S2"),
        SellOverCounter(node="S3", sale_id="p2", lines=[Line("B", 1)], member="m2"),  # m2 signed up just before
        SignUpMember(member="m2", node="S2"),  # again: refused by the members view, which saw the first
        RedeemPoints(member="m1", points=10**9, gift="mug", ref="r1"),  # more than held: refused
        AdjustStock(node="S3", sku="B", delta=-1, reason="damaged"), CountStock(node="K1", sku="C", counted=7),
        CancelOrder(order_id=m), AcceptOrder(order_id=m),  # cancelled just before: refused
    ]


def outcome(result: Any) -> Any:
    if isinstance(result, DomainError):
        return type(result).__name__, result.field, str(result)
    return msgspec.to_builtins(result)


def stored(e: Engine) -> list[tuple[Any, ...]]:
    return [(nid, type(ev).__qualname__, ev.originator_id, ev.originator_version,
             {k: v for k, v in vars(ev).items() if k != "timestamp"}) for nid, ev in e.stored_events()]


def alone(e: Engine, cmds: list[Any]) -> list[Any]:
    out = []
    for cmd in cmds:
        try:
            out.append(e.handle(cmd))
        except DomainError as err:
            out.append(err)
    return out


def test_commands_together_store_reply_and_read_as_each_handled_alone():
    one, _, ids = engine_with_orders()
    group, _, same = engine_with_orders()
    assert ids == same
    cmds = commands(ids)
    by_one, together = alone(one, cmds), group.handle_writes(cmds)
    assert [outcome(r) for r in together] == [outcome(r) for r in by_one]
    refused = [i for i, r in enumerate(together) if isinstance(r, DomainError)]
    assert refused == [2, 8, 16, 17, 21], [outcome(together[i]) for i in refused]
    assert stored(group) == stored(one)
    assert group.readmodels.state() == one.readmodels.state()
    rebuilt = ReadModels(small_network())
    for nid, event in group.stored_events():
        rebuilt.apply(event, nid)
    assert rebuilt.state() == group.readmodels.state()
    assert group.member("m1").points == one.member("m1").points > 0
    assert together[10].status == "handed_over" or together[10].status == "completed"
    assert together[1].status == "picked"  # its own state, not the dispatched one later commands made


def test_a_group_is_one_save_and_a_command_reading_what_it_changed_starts_the_next(monkeypatch):
    e, _, ids = engine_with_orders()
    saves = []
    record = EventLog.record
    monkeypatch.setattr(EventLog, "record", lambda self, events: saves.append(len(events)) or record(self, events))
    a, b, c, *_ = ids
    steps = [AcceptOrder(order_id=a), AcceptOrder(order_id=b), AcceptOrder(order_id=c),
             ReportProgress(order_id=a, step="picked"), ReceiveStock(node="S1", lines=[Line("A", 1)])]
    assert not any(isinstance(r, DomainError) for r in e.handle_writes(steps))
    assert saves == [5]
    saves.clear()
    member_sale = SellOverCounter(node="S2", sale_id="p9", lines=[Line("A", 1)], member="m1")
    e.handle_writes([ReportProgress(order_id=b, step="picked"), member_sale, ReportProgress(order_id=c, step="picked")])
    assert saves == [5]  # a member's sale joins: what the views hold of its credits is its own sale's (none yet)
    saves.clear()
    # c is the member m1's: its hand-over joins after another order's step, not after a step of its own
    e.handle_writes([ReportProgress(order_id=b, step="dispatched"), ReportProgress(order_id=c, step="dispatched")])
    e.handle_writes([ReportProgress(order_id=b, step="delivered"), ReportProgress(order_id=c, step="delivered")])
    assert saves == [2, 5]  # in one: the HandedOver and Consumed of each, and m1's PointsEarned
    saves.clear()
    sale = SellOverCounter(node="S2", sale_id="p10", lines=[Line("B", 1)])
    e.handle_writes([sale, SignUpMember(member="m9", node="S1")])
    assert saves == [2, 1]  # a sign-up reads the members view: after the sale's commit


def test_a_refused_command_that_had_changed_something_leaves_nothing_and_the_rest_run_again():
    """A till resends a sale after its two-day duplicate window: the node's guard no longer
    knows it, the sale itself does, after the node's event was made."""
    one, clock_one, ids = engine_with_orders()
    group, clock_group, _ = engine_with_orders()
    first = SellOverCounter(node="S2", sale_id="old", lines=[Line("A", 1)])
    for e, clock in ((one, clock_one), (group, clock_group)):
        e.handle(first)
        clock.advance_to(T0 + 3 * DAY)
        e.handle(SellOverCounter(node="S2", sale_id="later", lines=[Line("B", 1)]))  # the node forgets "old"
    cmds = [AcceptOrder(order_id=ids[0]), first, ReceiveStock(node="S2", lines=[Line("A", 2)], ref="po-8")]
    before = len(stored(group))
    together, by_one = group.handle_writes(cmds), alone(one, cmds)
    assert isinstance(together[1], Conflict) and "already recorded" in str(together[1])
    assert [outcome(r) for r in together] == [outcome(r) for r in by_one]
    assert stored(group) == stored(one) and len(stored(group)) == before + 2  # the accept and the receipt
    assert group.stock("S2", ["A"]).on_hand == one.stock("S2", ["A"]).on_hand


def test_only_write_commands_are_taken():
    e, _, ids = engine_with_orders()
    with pytest.raises(InvalidInput, match="type"):
        e.handle_writes([AcceptOrder(order_id=ids[0]), order("o9")])


@pytest.mark.parametrize("cmd, reads", [
    (AcceptOrder(order_id="x"), False), (ReportProgress(order_id="x", step="picked"), False),
    (SellOverCounter(node="S1", sale_id="p", lines=[Line("A", 1)]), False),
    (SellOverCounter(node="S1", sale_id="p", lines=[Line("A", 1)], member="m1"), False),
    (RedeemPoints(member="m1", points=1, gift="mug", ref="r1"), False),
    (SignUpMember(member="m3", node="S1"), True), (CancelOrder(order_id="x"), True),
])
def test_which_steps_read_the_views(cmd, reads):
    e, _, _ = engine_with_orders()
    assert reads_views(None, cmd) is reads


def test_two_parts_of_a_members_purchase_handed_over_in_one_call_credit_the_fixed_amount_once():
    """Before, `handle_many` ran both hand-overs in one transaction: the second did not see the
    first's credit in the benefit view and booked the purchase's fixed amount again."""
    from domain.benefit import RoleRate, RuleSet
    from domain.commands import GetStatement, PublishBenefitRules
    from engine.routing.types import RouterSettings

    rules = RuleSet(version="R1", effective_from=T0, window_months=3,
                    roles={"store": RoleRate(300, fixed=500), "clerk": RoleRate(200)})
    totals = []
    for how in ("alone", "node_steps", "handle_writes"):
        e = Engine(small_network(stock={"S1": {"A": 5}, "S2": {"B": 5}, "S3": {}, "K1": {}}),
                   EngineSettings(router=RouterSettings(allow_split=True)), clock=SimClock(T0), store="memory:").start()
        e.handle(PublishBenefitRules(rules=rules))
        e.sign_up(SignUpMember(member="m1", node="S1", via="clerk", clerk="c7"))
        lat, lon = at_km(0.0)
        r = e.submit(SubmitOrder(channel="app", external_id="o1", lat=lat, lon=lon, member="m1",
                                 lines=[Line("A", 1, unit_price=1000), Line("B", 1, unit_price=1000)]))
        assert sorted(p.node for p in r.parts) == ["S1", "S2"]
        steps = [cmd for p in r.parts for cmd in (
            AcceptOrder(order_id=r.order_id, node=p.node),
            *(ReportProgress(order_id=r.order_id, node=p.node, step=s) for s in ("picked", "dispatched", "delivered")))]
        out = alone(e, steps) if how == "alone" else getattr(e, how)(steps)
        assert not any(isinstance(x, DomainError) for x in out)
        totals.append({s.party: s.total for s in e.handle(GetStatement(period="2023-11")).statements})
    assert totals[0] == totals[1] == totals[2] == {"clerk:c7": 40, "store:S1": 560}  # 10% + 30% of 2,000, and 500 once


def test_members_purchases_credited_together_as_each_alone():
    """Members' hand-overs and counter sales, under rules that credit lines
    and a fixed amount per purchase, join a group unless an earlier part of
    the same purchase is in it: the same events, replies, credits and points
    as one by one, in fewer commits."""
    from domain.benefit import RoleRate, RuleSet
    from domain.commands import GetStatement, PublishBenefitRules
    from engine.routing.types import RouterSettings

    rules = RuleSet(version="R1", effective_from=T0, window_months=3, cap_per_order=700,
                    roles={"store": RoleRate(300, fixed=500), "clerk": RoleRate(200)})
    lat, lon = at_km(0.0)
    engines, saves = [], []
    for _ in range(2):
        e = Engine(small_network(stock={"S1": {"A": 9}, "S2": {"B": 9}, "S3": {}, "K1": {}}),
                   EngineSettings(router=RouterSettings(allow_split=True)), clock=SimClock(T0), store="memory:").start()
        e.handle(PublishBenefitRules(rules=rules))
        e.sign_up(SignUpMember(member="m1", node="S1", via="clerk", clerk="c7"))
        e.sign_up(SignUpMember(member="m2", node="S2", via="clerk", clerk="c8"))
        replies = e.submit_batch([
            SubmitOrder(channel="app", external_id="split", lat=lat, lon=lon, member="m1",  # a part at S1, one at S2
                        lines=[Line("A", 1, unit_price=1000), Line("B", 1, unit_price=1000)]),
            SubmitOrder(channel="app", external_id="m2", lat=lat, lon=lon, member="m2", lines=[Line("A", 2, unit_price=900)]),
            SubmitOrder(channel="app", external_id="guest", lat=lat, lon=lon, lines=[Line("A", 1, unit_price=800)]),
            SubmitOrder(channel="app", external_id="m1", lat=lat, lon=lon, member="m1", lines=[Line("A", 1, unit_price=700)]),
        ])
        engines.append((e, replies))
    (one, r1), (group, r2) = engines
    assert [r.order_id for r in r1] == [r.order_id for r in r2]
    assert [len(r.parts) for r in r1] == [2, 1, 1, 1]
    parts = [(r.order_id, p.node) for r in r1 for p in r.parts]
    cmds = [cmd for k in range(4) for oid, node in parts for cmd in (
        [AcceptOrder(order_id=oid, node=node)] if k == 0 else
        [ReportProgress(order_id=oid, node=node, step=("picked", "dispatched", "delivered")[k - 1])])]
    cmds.insert(-3, SellOverCounter(node="S2", sale_id="p1", lines=[Line("B", 2)], member="m2"))
    cmds.append(SellOverCounter(node="S1", sale_id="p2", lines=[Line("A", 1)], member="m1", points_used=5,
                                points_value=5))
    record = EventLog.record
    counted = lambda self, events: saves.append(len(events)) or record(self, events)  # noqa: E731
    by_one = alone(one, cmds)
    EventLog.record = counted
    try:
        together = group.handle_writes(cmds)
    finally:
        EventLog.record = record
    assert [outcome(r) for r in together] == [outcome(r) for r in by_one]
    assert not any(isinstance(r, DomainError) for r in together)
    assert stored(group) == stored(one)
    assert group.readmodels.state() == one.readmodels.state()
    credits = {s.party: s.total for s in group.handle(GetStatement(period="2023-11")).statements}
    assert credits == {s.party: s.total for s in one.handle(GetStatement(period="2023-11")).statements}
    assert credits["store:S1"] > 500 and credits["store:S2"] > 500  # the fixed amounts and the lines: credited
    assert group.member("m1").points == one.member("m1").points > 0
    assert len(saves) == 2  # the split order's second hand-over after its first; all the rest together


def test_a_group_that_fails_otherwise_has_each_command_handled_alone(monkeypatch, caplog):
    from engine.store.aggregates import EventOrder

    one, _, ids = engine_with_orders()
    group, _, _ = engine_with_orders()
    cmds = commands(ids)
    mark = EventOrder.mark
    failed = []

    def broken(self):  # the store failing mid-group, once
        if not failed:
            failed.append(True)
            raise RuntimeError("disk gone")
        return mark(self)

    monkeypatch.setattr(EventOrder, "mark", broken)
    together = group.handle_writes(cmds)
    assert failed and "not committed together" in caplog.text
    assert [outcome(r) for r in together] == [outcome(r) for r in alone(one, cmds)]
    assert stored(group) == stored(one)
