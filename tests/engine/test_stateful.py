"""Random sequences of every operation; after each step the invariants hold
and replaying the stored events reproduces the aggregates and read models."""
from __future__ import annotations

from collections import Counter

from uuid import UUID

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from domain import ids
from domain.benefit import RoleRate, RuleSet, period_end, period_of, window_end
from domain.commands import (
    AcceptOrder, AdjustStock, CancelOrder, CancelRedemption, ClosePeriod, CollectGift, CountStock, DeclineOrder,
    Discount, Line, PayStatements, PublishBenefitRules, RebindMember, ReceiveStock, RedeemPoints, RefundOrder, RefundSale, ReportProgress,
    ReturnLine, SellOverCounter, SignUpMember, SubmitOrder,
)
from domain.errors import DomainError
from engine.app import Engine, EngineSettings
from engine.clock import SimClock
from engine.config import ExpiryRule, PointsRules
from engine.handlers import gift_key
from engine.readmodels import ReadModels
from engine.readmodels.orders import held
from engine.routing.types import RouterSettings
from tests.engine.network_fixture import at_km, small_network

pytestmark = pytest.mark.slow  # 40 random sequences of 25 steps, each replayed

NODES = ["S1", "S2", "S3", "K1"]
SKUS = ["A", "B", "C"]
STATES = {"placed", "routed", "accepted", "picked", "ready", "dispatched", "completed", "cancelled", "rejected"}

nodes = st.sampled_from(NODES)
skus = st.sampled_from(SKUS)
qty = st.integers(min_value=1, max_value=4)
lines = st.dictionaries(skus, qty, min_size=1, max_size=3)
prices = st.one_of(st.none(), st.integers(0, 5000))  # minor units; None: the price list
money = st.fixed_dictionaries({"coupon": st.integers(0, 300), "fee": st.integers(0, 600), "points": st.integers(0, 40)})


class EngineMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.clock = SimClock(1_700_000_000.0 + 16.5 * 3600)  # 22:43 in Shanghai: points expire at midnight
        # no node holds every SKU: an order of all three is split (each part credited when handed over)
        self.network = small_network({"S1": {"A": 5, "B": 5}, "S2": {"B": 5, "C": 1}, "S3": {"A": 5, "C": 2},
                                      "K1": {"A": 50, "B": 50}})
        rules = PointsRules(expiry=ExpiryRule(kind="days", days=0), gift_pickup_hours=0.5)
        self.engine = Engine(self.network, EngineSettings(points=rules, router=RouterSettings(allow_split=True)),
                             clock=self.clock).start()  # split orders too: each part credited when handed over
        self.engine.handle(PublishBenefitRules(rules=RuleSet(
            version="R1", effective_from=self.clock.now(), window_months=1, excluded_skus=["C"],
            roles={"clerk": RoleRate(200), "manager": RoleRate(100), "store": RoleRate(300), "dealer": RoleRate(250)},
            vacant_to={"manager": "store", "dealer": "store"})))
        self.closed: dict[tuple[str, str], object] = {}  # closed statements' lines and totals as they were closed
        self.last_closed: str | None = None
        self.flow: Counter[tuple[str, str]] = Counter()  # received + adjustments - POS - handed over
        for node, stock in self.network.stock.items():
            for sku, q in stock.items():
                self.flow[(node, sku)] += q
        self.orders: list[str] = []
        self.sales: list[tuple[str, str]] = []  # (node, sale id)
        self.members: list[str] = []
        self.n = 0

    # -- helpers -------------------------------------------------------
    def record(self, oid: str):
        """An order's record: in memory, or read from the store once it left (engine.readmodels.orders)."""
        return self.engine.readmodels.order_view.record(oid, UUID(oid))

    def stored(self) -> int:
        return self.engine.recorder.max_notification_id() or 0

    def attempt(self, fn, *args):
        """Runs a command; a refused one must store nothing (but a refused
        order's batch still routes the orders that were waiting)."""
        before, waiting = self.stored(), bool(self.engine.readmodels.to_route)
        try:
            return fn(*args)
        except DomainError:
            assert self.stored() == before or (fn == self.engine.submit and waiting)
            return None

    def on_hand(self, node: str, sku: str) -> int:
        v = self.engine.readmodels.atp
        return int(v.on_hand[v.node_index[node], v.sku_index[sku]])

    # -- stock ---------------------------------------------------------
    @rule(node=nodes, lines=lines)
    def receive(self, node, lines):
        if self.attempt(self.engine.receive, ReceiveStock(node=node, lines=[Line(s, q) for s, q in lines.items()])):
            for s, q in lines.items():
                self.flow[(node, s)] += q

    @rule(node=nodes, sku=skus, delta=st.integers(-3, 3).filter(bool))
    def adjust(self, node, sku, delta):
        if self.attempt(self.engine.adjust, AdjustStock(node=node, sku=sku, delta=delta, reason="shrinkage")):
            self.flow[(node, sku)] += delta

    @rule(node=nodes, sku=skus, counted=st.integers(0, 8))
    def count(self, node, sku, counted):
        before = self.on_hand(node, sku)
        if self.attempt(self.engine.count, CountStock(node=node, sku=sku, counted=counted)):
            self.flow[(node, sku)] += counted - before

    @rule(node=nodes, lines=lines, with_member=st.booleans())
    def sell_over_counter(self, node, lines, with_member):
        self.n += 1
        member = self.members[0] if with_member and self.members else None
        cmd = SellOverCounter(node=node, sale_id=f"p{self.n}", lines=[Line(s, q) for s, q in lines.items()], member=member)
        if self.attempt(self.engine.sell, cmd):
            self.sales.append((node, f"p{self.n}"))
            for s, q in lines.items():
                self.flow[(node, s)] -= q

    @precondition(lambda self: self.sales)
    @rule(data=st.data(), whole=st.booleans(), back=st.sampled_from([None, *NODES]))
    def refund_sale(self, data, whole, back):
        node, sale_id = data.draw(st.sampled_from(self.sales))
        sku, q = data.draw(skus), data.draw(qty)
        self.n += 1
        cmd = RefundSale(node=node, sale_id=sale_id, refund_id=f"rf{self.n}", reason="returned",
                         lines=[] if whole else [ReturnLine(sku, q)], return_to=back, write_off=back is None)
        before = self.engine.readmodels.counter_sales.record(node, sale_id).refunded
        sale = self.engine.log.repository.get(ids.sale_id(node, sale_id))
        holding = {s: line.qty - sale.refunds.returned.get(s, 0) for s, line in sale.money.lines.items()}
        if self.attempt(self.engine.handle, cmd) is not None:
            after = self.engine.log.repository.get(ids.sale_id(node, sale_id))
            assert self.engine.readmodels.counter_sales.record(node, sale_id).refunded >= before
            if back:
                for s, h in holding.items():
                    self.flow[(back, s)] += h - (after.money.lines[s].qty - after.refunds.returned.get(s, 0))

    # -- orders --------------------------------------------------------
    @rule(km=st.floats(0, 6), lines=lines, pickup=st.booleans(), repeat=st.booleans(), price=prices, money=money)
    def submit(self, km, lines, pickup, repeat, price, money):
        if not repeat or not self.orders:
            self.n += 1
        lat, lon = at_km(km)
        member = self.members[-1] if self.members else None
        cmd = SubmitOrder(
            channel="app", external_id=f"o{self.n}", lines=[Line(s, q, unit_price=price) for s, q in lines.items()],
            mode="pickup" if pickup else "delivery", lat=lat, lon=lon, pickup_node="S2" if pickup else None,
            member=member, discounts=[Discount(money["coupon"])] if money["coupon"] else [],
            delivery_fee=0 if pickup else money["fee"],
            # points, a point a fen off: refused whole when the member lacks them or the goods cost less
            points_used=money["points"] if member else 0, points_value=money["points"] if member else 0,
        )
        reply = self.attempt(self.engine.submit, cmd)
        if reply is not None and reply.order_id not in self.orders:
            self.orders.append(reply.order_id)

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), step=st.sampled_from(["accept", "decline", "picked", "ready", "dispatched", "delivered", "collected", "cancel"]))
    def order_step(self, data, step):
        oid = data.draw(st.sampled_from(self.orders))
        record = self.record(oid)
        node = data.draw(st.sampled_from(sorted(record.parts))) if record.parts else None
        if step == "accept":
            self.attempt(self.engine.accept, AcceptOrder(order_id=oid, node=node))
        elif step == "decline":
            self.attempt(self.engine.decline, DeclineOrder(order_id=oid, node=node))
        elif step == "cancel":
            self.attempt(self.engine.cancel, CancelOrder(order_id=oid))
        else:
            part_lines = dict(record.parts[node].lines) if node else {}
            if self.attempt(self.engine.progress, ReportProgress(order_id=oid, step=step, node=node)):
                if step in ("delivered", "collected"):
                    for s, q in part_lines.items():
                        self.flow[(node, s)] -= q

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def a_part_is_handed_over(self, data):
        """A part's whole way in one step: split orders' parts get handed over too."""
        oid = data.draw(st.sampled_from(self.orders))
        record = self.record(oid)
        routed = sorted(node for node, p in record.parts.items() if p.status == "routed")
        if not routed:
            return
        node = data.draw(st.sampled_from(routed))
        lines = dict(record.parts[node].lines)
        last = "collected" if record.mode == "pickup" else "delivered"
        steps = ["picked", "ready", last] if record.mode == "pickup" else ["picked", "dispatched", last]
        if self.attempt(self.engine.accept, AcceptOrder(order_id=oid, node=node)) is None:
            return
        for step in steps:
            if self.attempt(self.engine.progress, ReportProgress(order_id=oid, step=step, node=node)) is None:
                return
        for s, q in lines.items():
            self.flow[(node, s)] -= q

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), whole=st.booleans(), back=st.sampled_from([None, *NODES]))
    def refund(self, data, whole, back):
        oid = data.draw(st.sampled_from(self.orders))
        sku, q = data.draw(skus), data.draw(qty)
        self.n += 1
        record = self.record(oid)
        holding = held(record)
        cmd = RefundOrder(order_id=oid, refund_id=f"rf{self.n}", reason="returned", return_to=back,
                          write_off=back is None and bool(holding), lines=[] if whole else [ReturnLine(sku, q)])
        if self.attempt(self.engine.handle, cmd) is not None and back and holding:  # goods back on a shelf
            after = held(self.record(oid))
            for s, h in holding.items():
                self.flow[(back, s)] += h - after.get(s, 0)

    @rule(minutes=st.integers(1, 10))
    def time_passes(self, minutes):
        self.clock.advance_to(self.clock.now() + minutes * 60)
        self.engine.expire_due()
        self.engine.route_pending()

    @rule()
    def a_month_passes_and_the_last_one_closes(self):
        tz = self.network.timezone
        last = period_of(self.clock.now(), tz)
        self.clock.advance_to(period_end(last, tz) + 3600)
        self.engine.expire_due()
        self.engine.route_pending()
        self.engine.handle(ClosePeriod(period=last))
        for key, statement in self.engine.readmodels.benefit.statements.items():
            if key[1] == last:
                self.closed[key] = msgspec.to_builtins((statement.lines, statement.total))
        self.last_closed = last

    @precondition(lambda self: self.last_closed)
    @rule(one=st.booleans())
    def the_last_closed_period_is_paid(self, one):
        party = next((p for p, period in sorted(self.closed) if period == self.last_closed), None) if one else None
        self.attempt(self.engine.handle, PayStatements(period=self.last_closed, party=party, reference="batch"))

    @rule(days=st.integers(0, 20), clerk=st.integers(0, 300), store=st.integers(0, 500), fixed=st.integers(0, 90),
          cap=st.one_of(st.none(), st.integers(0, 400)))
    def new_rules_are_published(self, days, clerk, store, fixed, cap):
        self.n += 1
        self.attempt(self.engine.handle, PublishBenefitRules(rules=RuleSet(
            version=f"R{self.n}", effective_from=self.clock.now() + days * 3600, window_months=1, excluded_skus=["C"],
            roles={"clerk": RoleRate(clerk, fixed=fixed), "store": RoleRate(store), "dealer": RoleRate(100)},
            cap_per_order=cap, vacant_to={"dealer": "store"})))

    @precondition(lambda self: self.members)
    @rule(node=nodes, clerk=st.sampled_from([None, "c0", "c9"]))
    def a_member_is_rebound(self, node, clerk):
        self.attempt(self.engine.handle, RebindMember(member=self.members[-1], node=node, clerk=clerk, reason="moved"))

    # -- members -------------------------------------------------------
    @rule(node=nodes)
    def sign_up(self, node):
        self.n += 1
        cmd = SignUpMember(member=f"m{self.n}", node=node, via="clerk", clerk=f"c{self.n % 3}")
        if self.attempt(self.engine.sign_up, cmd):
            self.members.append(f"m{self.n}")

    @precondition(lambda self: self.members)
    @rule(points=st.integers(1, 60))
    def redeem(self, points):
        self.n += 1
        self.attempt(self.engine.redeem, RedeemPoints(member=self.members[0], points=points, gift="mug", ref=f"r{self.n}"))

    @precondition(lambda self: self.members)
    @rule(points=st.integers(1, 30), node=st.sampled_from(["S1", "S2", "K1"]), sku=skus)
    def redeem_for_pickup(self, points, node, sku):
        self.n += 1
        self.attempt(self.engine.redeem, RedeemPoints(member=self.members[0], points=points, gift="gift", ref=f"g{self.n}",
                                                      pickup_node=node, gift_sku=sku))

    @precondition(lambda self: self.members)
    @rule(data=st.data(), collect=st.booleans())
    def collect_or_cancel_a_gift(self, data, collect):
        member = self.members[0]
        holds = self.engine.readmodels.members[member]["holds"]
        ref = data.draw(st.sampled_from(sorted(holds) + ["g-none"]))
        hold = holds.get(ref)
        if collect:
            if self.attempt(self.engine.handle, CollectGift(member=member, ref=ref)) and hold:
                self.flow[(hold["node"], hold["sku"])] -= 1
        else:
            self.attempt(self.engine.handle, CancelRedemption(member=member, ref=ref))

    # -- invariants ----------------------------------------------------
    @invariant()
    def stock_is_never_overcommitted_and_is_conserved(self):
        v = self.engine.readmodels.atp
        assert (v.reserved >= 0).all()
        assert (v.on_hand - v.reserved >= 0).all(), "reserved more than on hand"
        for (node, sku), expected in self.flow.items():
            assert self.on_hand(node, sku) == expected, (node, sku)

    @invariant()
    def each_order_is_in_exactly_one_known_state(self):
        for oid in self.orders:
            record = self.record(oid)
            assert record.status in STATES
            assert self.engine.log.repository.get(ids.order_id(record.channel, record.external_id)).status == record.status

    @invariant()
    def money_is_never_made_or_lost(self):
        """Per order and sale, to the minor unit: paid = kept + refunded, never more
        refunded than paid or than a line was paid; ended orders keep nothing."""
        for oid in self.orders:
            r = self.record(oid)
            order = self.engine.log.repository.get(ids.order_id(r.channel, r.external_id))
            m = order.money
            assert m.paid == sum(line.paid for line in m.lines.values()) + m.delivery_fee == r.paid
            assert 0 <= order.refunds.total == r.refunded <= m.paid and order.kept == r.paid - r.refunded
            for s, (cash, _) in order.refunds.refunded.items():
                assert 0 <= cash <= m.lines[s].paid and order.refunds.returned[s] <= m.lines[s].qty
            if r.status in ("cancelled", "rejected"):
                assert order.kept == 0
        for node, sale_id in self.sales:
            sale = self.engine.log.repository.get(ids.sale_id(node, sale_id))
            record = self.engine.readmodels.counter_sales.record(node, sale_id)
            assert 0 <= sale.refunds.total == record.refunded <= sale.money.paid == record.paid

    @invariant()
    def points_held_are_never_negative_and_every_gift_held_holds_its_unit(self):
        """A refund may take back points already spent: the balance then goes
        below zero by what is owed (allowed by default), never further."""
        members = self.engine.readmodels.members
        assert all(m["owed"] >= 0 and m["points"] + m["owed"] >= 0 for m in members.values())
        assert self.engine.readmodels.kpis()["points_liability"] == sum(m["points"] + m["owed"] for m in members.values())
        inventories = self.engine.inventories()
        held = {(node, key) for node, inv in inventories.items() for key in inv.reservations if key.startswith("gift/")}
        assert held == {(h["node"], gift_key(name, ref)) for name, m in members.items() for ref, h in m["holds"].items()}
        for name, m in members.items():
            aggregate = self.engine.log.repository.get(ids.member_id(name))
            assert aggregate.points == m["points"] and aggregate.reserved == sum(h["points"] for h in m["holds"].values())
            assert all(b.held == m["buckets"][k]["held"] for k, b in aggregate.buckets.items()), "reserved points moved"

    @invariant()
    def benefit_statements_add_up_never_change_once_closed_and_reverse_exactly_at_the_frozen_rate(self):
        view = self.engine.readmodels.benefit
        versions = {v.version: v for v in view.versions}
        members = {m: self.engine.log.repository.get(ids.member_id(m)) for m in self.members}
        keys: set[str] = set()
        pools: dict[tuple[str, str], tuple[int, int, str]] = {}  # (source, sku) -> credited, its pool, the version
        for key, statement in view.statements.items():
            assert statement.total == sum(line.amount for line in statement.lines)
            if key in self.closed:
                assert msgspec.to_builtins((statement.lines, statement.total)) == self.closed[key], "a closed statement changed"
            for line in statement.lines:
                assert line.key not in keys, "a line booked twice"
                keys.add(line.key)
                c = view.credits[line.root, line.sku]
                assert line.bp == c.roles[line.role][2] and line.version == c.roles[line.role][3], "not the frozen rate"
                if line.amount > 0:
                    amount = pools.get((line.source, line.sku), (0,))[0]
                    pools[line.source, line.sku] = (amount + line.amount, line.pool, line.version)
                    rules = versions[line.version]
                    member = self.engine.log.repository.get(ids.order_id(*self.channel_of(line.root))).member \
                        if line.root.startswith("order/") else self.engine.log.repository.get(
                            ids.sale_id(*line.root.split("/")[1:])).member
                    assert line.at < window_end(members[member].signed_up_at, rules, self.network.timezone)
        for (source, sku), (amount, pool, version) in pools.items():  # the parts add up to the pool to the fen
            assert amount == pool or (versions[version].cap_per_order is not None and amount <= pool), (source, sku)
        for (root, sku), c in view.credits.items():
            assert 0 <= c.reversed_base <= c.base
            for role, (_, amount, *_rest) in c.roles.items():
                assert 0 <= c.reversed.get(role, 0) <= amount
            if root.startswith("order/") and sku:  # credited only for goods handed over
                r = self.record(root.split("/")[1])
                assert any(p.status == "handed_over" and sku in p.lines for p in r.parts.values())
            assert sku != "C", "an excluded SKU was credited"

    def channel_of(self, root: str) -> tuple[str, str]:
        r = self.record(root.split("/")[1])
        return r.channel, r.external_id

    @invariant()
    def replay_reproduces_aggregates_and_read_models(self):
        live = self.engine.readmodels
        rebuilt = ReadModels(self.network, live.retain_s, live.events_of)  # with the retention: the same records leave
        for nid, event in self.engine.stored_events():
            rebuilt.apply(event, nid)
        assert rebuilt.state() == self.engine.readmodels.state()
        for node, live in self.engine.inventories().items():
            replayed = self.engine.log.repository.get(ids.inventory_id(node))
            assert (replayed.on_hand, replayed.reserved, replayed.reservations) == (live.on_hand, live.reserved, live.reservations)


EngineMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_engine_state_machine = EngineMachine.TestCase
