"""The engine: one command method per operation; it loads aggregates, asks
the router, records the decisions as events and saves each command (or
batch of orders) in one transaction. Read models are fed after each commit.
"""
from __future__ import annotations

import hashlib
import math
from typing import Any, Callable, TypeVar
from uuid import UUID

import msgspec
import numpy as np
from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.persistence import IntegrityError

from domain import ids
from domain.commands import (
    AcceptOrder, AdjustStock, BindIdentity, CancelOrder, CountStock, DeclineOrder, FindStock, Line,
    ReceiveStock, RedeemPoints, ReportProgress, SellOverCounter, SignUpMember, SubmitOrder,
)
from domain.errors import Conflict, DomainError, InvalidInput, NotFound
from domain.inventory import NodeInventory
from domain.member import Member
from domain.network import Network, validate
from domain.order import Loss, Order, RoutedPart
from engine.clock import Clock, SystemClock
from engine.memory import untraced
from engine.persistence import EventLog
from engine.readmodels import Projections
from engine.geo import haversine_km
from engine.replies import MemberReply, NodeStock, OrderReply, StockNearby, StockReply, order_reply
from engine.routing.types import Decision, NetworkState, OrderToRoute, Router, RouterSettings

T = TypeVar("T")


class EngineSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    router: RouterSettings = RouterSettings()
    accept_timeout_s: float = 300.0  # a node must accept or decline within this
    delivery_promise_minutes: int = 45
    pickup_promise_minutes: int = 30
    points_per_rmb: float = 1.0
    phone_salt: str = "o2o-engine-dev-salt"  # set a secret one in production
    max_retries: int = 5  # on optimistic-concurrency conflicts
    inventory_snapshot_interval: int = 200


class UnitOfWork:
    """Aggregates touched by one command; saved together or not at all."""

    def __init__(self, engine: "Engine"):
        self.engine = engine
        self.touched: dict[UUID, Any] = {}

    def add(self, aggregate: T) -> T:
        self.touched[aggregate.id] = aggregate
        return aggregate

    def inventory(self, node: str) -> NodeInventory:
        agg = self.engine._inventory(node)
        return self.add(agg)

    def order(self, order_id: str) -> Order:
        oid = _uuid(order_id, "order_id")
        if oid in self.touched:
            return self.touched[oid]
        cached = self.engine._orders.get(oid)
        if cached is not None:
            return self.add(cached)
        try:
            return self.add(self.engine.repository.get(oid))
        except AggregateNotFoundError:
            raise NotFound("order_id", f"unknown order {order_id}") from None

    def member(self, member: str) -> Member:
        mid = ids.member_id(member)
        if mid in self.touched:
            return self.touched[mid]
        try:
            return self.add(self.engine.repository.get(mid))
        except AggregateNotFoundError:
            raise NotFound("member", f"unknown member {member}") from None


def _uuid(value: str, field: str) -> UUID:
    try:
        return UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise InvalidInput(field, f"not an order id (a UUID): {value!r}") from None


