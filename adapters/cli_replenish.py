"""`o2o replenish`: what to move and buy for the next delivery, per node
and SKU, from the demand an event store recorded (docs/replenishment.md).

Read-only: it replays the stored events into the read models (as `o2o
state` does) and asks the replenishment policy, as o2o.stock.suggest does.
A store holds sales and rejections, not the counter customers or quotes
that went without (those a running engine keeps in memory), so from a
store the levels rest on sales and online orders lost for stock only.

Writes to --out: suggestions.json (the whole suggestion), purchases.csv,
transfers.csv, plan.csv (every node and SKU moved or bought, with its
stock, expected demand and level), and nodes/<node>.csv (a node's own rows
of plan.csv, for its manager).
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import msgspec

from adapters.cli_state import rebuild
from domain.commands import ReplenishPolicy
from domain.errors import DomainError, InvalidInput
from engine.clock import parse_time
from engine.replenish import suggest
from engine.store.network_file import SAMPLE_NETWORK
from engine.store.urls import DEFAULT_STORE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replenish", help="suggest transfers and purchases per node and SKU from an event store",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", default=DEFAULT_STORE, help=f"event store URL (default {DEFAULT_STORE})")
    p.add_argument("--network", default=str(SAMPLE_NETWORK), help="network file the store was run with")
    p.add_argument("--out", required=True, help="directory to write the suggestion to")
    p.add_argument("--at", help="when the suggestion is made (ISO 8601 or epoch seconds; default: the store's "
                                "latest sale or rejection)")
    p.add_argument("--node", action="append", help="only this node (repeatable; default every node)")
    p.add_argument("--policy", help='the policy as JSON, e.g. \'{"deliveries": ["07:00", "15:00"], '
                                    '"service_level": 0.98}\' (fields: docs/replenishment.md)')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        policy = _policy(args.policy)
        views, events = rebuild(args.store, args.network)
        nodes = args.node or []
        for k, node in enumerate(nodes):
            if node not in views.atp.node_index:
                raise InvalidInput(f"--node[{k}]", f"unknown node {node!r}")
        at = parse_time(args.at, "--at") if args.at else views.demand.seen_until
        if not at:
            raise InvalidInput("--store", "the store holds no node inventory: nothing to suggest from")
        s = suggest(views.network, views.atp, views.demand, policy, at, nodes or None)
    except (DomainError, FileNotFoundError) as e:
        print(f"o2o replenish: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    (out / "nodes").mkdir(parents=True, exist_ok=True)
    (out / "suggestions.json").write_bytes(msgspec.json.format(msgspec.json.encode(s)) + b"\n")
    _csv(out / "purchases.csv", ["node", "sku", "qty"], msgspec.to_builtins(s.purchases))
    _csv(out / "transfers.csv", ["from_node", "to_node", "sku", "qty", "distance_km"], msgspec.to_builtins(s.transfers))
    fields = list(msgspec.structs.asdict(s.lines[0])) if s.lines else ["node", "sku"]
    plan = msgspec.to_builtins(s.lines)
    _csv(out / "plan.csv", fields, plan)
    for node in sorted({row["node"] for row in plan}):
        _csv(out / "nodes" / f"{node}.csv", fields, [row for row in plan if row["node"] == node])
    print(f"{events} events; delivery at {s.delivery_at.isoformat()} covering until {s.covers_until.isoformat()}, "
          f"{s.history_days} days of demand")
    if not s.history_days:  # a store of less than a day (the quick start's demo) gives nothing to go by
        print("nothing suggested: the levels rest on the demand of past days in the hours the delivery covers, "
              "and the store holds no such day yet (docs/replenishment.md)")
    print(f"buy {s.units_to_buy} units ({len(s.purchases)} lines), move {s.units_to_move} units "
          f"({len(s.transfers)} transfers); written to {out}")
    return 0


def _policy(text: str | None) -> ReplenishPolicy:
    if not text:
        return ReplenishPolicy()
    try:
        return msgspec.json.decode(text.encode(), type=ReplenishPolicy)
    except msgspec.ValidationError as e:
        reason, _, where = str(e).partition(" - at ")
        raise InvalidInput(f"--policy{where.strip('`')[1:]}" if where else "--policy", reason) from None
    except msgspec.DecodeError as e:
        raise InvalidInput("--policy", f"not JSON: {e}") from None


def _csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
