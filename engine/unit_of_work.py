"""The unit of work: the aggregates one command touches, found by what the
command names (a node, an order id, a member) and saved together or not at
all by the aggregate store."""
from __future__ import annotations

from typing import Any, Callable, Mapping, TypeVar
from uuid import UUID

from domain import ids
from domain.errors import InvalidInput, NotFound
from domain.benefit import BenefitRules, PartyLedger
from domain.inventory import NodeInventory
from domain.member import Member
from domain.order import Order
from domain.sale import Sale
from engine.store.aggregates import AggregateStore, EventOrder

T = TypeVar("T")


class UnitOfWork:
    def __init__(self, store: AggregateStore, nodes: Mapping[str, Any], stored_id: Callable[[UUID], UUID],
                 ownership: Any = None):
        """`stored_id`: the id an order named by its id today is stored under
        (OrderView.stored_id). `ownership` (engine.ownership.Ownership), where
        partitions are owned: nodes and orders of other partitions are
        refused, and a node fenced by a newer owner stops the command
        (PartitionLost)."""
        self.store = store
        self.nodes = nodes
        self.ownership = ownership
        self.stored_id = stored_id
        self.touched: dict[UUID, Any] = {}
        self.partitions: set[str] = set()  # the partitions whose keys this command reads or writes

    by_command: EventOrder | None = None  # GroupedUnitOfWork's: several commands' events in their order

    def add(self, aggregate: T) -> T:
        self.touched[aggregate.id] = aggregate  # type: ignore[attr-defined]
        return aggregate

    def _get(self, aggregate_id: UUID) -> Any | None:
        agg = self.touched.get(aggregate_id)
        if agg is None:
            agg = self.store.get(aggregate_id)
            if agg is not None:
                self.touched[aggregate_id] = agg
        return agg

    def inventory(self, node: str) -> NodeInventory:
        if node not in self.nodes:
            raise NotFound("node", f"unknown node {node!r}")
        own = self.ownership
        if own is not None:
            own.check_node(node)
            self.partitions.add(own.pmap.of_node(node))
        agg = self._get(ids.inventory_id(node))
        if agg is None:
            raise NotFound("node", f"node {node!r} has no inventory yet")
        if own is not None:
            own.check_epoch(agg)
        return agg

    def order(self, order_id: str) -> Order:
        agg = self._get(self.stored_id(order_uuid(order_id)))
        if agg is None:
            raise NotFound("order_id", f"unknown order {order_id}")
        if self.ownership is not None:
            self.partitions.add(self.ownership.check_order(agg))
        return agg

    def sale(self, node: str, sale_id: str, missing_ok: bool = False) -> Sale | None:
        if self.ownership is not None:
            self.ownership.check_node(node)
            self.partitions.add(self.ownership.pmap.of_node(node))
        agg = self._get(ids.sale_id(node, sale_id))
        if agg is None and not missing_ok:
            raise NotFound("sale_id", f"no sale {sale_id} at {node}")
        return agg

    def benefit_rules(self, at: float | None = None) -> BenefitRules | None:
        """The rule book; opened when `at` is given and there is none yet (None otherwise)."""
        agg = self._get(ids.BENEFIT_RULES_ID)
        if agg is None and at is not None:
            agg = self.add(BenefitRules(at=at))
        return agg

    def ledger(self, party: str, period: str, at: float) -> PartyLedger:
        """A party's ledger for a period, opened at its first line."""
        agg = self._get(ids.ledger_id(party, period))
        if agg is None:
            agg = self.add(PartyLedger(party=party, period=period, at=at))
        return agg

    def member(self, member: str) -> Member:
        agg = self._get(ids.member_id(member))
        if agg is None:
            raise NotFound("member", f"unknown member {member}")
        return agg


class GroupedUnitOfWork(UnitOfWork):
    """A unit of work several commands run in (engine.writes): it notes each
    aggregate a command reaches for, so that their events are stored in the
    commands' order (`by_command`)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.by_command = EventOrder()

    def add(self, aggregate: T) -> T:
        self.by_command.used.append(aggregate)
        return super().add(aggregate)

    def _get(self, aggregate_id: UUID) -> Any | None:
        agg = super()._get(aggregate_id)
        if agg is not None:
            self.by_command.used.append(agg)
        return agg


def order_uuid(value: str, field: str = "order_id") -> UUID:
    try:
        return UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise InvalidInput(field, f"not an order id (a UUID): {value!r}") from None
