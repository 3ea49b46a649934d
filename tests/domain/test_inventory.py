import pytest

from domain.errors import Conflict, InvalidInput
from domain.inventory import NodeInventory


def stocked(**lines: int) -> NodeInventory:
    inv = NodeInventory(node_id="S1", at=0.0)
    inv.receive(dict(lines), ref="opening", at=0.0)
    return inv


def test_a_reservation_takes_from_available_to_promise_not_from_on_hand():
    inv = stocked(A=5)
    inv.reserve("o1", {"A": 3}, at=1.0)
    assert inv.on_hand["A"] == 5 and inv.reserved["A"] == 3 and inv.atp("A") == 2


def test_safety_stock_is_held_back_from_online_orders_but_not_from_the_counter():
    inv = stocked(A=5)
    inv.set_safety_stock({"A": 2}, at=0.0)
    with pytest.raises(Conflict, match="only 3 available"):
        inv.reserve("o1", {"A": 4}, at=1.0)
    inv.sell_over_counter("pos-1", {"A": 5}, at=1.0)
    assert inv.on_hand["A"] == 0


def test_a_refused_reservation_changes_nothing():
    inv = stocked(A=1, B=1)
    before = (dict(inv.on_hand), dict(inv.reserved), len(inv.pending_events))
    with pytest.raises(Conflict):
        inv.reserve("o1", {"A": 1, "B": 2}, at=1.0)
    assert (dict(inv.on_hand), dict(inv.reserved), len(inv.pending_events)) == before


def test_pos_sales_cannot_take_goods_reserved_for_online_orders():
    inv = stocked(A=3)
    inv.reserve("o1", {"A": 2}, at=1.0)
    with pytest.raises(Conflict, match="only 1 unreserved"):
        inv.sell_over_counter("pos-1", {"A": 2}, at=2.0)


def test_a_pos_sale_is_recorded_once_per_sale_id():
    inv = stocked(A=3)
    inv.sell_over_counter("pos-1", {"A": 1}, at=1.0)
    with pytest.raises(Conflict, match="already recorded"):
        inv.sell_over_counter("pos-1", {"A": 1}, at=2.0)


def test_hand_over_consumes_both_reserved_and_on_hand():
    inv = stocked(A=3)
    inv.reserve("o1", {"A": 2}, at=1.0)
    inv.consume("o1", at=2.0)
    assert inv.on_hand["A"] == 1 and inv.reserved["A"] == 0 and "o1" not in inv.reservations


def test_release_returns_reserved_goods_to_available():
    inv = stocked(A=3)
    inv.reserve("o1", {"A": 2}, at=1.0)
    inv.release("o1", reason="cancelled", at=2.0)
    assert inv.atp("A") == 3


def test_a_stocktake_sets_on_hand_and_records_the_difference():
    inv = stocked(A=10)
    inv.count("A", 7, at=1.0)
    assert inv.on_hand["A"] == 7
    assert inv.pending_events[-1].delta == -3


def test_a_stocktake_below_what_is_reserved_is_refused():
    inv = stocked(A=10)
    inv.reserve("o1", {"A": 6}, at=1.0)
    with pytest.raises(Conflict, match="reserved"):
        inv.count("A", 5, at=2.0)


@pytest.mark.parametrize("qty", [0, -1, True, 1.5])
def test_quantities_must_be_positive_integers(qty):
    inv = stocked(A=3)
    with pytest.raises(InvalidInput, match="positive integer"):
        inv.receive({"A": qty}, ref="x", at=1.0)


def test_an_adjustment_needs_a_reason_and_a_non_zero_delta():
    inv = stocked(A=3)
    with pytest.raises(InvalidInput, match="reason"):
        inv.adjust("A", -1, reason=" ", at=1.0)
    with pytest.raises(InvalidInput, match="non-zero"):
        inv.adjust("A", 0, reason="damaged", at=1.0)
    inv.adjust("A", -1, reason="damaged", at=1.0)
    assert inv.on_hand["A"] == 2


def test_replaying_the_events_gives_the_same_inventory():
    inv = stocked(A=5, B=2)
    inv.reserve("o1", {"A": 2}, at=1.0)
    inv.sell_over_counter("pos-1", {"B": 1}, at=2.0)
    events = inv.collect_events()
    copy = None
    for e in events:
        copy = e.mutate(copy)
    assert vars(copy) == vars(inv)


def test_a_batch_reserves_for_each_order_in_one_event_all_or_none():
    inv = stocked(A=5, B=1)
    inv.collect_events()
    inv.reserve_many({"o1": {"A": 2}, "o2": {"A": 3, "B": 1}}, at=1.0)
    (e,) = inv.collect_events()
    assert type(e) is NodeInventory.ReservedMany and e.orders == {"o1": {"A": 2}, "o2": {"A": 3, "B": 1}}
    assert inv.reservations == {"o1": {"A": 2}, "o2": {"A": 3, "B": 1}} and inv.atp("A") == 0
    with pytest.raises(Conflict, match="only 0 available"):  # the orders before it in the batch count
        inv.reserve_many({"o3": {"B": 1}}, at=2.0)
    inv.receive({"A": 2}, ref="po", at=2.0)
    with pytest.raises(Conflict, match="only 1 available"):
        inv.reserve_many({"o3": {"A": 1}, "o4": {"A": 2}}, at=2.0)
    with pytest.raises(Conflict, match="already holds"):
        inv.reserve_many({"o3": {"A": 1}, "o1": {"A": 1}}, at=2.0)
    assert "o3" not in inv.reservations and inv.reserved == {"A": 5, "B": 1}


def test_a_single_reservation_event_of_an_older_store_replays():
    inv = stocked(A=5)
    inv.trigger_event(NodeInventory.Reserved, order_id="o1", lines={"A": 2}, at=1.0)
    inv.reserve("o2", {"A": 1}, at=2.0)
    copy = None
    for e in inv.collect_events():
        copy = e.mutate(copy)
    assert vars(copy) == vars(inv) and copy.reservations == {"o1": {"A": 2}, "o2": {"A": 1}} and copy.atp("A") == 2
