"""The network: nodes (stores and central kitchens) and the SKU catalogue.

Plain typed structs; files are decoded into them by `engine.store.network_file`.
"""
from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import Meta, Struct

from domain.errors import InvalidInput

Id = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Name = Annotated[str, Meta(min_length=1)]
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
    name: Name
    kind: NodeKind
    lat: Latitude
    lon: Longitude
    modes: Annotated[list[Mode], Meta(min_length=1)]
    delivery_radius_km: Annotated[float, Meta(ge=0)]
    hours: Annotated[list[Window], Meta(min_length=1)]
    capacity_per_slot: Annotated[int, Meta(ge=0)]
    prep_minutes: Annotated[float, Meta(ge=0)]
    cost_per_km: Annotated[float, Meta(ge=0)]
    slot_minutes: Annotated[int, Meta(ge=1, le=1440)] = 30
    operating_cost: Annotated[float, Meta(ge=0)] = 0.0  # per order handled
    region: Name = "default"
    dealer: Name | None = None  # franchisee, credited in benefit sharing
    manager: Name | None = None  # the store manager, credited in benefit sharing


class Sku(Struct, frozen=True, forbid_unknown_fields=True):
    id: Id
    name: Name
    price: Annotated[float, Meta(ge=0)]  # RMB
    safety_stock: Qty = 0
    category: Name | None = None  # for reports only; routing ignores it


class Network(Struct, frozen=True, forbid_unknown_fields=True):
    name: Name
    nodes: list[Node]
    skus: list[Sku]
    stock: dict[str, dict[str, Qty]] = {}  # starting on-hand, node -> sku -> qty
    timezone: str = "Asia/Shanghai"
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$")] = "CNY"  # prices in the file are in its major unit
    minor_units: Annotated[int, Meta(ge=0, le=4)] = 2  # digits of the minor unit: amounts are integers of it
    speed_kmh: Annotated[float, Meta(gt=0)] = 20.0  # courier speed for ETAs

    def node(self, node_id: str) -> Node:
        return self._nodes()[node_id]

    def _nodes(self) -> dict[str, Node]:
        return {n.id: n for n in self.nodes}


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def validate(network: Network) -> Network:
    """Checks what types alone cannot (and, for networks built in code rather
    than decoded, the constraints decoding enforces on lists); raises
    InvalidInput naming the field."""
    seen: dict[str, int] = {}
    for i, node in enumerate(network.nodes):
        at = f"$.nodes[{i}]"
        if node.id in seen:
            raise InvalidInput(f"{at}.id", f"duplicate node id {node.id!r} (also $.nodes[{seen[node.id]}])")
        seen[node.id] = i
        if not node.modes:
            raise InvalidInput(f"{at}.modes", "a node must offer delivery or pickup")
        if len(set(node.modes)) < len(node.modes):
            raise InvalidInput(f"{at}.modes", f"a mode is listed twice: {node.modes}")
        if "delivery" in node.modes and node.delivery_radius_km <= 0:
            raise InvalidInput(f"{at}.delivery_radius_km", "a node offering delivery needs a radius above 0")
        _check_hours(node.hours, f"{at}.hours")
    skus: dict[str, int] = {}
    for i, sku in enumerate(network.skus):
        if sku.id in skus:
            raise InvalidInput(f"$.skus[{i}].id", f"duplicate sku id {sku.id!r} (also $.skus[{skus[sku.id]}])")
        skus[sku.id] = i
    for node_id, lines in network.stock.items():
        if node_id not in seen:
            raise InvalidInput(f"$.stock.{node_id}", f"unknown node {node_id!r}")
        for sku_id, qty in lines.items():
            if sku_id not in skus:
                raise InvalidInput(f"$.stock.{node_id}.{sku_id}", f"unknown sku {sku_id!r}")
            if qty < 0:
                raise InvalidInput(f"$.stock.{node_id}.{sku_id}", f"stock cannot be negative ({qty})")
    try:
        ZoneInfo(network.timezone)
    except (ValueError, ZoneInfoNotFoundError):
        raise InvalidInput("$.timezone", f"not an IANA time zone name: {network.timezone!r}") from None
    return network


def _check_hours(hours: list[Window], at: str) -> None:
    if not hours:
        raise InvalidInput(at, "a node needs at least one opening window")
    spans = sorted((w.minutes(), j) for j, w in enumerate(hours))
    for (o, c), j in spans:
        if o >= c or c > 1440:
            w = hours[j]
            raise InvalidInput(f"{at}[{j}]", f"opens {w.opens} must be before closes {w.closes} (split a night shift at 24:00)")
    for ((_, c0), j0), ((o1, _), j1) in zip(spans, spans[1:]):
        if o1 < c0:  # touching windows (…-12:00, 12:00-…) are allowed
            raise InvalidInput(f"{at}[{j1}]", f"overlaps {at}[{j0}] ({hours[j0].opens}-{hours[j0].closes})")


# Re-exported so callers need only this module to read a network.
ValidationError = msgspec.ValidationError
