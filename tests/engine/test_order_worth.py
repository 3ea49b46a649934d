"""Placing an order without discounts or points: its money and its worth
for the router come out as the general rules make them (domain/money.py's
one-pass price, engine/app.py's worth in minor units)."""
from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.commands import Line
from domain.money import LineMoney, OrderMoney, price
from domain.network import Sku
from engine.app import Engine
from tests.engine.network_fixture import small_network

skus = st.sampled_from(["A", "B", "C", "D"])
cents = st.integers(min_value=1, max_value=200_000)
lines = st.lists(st.builds(Line, sku=skus, qty=st.integers(min_value=1, max_value=60),
                           unit_price=st.none() | cents, discount=st.integers(min_value=0, max_value=500)),
                 min_size=1, max_size=8)


@given(lines, st.dictionaries(skus, cents, min_size=4, max_size=4), st.integers(min_value=0, max_value=900))
def test_lines_without_order_discounts_or_points_are_merged_by_sku_and_paid_line_by_line(wire, list_price, fee):
    if any(x.discount > (list_price[x.sku] if x.unit_price is None else x.unit_price) * x.qty for x in wire):
        return  # refused naming the line: tests/engine/test_money.py
    merged: dict[str, list[int]] = {}
    for x in wire:
        gross = (list_price[x.sku] if x.unit_price is None else x.unit_price) * x.qty
        m = merged.setdefault(x.sku, [0, 0, 0])
        m[0], m[1], m[2] = m[0] + x.qty, m[1] + gross, m[2] + x.discount
    expected = {s: LineMoney(q, g, d, 0, 0, 0, g - d) for s, (q, g, d) in merged.items()}
    money = price(wire, list_price, "CNY", delivery_fee=fee)
    assert money == OrderMoney(currency="CNY", lines=expected, delivery_fee=fee,
                               paid=sum(g - d for _, g, d in merged.values()) + fee)
    assert list(money.lines) == list(expected)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=99_999_999), min_size=1, max_size=4),
       st.lists(st.integers(min_value=1, max_value=500), min_size=4, max_size=4), st.sampled_from([0, 1, 2]))
def test_an_order_at_list_price_is_worth_what_rounding_its_float_sum_gave(minor, qty, units):
    prices = [m / 10 ** units for m in minor]
    net = msgspec.structs.replace(small_network(), minor_units=units,
                                  skus=[Sku(f"K{i}", f"k{i}", p) for i, p in enumerate(prices)], stock={})
    engine = Engine(net)
    assert engine._whole_prices
    order = {f"K{i}": q for i, q in enumerate(qty[:len(prices)])}
    money = price([Line(sku=s, qty=q) for s, q in order.items()], engine.list_price, "CNY")
    assert engine._value(order, money) == round(sum([p * q for p, q in zip(prices, order.values())]), 2)
