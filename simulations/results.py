"""KPIs of a simulated day (or days), per variant, per node and per hour,
from the engine's read models; members' sign-ups and sales and the benefit
statements (from o2o.benefit.statement); the conservation check; the KPI
files (JSON, CSV)."""
from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from domain.benefit import ROLES
from domain.commands import GetStatement
from engine.readmodels.demand import CAUSES, cause
from simulations.day import Outcome


def kpis(o: Outcome) -> dict:
    out = kpis_of(o.engine.readmodels, o.network, o.pos_short, o.engine.last_notification_id(), o.days)
    if o.routing.get("partitions", 1) > 1:  # orders moved to another partition's nodes (global: none)
        moved = o.routing["handed_over"]
        out.update(handed_over=moved, handed_over_share=round(moved / out["orders"], 4) if out["orders"] else None,
                   served_after_handover=o.routing["served_after_handover"])
    if o.report_benefit:
        out.update(member_kpis(o, out["online_revenue"]))
    if o.report_replenishment:
        out.update(units_bought=sum(o.replenished.values()),
                   units_moved=sum(q for q in o.transferred.values() if q > 0))
    return out


def kpis_of(views, network, pos_short: int | None, events: int, days: int = 1) -> dict:
    """The day's KPIs from read models (a live run's, or rebuilt from a recorded
    store, which does not know of counter customers who went without); over
    `days` days, capacity is that many days'."""
    base = views.kpis()
    records = list(views.orders.values())
    done = [r for r in records if r.status == "completed"]
    hand = np.array([(r.handed_over_at - r.placed_at) / 60 for r in done]) if done else np.zeros(0)
    rejected = [r for r in records if r.status == "rejected"]
    causes = Counter(_cause(r) for r in rejected)
    n_slots = _slots(network)
    parts = _parts_by_node(views)
    peak = _peak_slot(views, network)
    capacity = sum(n.capacity_per_slot * n_slots[n.id] for n in network.nodes) * days
    cost = sum(r.delivery_cost for r in records)
    served = sum(1 for r in records if r.max_parts > 0)
    return {
        "orders": base["orders"],
        "fill_rate": base["fill_rate"],
        "on_time_rate": base["on_time_rate"],
        "handover_min_mean": round(float(hand.mean()), 2) if len(hand) else None,
        "handover_min_p95": round(float(np.percentile(hand, 95)), 2) if len(hand) else None,
        "distance_km": round(sum(r.distance_km for r in records), 1),
        "delivery_cost": round(cost, 1),
        "delivery_cost_per_order": round(cost / served, 2) if served else None,  # per order routed
        "split_rate": base["split_rate"],
        "stockouts_online": causes["no_stock"],
        "stockouts_pos": pos_short,
        "reroutes": base["reroutes"],
        "capacity_use": round(sum(parts.values()) / capacity, 4) if capacity else None,
        "nodes_full_in_a_slot": sum(1 for n in network.nodes if n.capacity_per_slot and peak[n.id] >= n.capacity_per_slot),
        "kitchen_share": base["kitchen_share"],
        "average_order_value": base["average_order_value"],
        "online_revenue": base["online_revenue"],
        "online_refunds": base["online_refunds"],
        "pos_revenue": base["pos_revenue"],
        "pos_refunds": base["pos_refunds"],
        "points_liability": base["points_liability"],  # points members hold at the end of the day
        "completed": len(done),
        "cancelled": sum(1 for r in records if r.status == "cancelled"),
        "rejected": len(rejected),
        **{f"rejected_{name}": causes[name] for name in [c for c, _ in CAUSES] + ["unexplained"] if name != "no_stock"},
        "pos_sales": base["pos_sales"],
        "pos_units": base["pos_units"],
        "events": events,
    }


def _cause(r) -> str:
    return cause([x["reason"] for x in r.lost], r.reason)


def _slots(network) -> dict[str, int]:
    """Slots each node is open in a day."""
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


