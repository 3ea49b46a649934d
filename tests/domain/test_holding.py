"""A routed batch's reservations at one node, gathered order by order
(domain.inventory.Holding): each order checked once, as reserve_many checks it."""
import pytest

from domain.errors import Conflict
from domain.inventory import NodeInventory


def stocked(**lines: int) -> NodeInventory:
    inv = NodeInventory(node_id="S1", at=0.0)
    inv.receive(dict(lines), ref="opening", at=0.0)
    inv.collect_events()
    return inv


def test_a_holding_counts_the_orders_before_and_makes_the_event_reserve_many_makes():
    inv, twin = stocked(A=5, B=1), stocked(A=5, B=1)
    holding = inv.holding()
    assert holding.add("o1", {"A": 2}) is None
    assert holding.add("o2", {"A": 4}) == "A"  # 3 left after o1: holds nothing of o2
    assert holding.add("o3", {"A": 3, "B": 1}) is None
    assert inv.reserved == {} and not inv.pending_events  # nothing changes until it is made
    inv.reserve_held(holding, at=1.0)
    twin.reserve_many({"o1": {"A": 2}, "o3": {"A": 3, "B": 1}}, at=1.0)
    (e,), (t,) = inv.collect_events(), twin.collect_events()
    assert type(e) is NodeInventory.ReservedMany and (e.orders, e.at) == (t.orders, t.at)
    assert (inv.reserved, inv.reservations, inv.version) == (twin.reserved, twin.reservations, twin.version)


def test_an_order_dropped_from_a_holding_gives_back_what_it_held():
    inv = stocked(A=3)
    holding = inv.holding()
    holding.add("o1", {"A": 3})
    holding.drop("o1")
    assert holding.add("o2", {"A": 3}) is None
    inv.reserve_held(holding, at=1.0)
    assert inv.reservations == {"o2": {"A": 3}}


def test_a_holding_refuses_an_order_reserved_already_and_bad_lines():
    inv = stocked(A=3)
    inv.reserve("o1", {"A": 1}, at=1.0)
    holding = inv.holding()
    with pytest.raises(Conflict, match="already holds"):
        holding.add("o1", {"A": 1})
    holding.add("o2", {"A": 1})
    with pytest.raises(Conflict, match="already holds"):
        holding.add("o2", {"A": 1})
    with pytest.raises(Exception, match="lines.A.qty"):
        holding.add("o3", {"A": 0})


def test_an_inventory_changed_since_the_holding_began_is_checked_again():
    inv = stocked(A=3)
    holding = inv.holding()
    holding.add("o1", {"A": 3})
    inv.adjust("A", -1, reason="broken", at=1.0)
    with pytest.raises(Conflict, match="only 2 available"):
        inv.reserve_held(holding, at=2.0)
    assert inv.reserved == {}
    with pytest.raises(Conflict, match="not S2's"):
        NodeInventory(node_id="S2", at=0.0).reserve_held(inv.holding(), at=2.0)
