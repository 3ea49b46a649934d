"""`o2o bench chaos`: the bounded chaos run of scale-out (docs/scale-out.md).

On loopback: a 3-node JetStream cluster, a PostgreSQL store, one relay and
two engines (`o2o serve --partitions p1 --standby p2`, and the mirror),
orders at a steady rate, some over request/reply through any server,
some published to the intake. Faults on a fixed schedule (fractions of the
run): kill -9 of p1's engine (0.2), its restart (0.3), kill -9 of the
intake stream's leader (0.45) and its restart (0.6), SIGSTOP of the other
engine past its lease (0.7, for 2.5 TTLs) then SIGCONT. It stops by
itself, drains, and checks: every acknowledged order stored and decided
exactly once, no node reserving more than it holds, the event stream
equal to the store. Outages: per fault, the longest wait of an order
sent in the 15 s after it."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import time
from collections import Counter
from pathlib import Path

import msgspec

from benchmarks.scaleout.harness import cluster_on_postgres, launch
from domain.errors import InvalidInput

READY = "serving on"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chaos", help="two engines, a 3-node cluster and PostgreSQL under kills and pauses",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", default=os.environ.get("O2O_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test"),
                   help="PostgreSQL URL; the run uses a fresh schema in it, dropped afterwards")
    p.add_argument("--rate", type=float, default=100.0, help="orders per second (default 100)")
    p.add_argument("--seconds", type=float, default=60.0, help="length of the run before draining (default 60)")
    p.add_argument("--ttl", type=float, default=3.0, help="lease TTL in seconds (default 3)")
    p.add_argument("--intake-share", type=float, default=0.3, help="share of orders published to the intake")
    p.add_argument("--out", default="bench-results/chaos", help="folder for logs and chaos.json")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.seconds < 20:
        raise SystemExit(f"o2o bench chaos: {InvalidInput('--seconds', 'at least 20: the faults need room')}")
    folder = Path(args.out)
    if folder.exists():  # a fresh run: an old cluster's streams would belong to another store
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    result = run_chaos(args.store, args.rate, args.seconds, args.ttl, args.intake_share, folder)
    (folder / "chaos.json").write_text(json.dumps(result, indent=2))
    print(summary(result))
    return 0 if result["ok"] else 1


def summary(r: dict) -> str:
    lines = [f"{r['sent']} orders sent, {r['acknowledged']} acknowledged ({r['by_reply']} by reply, "
             f"{r['by_intake']} by the intake's PubAck) in {r['seconds']:g} s at {r['rate']:g}/s, lease TTL {r['ttl']:g} s",
             f"lost {r['lost']}, decided twice {r['decided_twice']}, oversold {len(r['oversold'])}, "
             f"event stream equal to the store: {r['stream_equals_store']} ({r['stored_events']} events stored, "
             f"{r['published']} in the stream: {r['published_twice']} twice, {r['not_published']} missing, "
             f"{r['out_of_order']} out of order; {r['gaps_in_ids']} ids never used, rolled back)"]
    for f in r["faults"]:
        lines.append(f"  {f['at_s']:6.1f} s  {f['what']:<44} longest wait after it {f['longest_wait_s']:.1f} s")
    lines.append(f"p99 wait outside faults {r['p99_quiet_s']:.2f} s; takeovers seen in the logs: {r['takeovers']}")
    lines.append("OK" if r["ok"] else "FAILED")
    return "\n".join(lines)


def run_chaos(store_url: str, rate: float, seconds: float, ttl: float, intake_share: float, folder: Path) -> dict:
    with cluster_on_postgres(folder, store_url, 2, ttl) as setup:
        cluster, store, procs = setup.cluster, setup.store, setup.procs
        engine_args = {"a": setup.engine_argv(["p1"], ["p2"]), "b": setup.engine_argv(["p2"], ["p1"])}
        setup.start_engines(engine_args)
        faults: list[dict] = []

        async def schedule(t0: float) -> None:
            async def at(share: float) -> None:
                await asyncio.sleep(max(0.0, t0 + share * seconds - time.monotonic()))

            def note(what: str) -> None:
                faults.append({"at_s": round(time.monotonic() - t0, 2), "what": what})
                print(f"{faults[-1]['at_s']:6.1f} s  {what}", flush=True)

            await at(0.2)
            procs["a"].send_signal(signal.SIGKILL)
            note("kill -9 engine a (owner of p1)")
            await at(0.3)
            procs["a"].wait()
            procs["a"] = launch(engine_args["a"], folder / "engine-a.log")
            note("engine a started again (stands by)")
            await at(0.45)
            leader = await _intake_leader(cluster.url)
            cluster.stop_server(leader, kill=True)
            note(f"kill -9 nats-server {cluster.server_name(leader)} (O2O_INTAKE's leader)")
            await at(0.6)
            cluster.start_server(leader)
            note(f"nats-server {cluster.server_name(leader)} started again")
            await at(0.7)
            procs["b"].send_signal(signal.SIGSTOP)
            note(f"SIGSTOP engine b for {2.5 * ttl:g} s (past its lease)")
            await asyncio.sleep(2.5 * ttl)
            procs["b"].send_signal(signal.SIGCONT)
            note("SIGCONT engine b")

        sent, answered, by_reply, by_intake = asyncio.run(_drive(cluster.url, rate, seconds, intake_share,
                                                                  schedule))
        decided, oversold, stored = _drained(store, set(by_reply) | set(by_intake))
        published = asyncio.run(_published(cluster.url, len(stored)))
    acknowledged = set(by_reply) | set(by_intake)
    lost = sorted(acknowledged - set(decided))
    twice = sorted(k for k, n in decided.items() if n > 1)
    waits = {k: answered[k] - sent[k] for k in answered}
    for f in faults:
        window = [w for k, w in waits.items() if f["at_s"] <= sent[k] < f["at_s"] + 15]
        f["longest_wait_s"] = round(max(window, default=0.0), 2)
    quiet = sorted(w for k, w in waits.items() if not any(f["at_s"] <= sent[k] < f["at_s"] + 15 for f in faults))
    logs = "".join((folder / f"engine-{n}.log").read_text(errors="replace") for n in ("a", "b"))
    result = {
        "rate": rate, "seconds": seconds, "ttl": ttl, "sent": len(sent), "acknowledged": len(acknowledged),
        "by_reply": len(by_reply), "by_intake": len(by_intake), "lost": len(lost), "lost_ids": lost[:20],
        "decided_twice": len(twice), "oversold": oversold, "stored_events": len(stored),
        "gaps_in_ids": (stored[-1] - len(stored)) if stored else 0,
        "stream_equals_store": published == stored, "published": len(published),
        "published_twice": sum(n - 1 for n in Counter(published).values()),
        "not_published": len(set(stored) - set(published)),
        "out_of_order": sum(1 for x, y in zip(published, published[1:]) if y < x), "faults": faults,
        "p99_quiet_s": round(quiet[int(0.99 * (len(quiet) - 1))] if quiet else 0.0, 3),
        "takeovers": logs.count("took partition"),
    }
    result["ok"] = (result["lost"] == 0 and result["decided_twice"] == 0 and not oversold
                    and result["stream_equals_store"])
    return result


def _orders(n: int, seed: int = 7) -> list:
    """Orders at the sample city's stores and around them, one unit of a SKU each."""
    from domain.commands import Line, SubmitOrder
    from engine.store.network_file import SAMPLE_NETWORK, load_network

    network = load_network(SAMPLE_NETWORK)
    rnd = random.Random(seed)
    stores = [s for s in network.nodes if s.kind == "store"]
    out = []
    for i in range(n):
        s = stores[rnd.randrange(len(stores))]
        out.append(SubmitOrder(channel="chaos", external_id=f"c{i}", lines=[Line(rnd.choice(network.skus[:40]).id, 1)],
                               lat=s.lat + rnd.uniform(-0.004, 0.004), lon=s.lon + rnd.uniform(-0.004, 0.004)))
    return out


