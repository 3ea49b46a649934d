"""What-if scenario files (TOML, validated with msgspec; errors name the field).

A scenario is a base day and a list of variants, each changing one or more
things. Every variant sees the same random demand (common random numbers).
See docs/simulations.md for every field.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from domain.benefit import RuleSet, check_rules
from domain.commands import ReplenishPolicy
from domain.errors import DomainError, InvalidInput
from engine.config import Batching, PartitionSettings
from engine.routing.types import RouterSettings

Clock = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-4]):[0-5][0-9]$")]
Share = Annotated[float, Meta(ge=0, le=1)]


class Generated(Struct, frozen=True, forbid_unknown_fields=True):
    stores: Annotated[int, Meta(ge=1)] = 60
    kitchens: Annotated[int, Meta(ge=0)] = 2
    skus: Annotated[int, Meta(ge=1)] = 200
    radius_km: Annotated[float, Meta(gt=0)] = 12.0
    districts: Annotated[int, Meta(ge=1)] = 6
    seed: int = 7


class NetworkSpec(Struct, frozen=True, forbid_unknown_fields=True):
    file: str | None = None  # relative to the scenario file; "sample" for the shipped sample city
    generate: Generated | None = None
    # stores given a manager (<store>-mgr) where the network names none, picked by a hash of the
    # seed and the store: the others' manager role is vacant, as benefit-sharing rules must handle
    managers: Share = 0.0


class Promotion(Struct, frozen=True, forbid_unknown_fields=True):
    sku: str
    share: Share  # of orders that add it
    stock_per_node: Annotated[int, Meta(ge=0)]  # its whole supply, at every node


class Demand(Struct, frozen=True, forbid_unknown_fields=True):
    orders: Annotated[int, Meta(ge=0)] = 3000  # online orders per day
    # relative order rate per hour of the day (24 values); default: lunch and dinner peaks
    hourly: Annotated[list[Annotated[float, Meta(ge=0)]], Meta(min_length=24, max_length=24)] | None = None
    hotspot_spread_km: Annotated[float, Meta(gt=0)] = 1.2
    basket_max: Annotated[int, Meta(ge=1, le=20)] = 5
    popularity_zipf: Annotated[float, Meta(ge=0)] = 1.1
    channels: dict[str, Annotated[float, Meta(ge=0)]] = msgspec.field(
        default_factory=lambda: {"app": 0.4, "meituan": 0.3, "eleme": 0.2, "wechat-mini": 0.1})
    pickup_share: Share = 0.2
    promise_minutes: list[Annotated[int, Meta(ge=5)]] = msgspec.field(default_factory=lambda: [45, 45, 45, 30])
    promotions: list[Promotion] = []


class Pos(Struct, frozen=True, forbid_unknown_fields=True):
    sales_per_store_hour: Annotated[float, Meta(ge=0)] = 6.0
    basket_max: Annotated[int, Meta(ge=1)] = 3


class Behaviour(Struct, frozen=True, forbid_unknown_fields=True):
    decline_share: Share = 0.03  # of routed parts a node declines
    accept_minutes: Annotated[float, Meta(ge=0)] = 1.0  # mean delay before accepting; work starts then
    prep_spread_minutes: Annotated[float, Meta(ge=0)] = 4.0  # hand-over time spread around the ETA
    # a node given a full slot runs late by this x its preparation time (x the slot's fill, squared)
    busy_delay: Annotated[float, Meta(ge=0)] = 1.0
    courier_wait_minutes: Annotated[float, Meta(ge=0)] = 3.0  # mean wait for a courier (delivery; exponential)
    cancel_share: Share = 0.01  # orders the customer cancels before hand-over
    refund_share: Share = 0.02  # parts handed over that the customer returns later that day
    refund_whole_share: Share = 0.5  # of those, the whole order back (else one unit)
    restock_share: Share = 0.7  # returned goods put back on the node's shelf (else written off)
    refund_after_minutes: Annotated[float, Meta(ge=0)] = 60.0  # mean time from hand-over to the return


class Members(Struct, frozen=True, forbid_unknown_fields=True):
    """Members signed up at the stores before the day (by clerks), the
    counter customers signed up during the run, and the share of online
    orders and counter sales members make (picked by a hash of the order or
    sale among the members signed up by then: the same in every variant)."""

    count: Annotated[int, Meta(ge=0)] = 200
    online_share: Share = 0.25
    counter_share: Share = 0.2
    counter_signup_share: Share = 0.0  # counter customers, not members yet, whom a clerk signs up at the till
    # the `count` members signed up before the run: all at its start (0), or evenly over this many days
    # before it (in turn, store after store), which an attribution window then tells apart
    signed_up_over_days: Annotated[int, Meta(ge=0, le=3650)] = 0
    clerks_per_store: Annotated[int, Meta(ge=1, le=99)] = 3  # clerk ids <store>-clerk1..N


class Money(Struct, frozen=True, forbid_unknown_fields=True):
    """What customers pay, besides the network's price list (minor units of its currency)."""

    coupon_share: Share = 0.15  # orders with an order-level coupon
    coupon_off: Share = 0.1  # what the coupon takes off the goods
    delivery_fee: Annotated[int, Meta(ge=0)] = 400  # per delivery order


