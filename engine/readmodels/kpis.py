"""KPIs: plain queries over the read models, computed when asked."""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.readmodels import ReadModels


def kpis(models: ReadModels) -> dict[str, Any]:
    orders = models.orders.values()
    by_status = Counter(r.status for r in orders)
    decided = [r for r in orders if r.max_parts > 0 or r.status == "rejected"]
    routed = [r for r in orders if r.max_parts > 0]
    done = [r for r in orders if r.status == "completed"]
    kinds = {n.id: n.kind for n in models.network.nodes}
    served_by_kitchen = sum(1 for r in done if any(kinds.get(node) == "kitchen" for node in r.parts))
    pos = models.pos
    unit = 10 ** models.network.minor_units
    paid = [r.paid if r.paid is not None else round(r.value * unit) for r in done]  # older orders: the value then
    open_money = [r for r in orders if r.paid is not None and r.status not in ("cancelled", "rejected")]
    sales = models.sales.values()
    return {
        "orders": len(models.orders),
        "orders_by_status": dict(sorted(by_status.items())),
        "fill_rate": _ratio(len(routed), len(decided)),
        "on_time_rate": _ratio(sum(1 for r in done if not r.late), len(done)),
        "split_rate": _ratio(sum(1 for r in routed if r.max_parts > 1), len(routed)),
        "average_order_value": round(sum(paid) / len(paid)) if paid else None,  # minor units
        "online_revenue": sum(r.paid - r.refunded for r in open_money),  # kept: paid less refunds (minor units)
        "online_refunds": sum(r.refunded for r in open_money),  # after hand-over; cancellations give all back
        "pos_revenue": sum(r.paid - r.refunded for r in sales),
        "pos_refunds": sum(r.refunded for r in sales),
        "reroutes": sum(r.reroutes for r in orders),
        "kitchen_share": _ratio(served_by_kitchen, len(done)),
        "members_by_node": dict(sorted(models.signups.items())),
        "members_by_clerk": dict(sorted(models.member_view.clerk_signups.items())),
        **_member_sales(models, open_money, sales),
        "pos_sales": pos["sales"],
        "pos_units": pos["units"],
        "points_liability": models.member_view.liability,  # points members hold, pending and reserved included
        "points_owed": models.member_view.owed,
    }


def _member_sales(models: ReadModels, online: list[Any], sales: Any) -> dict[str, Any]:
    """Members' online and in-store sales (kept: paid less refunds), and the share
    of all online sales made by members signed up at a store (not online)."""
    stores = {n.id for n in models.network.nodes if n.kind == "store"}
    signed = models.member_view.signed_up

    def at_store(member: str | None) -> bool:
        how = signed.get(member) if member else None
        return how is not None and how[0] != "online" and how[1] in stores

    kept = [(r.member, r.paid - r.refunded) for r in online]
    store_signed = sum(v for m, v in kept if at_store(m))
    return {
        "member_online_revenue": sum(v for m, v in kept if m),
        "member_pos_revenue": sum(r.paid - r.refunded for r in sales if r.member),
        "store_signed_online_revenue": store_signed,
        "store_signed_online_share": _ratio(store_signed, sum(v for _, v in kept)),
    }


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 6) if b else None
