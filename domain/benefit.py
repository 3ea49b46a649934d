"""Benefit sharing (利益分配): what the parties that brought a member online
are credited of the member's later purchases, under versioned rule sets.
The rules, pure (shared/BENEFIT.md section 5 is the semantics):

- money is integer minor units; rates are basis points of the base (1% =
  100 bp) or a fixed amount per order;
- a credit line's pool (base x the sum of the roles' rates) is a rational
  rounded once, half to even, and shared over the roles by the largest
  remainder, ties in role order, so the parts always add up to the pool;
- a refund reverses at the rates the credit froze: what is left of each
  role's credit, in proportion to the base refunded, the last refund of a
  line taking all that is left;
- the attribution window runs from 00:00 local time on the sign-up day,
  for calendar months (a day the end month lacks is its last day) or days,
  end exclusive.
"""
from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from msgspec import Meta, Struct

from domain.errors import InvalidInput
from domain.money import allocate, portion

Role = Literal["clerk", "manager", "store", "dealer", "region"]
ROLES: tuple[str, ...] = ("clerk", "manager", "store", "dealer", "region")  # also the tie-break order
FULL_BP = 10_000  # 100% in basis points

BasisPoints = Annotated[int, Meta(ge=0, le=FULL_BP)]


class RoleRate(Struct, frozen=True, forbid_unknown_fields=True):
    bp: BasisPoints = 0  # of the line's base
    fixed: Annotated[int, Meta(ge=0)] = 0  # minor units per order, besides


class RuleSet(Struct, frozen=True, forbid_unknown_fields=True):
    """One published version of the rules; immutable once published."""

    version: Annotated[str, Meta(min_length=1, max_length=64)]
    effective_from: float  # epoch seconds
    roles: dict[Role, RoleRate]
    window_months: Annotated[int, Meta(ge=0, le=600)] = 3
    window_days: Annotated[int, Meta(ge=0, le=36_500)] = 0  # used when window_months is 0
    excluded_skus: list[str] = []
    excluded_categories: list[str] = []
    category_bp: dict[str, dict[Role, BasisPoints]] = {}  # a category's own rates, role by role
    cap_per_order: Annotated[int, Meta(ge=0)] | None = None  # minor units, over the roles together
    vacant_to: dict[Role, Role] = {}  # a vacant role's share goes to another role; absent: to nobody
    hold_days: Annotated[int, Meta(ge=0, le=3650)] = 7  # before a credit is payable
    period: Literal["month"] = "month"


def check_rules(rules: RuleSet) -> RuleSet:
    """Raises InvalidInput naming the field of a rule set that cannot be."""
    total = sum(r.bp for r in rules.roles.values())
    if total > FULL_BP:
        raise InvalidInput("roles", f"the roles' rates add up to {total / 100:g}%, more than 100%")
    for category, rates in rules.category_bp.items():
        if sum(rates.values()) > FULL_BP:
            raise InvalidInput(f"category_bp.{category}", "the roles' rates add up to more than 100%")
    if not rules.window_months and not rules.window_days:
        raise InvalidInput("window_months", "an attribution window of months or days is needed")
    for role, to in rules.vacant_to.items():
        if to == role or to not in rules.roles:
            raise InvalidInput(f"vacant_to.{role}", f"{to!r} is not another role of the rule set")
    return rules


def window_end(signed_up_at: float, rules: RuleSet, timezone: str) -> float:
    """The end (exclusive) of a member's attribution window, in epoch seconds."""
    tz = ZoneInfo(timezone)
    start = datetime.fromtimestamp(signed_up_at, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    if rules.window_months:
        months = start.month - 1 + rules.window_months
        year, month = start.year + months // 12, months % 12 + 1
        day = min(start.day, calendar.monthrange(year, month)[1])
        end = start.replace(year=year, month=month, day=day)
    else:
        end = start + timedelta(days=rules.window_days)  # wall-clock days: local midnight again
    return end.timestamp()


def rates_for(rules: RuleSet, category: str | None, filled: set[str]) -> dict[str, int]:
    """Basis points per role for a line of this category, a vacant role's
    rate moved where the rules send it (or dropped); roles in ROLES order."""
    rates = {role: rules.roles[role].bp for role in ROLES if role in rules.roles}
    if category is not None and category in rules.category_bp:
        rates.update(rules.category_bp[category])
    out = {role: 0 for role in rates}
    for role, bp in rates.items():
        if role in filled:
            out[role] += bp
        elif rules.vacant_to.get(role) in filled:
            out[rules.vacant_to[role]] += bp
    return {role: bp for role, bp in out.items() if bp}


def split(base: int, rates: dict[str, int]) -> dict[str, int]:
    """A credit line: the pool (base x the rates' sum, rounded once, half to
    even) shared over the roles by the largest remainder, ties in role order."""
    roles = [role for role in ROLES if rates.get(role)]
    pool = round(Fraction(base * sum(rates[r] for r in roles), FULL_BP))
    return dict(zip(roles, allocate(pool, [rates[r] for r in roles])))


def reversal(credited: dict[str, int], reversed_: dict[str, int], base_left: int, refunded: int) -> dict[str, int]:
    """What a refund of `refunded` of a credited line's `base_left` takes back,
    role by role, at the rates the credit froze."""
    left = {role: amount - reversed_.get(role, 0) for role, amount in credited.items()}
    pool = portion(sum(left.values()), base_left, refunded)
    roles = [role for role in ROLES if left.get(role)]
    return dict(zip(roles, allocate(pool, [left[r] for r in roles])))


def capped(lines: list[dict[str, int]], cap: int | None) -> list[dict[str, int]]:
    """An order's credit lines cut down to the cap, each role's lines in
    proportion (largest remainder over the lines), so the total is the cap."""
    total = sum(sum(line.values()) for line in lines)
    if cap is None or total <= cap:
        return lines
    kept = allocate(cap, [sum(line.values()) for line in lines])
    return [dict(zip(line, allocate(k, list(line.values())))) for line, k in zip(lines, kept)]
