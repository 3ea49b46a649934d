"""`o2o bench steps`: what the rest of an order's life costs the engine's
process: the steps its node reports (accepted, picked, dispatched or made
ready, handed over) sent over NATS at fixed rates.

`o2o bench load` sends orders only, which nodes never accept there; in
service every order routed is followed by four write commands, each its
own request. Starts a nats-server and `o2o serve` on the same roomy
network as bench load, places the orders (the simulations' demand
generator) through `o2o.orders.submit`, then, rate by rate, drives the
steps of every part routed with the open-loop generator of bench load
(benchmarks/loadgen.py): in rounds (every order's accept, then every
order's pick, ...), so an order's next step comes a quarter of the run
after the one before. Per rate: steps answered per second, latency
p50/p99/max from each step's due time, errors, timeouts, the engine
process's CPU per step and (from $SRV STATS) how many steps a commit
served. A rate is sustained as in bench load (no error or timeout, p99
<= 250 ms, throughput within 2%); the sweep stops at the first that is
not. With `--members SHARE`, that share of the orders are members'
purchases (about three a member, each signed up by a clerk at a store,
under benefit-sharing rules): their hand-overs earn points and credit
the member's store, clerk, manager and dealer. With `--lives`, each run
also places new orders, one for every four steps, in the same stream: an
engine in steady state, where orders come in as fast as earlier ones
finish. The run then reports the orders' and the steps' latency apart,
and the CPU per order's whole life (its placing and four steps)."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from tqdm import tqdm

from benchmarks import loadgen
from benchmarks.load.figures import percentiles, summary
from benchmarks.load.plan import SCENARIO, Plan, demand, roomy
from benchmarks.load.processes import drive, endpoint_data, engine_served, serve_arguments
from benchmarks.solver import machine
from domain.benefit import RoleRate, RuleSet
from domain.commands import STEPS, PublishBenefitRules, SignUpMember
from engine.store.network_file import dump_network

RATES = (1000, 2000, 5000, 10_000, 20_000)
SUBMIT, ACCEPT, PROGRESS = "o2o.orders.submit", "o2o.orders.accept", "o2o.orders.progress"
STEPS_PER_PART = 4  # accepted and the mode's three
ORDERS_PER_MEMBER = 3


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("steps", help="the steps nodes report (accept, pick, ...) over NATS: CPU per step, latency",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rates", type=int, nargs="+", default=list(RATES), help="offered steps/s, one run each")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each run (default 10)")
    p.add_argument("--scenario", default=str(SCENARIO), help="scenario whose network and orders are used")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds a step may wait for its reply")
    p.add_argument("--alone", type=int, default=2500,
                   help="orders whose steps the engine alone takes, and as many counter sales (0: none)")
    p.add_argument("--members", type=float, default=0.0, metavar="SHARE",
                   help="share of the orders (0-1) that are members' purchases (default 0)")
    p.add_argument("--lives", action="store_true",
                   help="each run also places a new order for every four steps (an order's whole life)")
    p.add_argument("--quick", action="store_true", help="rates 500 and 2,000 for 4 s each; 500 orders alone")
    p.add_argument("--out", default="bench-results", help="folder for steps.json")
    # what `o2o serve` is started with (benchmarks/load/processes.py reads these)
    serve_arguments(p)


def run(args: argparse.Namespace) -> int:
    if args.quick:
        args.rates, args.seconds, args.alone = [500, 2000], 4.0, 500
    plans = [Plan("warm-up", PROGRESS, 500, 2.0)] + [Plan("steps", PROGRESS, r, args.seconds) for r in args.rates]
    n = max(sum(-(-p.count // STEPS_PER_PART) for p in plans) * 11 // 10, args.alone)  # about 1% are rejected
    fresh = sum(-(-p.count // STEPS_PER_PART) for p in plans) if args.lives else 0
    print(f"drawing {n + fresh:,} orders from {Path(args.scenario).name}", flush=True)
    base, orders = demand(args.scenario, n + fresh)
    network = roomy(base, orders)
    if not 0 <= args.members <= 1:
        raise SystemExit(f"--members: a share from 0 to 1, not {args.members}")
    orders, signups = with_members(network, orders, args.members)
    orders, fresh_orders = orders[:n], orders[n:]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="o2o-bench-steps-") as tmp:
        folder = Path(tmp)
        network_file = folder / "network.json"
        dump_network(network, network_file)
        runs = over_nats(args, plans, orders, signups, network_file, folder, fresh_orders)
    alone = in_process(network, orders, signups, args.alone) if args.alone else []
    report = {"machine": {**machine(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
              "parameters": {"scenario": Path(args.scenario).name, "rates": args.rates, "seconds": args.seconds,
                             "orders": n, "member_share": args.members, "members": len(signups),
                             "lives": args.lives},
              "runs": runs, "in_process": alone}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "steps.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    print(table(runs))
    if alone:
        print("engine alone, CPU us a command: " + "; ".join(
            f"{r['what']} alone {r['alone_us']}, in groups of {r['group']} {r['grouped_us']}" for r in alone))
    print(f"wrote {out / 'steps.json'}")
    return 0


def table(runs: list[dict[str, Any]]) -> str:
    lives = any("lives" in r for r in runs)
    lines = [f"| run | offered/s | answered/s | p50 ms | p99 ms | errors | timeouts | engine CPU us per "
             f"{'request' if lives else 'step'} | steps per commit | sustained |" + (" orders/s | orders' p99 ms | steps' p99 ms | CPU us a life |"
                                                    if lives else ""),
             "| --- " * (14 if lives else 10) + "|"]
    for r in runs:
        lat = r["latency_ms"] or {}
        line = (f"| {r['name']} | {r['offered_per_s']:,} | {r['achieved_per_s']:,.0f} | {lat.get('p50')} "
                f"| {lat.get('p99')} | {sum(r['errors'].values())} | {r['timeouts']} "
                f"| {r['service_cpu_us_per_request']} | {r.get('steps_per_commit')} | {r['sustained']} |")
        if lives:
            li = r.get("lives") or {}
            line += (f" {li.get('orders_per_s', '')} | {(li.get('orders_latency_ms') or {}).get('p99', '')} "
                     f"| {(li.get('steps_latency_ms') or {}).get('p99', '')} | {li.get('cpu_us_per_life', '')} |")
        lines.append(line)
    return "\n".join(lines)


def with_lives(payloads: list[bytes], subjects: list[str], fresh: list[Any]) -> tuple[list[bytes], list[str], int]:
    """A new order placed before every STEPS_PER_PART steps (as many as `fresh` holds): the payloads, their
    subjects and how many orders went in."""
    out, subs, k = [], [], 0
    for i, (p, s) in enumerate(zip(payloads, subjects)):
        if i % STEPS_PER_PART == 0 and k < len(fresh):
            out.append(msgspec.json.encode(fresh[k]))
            subs.append(SUBMIT)
            k += 1
        out.append(p)
        subs.append(s)
    return out, subs, k


def split(r: dict[str, Any], result: Any, subjects: list[str], orders: int, usage: dict[str, Any]) -> None:
    """The orders' and the steps' latency apart, and the CPU per order's life, into the run's `lives`."""
    latency, code, _ = loadgen.arrays(result)
    is_order = np.array([s == SUBMIT for s in subjects])
    ok = np.where(code == 0, latency, np.nan)
    r["lives"] = {"orders": orders, "orders_per_s": round(orders / max(result.seconds, 1e-9), 1),
                  "orders_latency_ms": percentiles(ok[is_order]), "steps_latency_ms": percentiles(ok[~is_order]),
                  "cpu_us_per_life": round(1e6 * usage["service_cpu_s"] / max(orders, 1), 1)}


def with_members(network: Any, orders: list[Any], share: float) -> tuple[list[Any], list[SignUpMember]]:
    """`share` of the orders made members' purchases, ORDERS_PER_MEMBER a member, and the members' sign-ups
    (each by one of three clerks at a store, in turn)."""
    if not share:
        return orders, []
    stores = [node.id for node in network.nodes if node.kind == "store"]
    out, k = [], 0
    for i, cmd in enumerate(orders):
        if int((i + 1) * share) > int(i * share):
            cmd = msgspec.structs.replace(cmd, member=f"bench-m{k // ORDERS_PER_MEMBER}")
            k += 1
        out.append(cmd)
    members = -(-k // ORDERS_PER_MEMBER)
    return out, [SignUpMember(member=f"bench-m{m}", node=stores[m % len(stores)], via="clerk", clerk=f"clerk-{m % 3}")
                 for m in range(members)]


def rules(effective_from: float) -> PublishBenefitRules:
    """benefit-month's R1: 2% to the clerk, 1% the manager, 3% the store, 2% the dealer, for 3 months."""
    return PublishBenefitRules(rules=RuleSet(
        version=f"bench-{effective_from:.0f}", effective_from=effective_from, window_months=3, hold_days=7,
        roles={"clerk": RoleRate(200), "manager": RoleRate(100), "store": RoleRate(300), "dealer": RoleRate(200)}))


