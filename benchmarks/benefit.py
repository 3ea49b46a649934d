"""`o2o bench benefit`: what benefit sharing costs.

1. The ledger per handed-over order line: the same pickup orders of members
   (signed up by clerks at the sample city's stores) handed over on two
   fresh engines on the in-memory store (SQLite's commits would drown the
   difference in noise), one with a rule set in force (4 roles) and one
   without; the difference in this process's CPU time over the hand-overs,
   per line credited. The median of --repeat pairs.
2. A statement run over --statement-lines ledger lines (default 1,000,000)
   in one period over --parties parties, stored in a fresh SQLite store:
   rebuilding the read models from the stored events, building every
   party's statement, and `o2o benefit statement` writing every party's
   CSV and HTML (which replays the store itself).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.solver import machine

DAY = 86_400.0
T0 = 1_772_330_400.0  # 2026-03-01 10:00 in Shanghai


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("benefit", help="benefit sharing: ledger cost per line, a statement run over 1M lines",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=2_000, help="orders handed over per run (default 2,000)")
    p.add_argument("--lines", type=int, default=3, help="lines per order (default 3)")
    p.add_argument("--repeat", type=int, default=3, help="pairs of runs (default 3)")
    p.add_argument("--statement-lines", type=int, default=1_000_000, help="ledger lines in the statement run")
    p.add_argument("--parties", type=int, default=2_000, help="parties the statement run's lines belong to")
    p.add_argument("--out", default="bench-results", help="folder for benefit.json")
    p.set_defaults(func=run)


def rules() -> Any:
    from domain.benefit import RoleRate, RuleSet

    return RuleSet(version="R1", effective_from=T0, window_months=3, roles={
        "clerk": RoleRate(200), "manager": RoleRate(100), "store": RoleRate(300), "dealer": RoleRate(200)})


def hand_overs(orders: int, lines: int, store: str, with_rules: bool) -> dict[str, float]:
    """CPU and wall seconds of handing `orders` pickup orders over, and the ledger lines booked."""
    import msgspec

    from domain.commands import AcceptOrder, Line, PublishBenefitRules, ReceiveStock, ReportProgress, SignUpMember
    from domain.commands import SubmitOrder
    from engine.app import Engine, EngineSettings
    from engine.clock import SimClock
    from engine.store.network_file import SAMPLE_NETWORK, load_network
    from benchmarks.load.plan import roomy

    net = roomy(load_network(SAMPLE_NETWORK))
    net = msgspec.structs.replace(net, nodes=[msgspec.structs.replace(n, manager=f"mgr-{n.id}", dealer=n.dealer or "d1")
                                              for n in net.nodes])
    stores = [n.id for n in net.nodes if n.kind == "store" and "pickup" in n.modes]
    skus = [s.id for s in net.skus][:lines]
    clock = SimClock(T0)
    engine = Engine(net, EngineSettings(accept_timeout_s=86_400.0), clock=clock, store=store).start()
    try:
        if with_rules:
            engine.handle(PublishBenefitRules(rules=rules()))
        for node in stores:
            engine.handle(ReceiveStock(node=node, lines=[Line(sku, 10 * orders) for sku in skus], ref="bench"))
        ids = []
        for i in range(orders):
            node = stores[i % len(stores)]
            engine.sign_up(SignUpMember(member=f"m{i}", node=node, via="clerk", clerk=f"{node}-c{i % 3}"))
            reply = engine.submit(SubmitOrder(channel="app", external_id=f"o{i}", mode="pickup", pickup_node=node,
                                              member=f"m{i}", lines=[Line(sku, 1) for sku in skus]))
            engine.accept(AcceptOrder(order_id=reply.order_id))
            for step in ("picked", "ready"):
                engine.progress(ReportProgress(order_id=reply.order_id, step=step))
            ids.append(reply.order_id)
        booked = engine.recorder.max_notification_id()
        cpu, wall = time.process_time(), time.perf_counter()
        for oid in ids:
            engine.progress(ReportProgress(order_id=oid, step="collected"))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        ledger = sum(len(s.lines) for s in engine.readmodels.benefit.statements.values())
        events = engine.recorder.max_notification_id() - booked
        return {"cpu_s": cpu, "wall_s": wall, "ledger_lines": ledger, "events": events}
    finally:
        engine.close()


def ledger_cost(args: argparse.Namespace) -> dict[str, Any]:
    pairs = []
    for k in range(args.repeat):
        plain = hand_overs(args.orders, args.lines, "memory:", False)
        shared = hand_overs(args.orders, args.lines, "memory:", True)
        credited = args.orders * args.lines
        pair = {"without_us_per_order": round(plain["cpu_s"] / args.orders * 1e6, 1),
                "with_us_per_order": round(shared["cpu_s"] / args.orders * 1e6, 1),
                "ledger_us_per_line": round((shared["cpu_s"] - plain["cpu_s"]) / credited * 1e6, 1),
                "ledger_lines": shared["ledger_lines"], "events_with": shared["events"], "events_without": plain["events"]}
        print(f"  run {k + 1}: hand-over {pair['without_us_per_order']} us/order without rules, "
              f"{pair['with_us_per_order']} with; ledger {pair['ledger_us_per_line']} us per order line "
              f"({pair['ledger_lines']:,} ledger lines)", flush=True)
        pairs.append(pair)
    return {"runs": pairs, "ledger_us_per_line": statistics.median(p["ledger_us_per_line"] for p in pairs)}


def fill_store(url: str, lines: int, parties: int) -> float:
    """`lines` ledger lines over `parties` parties in March 2026; the seconds it took to store them."""
    from domain.benefit import LedgerLine, PartyLedger
    from engine.store.eventlog import EventLog

    log = EventLog(url)
    roles = ("clerk", "manager", "store", "dealer")
    per_party = lines // parties
    t = time.perf_counter()
    try:
        for p in range(parties):
            role = roles[p % 4]
            ledger = PartyLedger(party=f"{role}:p{p}", period="2026-03", at=T0)
            lines_of_sale = []
            for i in range(per_party):
                at = T0 + (i // 3 % 28) * DAY
                sale = f"pos/n{p}/s{i // 3}"  # three lines a purchase, booked together as the engine does
                lines_of_sale.append(LedgerLine(
                    key=f"{sale}/{i % 3}/{role}", root=sale, source=sale, sku=str(i % 3), role=role,
                    amount=100 + i % 50, base=5000 + i % 500, bp=200, version="R1", at=at, payable_at=at + 7 * DAY,
                    pool=800))
                if len(lines_of_sale) == 3 or i == per_party - 1:
                    ledger.book(lines_of_sale)
                    lines_of_sale = []
            log.save(ledger)
            if (p + 1) % max(parties // 10, 1) == 0:
                print(f"  stored {(p + 1) * per_party:,} lines", flush=True)
    finally:
        log.close()
    return time.perf_counter() - t


def statement_run(args: argparse.Namespace) -> dict[str, Any]:
    from adapters.cli import main as o2o
    from adapters.cli_state import rebuild
    from engine.replies import statement_replies
    from engine.store.network_file import SAMPLE_NETWORK

    with tempfile.TemporaryDirectory(prefix="o2o-bench-statements-") as tmp:
        url = f"sqlite:///{tmp}/events.db"
        stored_s = fill_store(url, args.statement_lines, args.parties)
        cpu, wall = time.process_time(), time.perf_counter()
        views, events = rebuild(url, str(SAMPLE_NETWORK))
        rebuild_cpu, rebuild_wall = time.process_time() - cpu, time.perf_counter() - wall
        cpu, wall = time.process_time(), time.perf_counter()
        found = statement_replies(views.benefit, "2026-03", None, T0 + 40 * DAY).statements
        build_cpu, build_wall = time.process_time() - cpu, time.perf_counter() - wall
        lines = sum(len(s.lines) for s in found)
        del views, found
        cpu, wall = time.process_time(), time.perf_counter()
        o2o(["benefit", "statement", "--store", url, "--period", "2026-03", "--out", f"{tmp}/out",
             "--at", str(T0 + 40 * DAY)])
        cli_cpu, cli_wall = time.process_time() - cpu, time.perf_counter() - wall
        files = len(list(Path(f"{tmp}/out").iterdir()))
    return {"lines": lines, "parties": args.parties, "events": events, "store_seconds": round(stored_s, 1),
            "rebuild": {"cpu_s": round(rebuild_cpu, 2), "wall_s": round(rebuild_wall, 2)},
            "statements": {"cpu_s": round(build_cpu, 2), "wall_s": round(build_wall, 2)},
            "cli_files": {"cpu_s": round(cli_cpu, 2), "wall_s": round(cli_wall, 2), "files": files}}


def run(args: argparse.Namespace) -> int:
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"ledger cost: {args.orders:,} orders x {args.lines} lines handed over, {args.repeat} pairs of runs")
    ledger = ledger_cost(args)
    print(f"ledger: {ledger['ledger_us_per_line']} us CPU per handed-over order line (median)")
    print(f"statement run: {args.statement_lines:,} lines over {args.parties:,} parties")
    statements = statement_run(args)
    print(f"statements: rebuild {statements['rebuild']['wall_s']} s ({statements['events']:,} events), "
          f"every statement {statements['statements']['wall_s']} s, o2o benefit statement "
          f"{statements['cli_files']['wall_s']} s ({statements['cli_files']['files']:,} files)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine(), "load_before": load, "load_after": Path("/proc/loadavg").read_text().split()[:3],
              "parameters": {k: v for k, v in vars(args).items() if k != "func"},
              "ledger": ledger, "statement_run": statements}
    (out / "benefit.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'benefit.json'}")
    return 0