def member_kpis(o: Outcome, online_revenue: int) -> dict:
    """Members signed up (before the run, at a till during it), what members
    bought online and at the counter (kept: paid less refunds, minor units),
    and what the benefit statements of every period credit, role by role."""
    views = o.engine.readmodels
    members = views.member_view.members
    # the engine's figures; a variant that closes stores moves their members signed up before the run
    # to its first open node (a kitchen in the sample city): not store-signed
    k = views.kpis()
    online, pos, by_store = k["member_online_revenue"], k["member_pos_revenue"], k["store_signed_online_revenue"]
    rows = statements(o)
    by_role: dict[str, int] = {}
    for r in rows:
        by_role[r["role"]] = by_role.get(r["role"], 0) + r["total"]
    accrued = sum(r["total"] for r in rows)
    return {
        "members_signed_up": len(members),
        "members_joined": len(o.joined),
        "member_online_revenue": online,
        "member_pos_revenue": pos,
        "member_online_share": _share(online, online_revenue),
        "store_signed_online_share": _share(by_store, online_revenue),
        "benefit_rules": o.rules,
        "benefit_accrued": accrued,
        **{f"benefit_{role}": by_role.get(role) for role in ROLES},  # None: the role was credited nothing
        "benefit_online": sum(r["online"] for r in rows),
        "benefit_pos": sum(r["total"] - r["online"] for r in rows),
        "benefit_share_online_revenue": _share(accrued, online_revenue),
        "benefit_share_member_revenue": _share(accrued, online + pos),
        "benefit_parties": len({r["party"] for r in rows}),
        "benefit_lines": sum(r["lines"] for r in rows),
        "periods_closed": len(views.benefit.closed),
    }


def _share(a: int, b: int) -> float | None:
    return round(a / b, 6) if b else None


def statements(o: Outcome) -> list[dict]:
    """Every party's statement of every period the run booked in, as the
    engine answers o2o.benefit.statement: its lines summed, and its total."""
    periods = sorted({period for _, period in o.engine.readmodels.benefit.statements})
    rows = []
    for period in periods:
        for st in o.engine.handle(GetStatement(period=period)).statements:
            rows.append({"party": st.party, "role": st.party.split(":", 1)[0], "period": st.period,
                         "lines": len(st.lines), "credits": sum(x.amount for x in st.lines if x.amount > 0),
                         "reversals": sum(x.amount for x in st.lines if x.amount < 0),
                         "online": sum(x.amount for x in st.lines if x.root.startswith("order/")),
                         "total": st.total, "closed": st.closed})
    return rows


def signups(o: Outcome) -> list[dict]:
    """Members signed up per node and clerk: before the run, and at a till during it."""
    before, joined = Counter(), Counter()
    for name, m in o.engine.readmodels.member_view.members.items():
        (joined if name in o.joined else before)[(m["node"], m["clerk"] or "")] += 1
    return [{"node": node, "clerk": clerk, "before": before[(node, clerk)], "joined": joined[(node, clerk)],
             "members": before[(node, clerk)] + joined[(node, clerk)]}
            for node, clerk in sorted(before.keys() | joined.keys())]


def benefit(o: Outcome) -> dict | None:
    """The statements and sign-ups behind member_kpis, for benefit.csv, signups.csv and the report."""
    if not o.report_benefit:
        return None
    return {"rules": o.rules_text, "statements": statements(o), "signups": signups(o)}


def nodes(o: Outcome) -> list[dict]:
    return nodes_of(o.engine.readmodels, o.network, o.days)


def nodes_of(views, network, days: int = 1) -> list[dict]:
    parts = _parts_by_node(views)
    peak = _peak_slot(views, network)
    slots = _slots(network)
    handed: dict[str, list[float]] = defaultdict(list)  # minutes from order to hand-over, per node
    late, cost = Counter(), Counter()
    for r in views.orders.values():
        for node in r.parts:
            cost[node] += r.cost.get(node, {}).get("delivery", 0.0)
        if r.status == "completed":
            for node in r.parts:
                handed[node].append((r.handed_over_at - r.placed_at) / 60)
                late[node] += r.late
    view = views.atp
    available = view.atp()
    rows = []
    for n in network.nodes:
        i = view.node_index[n.id]
        cap = n.capacity_per_slot * slots[n.id] * days
        done = len(handed[n.id])
        rows.append({
            "node": n.id, "kind": n.kind, "lat": n.lat, "lon": n.lon, "orders": parts[n.id], "completed": done,
            "on_time_rate": round(1 - late[n.id] / done, 4) if done else None,
            "handover_min_mean": round(float(np.mean(handed[n.id])), 2) if done else None,
            "delivery_cost": round(cost[n.id], 1),
            "capacity_use": round(parts[n.id] / cap, 4) if cap else None,
            "peak_slot_use": round(peak[n.id] / n.capacity_per_slot, 4) if n.capacity_per_slot else None,
            "skus_out": int((available[i] == 0).sum()), "on_hand_end": int(view.on_hand[i].sum()),
        })
    return rows


