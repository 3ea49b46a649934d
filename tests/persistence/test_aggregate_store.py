"""The aggregate store's save (engine/store/aggregates.py, on the library's
private API) stores exactly what the library's own Application.save stores
for the same aggregates: the same events, versions, topics and bytes, and
the same snapshots."""
from __future__ import annotations

import copy
from typing import Iterator

from domain.inventory import NodeInventory
from domain.member import Member
from domain.order import Order, RoutedPart
from engine.store.aggregates import RECENT, AggregateStore, SnapshotPolicy
from engine.store.eventlog import EventLog

T0 = 1_700_000_000.0


def _commands() -> Iterator[list]:
    """Three commands' worth of aggregates with their new events."""
    inv = NodeInventory(node_id="S1", at=T0)
    inv.receive({"A": 10, "B": 4}, ref="opening", at=T0)
    order = Order.place(channel="app", external_id="o-1", lines={"A": 2}, value=9.5, mode="delivery", lat=31.2,
                        lon=121.5, promised_at=T0 + 2700, at=T0)
    yield [inv, order, Member.sign_up(member="m-1", node="S1", via="qr", at=T0)]
    inv.reserve(str(order.id), {"A": 2}, T0 + 1)
    order.route([RoutedPart(node="S1", lines={"A": 2}, eta_at=T0 + 900, cost={"total": 3.5})], [], T0 + 1)
    yield [inv, order]
    for i in range(3):
        inv.receive({"B": 1}, ref=f"po-{i}", at=T0 + 2 + i)
    yield [inv]


def _rows(log: EventLog) -> list[tuple]:
    return [(n.id, n.originator_id, n.originator_version, n.topic, n.state)
            for n in log.recorder.select_notifications(1, 1000)]


def _snapshots(log: EventLog, aggregate_id) -> list[tuple]:
    return [(s.originator_version, type(s).__qualname__, s.state) for s in log.snapshots.get(aggregate_id)]


class _LibraryApp(EventLog):
    snapshotting_intervals = {NodeInventory: 3}


def test_the_store_saves_what_the_library_saves():
    ours, theirs = EventLog("memory:", snapshots=True), _LibraryApp("memory:", snapshots=True)
    store = AggregateStore(ours, snapshots=SnapshotPolicy({NodeInventory: 3}))
    for aggregates in _commands():
        twins = copy.deepcopy(aggregates)  # the same events, timestamps included
        store.save(aggregates)
        theirs.save(*twins)
    assert _rows(ours) == _rows(theirs) and len(_rows(ours)) == 9
    inv_id = NodeInventory.create_id("S1", T0)
    assert _snapshots(ours, inv_id) and _snapshots(ours, inv_id) == _snapshots(theirs, inv_id)


def test_a_failed_command_leaves_nothing_cached_that_it_changed():
    log = EventLog("memory:")
    store = AggregateStore(log)
    inv = NodeInventory(node_id="S1", at=T0)
    store.save([inv])
    store._remember([inv])
    inv.receive({"A": 1}, ref="not saved", at=T0 + 1)
    store._forget([inv], stale=False)
    assert store.get(inv.id).on_hand == {}  # reloaded as stored, without the unsaved receipt


def test_an_aggregate_loaded_from_its_events_is_the_one_the_librarys_repository_builds():
    """AggregateStore.get folds the events without the library's per-event Protocol check."""
    log = EventLog("memory:")
    store = AggregateStore(log, keep=lambda aggregate: False)
    for aggregates in _commands():
        store.save(aggregates)
    member = Member.sign_up(member="m-2", node="S1", via="qr", at=T0)
    for i in range(3):
        member.earn(10 + i, f"pos/S1/p{i}", T0 + i)
    store.save([member])
    for agg_id in {a.id for aggregates in _commands() for a in aggregates} | {member.id}:
        ours, theirs = store.get(agg_id), log.repository.get(agg_id)
        assert type(ours) is type(theirs) and vars(ours) == vars(theirs) and ours.version == theirs.version
    assert store.get(member.id).buckets["pos/S1/p2"].earned == 12