async def ask_all(url: str, asks: list[tuple[str, Any]], in_flight: int = 400) -> list[tuple[bool, Any]]:
    """Each (subject, command) asked over NATS, `in_flight` at a time, in order: (False, its reply's JSON),
    or (True, the service's error) where it was refused."""
    import nats

    nc = await nats.connect(url)
    gate = asyncio.Semaphore(in_flight)

    async def one(subject: str, cmd: Any) -> tuple[bool, Any]:
        async with gate:
            msg = await nc.request(subject, msgspec.json.encode(cmd), timeout=30)
        error = (msg.headers or {}).get("Nats-Service-Error")
        return (True, error) if error else (False, json.loads(msg.data))

    try:
        return await asyncio.gather(*(one(subject, cmd) for subject, cmd in asks))
    finally:
        await nc.close()


async def enrol(url: str, signups: list[SignUpMember]) -> None:
    """The rules published (in force half a second on) and the members signed up, over NATS."""
    for asks in ([("o2o.benefit.rules.publish", rules(time.time() + 0.5))],
                 [("o2o.members.signup", s) for s in signups]):
        refused = next((reply for (no, reply) in await ask_all(url, asks) if no), None)
        if refused is not None:
            raise SystemExit(f"{asks[0][0]} refused: {refused}")
    await asyncio.sleep(0.5)


async def earning(url: str, signups: list[SignUpMember]) -> int:
    """How many of the members hold points now (their purchases handed over earned them), over NATS."""
    replies = await ask_all(url, [("o2o.members.get", {"member": s.member}) for s in signups])
    return sum(1 for refused, reply in replies if not refused and reply.get("points", 0) > 0)


def over_nats(args: argparse.Namespace, plans: list[Plan], orders: list[Any], signups: list[SignUpMember],
              network_file: Path, folder: Path, fresh: list[Any]) -> list[dict[str, Any]]:
    """Each plan's run; `fresh`: orders placed during the runs, one before every four steps (--lives)."""
    runs: list[dict[str, Any]] = []
    with engine_served(args, network_file, folder) as (server, proc):
        if signups:
            print(f"signing up {len(signups):,} members", flush=True)
            asyncio.run(enrol(server.url, signups))
        print(f"placing {len(orders):,} orders", flush=True)
        parts = asyncio.run(place(server.url, orders))
        lives = [life for life in parts if life]
        print(f"{len(lives):,} routed ({sum(len(life) for life in lives):,} parts)", flush=True)
        with tqdm(total=sum(p.seconds for p in plans), desc="bench steps", unit="s", mininterval=1.0) as bar:
            for plan in plans:
                take, lives = taking(lives, plan.count)
                payloads, subjects = steps_of(take)
                placing = 0
                if fresh:
                    payloads, subjects, placing = with_lives(payloads, subjects, fresh)
                    fresh = fresh[placing:]
                rate = plan.rate * len(payloads) // (len(payloads) - placing)  # the steps' rate, and the orders'
                before = commits(server.url)
                result, usage = drive(server.url, Plan(plan.name, PROGRESS, rate, len(payloads) / rate),
                                      payloads, args.timeout, proc.pid, server, folder, bar, subjects)
                r = summary(Plan(plan.name, PROGRESS, rate, plan.seconds), result, usage)
                if placing:
                    split(r, result, subjects, placing, usage)
                r["per_second"] = r["per_second"][:120]
                after = commits(server.url)
                if before is not None and after is not None and after[0] > before[0]:
                    r["steps_per_commit"] = round((after[1] - before[1]) / (after[0] - before[0]), 1)
                runs.append(r)
                if plan.name == "steps" and not r["sustained"]:
                    break  # higher rates would only fail the same way
        if signups:
            runs[-1]["members_earning"] = asyncio.run(earning(server.url, signups))
    return runs


