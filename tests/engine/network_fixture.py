"""A tiny network the engine tests can reason about by hand.

Three stores on a line, 1 km apart, and a kitchen 2 km further out.
"""
from domain.network import Network, Node, Sku, Window

LAT, LON = 31.23, 121.47
KM = 1 / 111.0  # degrees of latitude per km


def node(id: str, km: float, kind: str = "store", capacity: int = 10, modes=("delivery", "pickup"), radius=5.0) -> Node:
    return Node(
        id=id, name=id, kind=kind, lat=LAT + km * KM, lon=LON, modes=list(modes), delivery_radius_km=radius,
        hours=[Window("00:00", "24:00")], capacity_per_slot=capacity, prep_minutes=10, cost_per_km=2.0,
        operating_cost=1.0 if kind == "kitchen" else 3.0,
    )


def small_network(stock: dict | None = None) -> Network:
    return Network(
        name="test-town",
        nodes=[node("S1", 0), node("S2", 1), node("S3", 2), node("K1", 4, kind="kitchen", capacity=50, modes=("delivery",))],
        skus=[Sku("A", "apple", 5.0), Sku("B", "banana", 3.0, safety_stock=1), Sku("C", "cherry", 40.0)],
        stock=stock if stock is not None else {
            "S1": {"A": 5, "B": 5, "C": 1},
            "S2": {"A": 5, "B": 5, "C": 0},
            "S3": {"A": 5, "B": 5, "C": 2},
            "K1": {"A": 50, "B": 50, "C": 10},
        },
    )


def at_km(km: float) -> tuple[float, float]:
    return LAT + km * KM, LON
