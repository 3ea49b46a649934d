"""The engine: it holds the network, the read models and the aggregate
store, routes micro-batches of orders, and runs every other command through
the command table (engine/handlers.py), each in one transaction. Read
models are fed after each commit.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, Iterable, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

import os

import msgspec
import numpy as np

from domain import ids
from domain.commands import (
    AcceptOrder, AdjustStock, BindIdentity, CancelOrder, Command, CountStock, DeclineOrder, FindStock, QuoteOrder, ReceiveStock, RedeemPoints, ReportProgress, SellOverCounter, SignUpMember, SubmitOrder,
)
from domain.errors import Conflict, DomainError, InvalidInput, NotFound
from domain.benefit import BenefitRules, PartyLedger
from domain.hold import Hold
from domain.inventory import NodeInventory
from domain.member import Member
from domain.network import Network, validate
from domain.partition import PartitionFence
from domain.sale import Sale
from domain.order import Order, RoutedPart, check_pickup
from domain.money import OrderMoney, price, to_minor
from domain.quantities import available, check_lines
from engine.clock import Clock, SystemClock
from engine.config import EngineSettings
from engine.geo import haversine_km
from engine.handlers import COMMANDS, Batched, Many, Query, release_gift, settle_points
from engine.memory import collect_if_due, untraced
from engine.ownership import SHARED, Misdirected, Ownership, PartitionLost
from engine.partitions import PartitionMap
from engine.quotes import Quotes, expire_holds, use_hold
from engine.readmodels import OrderRecord, ReadModels
from engine.replies import (
    ts, MemberReply, NodeStock, OrderReply, QuoteReply, SaleReply, StockNearby, StockReply, member_reply, order_reply,
)
from engine.routing.types import Decision, NetworkState, OrderToRoute, Router
from engine.scheduling import ScheduleSettings, Slot, next_opening, requested, slot_after
from engine.store.aggregates import RECENT, AggregateStore, SnapshotPolicy
from engine.store.eventlog import EventLog, topic_of as get_topic
from engine.unit_of_work import UnitOfWork, order_uuid
from engine.writes import handle_writes

T = TypeVar("T")
_EXACT_BELOW = 10 ** 11  # minor units: a float sum of prices x quantities below it is far within half a cent


def _cost(p: Any) -> dict[str, float]:
    """A part's cost terms as stored; `straight_line: 1` when its ETA is a straight-line guess (engine/travel.py)."""
    cost = msgspec.structs.asdict(p.cost)
    if getattr(p, "straight_line", False):
        cost["straight_line"] = 1.0
    return cost


def _kept(aggregate: Any) -> bool | str:
    """What stays in memory between commands: every inventory of the nodes
    this process writes, open orders, and the rule book and the parties'
    ledgers of open periods (booked at every member's hand-over: loading a
    ledger replays its month); the members used last (RECENT)."""
    cls = type(aggregate)
    if cls is Order:  # most of what a batch saves: no isinstance through the aggregates' ABCMeta
        return aggregate.outcome is None
    if cls is NodeInventory:
        return True
    if cls is Member:
        return RECENT
    if isinstance(aggregate, (NodeInventory, BenefitRules)):
        return True
    if isinstance(aggregate, PartyLedger):
        return aggregate.reference is None  # until paid; a period's close drops its ledgers too
    return isinstance(aggregate, Order) and aggregate.outcome is None


def _open_entries(aggregate: Any) -> int:
    """What an inventory's snapshot carries besides its stock: open reservations and recent counter sales."""
    return len(aggregate.reservations) + len(aggregate.pos_sales)


