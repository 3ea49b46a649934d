"""How KPIs are named, formatted and judged in the report and the plots: one
list, so a table and a plot never disagree about a unit or a direction."""
from __future__ import annotations

import re

import msgspec


class Kpi(msgspec.Struct, frozen=True):
    key: str
    label: str
    fmt: str  # a format for the value; a "%" one makes changes percentage points
    better: int  # +1 higher is better, -1 lower is, 0 neither
    plotted: bool = False  # one of the panels of kpis.png
    minor: bool = False  # money in minor units, shown in major units (2 digits: the sample city's fen)


KPIS = [
    Kpi("orders", "orders", "{:,}", 0),
    Kpi("fill_rate", "fill rate", "{:.2%}", 1, True),
    Kpi("on_time_rate", "on-time rate", "{:.2%}", 1, True),
    Kpi("handover_min_mean", "minutes to hand-over, mean", "{:.1f}", -1, True),
    Kpi("handover_min_p95", "minutes to hand-over, p95", "{:.1f}", -1, True),
    Kpi("distance_km", "delivery distance (km)", "{:,.0f}", 0),
    Kpi("delivery_cost", "delivery cost (RMB)", "{:,.0f}", 0),
    Kpi("delivery_cost_per_order", "delivery cost per order routed (RMB)", "{:.2f}", -1, True),
    Kpi("split_rate", "split rate", "{:.2%}", 0),
    Kpi("stockouts_online", "orders lost to stock-outs", "{:,}", -1, True),
    Kpi("rejected", "orders rejected, all causes", "{:,}", -1),
    Kpi("stockouts_pos", "counter customers short of an item", "{:,}", -1, True),
    Kpi("reroutes", "reroutes (declined or expired)", "{:,}", -1, True),
    Kpi("capacity_use", "capacity use over the day", "{:.1%}", 0),
    Kpi("nodes_full_in_a_slot", "nodes full in some slot", "{:,}", -1, True),
    Kpi("kitchen_share", "served by kitchens", "{:.1%}", 0, True),
    Kpi("handed_over_share", "handed over to another partition", "{:.1%}", 0),
    Kpi("served_after_handover", "of them, served there", "{:,}", 0),
    Kpi("average_order_value", "average order value (minor units)", "{:,}", 0),
    Kpi("online_revenue", "online revenue kept (minor units)", "{:,}", 1),
    Kpi("online_refunds", "online refunds after hand-over (minor units)", "{:,}", -1),
    Kpi("pos_revenue", "counter revenue kept (minor units)", "{:,}", 1),
    Kpi("points_liability", "points members hold at the end", "{:,}", 0),
    Kpi("pos_sales", "counter sales", "{:,}", 0),
]


# members and benefit sharing: a table of their own in the report, under the KPIs
MONEY = "{:,.2f}"
BENEFIT = [
    Kpi("members_signed_up", "members signed up, in all", "{:,}", 0),
    Kpi("members_joined", "of whom at a till during the run", "{:,}", 0),
    Kpi("member_online_revenue", "members' online revenue kept (RMB)", MONEY, 0, minor=True),
    Kpi("member_pos_revenue", "members' counter revenue kept (RMB)", MONEY, 0, minor=True),
    Kpi("member_online_share", "members' share of online revenue", "{:.1%}", 0),
    Kpi("store_signed_online_share", "share of online revenue by members a store signed up", "{:.1%}", 0),
    Kpi("benefit_accrued", "benefit accrued, all roles (RMB)", MONEY, 0, minor=True),
    Kpi("benefit_clerk", "to clerks (RMB)", MONEY, 0, minor=True),
    Kpi("benefit_manager", "to store managers (RMB)", MONEY, 0, minor=True),
    Kpi("benefit_store", "to stores (RMB)", MONEY, 0, minor=True),
    Kpi("benefit_dealer", "to dealers (RMB)", MONEY, 0, minor=True),
    Kpi("benefit_region", "to regions (RMB)", MONEY, 0, minor=True),
    Kpi("benefit_online", "on online orders (RMB)", MONEY, 0, minor=True),
    Kpi("benefit_pos", "on counter sales (RMB)", MONEY, 0, minor=True),
    Kpi("benefit_share_online_revenue", "cost to the chain, share of online revenue", "{:.2%}", 0),
    Kpi("benefit_share_member_revenue", "cost to the chain, share of members' revenue", "{:.2%}", 0),
    Kpi("benefit_parties", "parties credited", "{:,}", 0),
    Kpi("periods_closed", "periods closed", "{:,}", 0),
]


def _shown(k: Kpi, v):
    return v / 100 if k.minor and isinstance(v, (int, float)) else v


def value(k: Kpi, v) -> str:
    return "-" if v is None else k.fmt.format(_shown(k, v))


def change(k: Kpi, v, ref) -> str:
    """v against ref: "+0.70 pt" for rates, "-23" for counts; "" if equal or
    unknown; a change too small for the format gets more digits, never "+0.0"."""
    if not isinstance(v, (int, float)) or not isinstance(ref, (int, float)) or v == ref:
        return ""
    v, ref = _shown(k, v), _shown(k, ref)
    sign = "+" if v > ref else "−"
    d = abs(v - ref)
    pct = "%" in k.fmt
    m = re.search(r"\.(\d+)[f%]", k.fmt)
    digits, unit, d = (int(m.group(1)) if m else 0), (" pt" if pct else ""), (d * 100 if pct else d)
    text = f"{d:,.{digits}f}"
    for more in (1, 2):  # a change too small for the format gets the digits that show it
        if float(text.replace(",", "")) == 0:
            text = f"{d:,.{digits + more}f}"
    if float(text.replace(",", "")) == 0:
        text = f"<{10 ** -(digits + 2):g}"
    return f"{sign}{text}{unit}"


def verdict(k: Kpi, v, ref) -> str:
    """"good", "bad" or "" (no change, or neither direction is better)."""
    if not k.better or not isinstance(v, (int, float)) or not isinstance(ref, (int, float)) or v == ref:
        return ""
    return "good" if (v - ref) * k.better > 0 else "bad"
