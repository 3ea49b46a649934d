"""Routes a batch the way N partitioned engines would (docs/scale-out.md,
border orders stage 1: home partition first, then hand the order over), so
the simulations can set partitioned routing against global routing on the
same orders.

Pass 1: each order among its home partition's nodes only (the home region
as Ownership.region_of has it), one sub-batch per partition with the other
partitions' capacity masked to 0, as Engine.network_state does. Then each
order left unserved goes to the partition Ownership.transfer_target names
and is routed there against what the passes before left, until it is
served or no partition is left to try. The engine routes a handed-over
order in the receiving engine's *next* batch; here it is the same batch,
after every partition's pass 1 (see docs/simulations.md).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import msgspec
import numpy as np

from domain.order import Loss
from engine.ownership import Ownership
from engine.partitions import PartitionMap
from engine.routing.explain import _why_unserved
from engine.routing.types import Decision, NetworkState, OrderToRoute, Router


FULL = "capacity full"  # engine/routing/explain.py's reason for a node with no capacity left (or masked)


@dataclass
class RouteStats:
    """What the batches cost and how many orders changed hands."""

    partitions: int = 1
    batches: int = 0
    orders: int = 0  # routings: an order routed again after a decline counts again
    hops: int = 0  # moves to another partition (an Order.Transferred each in the engine)
    route_s: float = 0.0  # every sub-batch, one after another: one process doing all partitions' work
    parallel_s: float = 0.0  # per pass, the slowest partition: N engines side by side
    moved: set[str] = field(default_factory=set)  # orders moved at least once
    served_abroad: set[str] = field(default_factory=set)  # of them, served after a move

    @property
    def handed_over(self) -> int:
        return len(self.moved)

    def as_dict(self) -> dict:
        b = max(self.batches, 1)
        return {"partitions": self.partitions, "batches": self.batches, "routed": self.orders,
                "handed_over": self.handed_over, "hops": self.hops, "served_after_handover": len(self.served_abroad),
                "route_ms_per_batch": round(self.route_s * 1000 / b, 2),
                "parallel_ms_per_batch": round(self.parallel_s * 1000 / b, 2)}


@dataclass
class _Tried:
    """What Ownership.transfer_target reads of an order."""

    mode: str
    lat: float
    lon: float
    regions_tried: list[str] = field(default_factory=list)


class PartitionedRouter:
    """Wraps a router; with no map (or one partition) it is that router, timed."""

    def __init__(self, router: Router, pmap: PartitionMap | None = None):
        self.router = router
        self.pmap = pmap if pmap is not None and len(pmap.partitions) > 1 else None
        self.own = Ownership(pmap) if self.pmap is not None else None  # holds nothing: only its questions are asked
        self.stats = RouteStats(partitions=len(self.pmap.partitions) if self.pmap is not None else 1)
        self._masks: dict[str, np.ndarray] = {}
        self._rows: dict[str, int] = {}

    def route(self, orders: list[OrderToRoute], state: NetworkState) -> list[Decision]:
        if not orders:
            return []
        self.stats.batches += 1
        self.stats.orders += len(orders)
        if self.pmap is None:
            started = time.perf_counter()
            out = self.router.route(orders, state)
            took = time.perf_counter() - started
            self.stats.route_s += took
            self.stats.parallel_s += took
            return out
        own, pm = self.own, self.pmap
        tried = [_Tried(o.mode, o.lat, o.lon, [own.region_of(o.lat, o.lon, o.pickup_node)]) for o in orders]
        at = {i: pm.of_region(t.regions_tried[0]) for i, t in enumerate(tried)}  # order -> the partition routing it
        out: list[Decision | None] = [None] * len(orders)
        passes: list[list[tuple[str, Decision]]] = [[] for _ in orders]  # (partition, its decision) per order
        moved: set[int] = set()
        full = state.capacity_left
        while at:
            groups: dict[str, list[int]] = {}
            for i, p in at.items():
                groups.setdefault(p, []).append(i)
            slowest = 0.0
            for p, rows in groups.items():
                started = time.perf_counter()
                decided = self.router.route([orders[i] for i in rows], self._masked(state, p))
                took = time.perf_counter() - started
                self.stats.route_s += took
                slowest = max(slowest, took)
                for i, d in zip(rows, decided):
                    out[i] = d
                    passes[i].append((p, d))
            self.stats.parallel_s += slowest
            done, at = list(at), {}
            self.stats.served_abroad.update(orders[i].key for i in done if out[i].parts and i in moved)
            for i in done:
                if out[i].parts:
                    continue
                region = own.transfer_target(tried[i])
                if region is not None:
                    tried[i].regions_tried.append(region)
                    at[i] = pm.of_region(region)
                    self.stats.hops += 1
                    moved.add(i)
                    self.stats.moved.add(orders[i].key)
            if at:  # the next pass routes against what this one left
                state = _after(state, [out[i] for i in done if out[i].parts])
        if not self._rows:
            self._rows = {n: i for i, n in enumerate(state.node_ids)}
        return [self._explained(d, seen, full, o.mode) if d.lost or len(seen) > 1 else d
                for d, seen, o in zip(out, passes, orders)]

    def _explained(self, d: Decision, passes: list[tuple[str, Decision]], capacity: np.ndarray, mode: str) -> Decision:
        """Each node's loss as its own partition's pass saw it; a node of a partition that never routed the
        order lost to the mask, not to "capacity full", which would read as a cause of rejection."""
        of_node, row = self.pmap.of_node, self._rows
        routed = {p for p, _ in passes}
        lost = [x for p, dp in passes for x in dp.lost if of_node(x.node) == p]
        for x in d.lost:
            q = of_node(x.node)
            if q not in routed:
                masked = x.reason == FULL and capacity[row[x.node]] > 0
                lost.append(Loss(x.node, f"in partition {q}, which did not route the order") if masked else x)
        if lost == d.lost:
            return d
        return msgspec.structs.replace(d, lost=lost, reason=None if d.parts else _why_unserved(mode, lost))

    def _masked(self, state: NetworkState, partition: str) -> NetworkState:
        """Only the partition's nodes have capacity, as in its engine (Engine.network_state)."""
        mask = self._masks.get(partition)
        if mask is None:
            mask = np.array([self.pmap.of_node(n) == partition for n in state.node_ids])
            self._masks[partition] = mask
        return replace(state, capacity_left=np.where(mask, state.capacity_left, 0))


def _after(state: NetworkState, served: list[Decision]) -> NetworkState:
    """The state less what the served orders just took: their stock, and a slot place per part."""
    atp, capacity = state.atp.copy(), state.capacity_left.copy()
    node = {n: i for i, n in enumerate(state.node_ids)}
    sku = {k: j for j, k in enumerate(state.sku_ids)}
    for d in served:
        for part in d.parts:
            r = node[part.node]
            capacity[r] -= 1
            for k, q in part.lines.items():
                atp[r, sku[k]] -= q
    return replace(state, atp=atp, capacity_left=capacity)
