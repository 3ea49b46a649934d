"""KPIs of a simulated day, per variant, per node and per hour, from the
engine's read models; and the conservation check."""
from __future__ import annotations

from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from simulations.run import Outcome


def kpis(o: Outcome) -> dict:
    return kpis_of(o.engine.views, o.network, o.pos_sales - o.pos_stockouts, o.pos_stockouts,
                   o.engine.last_notification_id())


def kpis_of(views, network, pos_sales: int, pos_stockouts: int | None, events: int) -> dict:
    """The day's KPIs from read models (a live run's, or rebuilt from a recorded store)."""
    base = views.kpis()
    records = list(views.orders.values())
    done = [r for r in records if r.status == "completed"]
    hand = np.array([(r.handed_over_at - r.placed_at) / 60 for r in done]) if done else np.zeros(0)
    rejected = [r for r in records if r.status == "rejected"]
    n_slots = _slots(network)
    parts = _parts_by_node(views)
    peak = _peak_slot(views, network)
    capacity = sum(n.capacity_per_slot * n_slots[n.id] for n in network.nodes)
    return {
        "orders": base["orders"],
        "fill_rate": base["fill_rate"],
        "on_time_rate": base["on_time_rate"],
        "handover_min_mean": round(float(hand.mean()), 2) if len(hand) else None,
        "handover_min_p95": round(float(np.percentile(hand, 95)), 2) if len(hand) else None,
        "distance_km": round(sum(r.distance_km for r in records), 1),
        "delivery_cost": round(sum(r.delivery_cost for r in records), 1),
        "split_rate": base["split_rate"],
        "stockouts_online": sum(1 for r in rejected if r.reason and "stock" in r.reason),
        "stockouts_pos": pos_stockouts,
        "reroutes": base["reroutes"],
        "capacity_use": round(sum(parts.values()) / capacity, 4) if capacity else None,
        "nodes_full_in_a_slot": sum(1 for n in network.nodes if n.capacity_per_slot and peak[n.id] >= n.capacity_per_slot),
        "kitchen_share": base["kitchen_share"],
        "average_order_value": base["average_order_value"],
        "completed": len(done),
        "rejected": len(rejected),
        "pos_sales": pos_sales,
        "events": events,
    }


def _slots(network) -> dict[str, int]:
    """Slots each node is open during the simulated day."""
    out = {}
    for n in network.nodes:
        minutes = sum(w.minutes()[1] - w.minutes()[0] for w in n.hours)
        out[n.id] = max(1, minutes // n.slot_minutes)
    return out


def _parts_by_node(views) -> Counter:
    routed = Counter()
    for r in views.orders.values():
        for node in r.parts:
            routed[node] += 1
    return routed


def _peak_slot(views, network) -> Counter:
    """Most parts a node was given in any one of its slots."""
    per_slot = Counter()
    slot_s = {n.id: n.slot_minutes * 60 for n in network.nodes}
    for r in views.orders.values():
        for node, part in r.parts.items():
            per_slot[(node, int(part.routed_at // slot_s[node]))] += 1
    peak = Counter()
    for (node, _), n in per_slot.items():
        peak[node] = max(peak[node], n)
    return peak


def nodes(o: Outcome) -> list[dict]:
    return nodes_of(o.engine.views, o.network)


def nodes_of(views, network) -> list[dict]:
    parts = _parts_by_node(views)
    peak = _peak_slot(views, network)
    slots = _slots(network)
    view = views.atp
    available = view.atp()
    rows = []
    for n in network.nodes:
        i = view.node_index[n.id]
        cap = n.capacity_per_slot * slots[n.id]
        rows.append({
            "node": n.id, "kind": n.kind, "lat": n.lat, "lon": n.lon, "orders": parts[n.id],
            "capacity_use": round(parts[n.id] / cap, 4) if cap else None,
            "peak_slot_use": round(peak[n.id] / n.capacity_per_slot, 4) if n.capacity_per_slot else None,
            "skus_out": int((available[i] == 0).sum()), "on_hand_end": int(view.on_hand[i].sum()),
        })
    return rows


def hourly(o: Outcome) -> list[dict]:
    return hourly_of(o.engine.views, o.network)


def hourly_of(views, network) -> list[dict]:
    tz = ZoneInfo(network.timezone)
    placed, served = Counter(), Counter()
    for r in views.orders.values():
        h = datetime.fromtimestamp(r.placed_at, tz).hour
        placed[h] += 1
        served[h] += r.max_parts > 0
    return [{"hour": h, "orders": placed[h], "fill_rate": round(served[h] / placed[h], 4) if placed[h] else None}
            for h in range(24)]


def conservation(o: Outcome) -> list[str]:
    """Per node and SKU: end = start + replenished - sold online - sold at POS. Returns the breaks."""
    view = o.engine.views.atp
    expected = np.zeros_like(view.on_hand)

    def add(node: str, sku: str, qty: int) -> None:
        expected[view.node_index[node], view.sku_index[sku]] += qty

    for node, lines in o.opening.items():
        for sku, q in lines.items():
            add(node, sku, q)
    for (node, sku), q in o.replenished.items():
        add(node, sku, q)
    for (node, sku), q in o.pos_sold.items():
        add(node, sku, -q)
    for r in o.engine.views.orders.values():
        for node, part in r.parts.items():
            if part.status == "handed_over" or r.status == "completed":
                for sku, q in part.lines.items():
                    add(node, sku, -q)
    return [f"{view.node_ids[i]}/{view.sku_ids[j]}: on hand {view.on_hand[i, j]}, expected {expected[i, j]}"
            for i, j in np.argwhere(view.on_hand != expected)]
