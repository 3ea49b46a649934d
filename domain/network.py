"""The network: nodes (stores and central kitchens) and the SKU catalogue.

Plain typed structs; files are decoded into them by `engine.network_file`.
"""
from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from domain.errors import InvalidInput

Id = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Qty = Annotated[int, Meta(ge=0)]
Latitude = Annotated[float, Meta(ge=-90, le=90)]
Longitude = Annotated[float, Meta(ge=-180, le=180)]
Clock = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-4]):[0-5][0-9]$")]
NodeKind = Literal["store", "kitchen"]
Mode = Literal["delivery", "pickup"]


class Window(Struct, frozen=True, forbid_unknown_fields=True):
    """Opening window in local time, e.g. 08:00-22:00; `closes` may be 24:00."""

    opens: Clock
    closes: Clock

    def minutes(self) -> tuple[int, int]:
        return _minutes(self.opens), _minutes(self.closes)


class Node(Struct, frozen=True, forbid_unknown_fields=True):
    id: Id
    name: str
    kind: NodeKind
    lat: Latitude
    lon: Longitude
    modes: list[Mode]
    delivery_radius_km: Annotated[float, Meta(ge=0)]
    hours: list[Window]
    capacity_per_slot: Annotated[int, Meta(ge=0)]
    prep_minutes: Annotated[float, Meta(ge=0)]
    cost_per_km: Annotated[float, Meta(ge=0)]
    slot_minutes: Annotated[int, Meta(ge=1, le=1440)] = 30
    operating_cost: Annotated[float, Meta(ge=0)] = 0.0  # per order handled
    region: str = "default"
    dealer: str | None = None  # franchisee, credited in benefit sharing


class Sku(Struct, frozen=True, forbid_unknown_fields=True):
    id: Id
    name: str
    price: Annotated[float, Meta(ge=0)]  # RMB
    safety_stock: Qty = 0


class Network(Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    nodes: list[Node]
    skus: list[Sku]
    stock: dict[str, dict[str, Qty]] = {}  # starting on-hand, node -> sku -> qty
    timezone: str = "Asia/Shanghai"
    speed_kmh: Annotated[float, Meta(gt=0)] = 20.0  # courier speed for ETAs

    def node(self, node_id: str) -> Node:
        return self._nodes()[node_id]

    def _nodes(self) -> dict[str, Node]:
        return {n.id: n for n in self.nodes}


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def validate(network: Network) -> Network:
    """Checks what types alone cannot; raises InvalidInput naming the field."""
    seen: dict[str, int] = {}
    for i, node in enumerate(network.nodes):
        if node.id in seen:
            raise InvalidInput(f"$.nodes[{i}].id", f"duplicate node id {node.id!r}")
        seen[node.id] = i
        if not node.modes:
            raise InvalidInput(f"$.nodes[{i}].modes", "a node must offer delivery or pickup")
        for j, w in enumerate(node.hours):
            o, c = w.minutes()
            if o >= c or c > 1440:
                raise InvalidInput(f"$.nodes[{i}].hours[{j}]", f"opens {w.opens} must be before closes {w.closes}")
    skus: dict[str, int] = {}
    for i, sku in enumerate(network.skus):
        if sku.id in skus:
            raise InvalidInput(f"$.skus[{i}].id", f"duplicate sku id {sku.id!r}")
        skus[sku.id] = i
    for node_id, lines in network.stock.items():
        if node_id not in seen:
            raise InvalidInput(f"$.stock.{node_id}", f"unknown node {node_id!r}")
        for sku_id in lines:
            if sku_id not in skus:
                raise InvalidInput(f"$.stock.{node_id}.{sku_id}", f"unknown sku {sku_id!r}")
    if not re.fullmatch(r"[A-Za-z_]+(/[A-Za-z0-9_+-]+)*", network.timezone):
        raise InvalidInput("$.timezone", f"not an IANA time zone name: {network.timezone!r}")
    return network


# Re-exported so callers need only this module to read a network.
ValidationError = msgspec.ValidationError