class _Reservations:
    """A routed batch's reservations, one holding per node (domain.inventory.Holding):
    each part checked once as it is added, made at the end as one event per node."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.nodes: dict[str, Any] = {}  # node -> its Holding

    def add(self, key: str, parts: list[Any]) -> tuple[str, str] | None:
        """Holds every part of one order, or none: returns (node, SKU) of the first short."""
        nodes = self.nodes
        for i, p in enumerate(parts):
            holding = nodes.get(p.node)
            if holding is None:
                holding = nodes[p.node] = self.uow.inventory(p.node).holding()
            short = holding.add(key, p.lines)
            if short is not None:
                for q in parts[:i]:
                    nodes[q.node].drop(key)
                return p.node, short
        return None

    def reserve(self, at: float) -> None:
        for holding in self.nodes.values():
            holding.inventory.reserve_held(holding, at)


class Engine:
    def __init__(
        self,
        network: Network,
        settings: EngineSettings = EngineSettings(),
        clock: Clock | None = None,
        router: Router | None = None,
        store: str = "memory:",
        partitions: PartitionMap | None = None,
        owner: str = "",
        schedule: ScheduleSettings = ScheduleSettings(),
    ):
        """Opens the store; `start()` replays it into the read models and opens the network.

        With `partitions` the engine is one of several on the store
        (docs/scale-out.md): it writes only the partitions it takes (`take`),
        under the name `owner`, and its read models hold only those."""
        self.network = validate(network)
        self.settings = settings
        self.clock = clock or SystemClock()
        if router is None:
            from engine.routing.router import make_router

            router = make_router(settings.router)
        self.router = router
        self.nodes = {n.id: n for n in network.nodes}
        self.skus = {s.id: s for s in network.skus}
        self.list_price = {s.id: to_minor(s.price, network.minor_units) for s in network.skus}  # converted once
        # every list price a whole number of minor units, at most cents: then an order's worth at list price is
        # its minor units over 10**minor_units, as round(sum(price x qty), 2) makes it (_value)
        self._whole_prices = network.minor_units <= 2 and all(
            Decimal(str(s.price)).scaleb(network.minor_units) == self.list_price[s.id] for s in network.skus)
        self.schedule = schedule
        self._tz = ZoneInfo(network.timezone)
        interval, members = settings.inventory_snapshot_interval, settings.member_snapshot_interval
        self.log = EventLog(store, snapshots=interval > 0 or members > 0)
        self.store = AggregateStore(
            self.log, keep=_kept, max_retries=settings.max_retries, recent_max=settings.members_kept,
            absent_kept=frozenset({ids.BENEFIT_RULES_ID}),
            snapshots=SnapshotPolicy({NodeInventory: interval} if interval > 0 else {}, _open_entries,
                                     {Member: members} if members > 0 else {}),
        )
        retain = settings.retain_finished_hours
        self.readmodels = ReadModels(network, retain * 3600.0 if retain is not None else None, self._events_of)
        # a transaction runs again after a version conflict: what memory misses is then looked for in the store
        # (a repeat of an order, a sale, whose record left memory: `_submit`, engine.handlers `_sale_known`)
        self.rechecking = False
        self.quotes = Quotes(self)
        # called with each commit's notifications, in commit order, after the read models saw them
        self.on_commit: list[Callable[[list[Any]], None]] = []
        self.ownership = Ownership(partitions) if partitions is not None else None
        self.owner = owner or f"engine-{os.getpid()}"
        self.on_partition_lost: list[Callable[[str], None]] = []  # called with the partition another engine fenced
        self._followed: frozenset[type] = frozenset()  # event classes followed of other engines' writes
        self._topics: list[str] = []
        self._tail = 0  # the last notification id the follower read
        self._moved: list[tuple[str, str]] = []  # orders the batch in hand moved to another partition
        self._own: set[int] = set()  # this engine's notifications of followed classes the follower has yet to pass
        self._losing: set[str] = set()  # partitions seen taken over, to drop once the events in hand are read

    def start(self) -> "Engine":
        """Brings the read models up to date with the store and opens an
        inventory for every node that has none (a partitioned engine holds
        nothing until it takes a partition)."""
        own = self.ownership
        if own is not None:
            self._followed = frozenset(own.classes_followed(self.readmodels.handled()))
            self._topics = sorted({get_topic(c) for c in self._followed})
            self._rebuild()
            return self
        self.catch_up()
        self.open_network()
        return self

    def close(self) -> None:
        self.log.close()

    # -- the store -----------------------------------------------------
    @property
    def recorder(self) -> Any:
        return self.log.recorder

    def last_notification_id(self) -> int:
        return self.log.last_notification_id()

    def stored_events(self, start: int = 1, page: int = 2000, stop: int | None = None) -> Iterable[tuple[int, Any]]:
        return self.log.stored_events(start, page, stop)

    def inventories(self) -> dict[str, NodeInventory]:
        """The node inventories held in memory, by node (as last saved)."""
        return {a.node_id: a for a in self.store.cached.values() if isinstance(a, NodeInventory)}

    def _after_conflict(self) -> None:
        """Before a transaction runs again: the read models caught up, and
        what the run finds missing from memory is looked for in the store."""
        self.catch_up()
        self.rechecking = True

    def _events_of(self, aggregate_id: UUID, upto: int | None) -> Iterable[Any]:
        """An aggregate's stored events (to version `upto`): what the read models build a record that left memory from."""
        return self.log.events.get(aggregate_id, lte=upto)

    def catch_up(self) -> int:
        """Feeds the read models with events stored since they last saw one."""
        if self.ownership is not None:
            return self._follow()
        n = 0
        for notification_id, event in self.log.stored_events(self.readmodels.last_notification_id + 1):
            self.readmodels.apply(event, notification_id)
            n += 1
        return n

    def _transaction(self, work: Callable[[UnitOfWork], T], apply: Callable[[list[Any]], None] | None = None,
                     unit: type[UnitOfWork] = UnitOfWork) -> T:
        """Runs `work` on a fresh `unit` of work and saves what it touched in
        one save (retried on a version conflict, after catching up); then
        feeds the read models (`apply(recordings)` in place of this, where it
        does more between them: engine.writes) and the commit hooks."""
        own = self.ownership
        stored_id = self.readmodels.order_view.stored_id
        self.rechecking = False  # until a version conflict: then what memory misses is read from the store
        if own is not None:
            work = self._stamped(work)
        try:
            result, recordings = self.store.transaction(lambda: unit(self.store, self.nodes, stored_id, own), work,
                                                        self._after_conflict)
        except PartitionLost as e:
            self._lost(e.partition)
            raise
        except Conflict as e:
            if own is not None and (lost := self._taken_over()) is not None:
                raise lost from e  # read models behind a take-over: what it refused was not this engine's to decide
            raise
        if apply is None:
            for rec in recordings:
                self.readmodels.apply(rec.domain_event, rec.notification.id)
        else:
            apply(recordings)
        if own is not None:
            followed = self._followed
            self._own.update(rec.notification.id for rec in recordings if type(rec.domain_event) in followed)
        if self.on_commit and recordings:
            notes = [rec.notification for rec in recordings]
            for hook in self.on_commit:
                hook(notes)
        collect_if_due()
        return result

    def open_network(self) -> int:
        """Opens an inventory for every node that has none, with its starting stock."""
        missing = [n for n in self.network.nodes if ids.inventory_id(n.id) not in self.readmodels.atp.rows]
        if not missing:
            return 0
        at = self.clock.now()

        def work(uow: UnitOfWork) -> int:
            for node in missing:
                self._open(uow, node.id, at)
            return len(missing)

        return self._transaction(work)

    def _open(self, uow: UnitOfWork, node: str, at: float) -> NodeInventory:
        """A node's inventory, opened with its starting stock and safety stock."""
        inv = uow.add(NodeInventory(node_id=node, at=at))
        start = {k: v for k, v in self.network.stock.get(node, {}).items() if v > 0}
        if start:
            inv.receive(start, ref="opening stock", at=at)
        inv.set_safety_stock({s.id: s.safety_stock for s in self.network.skus if s.safety_stock}, at=at)
        return inv

    # -- partitions (docs/scale-out.md) ---------------------------------
    def take(self, partition: str, epoch: int) -> int:
        """Takes a partition over at `epoch` (its lease's revision): fences
        every node of it in one transaction (opening those that have none),
        so a paused former owner's next write there conflicts and it drops
        the partition; then rebuilds the read models with it. Returns its node count."""
        own = self._partitioned()
        nodes = own.hold(partition, epoch)
        wanted = set(nodes)
        self.store.evict(lambda a: (isinstance(a, NodeInventory) and a.node_id in wanted)  # as stored, not as last seen
                         or (isinstance(a, PartitionFence) and a.partition == partition))
        at = self.clock.now()

        def work(uow: UnitOfWork) -> int:
            fence = uow._get(ids.partition_id(partition)) or uow.add(PartitionFence(partition=partition, at=at))
            fence.take(epoch, self.owner, at)
            for node in nodes:
                inv = uow._get(ids.inventory_id(node)) or self._open(uow, node, at)
                inv.fence(epoch, self.owner, at)
            return len(nodes)

        try:
            n = self._transaction(work)
        except BaseException:
            own.release(partition)
            raise
        self._rebuild()
        return n

    def drop(self, partition: str) -> None:
        """Stops writing a partition: its nodes and orders leave memory and the read models."""
        own = self._partitioned()
        if partition not in own.epochs:
            return
        nodes = set(own.release(partition))
        regions = {r for p in own.pmap.partitions if p.name == partition for r in p.regions}
        self.store.evict(lambda a: (isinstance(a, NodeInventory) and a.node_id in nodes)
                         or (isinstance(a, Order) and own.order_region(a) in regions))
        self._rebuild()

    def _stamped(self, work: Callable[[UnitOfWork], T]) -> Callable[[UnitOfWork], T]:
        """`work`, then a stamp on the fence of each partition it touched:
        the write conflicts with any take-over since this engine's own."""
        own = self.ownership

        def run(uow: UnitOfWork) -> T:
            result = work(uow)
            if uow.partitions and any(a.pending_events for a in uow.touched.values()):
                at = self.clock.now()
                for p in sorted(uow.partitions):
                    fence = uow._get(ids.partition_id(p))
                    held = own.epochs.get(p, 0)
                    if fence is None or fence.epoch > held:
                        raise PartitionLost(p, held, fence.epoch if fence else 0, fence.owner if fence else "")
                    if not fence.pending_events:  # a take-over stamps by itself
                        fence.stamp(held, at)
            return result

        return run

    def _taken_over(self) -> PartitionLost | None:
        """After a refusal: whether another engine took one of this engine's
        partitions (its fence, read from the store, has a newer epoch); if
        so the partition is dropped. A former owner's read models can be
        behind the store, so a command may fail on the store's state before
        any save could conflict."""
        own = self.ownership
        for p, held in sorted(own.epochs.items()):
            self.store.cached.pop(ids.partition_id(p), None)
            fence = self.store.get(ids.partition_id(p))
            if fence is not None and fence.epoch > held:
                self._lost(p)
                return PartitionLost(p, held, fence.epoch, fence.owner)
        return None

    def _lost(self, partition: str) -> None:
        self.drop(partition)
        for hook in self.on_partition_lost:
            hook(partition)

    def _partitioned(self) -> Ownership:
        if self.ownership is None:
            raise InvalidInput("partitions", "this engine serves the whole network: it was started without partitions")
        return self.ownership

    def _rebuild(self) -> int:
        """The read models again from the store: the shared aggregates' events
        and those of the owned partitions' nodes, counter sales and orders
        (other events are passed over before they are decoded)."""
        own = self._partitioned()
        self.readmodels.reset()
        own.orders.clear()
        own.sales.clear()
        own.holds.clear()
        own.moved.clear()
        always = {get_topic(c) for c in (*self._followed, Order.Placed, Sale.Made, Hold.Placed)}
        skip = lambda oid, topic: not (oid in own.inventories or oid in own.orders or oid in own.sales  # noqa: E731
                                       or oid in own.holds or topic in always)
        n = last = 0
        for last, event in self.log.stored_events(1, skip=skip):
            n += self._follow_event(event, last)
        self._tail = max(last, self._tail)
        self._own.clear()
        self._let_go()
        return n

    def _follow(self) -> int:
        """Applies what other engines stored of the shared aggregates, the
        orders they moved here and the fences they set on this engine's nodes."""
        n = 0
        for nid, event in self.log.followed_events(self._tail + 1, self._topics):
            self._tail = nid
            if nid in self._own:
                self._own.discard(nid)
                continue
            n += self._follow_event(event, nid)
        self._let_go()
        return n

    def _let_go(self) -> None:
        """Drops the partitions the events just read showed taken over."""
        while self._losing:
            self._lost(self._losing.pop())

    def _follow_event(self, event: Any, nid: int) -> int:
        """Applies one stored event if it concerns this engine; 1 if it did."""
        own = self.ownership
        if isinstance(event, Order.Transferred):
            oid = event.originator_id
            known = oid in own.orders
            if event.region in own.regions:
                if not known:  # its history was passed over: it belonged elsewhere
                    for past in self.log.events.get(oid, lte=event.originator_version - 1):
                        self.readmodels.apply(past)
                    own.orders.add(oid)
                    own.moved.pop(oid, None)
                self.readmodels.apply(event, nid)
                return 1
            if known:
                self.readmodels.apply(event, nid)
                self._moved_away(oid, event.region)
                return 1
            return 0
        if isinstance(event, PartitionFence.Taken):
            p = own.partition_of_fence(event.originator_id)
            if p in own.epochs and event.epoch > own.epochs[p]:
                self._losing.add(p)
            return 0
        if isinstance(event, NodeInventory.Fenced) and event.originator_id in own.inventories:
            p = own.pmap.of_node(own.inventories[event.originator_id])
            if event.epoch > own.epochs.get(p, 0):  # another engine took it: stop writing it now
                self._losing.add(p)
                return 0
        if own.concerns(event):
            self.readmodels.apply(event, nid)
            if isinstance(event, SHARED):  # the rule book, a ledger or a member this engine holds: stale now
                self.store.drop(event.originator_id)
            return 1
        return 0

    # -- the command table ---------------------------------------------
    def handle(self, cmd: Command) -> Any:
        """Any command, through the command table: its reply, or a DomainError raised."""
        handler = COMMANDS[type(cmd)]
        if isinstance(handler, Query):
            return handler.answer(self, cmd)
        if isinstance(handler, Many):
            result = handler.answer(self, [cmd])[0]
            if isinstance(result, DomainError):
                raise result
            return result
        if isinstance(handler, Batched):
            return self.submit(cmd)
        key = self._transaction(lambda uow: handler.step(self, uow, cmd, self.clock.now()))
        return handler.reply(self, cmd, key)

    def handle_writes(self, cmds: list[Command]) -> list[Any]:
        """Write commands in one commit, each as if handled alone: its reply
        or its error, by position (engine.writes)."""
        return handle_writes(self, cmds)

    def handle_many(self, cmds: list[Command]) -> list[DomainError | None]:
        """Many write commands committed together, each as if alone (a
        simulation's minute of node decisions, a kitchen screen's backlog):
        a refused one is reported in its slot and the rest are stored
        (engine.writes, without replies). Another failure is raised."""
        results = handle_writes(self, cmds, replies=False)
        failed = next((r for r in results if isinstance(r, Exception) and not isinstance(r, DomainError)), None)
        if failed is not None:
            raise failed
        return results

    # one-line facades over the table
    def give_back(self, uow: UnitOfWork, order: Order, why: str, at: float) -> None:
        """An order cancelled or rejected keeps nothing: what was paid is
        refunded (refund id `why`) before its end is recorded."""
        if order.money is not None and (order.money.paid or order.money.points_used):
            done = order.refund(why, why, {}, f"order {why}", at)
            if done is not None:
                settle_points(self, uow, order.member, f"order/{order.id}", order.money, order.refunds.refunded, done, at)

    def cancel(self, cmd: CancelOrder) -> OrderReply:
        return self.handle(cmd)

    def accept(self, cmd: AcceptOrder) -> OrderReply:
        return self.handle(cmd)

    def decline(self, cmd: DeclineOrder) -> OrderReply:
        return self.handle(cmd)

    def progress(self, cmd: ReportProgress) -> OrderReply:
        return self.handle(cmd)

    def node_steps(self, cmds: list[AcceptOrder | DeclineOrder | ReportProgress]) -> list[DomainError | None]:
        return self.handle_many(cmds)

    def receive(self, cmd: ReceiveStock) -> StockReply:
        return self.handle(cmd)

    def adjust(self, cmd: AdjustStock) -> StockReply:
        return self.handle(cmd)

    def count(self, cmd: CountStock) -> StockReply:
        return self.handle(cmd)

    def sell(self, cmd: SellOverCounter) -> StockReply:
        return self.handle(cmd)

    def sign_up(self, cmd: SignUpMember) -> MemberReply:
        return self.handle(cmd)

    def bind(self, cmd: BindIdentity) -> MemberReply:
        return self.handle(cmd)

    def redeem(self, cmd: RedeemPoints) -> MemberReply:
        return self.handle(cmd)

    # -- orders --------------------------------------------------------
    def submit(self, cmd: SubmitOrder) -> OrderReply:
        result = self.submit_batch([cmd])[0]
        if isinstance(result, DomainError):
            raise result
        return result

    def submit_batch(self, cmds: list[SubmitOrder], checked: list[Any] | None = None) -> list[OrderReply | DomainError]:
        """Routes new orders together with those waiting to be routed again,
        and stores everything in one transaction. A repeat of a known
        (channel, external id) gets the first answer and stores nothing.
        `checked`: each order's `check_order` result if a front end already
        made it (None where not): what it depends on (SKUs, prices, nodes,
        members signed up) never goes back, so it still holds."""
        results, answered, moved, stored = self._transaction(lambda uow: self._submit(uow, cmds, checked))
        orders = self.readmodels.orders
        for i, key, repeat in answered:
            results[i] = order_reply(orders.get(key) or stored[key], repeat)
        for key, region in moved:  # transferred to another partition: its owner answers for it from now on
            self._moved_away(UUID(key), region)
        return results

    def order_of(self, channel: str, external_id: str) -> UUID:
        """The id of the order of that name: domain.ids.order_id, or the
        uuid5 it was stored under before that scheme."""
        return self.readmodels.order_view.stored_id(ids.order_id(channel, external_id))

    def _moved_away(self, oid: UUID, region: str) -> None:
        """An order of this engine's regions now served in `region`: forgotten
        here, remembered as moved (a repeat of it is sent there)."""
        self.readmodels.order_view.forget(str(oid))
        own = self.ownership
        own.orders.discard(oid)
        own.moved[oid] = region
        self.store.cached.pop(oid, None)

    def route_pending(self) -> int:
        """Routes orders waiting after a decline or expiry (the next batch)."""
        if not self.readmodels.to_route:
            return 0
        self.submit_batch([])
        return 1

    def _submit(self, uow: UnitOfWork, cmds: list[SubmitOrder],
                checked: list[Any] | None = None) -> tuple[list[Any], list[tuple[int, str, bool]],
                                                            list[tuple[str, str]], dict[str, OrderRecord]]:
        at = self.clock.now()
        self._moved: list[tuple[str, str]] = []  # (order, region it went to); set again on a retry
        self._held: dict[str, tuple[str, dict[str, int]]] = {}  # order -> the node and lines a quote's hold kept
        own = self.ownership
        results: list[Any] = [None] * len(cmds)
        slots: dict[str, Slot] = {}  # fresh orders asking for a later slot
        later: set[str] = set()  # fresh orders to book after opening rather than reject as closed
        fresh: dict[UUID, Order] = {}
        keys: list[str] = []  # str(order id), made once per order
        answered: list[tuple[int, str, bool]] = []  # replies are read from the read models after commit
        known_key = self.readmodels.order_view.known_key
        orders = self.readmodels.orders
        stored: dict[str, OrderRecord] = {}  # repeats of orders whose records left memory (read after a conflict)
        recheck = self.rechecking and self.readmodels.retain_s is not None
        record = self.readmodels.order_view.record
        stored_id = self.readmodels.order_view.stored_id  # self.order_of, one call fewer per order
        for i, cmd in enumerate(cmds):
            oid = stored_id(ids.order_id(cmd.channel, cmd.external_id))
            key = ids.text(oid)
            repeat = key in orders or oid in fresh
            if not repeat and recheck and (r := record(key, oid)) is not None:
                stored[key], repeat = r, True
            if repeat:
                first = orders.get(key) or fresh.get(oid) or stored[key]
                if first.external_id != cmd.external_id or first.channel != cmd.channel:  # ids.order_id collided
                    results[i] = Conflict("external_id", f"another order ({first.channel}/{first.external_id}) "
                                                         f"has this one's id {key}: not placed")
                    continue
            else:
                try:
                    if own is not None and oid in own.moved:  # placed here once, served elsewhere now
                        p = own.pmap.of_region(own.moved[oid])
                        raise Misdirected("order_id", f"order {oid} was moved to partition {p}", p)
                    slot = None
                    if cmd.window_start is not None or cmd.window_end is not None:
                        slot = requested(cmd, at, self.schedule)
                    order = self._place(cmd, at, checked[i] if checked else None, slot)
                    if cmd.points_used:  # spent as the order is placed, or the order is refused
                        uow.member(cmd.member).spend(cmd.points_used, f"order/{oid}", at, field="points_used")
                    if cmd.hold is not None:  # last: nothing after it refuses the order
                        use_hold(uow, cmd.hold, order, key, at, self._held)
                    fresh[oid] = uow.add(order)
                    known_key(oid, key)  # the read model's Placed handler then need not format it again
                    if uow.ownership is not None:
                        uow.partitions.add(uow.ownership.pmap.of_region(order.region))
                    keys.append(key)
                    if slot is not None and slot.start > at:
                        slots[key] = slot
                    elif cmd.later_ok:
                        later.add(key)
                except DomainError as e:
                    results[i] = untraced(e)  # kept in the results: see engine.memory
                    continue
            answered.append((i, key, repeat))
        waiting = [k for k in self.readmodels.to_route if UUID(k) not in fresh]
        if own is None:
            again = [uow.order(k) for k in waiting]
        else:
            # these read models can be behind the store: an order another engine decided (after taking
            # the partition over: the fence stamp makes any write of this batch conflict, so this engine
            # finds out) or moved to a region this engine does not own (following the store forgets it
            # here) is not routed, and does not fail the batch
            kept = []
            for k in waiting:
                try:
                    o = uow.order(k)
                except Misdirected:
                    continue
                if not (o.outcome or not o.pending):
                    kept.append((k, o))
            waiting, again = [k for k, _ in kept], [o for _, o in kept]
        batch = list(fresh.values()) + again
        if slots or later or any(o.booking is not None for o in again):
            self._route_scheduled(uow, batch, at, keys + waiting, slots, later)
        elif batch:
            self._route(uow, batch, at, keys + waiting)
        return results, answered, self._moved, stored

    def check_order(self, cmd: SubmitOrder) -> tuple[dict[str, int], float, float, OrderMoney]:
        """What can be said of an order without routing it: raises a DomainError
        naming the field, so a front end can answer bad input at once.
        Returns the merged lines, the location and the money."""
        lines = self.lines(cmd.lines)
        if cmd.mode == "pickup":
            check_pickup(cmd.mode, cmd.pickup_node)
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
        if cmd.member is not None and cmd.member not in self.readmodels.members:
            raise NotFound("member", f"unknown member {cmd.member!r}")
        check_lines(lines)  # before money is made of them
        money = self.money(cmd.lines, cmd.discounts, cmd.delivery_fee, cmd.points_used, cmd.points_value, cmd.paid,
                           cmd.member)
        return lines, lat, lon, money

    def money(self, lines: list[Any], discounts: list[Any], delivery_fee: int, points_used: int, points_value: int,
              paid: int | None, member: str | None) -> OrderMoney:
        """What an order or a sale is paid, checked (raises naming the field); lines already checked."""
        if points_used and member is None:
            raise InvalidInput("points_used", "points are a member's: name the member")
        return price(lines, self.list_price, self.network.currency,
                     discounts=sum([d.amount for d in discounts]) if discounts else 0, delivery_fee=delivery_fee,
                     points_used=points_used, points_value=points_value, paid=paid)

    def _place(self, cmd: SubmitOrder, at: float, checked: Any = None, slot: Slot | None = None) -> Order:
        lines, lat, lon, money = checked or self.check_order(cmd)
        region = None
        own = self.ownership
        if own is not None:  # placed where its home region's owner routes it
            region = own.region_of(lat, lon, cmd.pickup_node)
            if region not in own.regions:
                p = own.partition_of_region(region)
                raise Misdirected("lat" if cmd.pickup_node is None else "pickup_node",
                                  f"the order's home region {region} is in partition {p}, "
                                  "which this engine does not own", p)
        if slot is None:
            minutes = cmd.promise_minutes or (
                self.settings.pickup_promise_minutes if cmd.mode == "pickup" else self.settings.delivery_promise_minutes
            )
            promised_at = at + minutes * 60
        else:
            promised_at = slot.end  # a window's order is promised by its end
        return Order.place(
            channel=cmd.channel, external_id=cmd.external_id, lines=lines, value=self._value(lines, money), mode=cmd.mode,
            lat=lat, lon=lon, promised_at=promised_at, at=at, pickup_node=cmd.pickup_node, member=cmd.member,
            money=money, region=region,
        )

    def _value(self, lines: dict[str, int], money: OrderMoney) -> float:
        """The goods' worth in the major unit, for the router's penalty of leaving an order unserved."""
        list_price = self.list_price
        at_list = 0
        for s, q in lines.items():
            at_list += list_price[s] * q
        goods = money.paid - money.delivery_fee  # the lines' cash, as price() makes it (OrderMoney.goods)
        if goods == at_list:  # the price list's: as the router was tuned on it
            if self._whole_prices and at_list < _EXACT_BELOW:
                # round(float sum, 2) and this are both the double nearest the sum in minor units; round()
                # formats its float (a few thousand instructions per order), this divides two ints
                return at_list / 10 ** self.network.minor_units
            skus = self.skus
            return round(sum([skus[s].price * q for s, q in lines.items()]), 2)
        return goods / 10 ** self.network.minor_units

    def network_state(self, at: float) -> NetworkState:
        atp = self.readmodels.atp
        capacity = self.readmodels.capacity_left(at)
        elsewhere = None
        if self.ownership is not None:  # only its own nodes: others' stock and slots are not its to give
            elsewhere = ~self.ownership.node_mask
            capacity = np.where(elsewhere, 0, capacity)
        return NetworkState(
            network=self.network, node_ids=atp.node_ids, sku_ids=atp.sku_ids, atp=atp.atp(),
            capacity_left=capacity, now=at, elsewhere=elsewhere,
        )

    def _route(self, uow: UnitOfWork, orders: list[Order], at: float, keys: list[str], state: NetworkState | None = None,
               keep: set[str] | None = None) -> list[tuple[Order, str, Decision]]:
        """Routes the orders (against `state`, default: the network now) and
        reserves their stock. Orders of `keep` that no node can serve are not
        rejected but returned, with their decision."""
        requests = self._requests(orders, keys)
        held = {r.key: part for r in requests if r.key in self._held
                and (part := self.quotes.held(r, *self._held.pop(r.key))) is not None}  # a quote's hold: its node
        routed = iter(self.router.route([r for r in requests if r.key not in held], state or self.network_state(at)))
        decisions = [Decision(key=r.key, parts=[held[r.key]]) if r.key in held else next(routed) for r in requests]
        reserving = _Reservations(uow)
        kept = []
        for order, key, decision in zip(orders, keys, decisions):
            if keep and not decision.parts and key in keep:
                kept.append((order, key, decision))
                continue
            self._apply_decision(uow, order, key, decision, at, reserving)
        reserving.reserve(at)
        return kept

    def _requests(self, orders: list[Order], keys: list[str]) -> list[OrderToRoute]:
        members = self.readmodels.members
        # by position (keywords cost msgspec a lookup each); the order's pending lines as they are, not a
        # copy: nothing changes lines in place, and an unsplit part (most) keeps them (explain.chosen_parts)
        return [
            OrderToRoute(key, o.pending, o.mode, o.lat, o.lon, o.placed_at, o.promised_at, o.value, o.pickup_node,
                         members[o.member]["node"] if o.member in members else None,
                         o.excluded + tuple(o.parts) if o.parts else o.excluded)
            for o, key in zip(orders, keys)
        ]

    def _apply_decision(self, uow: UnitOfWork, order: Order, key: str, d: Decision, at: float,
                        reserving: _Reservations) -> None:
        lost = d.lost
        if not d.parts:
            own = self.ownership
            if own is not None and not order.parts and (region := own.transfer_target(order)) is not None:
                order.transfer(region, d.reason or "no node of this partition can serve it", at)
                self._moved.append((key, region))
                return
            self._unserved(uow, order, key, d.reason or "no node can serve it", lost, at)
            return
        short = reserving.add(key, d.parts)
        if short is not None:  # only if the view lagged the store; never half-reserve
            self._unserved(uow, order, key, f"stock of {short[1]} changed at {short[0]} while routing", lost, at)
            return
        # the router's parts carry plain floats and lines of their own (explain.chosen_parts makes
        # them), which the event keeps; by position: keywords cost msgspec a lookup each
        order.route([RoutedPart(p.node, p.lines, p.eta_at, _cost(p)) for p in d.parts], lost, at)

    def _unserved(self, uow: UnitOfWork, order: Order, key: str, reason: str, lost: list, at: float) -> None:
        """No node can take what is pending: the order is rejected and refunded,
        or, once goods were handed over, it keeps those and its rest is
        dropped and refunded (partial fulfilment)."""
        if order.handed_over:
            done = order.short(reason, lost, at)
            if done is not None:
                settle_points(self, uow, order.member, f"order/{order.id}", order.money, order.refunds.refunded, done, at)
            return
        released = sorted(order.parts)
        self.give_back(uow, order, "rejected", at)
        order.reject(reason, lost, at)
        for node in released:
            uow.inventory(node).release(key, reason="order rejected", at=at)

    # -- scheduled orders (engine/scheduling.py) -------------------------
    def _route_scheduled(self, uow: UnitOfWork, orders: list[Order], at: float, keys: list[str],
                         slots: dict[str, Slot], later: set[str]) -> None:
        """A batch with orders for later slots. Orders for now are routed
        first (those of `later` that no node serves now are booked for the
        first slot after the nodes open); then, slot by slot, fresh orders are
        booked and the booked orders due are routed, each slot against the
        nodes' hours then and the capacity left in it. What this transaction
        puts in a slot is counted as it goes (the read models see it after)."""
        taken: dict[tuple[str, int], int] = {}
        by_start: dict[float, list[tuple[Order, str]]] = {}
        now_orders, now_keys = [], []
        for o, k in zip(orders, keys):
            slot = slots.get(k)
            b = o.booking
            start = slot.start if slot is not None else b.window_start if b is not None and b.window_start > at else None
            if start is None:
                now_orders.append(o)
                now_keys.append(k)
            else:
                by_start.setdefault(start, []).append((o, k))
        if now_orders:
            before = [set(o.parts) for o in now_orders]
            kept = self._route(uow, now_orders, at, now_keys, keep=later)
            self._count_taken(taken, now_orders, before, at)
            for order, key, d in kept:
                self._book_later(uow, order, key, d, at, taken)
        for start in sorted(by_start):
            group = by_start[start]
            fresh = [(o, k) for o, k in group if k in slots]
            booked = self._book(uow, fresh, start, [o.promised_at for o, _ in fresh], at, taken)
            due = [(o, k) for o, k in booked if o.booking.due_at <= at]
            planned = [o for o, k in group if k not in slots and o.status == "booked"]  # counted in the read models
            self._route_booked(uow, due + [(o, k) for o, k in group if k not in slots], start, at, taken, planned)

    def _book(self, uow: UnitOfWork, items: list[tuple[Order, str]], start: float, ends: list[float], at: float,
              taken: dict[tuple[str, int], int], closed_now: str = "") -> list[tuple[Order, str]]:
        """Books each order for the slot from `start` to its end at the node
        the router plans it at then; rejects those no node could serve."""
        if not items:
            return []
        orders, keys = [o for o, _ in items], [k for _, k in items]
        state = self._state_at(at, start, taken, [])
        requests = [msgspec.structs.replace(r, promised_at=end) for r, end in zip(self._requests(orders, keys), ends)]
        decisions = self.router.route(requests, state)
        due_at = max(at, start - self.schedule.lead_minutes * 60)
        capacity = self.readmodels.capacity
        out = []
        for order, key, end, d in zip(orders, keys, ends, decisions):
            if not d.parts:
                window = f"{ts(start).isoformat()} to {ts(end).isoformat()}"
                self._unserved(uow, order, key, f"{closed_now}no node can serve the slot {window}: {d.reason}", d.lost, at)
                continue
            nodes = [p.node for p in d.parts]
            order.book(nodes, start, end, due_at, at, d.lost)
            if due_at > at:  # routed now otherwise, and counted then
                for node in nodes:
                    slot = (node, capacity.slot_of(node, start))
                    taken[slot] = taken.get(slot, 0) + 1
            out.append((order, key))
        return out

    def _route_booked(self, uow: UnitOfWork, items: list[tuple[Order, str]], start: float, at: float,
                      taken: dict[tuple[str, int], int], planned: list[Order]) -> None:
        """Routes booked orders due, their stock reserved now, against their
        slot; an order no node can serve then is rejected now, its reason
        saying the slot cannot be kept (the customer is told early)."""
        if not items:
            return
        orders, keys = [o for o, _ in items], [k for _, k in items]
        before = [set(o.parts) for o in orders]
        kept = self._route(uow, orders, at, keys, state=self._state_at(at, start, taken, planned), keep=set(keys))
        self._count_taken(taken, orders, before, start)
        for order, key, d in kept:
            window = f"{ts(start).isoformat()} to {ts(order.promised_at).isoformat()}"
            self._unserved(uow, order, key, f"the booked slot {window} cannot be kept: {d.reason}", d.lost, at)

    def _book_later(self, uow: UnitOfWork, order: Order, key: str, d: Decision, at: float,
                    taken: dict[tuple[str, int], int]) -> None:
        """An order no node serves now, whose customer allows a later slot:
        booked for the first slot after the first node that could serve it
        and is closed now opens; rejected as decided if none is closed."""
        opening = self._first_opening(order, at)
        if opening is None or opening > at + self.schedule.horizon_days * 86_400:
            self._unserved(uow, order, key, d.reason or "no node can serve it", d.lost, at)
            return
        slot = slot_after(opening, self.schedule, self._tz)
        booked = self._book(uow, [(order, key)], slot.start, [slot.end], at, taken,
                            closed_now=f"closed until {ts(opening).isoformat()}; ")
        if booked and order.booking.due_at <= at:
            self._route_booked(uow, booked, slot.start, at, taken, [])

    def _first_opening(self, order: Order, at: float) -> float | None:
        """When the first node that could serve the order and is closed now opens."""
        if order.mode == "pickup":
            nodes = [self.nodes[order.pickup_node]] if order.pickup_node in self.nodes else []
        else:
            nodes = [n for n in self.network.nodes if "delivery" in n.modes
                     and haversine_km(order.lat, order.lon, n.lat, n.lon) <= n.delivery_radius_km]
        times = [t for n in nodes if n.id not in order.excluded
                 and (t := next_opening([w.minutes() for w in n.hours], self._tz, at, self.schedule.horizon_days))
                 is not None and t > at]
        return min(times, default=None)

    def _state_at(self, at: float, start: float, taken: dict[tuple[str, int], int], planned: list[Order]) -> NetworkState:
        """The network as the router plans a slot from `start`: stock now, the
        nodes' hours then, the capacity left in that slot less what this
        transaction took there, plus the places `planned` orders (booked,
        being routed) hold there already."""
        capacity = self.readmodels.capacity
        left = capacity.capacity_left(at, start)
        rows = self.readmodels.atp.node_index
        for (node, slot), n in taken.items():
            if slot == capacity.slot_of(node, start):
                left[rows[node]] -= n
        for order in planned:
            for node in order.booking.nodes:
                left[rows[node]] += 1
        state = self.network_state(at)
        elsewhere = state.elsewhere
        state.capacity_left = np.maximum(left if elsewhere is None else np.where(elsewhere, 0, left), 0)
        state.now = start
        return state

    def _count_taken(self, taken: dict[tuple[str, int], int], orders: list[Order], before: list[set[str]],
                     when: float) -> None:
        """Counts the parts just routed in the slot of `when` at their nodes."""
        capacity = self.readmodels.capacity
        for order, had in zip(orders, before):
            for node in order.parts:
                if node not in had:
                    slot = (node, capacity.slot_of(node, when))
                    taken[slot] = taken.get(slot, 0) + 1

    def _route_due(self) -> int:
        """Booked orders whose lead time has come are routed, their stock reserved (or rejected, the customer told)."""
        now = self.clock.now()
        due = self.readmodels.order_view.due(now)
        if not due:
            return 0

        def work(uow: UnitOfWork) -> int:
            self._route_scheduled(uow, [uow.order(k) for k in due], now, due, {}, set())
            return len(due)

        return self._transaction(work)

    def expire_due(self) -> int:
        """The timers, as of the clock's time: parts not accepted in time go back
        to routing; booked orders due are routed; gifts not collected in time
        are released; points due expire. Returns how many of those happened
        (parts, booked orders, gifts, members' expiries)."""
        return self._expire_parts() + self._route_due() + self._expire_points() + expire_holds(self)

    def _expire_parts(self) -> int:
        """Parts the node neither accepted nor declined in time go back to routing."""
        now, timeout = self.clock.now(), self.settings.accept_timeout_s
        due = []
        for key, routed_at in self.readmodels.awaiting.items():  # oldest first: parts are kept in the order routed
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

    def _expire_points(self) -> int:
        """Gifts not collected by their time are released (points and stock), then
        members' points due expire, each an event. Found from the member read
        model's due times: nothing is scanned that is not due."""
        now = self.clock.now()
        view = self.readmodels.member_view
        gifts = view.pickups.due(now)
        members = view.expiring.due(now)
        if not gifts and not members:
            return 0

        def work(uow: UnitOfWork) -> int:
            for member, ref in gifts:
                release_gift(uow, member, ref, "not collected in time", now)
            expiring = list(dict.fromkeys(list(members) + [member for member, _ in gifts]))
            expired = sum(1 for member in expiring if uow.member(member).expire_due(now))
            return len(gifts) + expired

        return self._transaction(work)

    # -- quotes ----------------------------------------------------------
    def quote(self, cmd: QuoteOrder) -> QuoteReply:
        """A cart's options before checkout (engine/quotes.py); nothing is reserved."""
        return self.quotes.quote(cmd)

    def quote_batch(self, cmds: list[QuoteOrder]) -> list[QuoteReply | DomainError]:
        return self.quotes.quote_batch(cmds)

    def order_status(self, order_id: str) -> OrderReply:
        view = self.readmodels.order_view
        oid = view.stored_id(order_uuid(order_id))
        record = view.record(str(oid), oid)
        if record is None:
            raise NotFound("order_id", f"unknown order {order_id}")
        return order_reply(record)

    def order_reply(self, key: str) -> OrderReply:
        """The reply to a command on an order: read after its commit, from
        memory or the store (a repeated refund of an order whose record left)."""
        r = self.readmodels.order_view.record(key, UUID(key))
        if r is None:
            raise NotFound("order_id", f"unknown order {key}")
        return order_reply(r)

    # -- stock ---------------------------------------------------------
    def lines(self, lines: list[Any]) -> dict[str, int]:
        """Wire lines (sku, qty: sold, received or returned) as SKU -> quantity, each SKU known, repeats added up."""
        out: dict[str, int] = {}
        skus = self.skus
        for k, line in enumerate(lines):
            sku = line.sku
            if sku not in skus:  # as self.sku(), the field's name made only when it is wrong
                self.sku(sku, f"lines[{k}].sku")
            out[sku] = out.get(sku, 0) + line.qty
        return out

    def sku(self, sku: str, field: str = "sku") -> str:
        if sku not in self.skus:
            raise NotFound(field, f"unknown SKU {sku!r}")
        return sku

    def stock(self, node: str, skus: list[str] | None = None) -> StockReply:
        view = self.readmodels.atp
        if node not in view.node_index:
            raise NotFound("node", f"unknown node {node!r}")
        i = view.node_index[node]
        cols = [view.sku_index[self.sku(s, f"skus[{k}]")] for k, s in enumerate(skus)] if skus else list(range(len(view.sku_ids)))
        # this row's columns only: the whole ATP matrix is brought up to date once per batch, not per reply
        on_hand = view.on_hand[i, cols]
        atp = np.maximum(available(on_hand, view.reserved[i, cols], view.safety[i, cols]), 0).tolist()
        ids = [view.sku_ids[j] for j in cols]
        return StockReply(node=node, on_hand={k: q for k, q in zip(ids, on_hand.tolist()) if q or skus},
                          available={k: q for k, q in zip(ids, atp) if q or skus})

    def find_stock(self, q: FindStock) -> StockNearby:
        """Nodes that could serve the location and hold the SKU ("which nearby stores have it")."""
        view = self.readmodels.atp
        j = view.sku_index.get(self.sku(q.sku))
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

    def sale(self, node: str, sale_id: str) -> SaleReply:
        """A counter sale's money: from memory or the store (a repeated refund of a sale whose record left)."""
        r = self.readmodels.counter_sales.record(node, sale_id)
        if r is None:
            raise NotFound("sale_id", f"unknown sale {node}/{sale_id}")
        return SaleReply(node=r.node, sale_id=r.sale_id, paid=r.paid, refunded=r.refunded, kept=r.paid - r.refunded,
                         points_used=r.points_used, points_returned=r.points_returned, refunds=list(r.refunds))

    # -- members -------------------------------------------------------
    def member(self, member: str) -> MemberReply:
        m = self.readmodels.members.get(member)
        if m is None:
            raise NotFound("member", f"unknown member {member!r}")
        return member_reply(member, m, self.clock.now())
