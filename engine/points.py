"""The points policy (engine.config.PointsRules): how many points a purchase
earns, when they become spendable and when they expire. The Member
aggregate keeps the buckets; these functions decide what goes in them.

- Points are earned on cash paid, in minor units (fen), never on points
  used: `per_currency_unit` points per major unit (yuan), floored once per
  purchase (1 point per 10 yuan: 105.00 earns 10), excluded SKUs and
  categories left out.
- Expiry is a local midnight in the network's time zone (see ExpiryRule).
- Pending: available `pending_days` x 24 h after they were earned.
"""
from __future__ import annotations

import calendar
import math
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from engine.config import ExpiryRule, PointsRules

DAY = 86_400.0


def eligible_cash(cash_by_sku: Mapping[str, int], skus: Mapping[str, Any], rules: PointsRules) -> int:
    """The cash that earns points: excluded SKUs and categories left out (the
    SKUs' network records give their categories)."""
    excluded_skus, excluded_categories = set(rules.excluded_skus), set(rules.excluded_categories)
    eligible = 0
    for sku, cash in cash_by_sku.items():
        category = getattr(skus.get(sku), "category", None)
        if sku in excluded_skus or (category is not None and category in excluded_categories):
            continue
        eligible += cash
    return eligible


def points_for(cash_by_sku: Mapping[str, int], skus: Mapping[str, Any], rules: PointsRules, minor_units: int) -> int:
    """Points earned on this cash (minor units per SKU). Exact: no float touches the amount."""
    eligible = eligible_cash(cash_by_sku, skus, rules)
    if eligible <= 0:
        return 0
    return math.floor(Decimal(eligible) * Decimal(repr(rules.per_currency_unit)) / (10 ** minor_units))


def last_day(earned_on: date, rule: ExpiryRule) -> date | None:
    """The last local day the points can be used, or None: they never expire."""
    if rule.kind == "never":
        return None
    day = earned_on + timedelta(days=rule.days)
    if rule.kind == "days":
        return day
    if rule.kind == "end_of_month":
        return day.replace(day=calendar.monthrange(day.year, day.month)[1])
    return day.replace(month=12, day=31)


def expires_at(earned_at: float, rule: ExpiryRule, tz: str) -> float | None:
    """The local midnight that ends the last day, as epoch seconds."""
    zone = ZoneInfo(tz)
    last = last_day(datetime.fromtimestamp(earned_at, zone).date(), rule)
    if last is None:
        return None
    after = last + timedelta(days=1)
    return datetime(after.year, after.month, after.day, tzinfo=zone).timestamp()


def available_at(earned_at: float, rules: PointsRules) -> float:
    return earned_at + rules.pending_days * DAY


def bucket_times(earned_at: float, rules: PointsRules, tz: str) -> tuple[float, float | None]:
    """(available_at, expires_at) of points earned then. Points pending past
    their own expiry would never be spendable: they expire no sooner than a
    day after they become available."""
    available = available_at(earned_at, rules)
    expiry = expires_at(earned_at, rules.expiry, tz)
    if expiry is not None and expiry <= available:
        expiry = expires_at(available, ExpiryRule(kind="days", days=1), tz)
    return available, expiry
