"""Benefit sharing's rules (shared/BENEFIT.md sections 5 and 6): each
semantic by a test named after it, the worked examples as written."""
from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.benefit import RoleRate, RuleSet, capped, check_rules, rates_for, reversal, split, window_end
from domain.commands import Line
from domain.errors import InvalidInput
from domain.money import price

SHANGHAI = "Asia/Shanghai"
R1 = RuleSet(version="R1", effective_from=0.0, window_months=3,
             roles={"clerk": RoleRate(200), "manager": RoleRate(100), "store": RoleRate(300), "dealer": RoleRate(200)},
             excluded_categories=["gift_card"])
ALL = {"clerk", "manager", "store", "dealer"}


def local(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(SHANGHAI)).timestamp()


def test_money_a_pool_is_rounded_once_and_its_parts_add_up_to_it():
    # coupon example: base 270.00 at 8% -> 21.60
    assert split(27000, rates_for(R1, None, ALL)) == {"clerk": 540, "manager": 270, "store": 810, "dealer": 540}


@given(base=st.integers(0, 10**9), bp=st.lists(st.integers(0, 2500), min_size=1, max_size=5))
def test_money_the_parts_of_every_pool_add_up_to_the_pool_to_the_fen(base, bp):
    rates = dict(zip(["clerk", "manager", "store", "dealer", "region"], bp))
    parts = split(base, rates)
    assert sum(parts.values()) == round(Fraction(base * sum(bp), 10_000))  # the exact pool, rounded once
    assert all(v >= 0 for v in parts.values())


def test_worked_example_coupon_and_exclusions():
    """Lines of 300.00 (3 units) and a 100.00 gift card, an order coupon of 40.00
    allocated 3:1: base 270.00, pool 21.60; returning one unit (net 90.00)
    claws back 7.20 (1.80 / 0.90 / 2.70 / 1.80)."""
    money = price([Line("TEA", 3, unit_price=10000), Line("GIFT", 1, unit_price=10000)], {}, "CNY",
                  discounts=4000)
    assert money.lines["TEA"].paid == 27000 and money.lines["GIFT"].paid == 9000
    credited = split(money.lines["TEA"].paid, rates_for(R1, "tea", ALL))  # the gift card's category earns nothing
    assert credited == {"clerk": 540, "manager": 270, "store": 810, "dealer": 540}
    back = reversal(credited, {}, 27000, 9000)
    assert back == {"clerk": 180, "manager": 90, "store": 270, "dealer": 180}


def test_worked_example_split_order():
    """600.00 split 400.00 (store B) / 200.00 (store C), delivery fee excluded:
    48.00 credited (32.00 + 16.00 by line); C's line returned claws back 16.00."""
    money = price([Line("X", 1, unit_price=40000), Line("Y", 1, unit_price=20000)], {}, "CNY", delivery_fee=1000)
    b = split(money.lines["X"].paid, rates_for(R1, None, ALL))
    c = split(money.lines["Y"].paid, rates_for(R1, None, ALL))
    assert sum(b.values()) == 3200 and sum(c.values()) == 1600
    assert reversal(c, {}, 20000, 20000) == c  # exactly what C's line was credited


def test_worked_example_paid_partly_with_points():
    """100.00 paid with 1,000 points (worth 10.00) and 90.00 cash: base 90.00."""
    money = price([Line("X", 1, unit_price=10000)], {}, "CNY", points_used=1000, points_value=1000)
    assert money.lines["X"].paid == 9000 and sum(split(9000, rates_for(R1, None, ALL)).values()) == 720


def test_refunds_reverse_at_the_frozen_rate_exactly_to_the_fen_in_any_steps():
    credited = split(33333, {"clerk": 250, "store": 333})
    done: dict[str, int] = {}
    left = 33333
    for refunded in (10000, 7, 23326):
        back = reversal(credited, done, left, refunded)
        for role, v in back.items():
            done[role] = done.get(role, 0) + v
        left -= refunded
    assert done == credited


def test_window_runs_from_local_midnight_of_the_sign_up_day_end_exclusive_clamped_to_the_months_last_day():
    signed = local("2026-01-31T21:30:00")
    one_month = RuleSet(version="w", effective_from=0.0, roles={"store": RoleRate(100)}, window_months=1)
    assert window_end(signed, one_month, SHANGHAI) == local("2026-02-28T00:00:00")
    days = RuleSet(version="d", effective_from=0.0, roles={"store": RoleRate(100)}, window_months=0, window_days=10)
    assert window_end(signed, days, SHANGHAI) == local("2026-02-10T00:00:00")


def test_a_vacant_roles_share_goes_where_the_rules_send_it_or_to_nobody():
    to_store = RuleSet(version="v", effective_from=0.0, roles=R1.roles, vacant_to={"manager": "store"})
    assert rates_for(to_store, None, {"clerk", "store", "dealer"}) == {"clerk": 200, "store": 400, "dealer": 200}
    assert rates_for(R1, None, {"clerk", "store", "dealer"}) == {"clerk": 200, "store": 300, "dealer": 200}


def test_a_cap_per_order_cuts_the_lines_to_exactly_the_cap():
    lines = [split(50000, rates_for(R1, None, ALL)), split(25000, rates_for(R1, None, ALL))]
    cut = capped(lines, 3000)
    assert sum(sum(line.values()) for line in cut) == 3000 and all(v >= 0 for line in cut for v in line.values())


@pytest.mark.parametrize("rules, field", [
    (RuleSet(version="x", effective_from=0.0, roles={"clerk": RoleRate(6000), "store": RoleRate(5000)}), "roles"),
    (RuleSet(version="x", effective_from=0.0, roles={"store": RoleRate(100)}, window_months=0), "window_months"),
    (RuleSet(version="x", effective_from=0.0, roles={"store": RoleRate(100)}, vacant_to={"clerk": "clerk"}),
     "vacant_to.clerk"),
])
def test_a_rule_set_that_cannot_be_is_refused_naming_the_field(rules, field):
    with pytest.raises(InvalidInput) as e:
        check_rules(rules)
    assert e.value.field == field
