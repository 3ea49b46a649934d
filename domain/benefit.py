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
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from eventsourcing.domain import Aggregate, event
from msgspec import Meta, Struct

from domain import ids
from domain.errors import Conflict, InvalidInput
from domain.money import allocate, divide, portion
from domain.trigger import trigger

Role = Literal["clerk", "manager", "store", "dealer", "region"]
ROLES: tuple[str, ...] = ("clerk", "manager", "store", "dealer", "region")  # also the tie-break order
FULL_BP = 10_000  # 100% in basis points

BasisPoints = Annotated[int, Meta(ge=0, le=FULL_BP)]


class RoleRate(Struct, frozen=True, forbid_unknown_fields=True):
    bp: BasisPoints = 0  # of the line's base
    fixed: Annotated[int, Meta(ge=0)] = 0  # minor units per purchase, besides (taken back when all of it is)


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
    period: PeriodLength = "month"  # statements per month, half month (1st-15th, 16th-end) or quarter


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
    pool = divide(base * sum(rates[r] for r in roles), FULL_BP)
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


class BenefitRules(Aggregate):
    """The rule book: its published versions, in force from their times; a
    published version is never changed, and never takes effect backwards."""

    @staticmethod
    def create_id(**_: object) -> object:
        return ids.BENEFIT_RULES_ID

    @event("Opened")
    def __init__(self, at: float) -> None:
        self.versions: list[RuleSet] = []
        self.closed: list[str] = []  # periods closed: their statements never change

    @property
    def period_length(self) -> str:
        return self.versions[0].period if self.versions else "month"

    def close(self, period: str, ends_at: float, at: float, open_before: list[str] = ()) -> bool:
        """Closes a period that has ended, after every earlier one that has
        statements (a statement's opening balance is the one before's
        closing); False if it was closed already."""
        if period in self.closed:
            return False
        if period_length(period) != self.period_length:
            raise InvalidInput("period", f"statements are per {self.period_length} here, not like {period}")
        if ends_at > at:
            raise Conflict("period", f"{period} has not ended yet: only a past period can be closed")
        if open_before:
            raise Conflict("period", f"close {open_before[0]} first: periods close in order")
        self._closed(period=period, at=at)
        return True

    @event("PeriodClosed")
    def _closed(self, period: str, at: float) -> None:
        self.closed.append(period)

    def publish(self, rules: RuleSet, at: float) -> bool:
        """False for a repeat of a version already published as it is."""
        check_rules(rules)
        same = next((v for v in self.versions if v.version == rules.version), None)
        if same is not None:
            if same != rules:
                raise Conflict("version", f"version {rules.version} is published and cannot change")
            return False
        if rules.effective_from < at:
            raise Conflict("effective_from", "a version takes effect from now on, never backwards")
        if self.versions and rules.period != self.versions[0].period:
            raise Conflict("period", f"statements are per {self.versions[0].period}: every version keeps that")
        if self.versions and rules.effective_from <= self.versions[-1].effective_from:
            raise Conflict("effective_from", f"overlaps version {self.versions[-1].version}, in force from "
                                             f"{self.versions[-1].effective_from}")
        self._published(rules=rules, at=at)
        return True

    def in_force(self, at: float) -> RuleSet | None:
        current = None
        for v in self.versions:
            if v.effective_from <= at:
                current = v
        return current

    @event("Published")
    def _published(self, rules: RuleSet, at: float) -> None:
        self.versions.append(rules)


class LedgerLine(Struct, frozen=True):
    """A credit (positive) or a reversal (negative) of one role on one line."""

    key: str  # (source, line, role): a line is booked once
    root: str  # the purchase: order/<id> or pos/<node>/<sale>
    source: str  # what booked it: order/<id>/<node> (a part handed over), the sale, or a refund
    sku: str
    role: str
    amount: int  # minor units
    base: int  # the line's base (what was credited on, or refunded of it)
    bp: int  # the rate the credit froze
    version: str  # the rule set's
    at: float
    payable_at: float
    cites: str | None = None  # a reversal: the credit's period, when it is not this one
    pool: int = 0  # a credit: the line's pool (its roles' parts add up to it, before a cap per order)


class PartyLedger(Aggregate):
    """One party's benefit lines for one period (a month in the network's time zone)."""

    @staticmethod
    def create_id(party: str, period: str, **_: object) -> object:
        return ids.ledger_id(party, period)

    @event("Opened")
    def __init__(self, party: str, period: str, at: float) -> None:
        self.party = party
        self.period = period
        self.keys: set[str] = set()
        self.total = 0
        self.reference: str | None = None  # the payment's, once paid

    def book(self, lines: list[LedgerLine]) -> int:
        """Books the lines not booked yet (one event for them); how many that was."""
        new, seen = [], set()
        for line in lines:
            if line.key not in self.keys and line.key not in seen:
                seen.add(line.key)
                new.append(line)
        if new:
            trigger(self, self.LinesBooked, lines=new)
        return len(new)

    class LinesBooked(Aggregate.Event):
        # triggered directly (domain/trigger.py): up to four at every member's purchase (the same stored JSON)
        lines: list[LedgerLine]

        def apply(self, ledger: "PartyLedger") -> None:
            for line in self.lines:
                ledger.keys.add(line.key)
                ledger.total += line.amount

    @event("Booked")
    def _booked(self, line: LedgerLine) -> None:  # stores written before lines were booked together
        self.keys.add(line.key)
        self.total += line.amount

    def pay(self, amount: int, reference: str, at: float) -> bool:
        """Records the statement's payment; False for a repeat under the same reference."""
        if not reference.strip():
            raise InvalidInput("reference", "a payment names its reference (the transfer, the payslip)")
        if self.reference is not None:
            if self.reference == reference:
                return False
            raise Conflict("period", f"{self.party}'s statement for {self.period} was paid under {self.reference}")
        if amount <= 0:
            raise InvalidInput("amount", "only a positive balance is paid out")
        self._paid(amount=amount, reference=reference, at=at)
        return True

    @event("Paid")
    def _paid(self, amount: int, reference: str, at: float) -> None:
        self.reference = reference


PeriodLength = Literal["month", "half_month", "quarter"]
PERIOD_ID = r"^[0-9]{4}-((0[1-9]|1[0-2])(-H[12])?|Q[1-4])$"  # 2026-03, 2026-03-H2 (16th to the end), 2026-Q1


def period_of(at: float, timezone: str, length: str = "month") -> str:
    """The period an instant falls in, in the network's time zone: "2026-03", "2026-03-H1", "2026-Q1"."""
    local = datetime.fromtimestamp(at, ZoneInfo(timezone))
    if length == "quarter":
        return f"{local.year:04d}-Q{(local.month - 1) // 3 + 1}"
    month = f"{local.year:04d}-{local.month:02d}"
    if length == "half_month":
        return f"{month}-H{1 if local.day <= 15 else 2}"
    return month


def period_length(period: str) -> str:
    return "quarter" if "Q" in period else "half_month" if "-H" in period else "month"


def period_end(period: str, timezone: str) -> float:
    """When a period ends (exclusive): local midnight of the next one's first day."""
    year = int(period[:4])
    if "Q" in period:
        year, month, day = (year, int(period[-1]) * 3 + 1, 1)
    elif period.endswith("-H1"):
        month, day = int(period[5:7]), 16
    else:
        month, day = int(period[5:7]) + 1, 1
    if month > 12:
        year, month = year + 1, month - 12
    return datetime(year, month, day, tzinfo=ZoneInfo(timezone)).timestamp()
