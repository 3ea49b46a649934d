"""The aggregate store: what the engine keeps of its aggregates between
commands (the identity map), the transaction that saves what one command
touched or nothing, with its retry on a version conflict, the save itself
and the snapshot policy. The library's private API is used here and nowhere
else; tests/persistence/test_aggregate_store.py checks that this save
stores what the library's own `Application.save` stores.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from domain.errors import Conflict
from engine.store.eventlog import EventLog

T = TypeVar("T")

RECENT = "recent"  # what `keep` answers for an aggregate kept while recently used (AggregateStore.recent)


class Touched(Protocol):
    """What a transaction's work hands back to the store: the aggregates it
    touched, and (`by_command`, an EventOrder, or None) the order its
    commands made their events in."""

    touched: dict[UUID, Any]
    by_command: "EventOrder | None"


class EventOrder:
    """The events of a unit of work that runs several commands, in the order
    the commands made them (command by command; within one, aggregate by
    aggregate as a save of that command alone stores them), so that they are
    stored, published and replayed as if each command had been saved alone.
    The unit of work notes in `used` each aggregate a command reaches for;
    `mark` after each command; `counts` is how many events each made."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.counts: list[int] = []
        self.used: list[Any] = []  # aggregates reached for since the last mark (repeats and all)
        self._taken: dict[UUID, int] = {}  # aggregate -> its pending events already in `events`

    def made(self) -> bool:
        """Whether any aggregate holds events since the last mark."""
        taken = self._taken
        return any(len(agg._pending_events) > taken.get(agg.id, 0) for agg in self.used)

    def mark(self) -> None:
        """The events made since the last mark: the last command's."""
        taken, events, n = self._taken, self.events, len(self.events)
        for agg in {agg.id: agg for agg in self.used}.values():  # each once, in the order first reached
            pending = agg._pending_events
            had = taken.get(agg.id, 0)
            if len(pending) > had:
                events.extend(pending[had:])
                taken[agg.id] = len(pending)
        self.used.clear()
        self.counts.append(len(events) - n)

    def stored(self, collected: dict[UUID, list[Any]]) -> list[Any]:
        """The order to store the collected events in: the marked ones, then any made after the last mark."""
        after = [e for agg_id, new in collected.items() for e in new[self._taken.get(agg_id, 0):]]
        return self.events + after if after else self.events


@dataclass(frozen=True)
class SnapshotPolicy:
    """Every `every[type]` events of an aggregate of that type, or, once its
    `size` (open entries a snapshot carries) outnumbers that, every as many
    events as that: a snapshot's size grows with them, and taking a large
    one at a fixed interval made each order dearer the more were open
    (benchmarks/README.md, bench store)."""

    every: dict[type, int] = field(default_factory=dict)
    size: Callable[[Any], int] = lambda aggregate: 0
    # or each time a save takes an aggregate of that type past a multiple of this many versions: nothing is
    # recorded per aggregate, for types with millions of them (members)
    multiples: dict[type, int] = field(default_factory=dict)


