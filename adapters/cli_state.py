"""`o2o state`: node stock and order counts, rebuilt from an event store.

Read-only: it replays the stored events into the read models and prints
them; it never opens nodes or writes anything.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec

from domain.errors import DomainError
from engine.store.network_file import SAMPLE_NETWORK, load_network
from engine.store.eventlog import EventLog
from engine.store.urls import DEFAULT_STORE, describe, sqlite_path
from engine.clock import parse_time
from engine.readmodels import ReadModels
from engine.replies import member_reply, statement_replies, ts


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("state", help="print node stock and order counts from an event store",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", default=DEFAULT_STORE, help=f"event store URL (default {DEFAULT_STORE})")
    p.add_argument("--network", default=str(SAMPLE_NETWORK), help="network file the store was run with")
    p.add_argument("--node", action="append", help="show this node's stock per SKU (repeatable)")
    p.add_argument("--member", action="append",
                   help="show this member's points: balance, pending, reserved, owed, buckets with expiry (repeatable)")
    p.add_argument("--at", help="the time members' points are seen at: pending or expired by then "
                                "(ISO 8601 or epoch seconds; default now)")
    p.add_argument("--json", action="store_true", help="print the full state as JSON")
    p.set_defaults(func=run)


def rebuild(store_url: str, network_path: str) -> tuple[ReadModels, int]:
    """The read models as the stored events make them, and the event count."""
    if store_url.startswith("sqlite:") and not sqlite_path(store_url).exists():
        raise FileNotFoundError(f"no event store at {sqlite_path(store_url)} (run `o2o demo` or `o2o serve` first)")
    log = EventLog(store_url)
    try:
        views = ReadModels(load_network(network_path))
        events = 0
        for nid, event in log.stored_events():
            views.apply(event, nid)
            events += 1
        return views, events
    finally:
        log.close()


def run(args: argparse.Namespace) -> int:
    try:
        views, events = rebuild(args.store, args.network)
    except (DomainError, FileNotFoundError) as e:
        print(f"o2o state: {e}", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(views.state())).decode() + "\n")
        return 0
    print(f"store   {describe(args.store)}  ({events} events)")
    print(f"network {Path(args.network).name}")
    kpis = views.kpis()
    print(f"\norders  {kpis['orders']}")
    for status, n in kpis["orders_by_status"].items():
        print(f"  {status:<12} {n:>8}")
    for key in ("fill_rate", "on_time_rate", "split_rate", "average_order_value", "reroutes", "pos_sales",
                "points_liability", "points_owed"):
        print(f"  {key:<20} {kpis[key] if kpis[key] is not None else '-'}")
    currency = views.network.currency
    print(f"\nmoney   (minor units of {currency})")
    for key in ("online_revenue", "online_refunds", "pos_revenue", "pos_refunds"):
        print(f"  {key:<20} {kpis[key]:>12,}")
    print(f"\nmembers {sum(kpis['members_by_node'].values())} signed up "
          f"({len(kpis['members_by_clerk'])} clerks signing up)")
    for key in ("member_online_revenue", "member_pos_revenue"):
        print(f"  {key:<26} {kpis[key]:>12,}")
    share = kpis["store_signed_online_share"]
    print(f"  {'store_signed_online_share':<26} {share if share is not None else '-':>12}")
    _benefit(views)
    atp = views.atp
    available = atp.atp()
    print(f"\n{'node':<10} {'on hand':>9} {'reserved':>9} {'available':>10} {'SKUs out':>9}")
    for i, node in enumerate(atp.node_ids):
        print(f"{node:<10} {atp.on_hand[i].sum():>9} {atp.reserved[i].sum():>9} {available[i].sum():>10} "
              f"{int((available[i] == 0).sum()):>9}")
    for node in args.node or []:
        if node not in atp.node_index:
            print(f"o2o state: unknown node {node!r}", file=sys.stderr)
            return 2
        i = atp.node_index[node]
        print(f"\n{node}: sku on_hand reserved safety available")
        for j, sku in enumerate(atp.sku_ids):
            if atp.on_hand[i, j] or atp.reserved[i, j]:
                print(f"  {sku:<12} {atp.on_hand[i, j]:>6} {atp.reserved[i, j]:>6} {atp.safety[i, j]:>6} {available[i, j]:>6}")
    return _members(views, args.member or [], args.at)


def _benefit(views: ReadModels) -> None:
    """Per period: parties, accrued, payable (as of now) and paid; the top parties."""
    view = views.benefit
    periods = sorted({period for _, period in view.statements})
    if not periods:
        return
    print("\nbenefit (minor units)   parties     accrued     payable        paid  status")
    now = time.time()
    for period in periods:
        sts = statement_replies(view, period, None, now).statements
        status = "paid" if all(s.status == "paid" or s.closing <= 0 for s in sts) and period in view.closed else \
            "closed" if period in view.closed else "draft"
        print(f"  {period:<20} {len(sts):>8} {sum(s.total for s in sts):>11,} {sum(s.payable for s in sts):>11,} "
              f"{sum(s.paid for s in sts):>11,}  {status}")
        top = ", ".join(f"{s.party} {s.total:,}" for s in sorted(sts, key=lambda s: -s.total)[:4])
        print(f"    top: {top}")


def _members(views: ReadModels, members: list[str], at: str | None) -> int:
    """Each member's points as seen at `at`, times in the network's time zone."""
    try:
        now = time.time() if at is None else parse_time(at, "at")
    except DomainError as e:
        print(f"o2o state: {e}", file=sys.stderr)
        return 2
    zone = ZoneInfo(views.network.timezone)
    local = lambda t: t.astimezone(zone).strftime("%Y-%m-%d %H:%M") if t else "never"  # noqa: E731
    for name in members:
        record = views.members.get(name)
        if record is None:
            print(f"o2o state: unknown member {name!r}", file=sys.stderr)
            return 2
        m = member_reply(name, record, now)
        print(f"\nmember {name} (signed up at {m.node}), as of {local(ts(now))} {views.network.timezone}")
        print(f"  balance {m.points}  available {m.available}  pending {m.pending}  reserved {m.reserved}  "
              f"owed {m.owed}")
        if m.buckets:
            print(f"  {'bucket':<40} {'earned':>7} {'left':>6} {'held':>6}  {'available from':<16}  expires")
        for b in m.buckets:
            print(f"  {b.ref:<40} {b.earned:>7} {b.left:>6} {b.reserved:>6}  {local(b.available_at):<16}  "
                  f"{local(b.expires_at)}")
        for g in m.gifts:
            print(f"  gift {g.ref}: {g.gift} ({g.sku}) at {g.node}, {g.points} points, until {local(g.until)}")
    return 0