def test_the_members_used_last_stay_in_memory_up_to_the_bound():
    """keep -> RECENT: kept among the `recent_max` used last (each use counts), loaded again once pushed out;
    a failed command's changes and a conflict drop it as they drop any other."""
    log = EventLog("memory:")
    store = AggregateStore(log, keep=lambda aggregate: RECENT, recent_max=2)
    members = [Member.sign_up(member=f"m-{i}", node="S1", via="qr", at=T0) for i in range(3)]
    store.save(members)
    a, b, c = (m.id for m in members)
    first_a = store.get(a)
    assert store.get(a) is first_a  # from memory
    store.get(b)
    assert store.get(a) is first_a  # a used again: b is now the oldest
    store.get(c)
    assert list(store.recent) == [a, c]
    assert store.get(b) is not None and list(store.recent) == [c, b]  # b loaded again, a pushed out
    again = store.get(c)
    again.earn(5, "pos/S1/p1", T0 + 1)
    store._forget([again], stale=False)  # not saved
    assert c not in store.recent and store.get(c).points == 0
    store._forget([store.get(b)], stale=True)  # another writer took its version
    assert b not in store.recent


def test_no_member_stays_in_memory_with_a_bound_of_zero():
    log = EventLog("memory:")
    store = AggregateStore(log, keep=lambda aggregate: RECENT, recent_max=0)
    m = Member.sign_up(member="m-1", node="S1", via="qr", at=T0)
    store.save([m])
    store._remember([m])
    assert not store.recent and store.get(m.id) is not store.get(m.id)


def test_a_member_is_snapshotted_at_multiples_of_its_interval_and_loads_from_the_last_one():
    """SnapshotPolicy.multiples: a snapshot each time a save takes the member past a multiple of the
    interval, nothing recorded per member; loading it (snapshot, then the events after it) gives the
    aggregate its whole history gives, its buckets, spends and holds as the dataclasses they were."""
    from engine.store.aggregates import _project

    log = EventLog("memory:", snapshots=True)
    store = AggregateStore(log, keep=lambda aggregate: False, snapshots=SnapshotPolicy(multiples={Member: 10}))
    member = Member.sign_up(member="m-1", node="S1", via="clerk", at=T0, clerk="c1")
    store.save([member])
    for i in range(12):  # one event a save (versions 2 to 13), then eight in one (to 21)
        member.earn(40 + i, f"order/{i}", T0 + i, expires_at=T0 + 10**6 + i)
        store.save([member])
    member.spend(30, "order/x", T0 + 20)
    member.reserve(20, "g1", T0 + 21, gift="mug", node="S1", sku="A", until=T0 + 9000)
    member.rebind("S2", "c2", None, "moved", T0 + 22)
    for i in range(5):
        member.earn(10, f"pos/S1/p{i}", T0 + 23 + i)
    store.save([member])
    assert [s.originator_version for s in log.snapshots.get(member.id)] == [10, 21]
    assert not store._snapshot_at  # nothing kept per member
    loaded = store.get(member.id)
    whole = _project(None, log.events.get(member.id))
    assert {k: v for k, v in vars(loaded).items() if k != "_pending_events"} == \
        {k: v for k, v in vars(whole).items() if k != "_pending_events"}
    assert loaded.version == 21 and type(loaded.buckets["order/3"]).__name__ == "Bucket"
    assert loaded.holds["g1"].points == 20 and loaded.available(T0 + 30) == whole.available(T0 + 30)


def test_an_absence_kept_is_looked_up_once_and_forgotten_when_dropped():
    """absent_kept: the rule book's absence is remembered (a store lookup at every member's purchase
    before); once saved it is found in memory, and a drop (another engine wrote it) forgets the absence."""
    from domain import ids
    from domain.benefit import BenefitRules

    log = EventLog("memory:")
    store = AggregateStore(log, absent_kept=frozenset({ids.BENEFIT_RULES_ID}))
    lookups = []
    get = log.repository.get
    log.repository.get = lambda *a, **k: lookups.append(a[0]) or get(*a, **k)
    assert store.get(ids.BENEFIT_RULES_ID) is None and store.get(ids.BENEFIT_RULES_ID) is None
    assert lookups == [ids.BENEFIT_RULES_ID]  # once
    other = Member.sign_up(member="m-9", node="S1", via="qr", at=T0)
    assert store.get(other.id) is None and store.get(other.id) is None and lookups.count(other.id) == 2  # not kept
    book = BenefitRules(at=T0)
    store.save([book])
    store._remember([book])
    assert store.get(ids.BENEFIT_RULES_ID) is book
    store.drop(ids.BENEFIT_RULES_ID)
    assert store.get(ids.BENEFIT_RULES_ID).id == book.id and lookups.count(ids.BENEFIT_RULES_ID) == 2
