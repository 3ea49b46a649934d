"""The read models fed events directly: the cases a replay of the engine's
own events seldom reaches."""
from __future__ import annotations

from domain.inventory import NodeInventory
from domain.order import Loss, Order, RoutedPart
from engine.readmodels import ReadModels
from tests.engine.network_fixture import small_network

T = 1_700_000_000.0


def test_stock_of_a_sku_the_network_does_not_list_gets_its_own_column_and_keeps_counting():
    views = ReadModels(small_network())
    inv = NodeInventory(node_id="S1", at=T)
    inv.receive({"A": 3, "NEW": 4}, ref="po-1", at=T)
    inv.reserve("o1", {"NEW": 1, "A": 1}, T)
    inv.sell_over_counter("sale-1", {"NEW": 2}, T)
    views.apply_all(inv.collect_events())
    atp = views.atp
    row, new, a = atp.row("S1"), atp.col("NEW"), atp.col("A")
    assert atp.sku_ids[-1] == "NEW" and atp.on_hand.shape == (4, 4)
    assert (atp.on_hand[row, new], atp.reserved[row, new], atp.atp()[row, new]) == (2, 1, 1)
    assert (atp.on_hand[row, a], atp.reserved[row, a]) == (3, 1)


def test_orders_that_lost_at_the_same_node_for_the_same_reason_both_report_it():
    views = ReadModels(small_network())
    for external_id in ("x1", "x2"):
        order = Order.place(channel="app", external_id=external_id, lines={"A": 1}, value=5.0, mode="delivery",
                            lat=31.2, lon=121.4, promised_at=T + 2700, at=T)
        order.route([RoutedPart(node="S1", lines={"A": 1}, eta_at=T + 900, cost={"total": 2.0})],
                    [Loss(node="S2", reason="no stock of A"), Loss(node="K1", reason="too far")], T)
        views.apply_all(order.collect_events())
    first, second = views.orders.values()
    assert first.lost == second.lost == [{"node": "S2", "reason": "no stock of A"}, {"node": "K1", "reason": "too far"}]
    assert first.first["lost"] == first.lost
    assert first.parts["S1"].lines == {"A": 1} and first.cost == {"S1": {"total": 2.0}}
    network = small_network()
    s1 = [n.id for n in network.nodes].index("S1")
    assert views.capacity_left(T)[s1] == network.nodes[s1].capacity_per_slot - 2


def test_stock_moves_reach_an_array_set_in_place_of_the_view_s_own():
    views = ReadModels(small_network())
    inv = NodeInventory(node_id="S2", at=T)
    views.apply_all(inv.collect_events())
    views.atp.reserved = views.atp.reserved.copy()
    inv.receive({"A": 3}, ref="po-1", at=T)
    inv.reserve("o1", {"A": 2}, T)
    views.apply_all(inv.collect_events())
    row, a = views.atp.row("S2"), views.atp.col("A")
    assert (views.atp.reserved[row, a], views.atp.atp()[row, a]) == (2, 1)
