"""Seeded demand: the same seed draws the same day, the day has its lunch and
dinner peaks, pickup customers choose a store that lists their basket, and a
surge adds orders without touching the base day's."""
from __future__ import annotations

from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec
import pytest

from engine.store.network_file import load_sample
from simulations.demand import base_day, surge_orders, surge_size
from simulations.scenario import Demand, Scenario, Surge


@pytest.fixture(scope="module")
def network():
    return load_sample()


def scenario(**demand) -> Scenario:
    return Scenario(name="t", seed=5, demand=Demand(orders=2000, **demand))


def test_the_same_seed_draws_the_same_day_and_another_seed_another(network):
    a, b = base_day(scenario(), network), base_day(scenario(), network)
    assert a.orders == b.orders and a.sales == b.sales
    other = base_day(msgspec.structs.replace(scenario(), seed=6), network)
    assert other.orders != a.orders


def test_orders_peak_at_lunch_and_dinner(network):
    tz = ZoneInfo(network.timezone)
    by_hour = Counter(datetime.fromtimestamp(t, tz).hour for t, _ in base_day(scenario(), network).orders)
    assert by_hour[12] > 2 * by_hour[9] and by_hour[18] > 2 * by_hour[15]
    assert set(by_hour) <= set(range(7, 23))  # within the scenario's day, 07:00-22:30


def test_pickup_customers_choose_a_store_listing_their_whole_basket(network):
    day = base_day(scenario(pickup_share=0.5), network)
    pickups = [cmd for _, cmd in day.orders if cmd.mode == "pickup"]
    assert 800 < len(pickups) < 1200
    carried = {node: {k for k, q in lines.items() if q > 0} for node, lines in network.stock.items()}
    listed = sum({line.sku for line in cmd.lines} <= carried[cmd.pickup_node] for cmd in pickups)
    assert listed / len(pickups) > 0.95  # the rest: no store nearby lists it all


def test_best_sellers_dominate_baskets_and_counter_sales_come_off_the_shelf(network):
    day = base_day(scenario(popularity_zipf=1.0), network)
    lines = Counter(line.sku for _, cmd in day.orders for line in cmd.lines)
    top = sum(q for _, q in lines.most_common(20))
    assert top > 0.3 * sum(lines.values())  # 20 of 200 SKUs
    for sale in day.sales[:500]:
        assert all(network.stock[sale.node].get(sku, 0) > 0 for sku in sale.lines)


def test_a_surge_adds_orders_in_its_window_from_a_stream_of_its_own(network):
    s = scenario()
    surge = Surge(start="11:00", end="13:00", factor=1.5)
    extra = surge_orders(s, network, surge, 0)
    assert len(extra) == surge_size(s, network, surge) > 100
    tz = ZoneInfo(network.timezone)
    assert {datetime.fromtimestamp(t, tz).hour for t, _ in extra} <= {11, 12}
    assert {cmd.external_id for _, cmd in extra}.isdisjoint(cmd.external_id for _, cmd in base_day(s, network).orders)