class Stock(Struct, frozen=True, forbid_unknown_fields=True):
    # "network": starting stock as the network file has it; "popularity": each node keeps
    # its assortment and its total units, spread over its SKUs in proportion to their
    # popularity (at least 2 of each), as a chain stocks its best sellers deepest
    depth: Literal["network", "popularity"] = "network"
    # deliveries top every node up to its starting stock
    replenish_at: list[Clock] = msgspec.field(default_factory=lambda: ["11:00", "16:00"])
    safety_stock_add: Annotated[int, Meta(ge=0)] = 0


class AddKitchen(Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    lat: Annotated[float, Meta(ge=-90, le=90)]
    lon: Annotated[float, Meta(ge=-180, le=180)]
    radius_km: Annotated[float, Meta(gt=0)] = 9.0
    capacity_per_slot: Annotated[int, Meta(ge=0)] = 60


class Surge(Struct, frozen=True, forbid_unknown_fields=True):
    start: Clock  # local time
    end: Clock
    factor: Annotated[float, Meta(ge=1)]


class Variant(Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    add_kitchens: list[AddKitchen] = []
    close_stores: list[str] = []
    surges: list[Surge] = []
    router: RouterSettings | None = None
    batching: Batching | None = None
    safety_stock_add: Annotated[int, Meta(ge=0)] | None = None
    capacity_factor: Annotated[float, Meta(gt=0)] | None = None
    stock_per_node: dict[str, Annotated[int, Meta(ge=0)]] = {}  # SKU -> starting units at every node
    benefit: dict[str, Any] | None = None  # a rule set of its own instead of the scenario's (see Scenario.benefit)
    # routed as that many engines would (count, or declared regions): home partition first, then hand-over
    partitions: PartitionSettings | None = None
    travel_matrix: str | None = None  # travel minutes of its own (docs/travel.md); "straight": the straight line
    # deliveries bring what engine/replenish.py suggests instead of topping up to the starting stock
    # (docs/replenishment.md; its deliveries are the scenario's stock.replenish_at)
    replenish: ReplenishPolicy | None = None


class Scenario(Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    seed: int = 1
    date: Annotated[str, Meta(pattern=r"^\d{4}-\d{2}-\d{2}$")] = "2026-12-01"  # the first day
    days: Annotated[int, Meta(ge=1, le=366)] = 1  # simulated one after another; members and stock carry over
    start: Clock = "07:00"  # the sample city's stores open 07:00-23:00, its kitchens 06:00-22:00
    end: Clock = "22:30"
    network: NetworkSpec = NetworkSpec(file="sample")
    demand: Demand = Demand()
    pos: Pos = Pos()
    behaviour: Behaviour = Behaviour()
    money: Money = Money()
    members: Members = Members()
    stock: Stock = Stock()
    router: RouterSettings = RouterSettings()
    travel_matrix: str | None = None  # a travel-matrix file, relative to the scenario (docs/travel.md); none: straight line
    roads: str | None = None  # a travel-matrix file of the minutes couriers really take; none: the router's own
    batching: Batching = Batching()
    store: str = "memory:"  # event store per variant; sqlite:///dir/{variant}.db keeps them
    # the benefit-sharing rule set published before the first day (domain/benefit.py's RuleSet
    # without version and effective_from: the simulation fills them in); none: no benefit sharing
    benefit: dict[str, Any] | None = None
    variants: list[Variant] = []
    description: str = ""


class ScenarioError(InvalidInput):
    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


def load_scenario(path: str | Path) -> tuple[Scenario, Path]:
    """The scenario and the folder its relative paths start from."""
    path = Path(path)
    try:
        scenario = msgspec.toml.decode(path.read_bytes(), type=Scenario)
    except OSError as e:
        raise ScenarioError("$", f"cannot read {path} ({e.strerror})") from None
    except msgspec.ValidationError as e:
        text = str(e)
        field = text.rsplit(" - at ", 1)[1].strip("`") if " - at " in text else "$"
        raise ScenarioError(field, f"{path}: {text.split(' - at ')[0]}") from None
    except msgspec.DecodeError as e:
        raise ScenarioError("$", f"{path}: not valid TOML: {e}") from None
    names = [v.name for v in scenario.variants]
    for i, name in enumerate(names):
        if name == "base" or names.index(name) != i:
            raise ScenarioError(f"$.variants[{i}].name", f"{name!r} is taken (base, or another variant)")
    scenario = _travel_paths(scenario, path.parent)
    if scenario.network.file is None and scenario.network.generate is None:
        raise ScenarioError("$.network", "give a file or generate settings")
    if sum(scenario.demand.channels.values()) <= 0:
        raise ScenarioError("$.demand.channels", "the channel shares must add up to more than 0")
    for i, v in enumerate(scenario.variants):
        if v.replenish is not None and v.replenish.deliveries != ReplenishPolicy().deliveries:
            raise ScenarioError(f"$.variants[{i}].replenish.deliveries", "the deliveries are the scenario's stock.replenish_at")
    for field, spec in [("$.benefit", scenario.benefit)] + [
            (f"$.variants[{i}].benefit", v.benefit) for i, v in enumerate(scenario.variants)]:
        if spec is not None:
            rule_set(spec, "check", 0.0, field)
    return scenario, path.parent


def _travel_paths(s: Scenario, folder: Path) -> Scenario:
    """Travel-matrix files relative to the scenario's folder, checked before anything runs."""
    def resolve(name: str | None, field: str) -> str | None:
        if name is None or name == "straight":
            return name
        path = str(folder / name)
        try:
            travel_matrix(path)
        except InvalidInput as e:
            raise ScenarioError(field, str(e)) from None
        return path

    variants = [msgspec.structs.replace(v, travel_matrix=resolve(v.travel_matrix, f"$.variants[{i}].travel_matrix"))
                for i, v in enumerate(s.variants)]
    if s.roads == "straight":
        raise ScenarioError("$.roads", "a travel-matrix file: the couriers' true minutes")
    return msgspec.structs.replace(s, travel_matrix=resolve(s.travel_matrix, "$.travel_matrix"),
                                   roads=resolve(s.roads, "$.roads"), variants=variants)


@functools.lru_cache(maxsize=4)
def travel_matrix(path: str):
    """A matrix file read once per process (variants and replications share it)."""
    from engine.store.travel_file import load_travel_matrix

    return load_travel_matrix(path)


def travel_of(s: Scenario, v: "Variant | None"):
    """The travel source a variant routes with: its own matrix, else the scenario's, else the straight line."""
    from engine.travel import STRAIGHT_LINE

    name = v.travel_matrix if v is not None and v.travel_matrix is not None else s.travel_matrix
    return STRAIGHT_LINE if name is None or name == "straight" else travel_matrix(name)


FILLED_IN = ("version", "effective_from")  # by the simulation, from the variant and the first day


def rule_set(spec: dict[str, Any], version: str, effective_from: float, field: str = "$.benefit") -> RuleSet:
    """A scenario's [benefit] table as the engine's rule set; a ScenarioError naming the field if it cannot be."""
    for key in FILLED_IN:
        if key in spec:
            raise ScenarioError(f"{field}.{key}", "filled in by the simulation (the variant's name, the first day)")
    try:
        rules = msgspec.convert({**spec, "version": version, "effective_from": effective_from}, RuleSet)
        return check_rules(rules)
    except msgspec.ValidationError as e:
        reason, _, where = str(e).partition(" - at ")  # where: `$.roles[...].bp`, or `key` in `$.roles`
        at = re.findall(r"\$[^`]*", where)
        raise ScenarioError(f"{field}{at[-1][1:] if at else ''}", reason + (" (a key)" if "`key`" in where else "")) from None
    except DomainError as e:
        raise ScenarioError(f"{field}.{e.field}", e.reason) from None


def reports_replenishment(s: Scenario) -> bool:
    """Whether the run reports units bought and moved (a variant applies replenishment suggestions)."""
    return any(v.replenish is not None for v in s.variants)


def reports_benefit(s: Scenario) -> bool:
    """Whether the run reports members' sign-ups and sales and the benefit statements."""
    return s.benefit is not None or any(v.benefit is not None for v in s.variants) or s.members.counter_signup_share > 0


def rules_of(s: Scenario, v: Variant | None) -> dict[str, Any] | None:
    return v.benefit if v is not None and v.benefit is not None else s.benefit


def describe(rules: RuleSet) -> str:
    """A rule set in a line, for the report: "clerk 2% + 1.00 per order, ..., window 3 months, cap 5.00 per order"."""
    def rate(r) -> str:
        return " + ".join(x for x in (f"{r.bp / 100:g}%" if r.bp else "", f"{r.fixed / 100:.2f} per order" if r.fixed
                                      else "") if x) or "0%"
    parts = [", ".join(f"{role} {rate(r)}" for role, r in rules.roles.items())]
    parts.append(f"window {rules.window_months} months" if rules.window_months else f"window {rules.window_days} days")
    if rules.cap_per_order is not None:
        parts.append(f"cap {rules.cap_per_order / 100:.2f} per order")
    parts += [f"{role} vacant: to {to}" for role, to in rules.vacant_to.items()]
    vacant = [role for role in rules.roles if role not in rules.vacant_to]
    if vacant and rules.vacant_to:
        parts.append("other vacant roles: to nobody")
    if rules.excluded_skus or rules.excluded_categories:
        parts.append("excluded: " + ", ".join(rules.excluded_skus + rules.excluded_categories))
    if rules.category_bp:
        parts.append("own rates for " + ", ".join(rules.category_bp))
    parts.append(f"hold {rules.hold_days} days")
    return "; ".join(parts)