async def _drive(url: str, rate: float, seconds: float, intake_share: float, schedule):
    """Sends the orders at `rate`, each retried until acknowledged (a reply
    with a status, or the intake's PubAck); runs `schedule(t0)` beside."""
    import nats

    from adapters.intake import intake_message

    nc = await nats.connect(url.split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    js = nc.jetstream(timeout=2.0)
    cmds = _orders(int(rate * seconds))
    rnd = random.Random(11)
    sent, answered, by_reply, by_intake = {}, {}, {}, {}
    t0 = time.monotonic()

    async def one(cmd, intake: bool) -> None:
        key = cmd.external_id
        sent[key] = time.monotonic() - t0
        while time.monotonic() - t0 < seconds + 120:
            try:
                if intake:
                    subject, payload, headers = intake_message(cmd)
                    await js.publish(subject, payload, headers=headers)
                    by_intake[key] = True
                else:
                    msg = await nc.request("o2o.orders.submit", msgspec.json.encode(cmd), timeout=2.0)
                    if (msg.headers or {}).get("Nats-Service-Error-Code"):
                        await asyncio.sleep(0.2)  # 421 (partition moving) or 503: ask again
                        continue
                    by_reply[key] = msgspec.json.decode(msg.data)["status"]
                answered[key] = time.monotonic() - t0
                return
            except Exception:  # noqa: BLE001 - no answer, no responders, a server gone: ask again
                await asyncio.sleep(0.2)

    tasks = [asyncio.ensure_future(schedule(t0))]
    for i, cmd in enumerate(cmds):
        await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        tasks.append(asyncio.ensure_future(one(cmd, rnd.random() < intake_share)))
    await asyncio.gather(*tasks)
    await nc.close()
    return sent, answered, by_reply, by_intake


def _drained(store: str, acknowledged: set[str], timeout: float = 120.0):
    """Once every acknowledged order is decided (or the timeout): decisions
    per order, nodes reserving more than they hold, the stored notification ids."""
    from domain import ids
    from engine.store.eventlog import EventLog
    from engine.store.network_file import SAMPLE_NETWORK, load_network

    deadline = time.monotonic() + timeout
    while True:
        log = EventLog(store)
        try:
            decided: Counter[str] = Counter()
            external = {}
            stored = []  # notification ids: a rolled-back transaction leaves a gap in the sequence
            for nid, e in log.stored_events():
                stored.append(nid)
                kind = type(e).__name__
                if kind == "Placed":
                    external[e.originator_id] = e.external_id
                elif kind in ("Routed", "Rejected"):
                    decided[external[e.originator_id]] += 1
            if acknowledged <= set(decided) or time.monotonic() > deadline:
                over = []
                for node in load_network(SAMPLE_NETWORK).nodes:
                    inv = log.repository.get(ids.inventory_id(node.id))
                    over += [f"{node.id}/{s}" for s, r in inv.reserved.items() if r > inv.on_hand.get(s, 0)]
                return decided, over, stored
        finally:
            log.close()
        time.sleep(1.0)


async def _published(url: str, count: int, timeout: float = 60.0) -> list[int]:
    """The notification ids in the event stream, once it holds `count` of them (or the timeout)."""
    import nats
    from nats.js.api import ConsumerConfig, DeliverPolicy

    from adapters.event_publisher import ID_HEADER, STREAM

    nc = await nats.connect(url.split(","))
    js = nc.jetstream()
    deadline = time.monotonic() + timeout
    while (await js.stream_info(STREAM)).state.messages < count and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    count = (await js.stream_info(STREAM)).state.messages
    sub = await js.subscribe("o2o.events.>", stream=STREAM, ordered_consumer=True,
                             config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
    out = [int((await sub.next_msg(timeout=10)).headers[ID_HEADER]) for _ in range(count)]
    await nc.close()
    return out


async def _intake_leader(url: str) -> int:
    import nats

    from adapters.intake import STREAM

    nc = await nats.connect(url.split(","))
    info = await nc.jetstream().stream_info(STREAM)
    await nc.close()
    return int(info.cluster.leader.removeprefix("n")) - 1











