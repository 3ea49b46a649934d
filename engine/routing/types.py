"""The contract between the engine and the router.

The engine hands the router a batch of `OrderToRoute` and a `NetworkState`
(its read-model view of stock and capacity); the router returns one
`Decision` per order, in the same order. The router never touches aggregates.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal, Protocol

import msgspec
import numpy as np

from domain.network import Network
from domain.order import Loss  # why a cheaper candidate lost ("no stock of SKU A12", "too far"): stored as it is

SolverName = Literal["greedy", "optimal", "exact"]
SOLVERS: tuple[str, ...] = typing.get_args(SolverName)  # for command-line choices


class OrderToRoute(msgspec.Struct, frozen=True):
    key: str  # the order id
    lines: dict[str, int]  # what still needs a node: sku -> qty
    mode: Literal["delivery", "pickup"]
    lat: float
    lon: float
    placed_at: float  # epoch seconds
    promised_at: float  # epoch seconds: hand-over due by then
    value: float = 0.0  # RMB, sets the penalty for leaving it unserved
    pickup_node: str | None = None  # pickup: the store the customer chose
    home_node: str | None = None  # member's home store (soft preference)
    excluded: tuple[str, ...] = ()  # nodes that declined or let it expire
    must_assign: bool = False


@dataclass
class NetworkState:
    """Read-model view at routing time. Arrays are indexed like the lists."""

    network: Network
    node_ids: list[str]
    sku_ids: list[str]
    atp: np.ndarray  # (nodes, skus) int64, available to promise now
    capacity_left: np.ndarray  # (nodes,) int64, orders the node can still take this slot
    now: float  # epoch seconds
    elsewhere: np.ndarray | None = None  # (nodes,) bool: another engine's partition (scale-out; capacity 0 here)


class CostTerms(msgspec.Struct, frozen=True):
    distance_km: float
    eta_min: float  # preparation + travel
    delivery: float  # distance * node cost per km
    time: float  # eta * weight
    lateness: float  # risk of missing the promise
    operating: float
    home: float  # negative: bonus for the member's home store
    total: float


class Part(msgspec.Struct, frozen=True):
    node: str
    lines: dict[str, int]
    eta_at: float  # epoch seconds the part is expected at hand-over
    cost: CostTerms
    straight_line: bool = False  # the travel source had no road time: the ETA is a straight-line guess


class Decision(msgspec.Struct, frozen=True):
    key: str
    parts: list[Part]  # empty: not served in this batch
    lost: list[Loss] = []
    reason: str | None = None  # why it is not served, when parts is empty


class Weights(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    per_minute: float = 0.2  # RMB-equivalent per minute of ETA
    lateness: float = 20.0  # per unit of lateness risk
    operating: float = 1.0  # times the node's operating cost
    home_bonus: float = 2.0  # subtracted for the member's home store
    unserved_base: float = 50.0  # penalty = base + value for an unserved order
    split_penalty: float = 8.0  # per extra part


class RouterSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    solver: SolverName = "optimal"
    candidates: int = 8  # K cheapest feasible nodes kept per order
    time_limit_ms: int = 200  # per batch, for the optimal solver
    allow_split: bool = False
    weights: Weights = Weights()


class Router(Protocol):
    def route(self, orders: list[OrderToRoute], state: NetworkState) -> list[Decision]: ...
