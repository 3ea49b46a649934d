"""Write commands taken together (group commit): the steps nodes report,
stock moves, counter sales and the rest that arrive while the engine's
thread is busy run in one transaction and one commit, each as if it had
been handled alone. A command alone pays a commit (its WAL pages and an
fsync) and a transaction's set-up: several times what a step costs in a
group (benchmarks/README.md, eighteenth round).

"As if alone":
- each command's events are stored, published and replayed in its turn
  (engine.store.aggregates.EventOrder);
- a refused command changes nothing and its refusal is its own;
- its reply is read after its own events reached the read models, before
  the next command's;
- a command whose step reads what the read models hold of an earlier
  command's changes (`reads_views`: a member's purchase handed over after
  an earlier part of it, a sign-up, refunds) does not follow changes of
  the same transaction, which the read models have not seen yet: it
  starts the next transaction.
A refused command that had already made events (a guard after a change)
has the others run again without it; any other failure (a lost partition,
the store) has each command handled alone, as `Engine.handle` would."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Container

from domain.commands import (
    AcceptOrder, AdjustStock, BindIdentity, CancelRedemption, CollectGift, CountStock, DeclineOrder, RebindMember,
    ReceiveStock, RedeemPoints, RefundOrder, ReportProgress, SellOverCounter, SetSafetyStock,
)
from domain.errors import DomainError, InvalidInput
from engine.handlers import COMMANDS, Write
from engine.memory import untraced
from engine.ownership import PartitionLost
from engine.unit_of_work import GroupedUnitOfWork

log = logging.getLogger("o2o.engine")

if TYPE_CHECKING:
    from engine.app import Engine
    from engine.unit_of_work import UnitOfWork


class _Redo(Exception):
    """A refused command left events in the unit of work: run the others again without it."""

    def __init__(self, index: int, error: DomainError):
        super().__init__(index)
        self.index, self.error = index, error


def is_write(cmd: Any) -> bool:
    return isinstance(COMMANDS.get(type(cmd)), Write)


def handle_writes(e: "Engine", cmds: list[Any], replies: bool = True) -> list[Any]:
    """Each write command's reply (None for each without `replies`), or the
    error (a DomainError, or what `Engine.handle` would have raised) it met,
    by position."""
    for cmd in cmds:
        if not is_write(cmd):
            raise InvalidInput("type", f"{type(cmd).__name__} cannot be handled with other commands")
    results: list[Any] = [None] * len(cmds)
    todo = list(range(len(cmds)))
    while todo:
        try:
            taken = _together(e, cmds, todo, results, replies)
        except _Redo as redo:
            results[redo.index] = redo.error
            todo.remove(redo.index)
            continue
        except Exception as err:  # noqa: BLE001 (each command then meets its own outcome, alone)
            log.warning("%d write commands not committed together (%r): each handled alone", len(todo), err,
                        exc_info=not isinstance(err, DomainError))
            untraced(err)
            for i in todo:
                results[i] = _alone(e, cmds[i])
            return results
        todo = todo[taken:]
    return results


# steps that read nothing but their aggregates and the network. Commands are told apart by their exact type:
# isinstance with these classes costs about 70 ns a class: with eleven, 3% of an order's whole life (engine_ir --complete)
_OWN_ONLY = frozenset({AcceptOrder, DeclineOrder, ReceiveStock, AdjustStock, CountStock, SetSafetyStock, BindIdentity,
                       RebindMember, RedeemPoints, CollectGift, CancelRedemption})
HANDED_OVER = ("delivered", "collected")


def reads_views(uow: "UnitOfWork", cmd: Any, credited: Container[str] = ()) -> bool:
    """Whether the command's step reads read models that the group's earlier
    commands may have changed: the benefit credits of a purchase of which a
    part was handed over or refunded earlier in the group (`credited`: their
    order ids), the members (a sign-up), refunds, closing and paying periods.
    The steps every order goes through, and most members' purchases, read none."""
    kind = type(cmd)
    if kind in _OWN_ONLY:
        return False
    if kind is ReportProgress:
        if cmd.step not in HANDED_OVER:
            return False
        try:
            order = uow.order(cmd.order_id)
        except DomainError:
            return False  # the step meets the same
        # a member's purchase is credited once and capped by what the benefit view holds of it
        return order.member is not None and str(order.id) in credited
    if kind is SellOverCounter:
        return False  # a new sale: no earlier command of the group credited it (a repeat is refused)
    return True


def _alone(e: "Engine", cmd: Any) -> Any:
    try:
        return e.handle(cmd)
    except Exception as err:  # noqa: BLE001 (answered to its caller as handle's would be)
        return untraced(err)


def _together(e: "Engine", cmds: list[Any], todo: list[int], results: list[Any], replies: bool) -> int:
    """The first commands of `todo` in one transaction, up to one that must
    see what they changed; how many it took (at least one)."""
    run: dict[str, Any] = {}  # the last run's (a version conflict runs the work again)

    def work(uow: GroupedUnitOfWork) -> None:
        order = uow.by_command
        keys: dict[int, Any] = {}
        refused: dict[int, DomainError] = {}
        credited: set[str] = set()  # orders a part of which was handed over or refunded
        run.update(order=order, keys=keys, refused=refused, taken=0)
        clock = e.clock
        for i in todo:
            cmd = cmds[i]
            if order.events and reads_views(uow, cmd, credited):
                break
            try:
                keys[i] = COMMANDS[type(cmd)].step(e, uow, cmd, clock.now())
            except PartitionLost:
                raise
            except DomainError as err:
                if order.made():
                    raise _Redo(i, untraced(err)) from None
                refused[i] = untraced(err)
            else:
                kind = type(cmd)
                if kind is ReportProgress and cmd.step in HANDED_OVER or kind is RefundOrder:
                    credited.add(keys[i])  # (the order's id)
            order.mark()
            run["taken"] += 1

    def apply(recordings: list[Any]) -> None:
        order, keys, refused = run["order"], run["keys"], run["refused"]
        at, readmodels = 0, e.readmodels
        for i, n in zip(todo, order.counts):
            for rec in recordings[at:at + n]:
                readmodels.apply(rec.domain_event, rec.notification.id)
            at += n
            if i in refused or not replies:
                results[i] = refused.get(i)
                continue
            cmd = cmds[i]
            try:
                results[i] = COMMANDS[type(cmd)].reply(e, cmd, keys[i])
            except Exception as err:  # noqa: BLE001 (its events are stored, as with handle)
                results[i] = untraced(err)
        for rec in recordings[at:]:  # made after the commands (a partition's fence stamp)
            readmodels.apply(rec.domain_event, rec.notification.id)

    e._transaction(work, apply, GroupedUnitOfWork)
    return run["taken"]
