"""The bench's roomy network has room for every order of the run: a long
run must measure routing and storing, not a city sold out or full."""
from __future__ import annotations

from benchmarks.load.plan import SCENARIO, demand, roomy


def test_every_node_has_room_for_all_the_orders_of_the_run():
    network, orders = demand(str(SCENARIO), 3000)
    asked: dict[str, int] = {}
    for cmd in orders:
        for line in cmd.lines:
            asked[line.sku] = asked.get(line.sku, 0) + line.qty
    big = roomy(network, orders * 20)  # 60,000 orders: more than 100 times some nodes' stock of some SKU
    plain = roomy(network)
    short = [(n, s) for n, lines in plain.stock.items() for s, q in lines.items() if q < 20 * asked.get(s, 0)]
    assert short, "the case must be one where 100 times the stock falls short"
    for node, lines in big.stock.items():
        assert set(lines) == set(network.stock[node])  # no SKU a node does not carry
        for sku, q in lines.items():
            assert q >= max(20 * asked.get(sku, 0), network.stock[node][sku] * 100)
    assert all(n.capacity_per_slot >= 60_000 for n in big.nodes)
    assert [n.capacity_per_slot for n in plain.nodes] == [n.capacity_per_slot * 1000 for n in network.nodes]
    assert all(w.opens == "00:00" and w.closes == "24:00" for n in big.nodes for w in n.hours)