class Engine(EventLog):
    # class-level so the library enables its snapshot store; the instance
    # sets the interval from the settings
    snapshotting_intervals = {NodeInventory: EngineSettings().inventory_snapshot_interval}

    def __init__(
        self,
        network: Network,
        settings: EngineSettings = EngineSettings(),
        clock: Clock | None = None,
        router: Router | None = None,
        env: dict[str, str] | None = None,
    ):
        self.snapshotting_intervals = {NodeInventory: settings.inventory_snapshot_interval}
        super().__init__(env=env)
        self.network = validate(network)
        self.settings = settings
        self.clock = clock or SystemClock()
        if router is None:
            from engine.routing.router import make_router

            router = make_router(settings.router)
        self.router = router
        self.nodes = {n.id: n for n in network.nodes}
        self.skus = {s.id: s for s in network.skus}
        self.views = Projections(network)
        self._inventories: dict[str, NodeInventory] = {}  # this process writes these nodes
        self._orders: dict[UUID, Order] = {}  # open orders, as last saved
        self._snapshot_at: dict[UUID, int] = {}  # version of the last snapshot taken (or of the aggregate loaded)
        # called with each commit's notifications, in commit order, after the read models saw them
        self.on_commit: list[Callable[[list[Any]], None]] = []
        self.catch_up()
        self.open_network()

    # -- plumbing ------------------------------------------------------
    def catch_up(self) -> int:
        """Feeds the read models with events stored since they last saw one."""
        n = 0
        for notification_id, event in self.stored_events(self.views.last_notification_id + 1):
            self.views.apply(event, notification_id)
            n += 1
        return n

    def _inventory(self, node: str) -> NodeInventory:
        inv = self._inventories.get(node)
        if inv is None:
            if node not in self.nodes:
                raise NotFound("node", f"unknown node {node!r}")
            inv = self.repository.get(ids.inventory_id(node))
            self._inventories[node] = inv
            self._snapshot_at.setdefault(inv.id, inv.version)  # or earlier: the next one comes no later
        return inv

    def _transaction(self, work: Callable[[UnitOfWork], T]) -> T:
        """Runs `work` and saves what it touched in one save; on a version
        conflict reloads and runs it again. Any error discards what it did."""
        for _ in range(self.settings.max_retries + 1):
            uow = UnitOfWork(self)
            try:
                result = work(uow)
                recordings = self._save(uow.touched.values())
            except IntegrityError:
                self._forget(uow, stale=True)
                self.catch_up()
                continue
            except BaseException:
                self._forget(uow, stale=False)
                raise
            self._remember(uow)
            for rec in recordings:
                self.views.apply(rec.domain_event, rec.notification.id)
            if self.on_commit and recordings:
                notes = [rec.notification for rec in recordings]
                for hook in self.on_commit:
                    hook(notes)
            return result
        raise Conflict("store", f"gave up after {self.settings.max_retries} concurrent-write conflicts")

    def _save(self, aggregates) -> list:
        """Application.save (eventsourcing is pinned) without its runtime
        Protocol isinstance checks per object (half the cost of a small
        batch's save), and snapshots taken of the aggregate in memory: the
        library reloads it from the store first (a tenth of a large batch)."""
        processing = ProcessingEvent()
        due = []  # aggregates due a snapshot
        for agg in aggregates:
            new = agg.collect_events()
            processing.events.extend(new)
            processing.aggregates[agg.id] = agg
            if new and self.snapshots is not None and self._snapshot_due(agg):
                due.append(agg)
        recordings = self._record(processing)
        if due:
            self.snapshots.put([getattr(type(agg), "Snapshot", self.snapshot_class).take(agg) for agg in due])
            for agg in due:
                self._snapshot_at[agg.id] = agg.version
        return recordings

    def _snapshot_due(self, agg: Any) -> bool:
        """Every `interval` events, or, once the open reservations and recent
        counter sales outnumber that, every as many events as they are: a
        snapshot's size grows with them (100 KB at 1,600 open orders), and
        snapshotting that every 200 events made each order dearer the more
        were open (81 -> 116 us over 100,000 unaccepted orders)."""
        interval = self.snapshotting_intervals.get(type(agg))
        if not interval:
            return False
        size = len(agg.reservations) + len(agg.pos_sales) if isinstance(agg, NodeInventory) else 0
        return agg.version - self._snapshot_at.get(agg.id, 0) >= max(interval, size)

    def _forget(self, uow: UnitOfWork, stale: bool) -> None:
        """Drops what a failed command changed (or, after a version conflict,
        everything it touched): the next command reloads it from the store.
        Guards raise before any change, so a refused command usually drops nothing."""
        for agg in uow.touched.values():
            if not stale and not agg.pending_events:
                continue
            if isinstance(agg, NodeInventory):
                self._inventories.pop(agg.node_id, None)
            else:
                self._orders.pop(agg.id, None)

    def _remember(self, uow: UnitOfWork) -> None:
        """Keeps open orders in memory (this process is their only writer); finished ones leave."""
        for agg in uow.touched.values():
            if isinstance(agg, Order):
                if agg.outcome is None:
                    self._orders[agg.id] = agg
                else:
                    self._orders.pop(agg.id, None)

    def open_network(self) -> int:
        """Opens an inventory for every node that has none, with its starting stock."""
        missing = [n for n in self.network.nodes if ids.inventory_id(n.id) not in self.views.atp.rows]
        if not missing:
            return 0
        at = self.clock.now()
        safety = {s.id: s.safety_stock for s in self.network.skus if s.safety_stock}

        def work(uow: UnitOfWork) -> int:
            for node in missing:
                inv = uow.add(NodeInventory(node_id=node.id, at=at))
                start = {k: v for k, v in self.network.stock.get(node.id, {}).items() if v > 0}
                if start:
                    inv.receive(start, ref="opening stock", at=at)
                inv.set_safety_stock(safety, at=at)
                self._inventories[node.id] = inv
            return len(missing)

        return self._transaction(work)

    # -- orders --------------------------------------------------------
    def submit(self, cmd: SubmitOrder) -> OrderReply:
        result = self.submit_batch([cmd])[0]
        if isinstance(result, DomainError):
            raise result
        return result

    def submit_batch(self, cmds: list[SubmitOrder]) -> list[OrderReply | DomainError]:
        """Routes new orders together with those waiting to be routed again,
        and stores everything in one transaction. A repeat of a known
        (channel, external id) gets the first answer and stores nothing."""
        results, answered = self._transaction(lambda uow: self._submit(uow, cmds))
        for i, key, repeat in answered:
            results[i] = order_reply(self.views.orders[key], repeat=repeat)
        return results

    def route_pending(self) -> int:
        """Routes orders waiting after a decline or expiry (the next batch)."""
        if not self.views.to_route:
            return 0
        self.submit_batch([])
        return 1

    def _submit(self, uow: UnitOfWork, cmds: list[SubmitOrder]) -> tuple[list[Any], list[tuple[int, str, bool]]]:
        at = self.clock.now()
        results: list[Any] = [None] * len(cmds)
        fresh: dict[UUID, Order] = {}
        answered: list[tuple[int, str, bool]] = []  # replies are read from the views after commit
        for i, cmd in enumerate(cmds):
            oid = ids.order_id(cmd.channel, cmd.external_id)
            repeat = str(oid) in self.views.orders or oid in fresh
            if not repeat:
                try:
                    fresh[oid] = uow.add(self._place(cmd, at))
                except DomainError as e:
                    results[i] = untraced(e)  # kept in the results: see engine.memory
                    continue
            answered.append((i, str(oid), repeat))
        waiting = [uow.order(k) for k in self.views.to_route if UUID(k) not in fresh]
        batch = list(fresh.values()) + waiting
        if batch:
            self._route(uow, batch, at)
        return results, answered

    def check_order(self, cmd: SubmitOrder) -> tuple[dict[str, int], float, float]:
        """What can be said of an order without routing it: raises a DomainError
        naming the field, so a front end can answer bad input at once.
        Returns the merged lines and the location."""
        lines: dict[str, int] = {}
        for k, line in enumerate(cmd.lines):
            if line.sku not in self.skus:
                raise NotFound(f"lines[{k}].sku", f"unknown SKU {line.sku!r}")
            lines[line.sku] = lines.get(line.sku, 0) + line.qty
        if cmd.mode == "pickup":
            if not cmd.pickup_node:
                raise InvalidInput("pickup_node", "a pickup order names the store the customer chose")
            node = self.nodes.get(cmd.pickup_node)
            if node is None:
                raise NotFound("pickup_node", f"unknown node {cmd.pickup_node!r}")
            if "pickup" not in node.modes:
                raise InvalidInput("pickup_node", f"node {cmd.pickup_node!r} does not offer pickup")
            lat, lon = (cmd.lat, cmd.lon) if cmd.lat is not None and cmd.lon is not None else (node.lat, node.lon)
        else:
            if cmd.lat is None or cmd.lon is None:
                raise InvalidInput("lat" if cmd.lat is None else "lon", "a delivery order needs the delivery location")
            lat, lon = cmd.lat, cmd.lon
        if cmd.member is not None and cmd.member not in self.views.members:
            raise NotFound("member", f"unknown member {cmd.member!r}")
        return lines, lat, lon

    def _place(self, cmd: SubmitOrder, at: float) -> Order:
        lines, lat, lon = self.check_order(cmd)
        minutes = cmd.promise_minutes or (
            self.settings.pickup_promise_minutes if cmd.mode == "pickup" else self.settings.delivery_promise_minutes
        )
        value = round(sum(self.skus[s].price * q for s, q in lines.items()), 2)
        return Order.place(
            channel=cmd.channel, external_id=cmd.external_id, lines=lines, value=value, mode=cmd.mode,
            lat=lat, lon=lon, promised_at=at + minutes * 60, at=at, pickup_node=cmd.pickup_node, member=cmd.member,
        )

    def network_state(self, at: float) -> NetworkState:
        atp = self.views.atp
        return NetworkState(
            network=self.network, node_ids=atp.node_ids, sku_ids=atp.sku_ids, atp=atp.atp(),
            capacity_left=self.views.capacity_left(at), now=at,
        )

    def _route(self, uow: UnitOfWork, orders: list[Order], at: float) -> None:
        members = self.views.members
        requests = [
            OrderToRoute(
                key=str(o.id), lines=dict(o.pending), mode=o.mode, lat=o.lat, lon=o.lon,
                placed_at=o.placed_at, promised_at=o.promised_at, value=o.value, pickup_node=o.pickup_node,
                home_node=members[o.member]["node"] if o.member in members else None,
                excluded=tuple(o.excluded) + tuple(o.parts),
            )
            for o in orders
        ]
        decisions = self.router.route(requests, self.network_state(at))
        for order, decision in zip(orders, decisions):
            self._apply_decision(uow, order, decision, at)

    def _apply_decision(self, uow: UnitOfWork, order: Order, d: Decision, at: float) -> None:
        lost = d.lost
        if not d.parts:
            released = sorted(order.parts)
            order.reject(d.reason or "no node can serve it", lost, at)
            for node in released:
                uow.inventory(node).release(str(order.id), reason="order rejected", at=at)
            return
        key = str(order.id)
        for p in d.parts:
            short = uow.inventory(p.node).can_reserve(p.lines)
            if short is not None:  # only if the view lagged the store; never half-reserve
                order.reject(f"stock of {short} changed at {p.node} while routing", lost, at)
                return
        for p in d.parts:
            uow.inventory(p.node).reserve(key, p.lines, at)
        order.route(
            # plain floats: a router may hand back numpy scalars, events must be JSON
            [RoutedPart(node=p.node, lines=dict(p.lines), eta_at=float(p.eta_at),
                        cost={k: float(v) for k, v in msgspec.structs.asdict(p.cost).items()}) for p in d.parts],
            lost, at,
        )

    def cancel(self, cmd: CancelOrder) -> OrderReply:
        def work(uow: UnitOfWork) -> str:
            order = uow.order(cmd.order_id)
            at = self.clock.now()
            for node in order.cancel(cmd.reason, at):
                uow.inventory(node).release(str(order.id), reason="order cancelled", at=at)
            return str(order.id)

        return order_reply(self.views.orders[self._transaction(work)])

    def accept(self, cmd: AcceptOrder) -> OrderReply:
        return self._order_step(cmd.order_id, self._accept_step(cmd))

    def decline(self, cmd: DeclineOrder) -> OrderReply:
        """The part goes back to routing in the next batch, never to this node."""
        return self._order_step(cmd.order_id, self._decline_step(cmd))

    def progress(self, cmd: ReportProgress) -> OrderReply:
        return self._order_step(cmd.order_id, self._progress_step(cmd))

    def _accept_step(self, cmd: AcceptOrder) -> Callable[[UnitOfWork, Order, float], None]:
        return lambda uow, order, at: order.accept(cmd.node, at)

    def _decline_step(self, cmd: DeclineOrder) -> Callable[[UnitOfWork, Order, float], None]:
        def step(uow: UnitOfWork, order: Order, at: float) -> None:
            node = order.decline(cmd.node, cmd.reason, at)
            uow.inventory(node).release(str(order.id), reason=f"declined: {cmd.reason}", at=at)

        return step

    def _progress_step(self, cmd: ReportProgress) -> Callable[[UnitOfWork, Order, float], None]:
        def step(uow: UnitOfWork, order: Order, at: float) -> None:
            if cmd.step == "picked":
                order.pick(cmd.node, at)
            elif cmd.step == "ready":
                order.make_ready(cmd.node, at)
            elif cmd.step == "dispatched":
                order.dispatch(cmd.node, at)
            else:
                node = order.deliver(cmd.node, at) if cmd.step == "delivered" else order.collect(cmd.node, at)
                uow.inventory(node).consume(str(order.id), at)
                if order.outcome == "completed" and order.member:
                    points = math.floor(order.value * self.settings.points_per_rmb)
                    if points > 0:
                        uow.member(order.member).earn(points, ref=f"order/{order.id}", at=at)

        return step

    def node_steps(self, cmds: list[AcceptOrder | DeclineOrder | ReportProgress]) -> list[DomainError | None]:
        """Many node decisions and progress reports in one transaction (a
        simulation's minute, a kitchen screen's backlog). Each command's
        guards run before it changes anything, so a refused one is reported
        in its slot and the rest are stored."""
        steps = {AcceptOrder: self._accept_step, DeclineOrder: self._decline_step, ReportProgress: self._progress_step}

        def work(uow: UnitOfWork) -> list[DomainError | None]:
            out: list[DomainError | None] = []
            at = self.clock.now()
            for cmd in cmds:
                try:
                    steps[type(cmd)](cmd)(uow, uow.order(cmd.order_id), at)
                    out.append(None)
                except DomainError as e:
                    out.append(untraced(e))
            return out

        return self._transaction(work)

    def _order_step(self, order_id: str, step: Callable[[UnitOfWork, Order, float], Any]) -> OrderReply:
        def work(uow: UnitOfWork) -> str:
            order = uow.order(order_id)
            step(uow, order, self.clock.now())
            return str(order.id)

        return order_reply(self.views.orders[self._transaction(work)])

    def expire_due(self) -> int:
        """Parts the node neither accepted nor declined in time go back to routing."""
        now, timeout = self.clock.now(), self.settings.accept_timeout_s
        due = []
        for key, routed_at in self.views.awaiting.items():  # oldest first: parts are kept in the order routed
            if routed_at + timeout > now:
                break  # the rest are younger (a clock stepped back only delays them by the step)
            due.append(key)
        if not due:
            return 0

        def work(uow: UnitOfWork) -> int:
            for order_id, node in due:
                uow.order(order_id).expire(node, now)
                uow.inventory(node).release(order_id, reason="not accepted in time", at=now)
            return len(due)

        return self._transaction(work)

    def order_status(self, order_id: str) -> OrderReply:
        record = self.views.orders.get(str(_uuid(order_id, "order_id")))
        if record is None:
            raise NotFound("order_id", f"unknown order {order_id}")
        return order_reply(record)

    # -- stock ---------------------------------------------------------
    def _lines(self, lines: list[Line]) -> dict[str, int]:
        out: dict[str, int] = {}
        for k, line in enumerate(lines):
            self._sku(line.sku, f"lines[{k}].sku")
            out[line.sku] = out.get(line.sku, 0) + line.qty
        return out

    def _sku(self, sku: str, field: str = "sku") -> str:
        if sku not in self.skus:
            raise NotFound(field, f"unknown SKU {sku!r}")
        return sku

    def _stock_step(self, node: str, skus: list[str], step: Callable[[NodeInventory, float], Any]) -> StockReply:
        """The reply shows the SKUs the command touched."""
        def work(uow: UnitOfWork) -> None:
            step(uow.inventory(node), self.clock.now())

        self._transaction(work)
        return self.stock(node, skus)

    def receive(self, cmd: ReceiveStock) -> StockReply:
        lines = self._lines(cmd.lines)
        return self._stock_step(cmd.node, list(lines), lambda inv, at: inv.receive(lines, cmd.ref, at))

    def adjust(self, cmd: AdjustStock) -> StockReply:
        sku = self._sku(cmd.sku)
        return self._stock_step(cmd.node, [sku], lambda inv, at: inv.adjust(sku, cmd.delta, cmd.reason, at))

    def count(self, cmd: CountStock) -> StockReply:
        sku = self._sku(cmd.sku)
        return self._stock_step(cmd.node, [sku], lambda inv, at: inv.count(sku, cmd.counted, at))

    def sell(self, cmd: SellOverCounter) -> StockReply:
        """A POS sale takes from the same stock as online orders."""
        lines = self._lines(cmd.lines)

        def work(uow: UnitOfWork) -> None:
            at = self.clock.now()
            uow.inventory(cmd.node).sell_over_counter(cmd.sale_id, lines, at)
            if cmd.member:
                value = sum(self.skus[s].price * q for s, q in lines.items())
                points = math.floor(value * self.settings.points_per_rmb)
                if points > 0:
                    uow.member(cmd.member).earn(points, ref=f"pos/{cmd.node}/{cmd.sale_id}", at=at)

        self._transaction(work)
        return self.stock(cmd.node, list(lines))

    def stock(self, node: str, skus: list[str] | None = None) -> StockReply:
        view = self.views.atp
        if node not in view.node_index:
            raise NotFound("node", f"unknown node {node!r}")
        i = view.node_index[node]
        cols = [view.sku_index[self._sku(s)] for s in skus] if skus else list(range(len(view.sku_ids)))
        # this row's columns only: the whole ATP matrix is brought up to date once per batch, not per reply
        on_hand = view.on_hand[i, cols]
        atp = np.maximum(on_hand - view.reserved[i, cols] - view.safety[i, cols], 0).tolist()
        ids = [view.sku_ids[j] for j in cols]
        return StockReply(node=node, on_hand={k: q for k, q in zip(ids, on_hand.tolist()) if q or skus},
                          available={k: q for k, q in zip(ids, atp) if q or skus})

    def find_stock(self, q: FindStock) -> StockNearby:
        """Nodes that could serve the location and hold the SKU ("which nearby stores have it")."""
        view = self.views.atp
        j = view.sku_index.get(self._sku(q.sku))
        nodes = self.network.nodes
        lat = np.array([n.lat for n in nodes])
        lon = np.array([n.lon for n in nodes])
        dist = haversine_km(q.lat, q.lon, lat, lon)
        atp = view.atp()[[view.node_index[n.id] for n in nodes], j]
        found = []
        for i in np.argsort(dist, kind="stable"):
            n = nodes[i]
            reach = n.delivery_radius_km if q.mode == "delivery" else q.within_km
            if q.mode in n.modes and dist[i] <= reach and atp[i] >= q.qty:
                found.append(NodeStock(node=n.id, kind=n.kind, distance_km=round(float(dist[i]), 3),
                                       available=int(atp[i]), modes=list(n.modes)))
        return StockNearby(sku=q.sku, nodes=found)

    # -- members -------------------------------------------------------
    def sign_up(self, cmd: SignUpMember) -> MemberReply:
        node = self.nodes.get(cmd.node)
        if node is None:
            raise NotFound("node", f"unknown node {cmd.node!r}")
        if cmd.member in self.views.members:
            raise Conflict("member", f"member {cmd.member} is already signed up")
        phone_hash = None
        if cmd.phone:
            phone_hash = hashlib.sha256((self.settings.phone_salt + cmd.phone).encode()).hexdigest()
        at = self.clock.now()

        def work(uow: UnitOfWork) -> None:
            uow.add(Member.sign_up(
                member=cmd.member, node=cmd.node, via=cmd.via, at=at, clerk=cmd.clerk,
                dealer=node.dealer, phone_hash=phone_hash,
            ))

        self._transaction(work)
        return self.member(cmd.member)

    def bind(self, cmd: BindIdentity) -> MemberReply:
        self._transaction(lambda uow: uow.member(cmd.member).bind(cmd.kind, cmd.external_id, self.clock.now()))
        return self.member(cmd.member)

    def redeem(self, cmd: RedeemPoints) -> MemberReply:
        self._transaction(lambda uow: uow.member(cmd.member).redeem(cmd.points, cmd.gift, cmd.ref, self.clock.now()))
        return self.member(cmd.member)

    def member(self, member: str) -> MemberReply:
        m = self.views.members.get(member)
        if m is None:
            raise NotFound("member", f"unknown member {member!r}")
        return MemberReply(member=member, node=m["node"], points=m["points"], identities=dict(m["identities"]))