class AggregateStore:
    """Aggregates this process writes, kept in memory as last saved (it is
    their only writer) while `keep(aggregate)` says so, or, where it says
    RECENT, among the `recent_max` used last; the rest are loaded from the
    event log when a command needs them."""

    def __init__(self, log: EventLog, keep: Callable[[Any], bool | str] = lambda aggregate: True,
                 snapshots: SnapshotPolicy = SnapshotPolicy(), max_retries: int = 5, recent_max: int = 0,
                 absent_kept: frozenset[UUID] = frozenset()):
        """`absent_kept`: ids whose absence from the store is remembered once seen, until dropped (the rule
        book: every member's purchase asks for it, and many stores never have one). They must be of
        aggregates `keep` keeps: once saved, memory answers for them first."""
        self.log = log
        self.keep = keep
        self.snapshots = snapshots
        self._snapshotted = frozenset(snapshots.every) | frozenset(snapshots.multiples)
        self.max_retries = max_retries
        self.cached: dict[UUID, Any] = {}
        # a member's purchase loads it by replaying its history, about half of its hand-over's step
        # (benchmarks/README.md, nineteenth round); there can be millions of them, so only the last used stay
        self.recent: OrderedDict[UUID, Any] = OrderedDict()
        self.recent_max = recent_max
        self.absent_kept = absent_kept
        self.absent: set[UUID] = set()  # of absent_kept, those looked up and not found
        self.conflicts = 0  # saves refused for a version another writer took (then retried)
        self._snapshot_at: dict[UUID, int] = {}  # version of the last snapshot taken (or of the aggregate loaded)

    def get(self, aggregate_id: UUID) -> Any | None:
        """The aggregate as last saved, or None if it has no events."""
        agg = self.cached.get(aggregate_id)
        if agg is not None:
            return agg
        agg = self.recent.get(aggregate_id)
        if agg is not None:
            self.recent.move_to_end(aggregate_id)
            return agg
        if aggregate_id in self.absent:
            return None
        try:
            agg = self.log.repository.get(aggregate_id, projector_func=_project)
        except AggregateNotFoundError:
            if aggregate_id in self.absent_kept:
                self.absent.add(aggregate_id)
            return None
        if type(agg) in self.snapshots.every:
            self._snapshot_at.setdefault(agg.id, agg.version)  # or earlier: the next one comes no later
        self._remember((agg,))
        return agg

    def transaction(self, begin: Callable[[], Touched], work: Callable[[Any], T],
                    on_conflict: Callable[[], Any]) -> tuple[T, list[Any]]:
        """Runs `work` on a fresh unit of work (`begin()`) and saves what it
        touched in one save; on a version conflict forgets what it touched,
        calls `on_conflict` (to catch up) and runs it again. Any other error
        discards what it did. Returns the result and the save's recordings."""
        for _ in range(self.max_retries + 1):
            uow = begin()
            try:
                result = work(uow)
                recordings = self.save(uow.touched.values(), uow.by_command)
            except IntegrityError:
                self.conflicts += 1
                self._forget(uow.touched.values(), stale=True)
                on_conflict()
                continue
            except BaseException:
                self._forget(uow.touched.values(), stale=False)
                raise
            self._remember(uow.touched.values())
            return result, recordings
        raise Conflict("store", f"gave up after {self.max_retries} concurrent-write conflicts")

    def save(self, aggregates: Iterable[Any], by_command: EventOrder | None = None) -> list[Any]:
        """Application.save (eventsourcing is pinned) without its runtime
        Protocol isinstance checks per object, and snapshots taken of the
        aggregate in memory (the library reloads it from the store first).
        The events are recorded by EventLog.record, aggregate by aggregate,
        or in `by_command`'s order."""
        events: list[Any] = []
        due = []
        every, multiples, snapshotted = self.snapshots.every, self.snapshots.multiples, self._snapshotted
        log = self.log
        collected = {} if by_command is not None else None
        for agg in aggregates:
            new = agg.collect_events()
            events.extend(new)
            if collected is not None:
                collected[agg.id] = new
            if new and type(agg) in snapshotted and log.snapshots is not None:  # (one lookup for an order)
                kind = type(agg)
                if kind in every and self._snapshot_due(agg) or (
                        kind in multiples and agg.version // multiples[kind] > (agg.version - len(new)) // multiples[kind]):
                    due.append(agg)
        if collected is not None:
            events = by_command.stored(collected)
        recordings = log.record(events)
        if due:
            snapshot_class = self.log.snapshot_class
            self.log.snapshots.put([getattr(type(agg), "Snapshot", snapshot_class).take(agg) for agg in due])
            for agg in due:
                if type(agg) in every:
                    self._snapshot_at[agg.id] = agg.version
        return recordings

    def _snapshot_due(self, agg: Any) -> bool:
        interval = self.snapshots.every[type(agg)]
        return agg.version - self._snapshot_at.get(agg.id, 0) >= max(interval, self.snapshots.size(agg))

    def evict(self, which: Callable[[Any], bool]) -> None:
        """Drops from memory the aggregates `which` picks: loaded again when needed."""
        for kept in (self.cached, self.recent):
            for agg_id in [agg_id for agg_id, agg in kept.items() if which(agg)]:
                del kept[agg_id]

    def drop(self, aggregate_id: UUID) -> None:
        """Drops one aggregate from memory (another writer changed it): loaded again when needed."""
        self.cached.pop(aggregate_id, None)
        self.recent.pop(aggregate_id, None)
        self.absent.discard(aggregate_id)

    def _forget(self, touched: Iterable[Any], stale: bool) -> None:
        """Drops what a failed command changed (or, after a version conflict,
        everything it touched): the next command reloads it from the store.
        Guards raise before any change, so a refused command usually drops nothing."""
        for agg in touched:
            if stale or agg.pending_events:
                self.drop(agg.id)

    def _remember(self, touched: Iterable[Any]) -> None:
        cached, recent = self.cached, self.recent
        for agg in touched:
            kept = self.keep(agg)
            if kept is RECENT:
                if self.recent_max:
                    recent[agg.id] = agg
                    recent.move_to_end(agg.id)
                    if len(recent) > self.recent_max:
                        recent.popitem(last=False)
            elif kept:
                cached[agg.id] = agg
            else:
                cached.pop(agg.id, None)


def record_events(log: EventLog, events: list[Any]) -> list[Any]:
    """Events already made, stored in one save as the engine stores a batch (benchmarks rewrite stores with it)."""
    return log.record(events)


def _project(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's project_aggregate less its assert that each event is a
    CanMutateProtocol: a runtime Protocol check, which was 29% of loading a
    member from its events (benchmarks/README.md)."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate
