"""Which partitions an engine process writes, at which fencing epoch, and
which of the stored events its read models follow (docs/scale-out.md).

A partition is a set of regions. Its owner is the only writer of its nodes'
inventories, counter sales and orders (an order belongs to its region's
partition: the one it was placed in, or moved to by a transfer). Members,
the benefit rule book and the parties' ledgers are shared: any owner writes
them (optimistic concurrency settles it) and every engine follows them.
"""
from __future__ import annotations

from typing import Any, Iterable
from uuid import UUID

import numpy as np

from domain import ids
from domain.benefit import BenefitRules, PartyLedger
from domain.errors import Conflict, DomainError
from domain.hold import Hold
from domain.inventory import NodeInventory
from domain.member import Member
from domain.order import Order
from domain.partition import PartitionFence
from domain.sale import Sale
from engine.partitions import PartitionMap

# the events of the aggregates every engine follows, whoever wrote them (the aggregates themselves were named
# here before, which no event is an instance of: no engine followed another's members, rules or ledgers)
SHARED = (Member.Event, BenefitRules.Event, PartyLedger.Event)


class Misdirected(DomainError):
    """A command for a node or an order of a partition this engine does not own: send it to the owner."""

    code = 421

    def __init__(self, field: str, reason: str, partition: str):
        super().__init__(field, reason)
        self.partition = partition


class PartitionLost(Conflict):
    """Another engine fenced the partition with a newer epoch: this one stops writing it at once."""

    code = 503

    def __init__(self, partition: str, epoch: int, newer: int, owner: str):
        super().__init__("partition", f"partition {partition} was taken over at epoch {newer} by {owner or '?'} "
                                      f"(this engine held epoch {epoch}): retry, it is served there")
        self.partition = partition


class Ownership:
    """The partitions held, the nodes and orders they hold, and the filter
    that says which stored events concern this engine."""

    def __init__(self, pmap: PartitionMap):
        self.pmap = pmap
        self.epochs: dict[str, int] = {}  # partition -> the epoch this engine fenced it with
        self.regions: set[str] = set()
        self.nodes: set[str] = set()
        self.inventories: dict[UUID, str] = {}  # inventory id -> node, owned nodes only
        self.orders: set[UUID] = set()  # open or closed orders of the owned partitions seen so far
        self.sales: set[UUID] = set()  # counter sales at owned nodes seen so far
        self.holds: set[UUID] = set()  # quotes' holds at owned nodes seen so far
        self.moved: dict[UUID, str] = {}  # orders of owned regions moved away -> the region they went to
        self._region_of_node = {n.id: n.region for n in pmap.network.nodes}
        node_ids = [n.id for n in pmap.network.nodes]
        self._node_partition = np.array([pmap.of_node(n) for n in node_ids], dtype=object)
        self.node_mask = np.zeros(len(node_ids), dtype=bool)  # owned nodes, in the network's node order
        self._fences = {ids.partition_id(p.name): p.name for p in pmap.partitions}

    # -- holding --------------------------------------------------------
    def hold(self, partition: str, epoch: int) -> list[str]:
        """Records the partition as held at `epoch`; returns its nodes."""
        part = self._partition(partition)
        self.epochs[partition] = epoch
        self.regions.update(part.regions)
        nodes = [n.id for n in self.pmap.network.nodes if n.region in part.regions]
        self.nodes.update(nodes)
        self.inventories.update({ids.inventory_id(n): n for n in nodes})
        self.node_mask |= self._node_partition == partition
        return nodes

    def release(self, partition: str) -> list[str]:
        """Forgets the partition; returns its nodes."""
        part = self._partition(partition)
        self.epochs.pop(partition, None)
        self.regions.difference_update(part.regions)
        nodes = [n.id for n in self.pmap.network.nodes if n.region in part.regions]
        self.nodes.difference_update(nodes)
        for n in nodes:
            self.inventories.pop(ids.inventory_id(n), None)
        self.node_mask &= self._node_partition != partition
        return nodes

    def _partition(self, name: str) -> Any:
        for p in self.pmap.partitions:
            if p.name == name:
                return p
        raise Misdirected("partition", f"no partition {name!r} (partitions: {', '.join(self.pmap.names)})", name)

    # -- questions --------------------------------------------------------
    def partition_of_fence(self, fence_id: UUID) -> str | None:
        return self._fences.get(fence_id)

    def partition_of_region(self, region: str) -> str:
        return self.pmap.of_region(region)

    def region_of(self, lat: float, lon: float, pickup_node: str | None) -> str:
        """An order's home region: its pickup store's, or the region of the nearest node delivering there."""
        if pickup_node is not None and pickup_node in self._region_of_node:
            return self._region_of_node[pickup_node]
        return self.pmap.home_region(lat, lon)

    def order_region(self, order: Any) -> str:
        """Its recorded region; for an order placed before partitions, worked out as at placement."""
        return order.region or self.region_of(order.lat, order.lon, order.pickup_node)

    def foreign(self, lat: float | None, lon: float | None, pickup_node: str | None,
                order_id: UUID | None = None) -> str | None:
        """The partition an order submitted here belongs to, if this engine does
        not own it: its home's, or where it was moved (a repeat is answered
        there). None when it is this engine's, or when the order's location is
        missing: checking it says why."""
        gone = self.moved.get(order_id) if order_id is not None else None
        if gone is not None:
            return self.pmap.of_region(gone)
        if pickup_node is not None:
            region = self._region_of_node.get(pickup_node)
        elif lat is not None and lon is not None:
            region = self.pmap.home_region(lat, lon)
        else:
            region = None
        if region is None or region in self.regions:
            return None
        return self.pmap.of_region(region)

    def check_node(self, node: str) -> None:
        if node not in self.nodes:
            p = self.pmap.of_node(node)
            raise Misdirected("node", f"node {node} is in partition {p}, which this engine does not own", p)

    def check_order(self, order: Any) -> str:
        """The order's partition, if this engine owns it."""
        region = self.order_region(order)
        p = self.pmap.of_region(region)
        if region not in self.regions:
            raise Misdirected("order_id", f"order {order.id} is in region {region} (partition {p}), "
                                          "which this engine does not own", p)
        return p

    def check_epoch(self, inv: NodeInventory) -> None:
        """Raises PartitionLost if another engine fenced the node after this one did."""
        p = self.pmap.of_node(inv.node_id)
        held = self.epochs.get(p, 0)
        if inv.owner_epoch > held:
            raise PartitionLost(p, held, inv.owner_epoch, inv.owner)

    def transfer_target(self, order: Any) -> str | None:
        """The region to move an order to when its own partition cannot serve
        it: the nearest node delivering there (or its pickup store) in a
        partition it has not been in yet; None when there is none."""
        tried = {self.pmap.of_region(r) for r in order.regions_tried} | set(self.epochs)
        if order.mode == "pickup":
            return None  # a pickup order is served at the store the customer chose, in that store's partition
        pm = self.pmap
        d = _distances(pm, order.lat, order.lon)
        for i in np.argsort(d, kind="stable"):
            if pm._radius[i] >= 0 and d[i] <= pm._radius[i]:
                region = pm._region[i]
                if pm.of_region(region) not in tried:
                    return region
        return None

    # -- which events concern this engine ---------------------------------
    def concerns(self, event: Any) -> bool:
        """Whether a stored event (in commit order) belongs in this engine's
        read models; learns the owned orders as it goes."""
        oid = event.originator_id
        if isinstance(event, SHARED):
            return True
        if isinstance(event, NodeInventory.Event):
            return oid in self.inventories
        if isinstance(event, Order.Event):
            if isinstance(event, Order.Placed):
                region = event.region or self.region_of(event.lat, event.lon, event.pickup_node)
                if region in self.regions:
                    self.orders.add(oid)
                    return True
                return False
            if isinstance(event, Order.Transferred):
                if event.region in self.regions:
                    self.orders.add(oid)
                    return True
                return oid in self.orders  # it leaves: the caller forgets it after applying
            return oid in self.orders
        if isinstance(event, Sale.Event):
            if oid in self.sales:
                return True
            if getattr(event, "node", None) in self.nodes:  # the sale's first event names its node
                self.sales.add(oid)
                return True
            return False
        if isinstance(event, Hold.Event):  # its stock is reserved at the node: the node's owner lets it lapse
            if isinstance(event, Hold.Placed) and event.node in self.nodes:
                self.holds.add(oid)
            return oid in self.holds
        return False

    def classes_followed(self, handled: Iterable[type]) -> list[type]:
        """The event classes of other engines' writes this one follows: every
        event of the shared aggregates the read models handle, transfers and fences."""
        return [c for c in handled if issubclass(c, SHARED)] + [Order.Transferred, NodeInventory.Fenced,
                                                                 PartitionFence.Taken]


def _distances(pm: PartitionMap, lat: float, lon: float) -> np.ndarray:
    from engine.geo import haversine_km

    return haversine_km(lat, lon, pm._lat, pm._lon)