def hourly(o: Outcome) -> list[dict]:
    return hourly_of(o.engine.readmodels, o.network)


def hourly_of(views, network) -> list[dict]:
    """Per hour an order was placed: orders, fill rate, on-time rate."""
    tz = ZoneInfo(network.timezone)
    placed, decided, served, done, late = Counter(), Counter(), Counter(), Counter(), Counter()
    for r in views.orders.values():
        h = datetime.fromtimestamp(r.placed_at, tz).hour
        placed[h] += 1
        decided[h] += r.max_parts > 0 or r.status == "rejected"
        served[h] += r.max_parts > 0
        done[h] += r.status == "completed"
        late[h] += r.status == "completed" and r.late
    return [{"hour": h, "orders": placed[h],
             "fill_rate": round(served[h] / decided[h], 4) if decided[h] else None,
             "on_time_rate": round(1 - late[h] / done[h], 4) if done[h] else None}
            for h in range(24)]


def conservation(o: Outcome) -> list[str]:
    """Per node and SKU: end = start + replenished + returned - sold online -
    sold at POS. Start, deliveries, returns and counter sales are the
    simulator's own books; online sales are the parts handed over. Returns
    the breaks."""
    view = o.engine.readmodels.atp
    expected = np.zeros_like(view.on_hand)

    def add(node: str, sku: str, qty: int) -> None:
        expected[view.node_index[node], view.sku_index[sku]] += qty

    for node, lines in o.opening.items():
        for sku, q in lines.items():
            add(node, sku, q)
    for (node, sku), q in o.replenished.items():
        add(node, sku, q)
    for (node, sku), q in o.transferred.items():
        add(node, sku, q)
    for (node, sku), q in o.returned.items():
        add(node, sku, q)
    for (node, sku), q in o.pos_sold.items():
        add(node, sku, -q)
    for r in o.engine.readmodels.orders.values():
        for node, part in r.parts.items():
            if part.status == "handed_over" or r.status == "completed":
                for sku, q in part.lines.items():
                    add(node, sku, -q)
    return [f"{view.node_ids[i]}/{view.sku_ids[j]}: on hand {view.on_hand[i, j]}, expected {expected[i, j]}"
            for i, j in np.argwhere(view.on_hand != expected)]


def write(out: Path, kpis: dict[str, dict], nodes: dict[str, list[dict]], hourly: dict[str, list[dict]],
          benefit: dict[str, dict] | None = None) -> list[Path]:
    """kpis.json (everything), kpis.csv, nodes.csv, hourly.csv, and with
    members and benefit sharing reported, benefit.csv (each party's statement
    per period) and signups.csv (members per node and clerk). Free of run
    times, so the same scenario and seed give identical files."""
    out.mkdir(parents=True, exist_ok=True)
    everything = {"variants": kpis, "nodes": nodes, "hourly": hourly}
    if benefit:
        everything["benefit"] = benefit
    (out / "kpis.json").write_text(json.dumps(everything, indent=1))
    _csv(out / "kpis.csv", [{"variant": v, **k} for v, k in kpis.items()])
    _csv(out / "nodes.csv", [{"variant": v, **row} for v, rows in nodes.items() for row in rows])
    _csv(out / "hourly.csv", [{"variant": v, **row} for v, rows in hourly.items() for row in rows])
    names = ["kpis.json", "kpis.csv", "nodes.csv", "hourly.csv"]
    if benefit:
        _csv(out / "benefit.csv", [{"variant": v, **row} for v, b in benefit.items() for row in b["statements"]])
        _csv(out / "signups.csv", [{"variant": v, **row} for v, b in benefit.items() for row in b["signups"]])
        names += ["benefit.csv", "signups.csv"]
    return [out / name for name in names]


def _csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        path.write_text("")
        return
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))  # a partitioned variant adds some
        w.writeheader()
        w.writerows(rows)