async def place(url: str, orders: list[Any]) -> list[list[tuple[str, str, str]]]:
    """Each order placed; the (order id, node, mode) of each part routed (none for one not routed)."""
    replies = await ask_all(url, [(SUBMIT, cmd) for cmd in orders])
    return [[(reply["order_id"], p["node"], cmd.mode) for p in reply["parts"]]
            if not refused and reply.get("status") == "routed" else []
            for cmd, (refused, reply) in zip(orders, replies)]


def taking(lives: list[list[tuple[str, str, str]]], steps: int) -> tuple[list, list]:
    """The orders whose parts' steps make up about `steps`, and the rest."""
    n, k = 0, 0
    while k < len(lives) and n < steps:
        n += STEPS_PER_PART * len(lives[k])
        k += 1
    if n < steps:
        raise SystemExit(f"not enough routed orders for {steps:,} steps")
    return lives[:k], lives[k:]


def steps_of(lives: list[list[tuple[str, str, str]]]) -> tuple[list[bytes], list[str]]:
    """Every part's accept, then every part's first step, and so on: the payloads and their subjects."""
    payloads, subjects = [], []
    parts = [part for life in lives for part in life]
    for k in range(STEPS_PER_PART):
        for oid, node, mode in parts:
            if k == 0:
                payloads.append(msgspec.json.encode({"order_id": oid, "node": node}))
                subjects.append(ACCEPT)
            else:
                payloads.append(msgspec.json.encode({"order_id": oid, "node": node, "step": STEPS[mode][k - 1]}))
                subjects.append(PROGRESS)
    return payloads, subjects


GROUP = 50


def in_process(network: Any, orders: list[Any], signups: list[SignUpMember], n: int) -> list[dict[str, Any]]:
    """CPU per step and per counter sale of the engine alone (SQLite): half of each
    handled alone, half in groups of GROUP."""
    from benchmarks.engine import build, completing
    from domain.commands import Line, SellOverCounter
    from engine.memory import kept_long_lived

    with tempfile.TemporaryDirectory(prefix="o2o-bench-steps-alone-") as tmp:
        engine = build(network, f"sqlite:///{tmp}/events.db")
        try:
            if signups:
                effective = engine.clock.now() + 0.2
                engine.handle(rules(effective))
                for s in signups:
                    engine.handle(s)
                time.sleep(max(0.0, effective - engine.clock.now()))
            with kept_long_lived():  # as `o2o serve` sets the collector, then as it was
                steps: list[Any] = []
                for i in range(0, n, 125):
                    chunk = orders[i:i + 125]
                    steps += completing(chunk, engine.submit_batch(chunk))[0]
                # the parts' steps in rounds (every accept, then every pick, ...), as the service gets them
                by_round = [s for k in range(STEPS_PER_PART) for s in steps[k::STEPS_PER_PART]]
                stores = [node.id for node in network.nodes if node.kind == "store"][:20]
                sales = [SellOverCounter(node=node, sale_id=f"bench-{i}",
                                         lines=[Line(sorted(network.stock[node])[0], 1)])
                         for i, node in enumerate(stores[i % len(stores)] for i in range(n))]
                return [_alone_and_grouped(engine, "step", by_round), _alone_and_grouped(engine, "counter sale", sales)]
        finally:
            engine.close()


def _alone_and_grouped(engine: Any, what: str, cmds: list[Any]) -> dict[str, Any]:
    half = len(cmds) // 2
    c0 = time.process_time()
    for cmd in cmds[:half]:
        engine.handle(cmd)
    c1 = time.process_time()
    for i in range(half, len(cmds), GROUP):
        bad = [r for r in engine.handle_writes(cmds[i:i + GROUP]) if isinstance(r, Exception)]
        if bad:
            raise RuntimeError(f"a {what} was refused: {bad[0]}")
    c2 = time.process_time()
    return {"what": what, "commands": len(cmds), "group": GROUP, "alone_us": round((c1 - c0) / half * 1e6, 1),
            "grouped_us": round((c2 - c1) / (len(cmds) - half) * 1e6, 1)}


def commits(url: str) -> tuple[int, int] | None:
    """(commits of write commands, commands in them) so far, from $SRV STATS (None from an engine without them)."""
    data = endpoint_data(url, "accept")
    return (data["commits"], data["writes"]) if data else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
