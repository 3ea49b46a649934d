"""`o2o bench filters`: one durable consumer per partition whose
`filter_subjects` list its cells (docs/scale-out.md, intake partitioned by
region), against one wildcard filter over the same messages, on a real
3-node JetStream cluster (R3 work-queue stream). For each number N of
cells: M intake-like messages published (publish_async, each on a random
one of the N cells) and consumed (fetch 500, ack each), once by a consumer
filtering the N subjects and once by one filtering a wildcard (the
control: the same subjects in the stream); and the time to create each.
Open risk in SCALEOUT.md: "filter_subjects with hundreds of cells is
untested"."""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

import msgspec

from domain.errors import InvalidInput

SIZES = [100, 300, 1000, 3000]
CREATE_TIMEOUT_S = 60.0  # nats-py's 5 s default did not cover 5,000 filter subjects


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("filters", help="a durable consumer with hundreds to thousands of filter subjects",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--filters", type=int, nargs="+", default=SIZES, help="cells: filter subjects per consumer")
    p.add_argument("--messages", type=int, default=20_000)
    p.add_argument("--repeat", type=int, default=2, help="interleaved rounds")
    p.add_argument("--out", default="bench-results", help="folder for filters.json")
    p.set_defaults(func=lambda a: asyncio.run(run(a)))


async def run(args: argparse.Namespace) -> int:
    from adapters.embedded_nats import EmbeddedCluster

    if min(args.filters) < 1 or args.messages < 1 or args.repeat < 1:
        print(f"o2o bench filters: {InvalidInput('--filters/--messages/--repeat', 'expected int >= 1')}")
        return 2
    load_before = os.getloadavg()
    runs = []
    with EmbeddedCluster(tempfile.mkdtemp(prefix="o2o-filters-"), size=3) as cluster:
        for round_ in range(args.repeat):
            for n in args.filters:
                for listed in (False, True):
                    r = await one_run(cluster.url, n, args.messages, listed)
                    runs.append({**r, "round": round_ + 1})
                    what = f"round {round_ + 1}  {n:>5} cells, {'listed  ' if listed else 'wildcard'}"
                    if "failed" in r:
                        print(f"{what}: consumer not created: {r['failed']}", flush=True)
                        continue
                    print(f"{what}: consumer created in {r['create_ms']:>8.1f} ms  publish "
                          f"{r['published_per_s']:>7,}/s  consume {r['consumed_per_s']:>7,}/s", flush=True)
    from benchmarks.solver import machine

    report = {"parameters": {"filters": args.filters, "messages": args.messages, "repeat": args.repeat},
              "machine": {**machine(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
              "runs": runs}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "filters.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    print(f"wrote {out / 'filters.json'}")
    return 0


def cells(n: int) -> list[str]:
    """n distinct geohash-6-like cells (the shape of the subjects, not a real city)."""
    rng = random.Random(n)
    alphabet = "0123456789bcdefghjkmnpqrstuvwxyz"
    out: set[str] = set()
    while len(out) < n:
        out.add("wtw" + "".join(rng.choice(alphabet) for _ in range(3)))
    return sorted(out)


async def one_run(url: str, n: int, messages: int, listed: bool) -> dict:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig

    nc = await nats.connect(url.split(","))
    js = nc.jetstream()
    stream = "FILTERS_BENCH"
    try:
        await js.delete_stream(stream)
    except Exception:  # noqa: BLE001 - absent the first time
        pass
    await js.add_stream(StreamConfig(name=stream, subjects=["bench.intake.>"], retention=RetentionPolicy.WORK_QUEUE,
                                     num_replicas=3))
    mine = cells(n)
    filters = [f"bench.intake.*.{c}" for c in mine] if listed else ["bench.intake.>"]
    t0 = time.perf_counter()
    config = ConsumerConfig(durable_name="p1", ack_policy=AckPolicy.EXPLICIT, max_ack_pending=2000,
                            **({"filter_subjects": filters} if listed else {"filter_subject": filters[0]}))
    try:
        await js.add_consumer(stream, config, timeout=CREATE_TIMEOUT_S)
    except Exception as e:  # noqa: BLE001 - a refusal or a timeout is the finding
        await js.delete_stream(stream)
        await nc.close()
        return {"cells": n, "listed": listed, "failed": f"{type(e).__name__}: {e}"}
    create_ms = (time.perf_counter() - t0) * 1000
    rng = random.Random(1)
    body = b'{"channel":"app","external_id":"x","lat":31.2,"lon":121.5,"lines":[{"sku":"SAN-001","qty":1}]}'
    t0 = time.perf_counter()
    for i in range(messages):
        await js.publish_async(f"bench.intake.app.{rng.choice(mine)}", body)
    await js.publish_async_completed()
    publish_s = time.perf_counter() - t0
    sub = await js.pull_subscribe_bind("p1", stream=stream)
    got = 0
    t0 = time.perf_counter()
    while got < messages:
        batch = await sub.fetch(500, timeout=10)
        for m in batch:
            await m.ack()
        got += len(batch)
    consume_s = time.perf_counter() - t0
    await js.delete_stream(stream)
    await nc.close()
    return {"cells": n, "listed": listed, "create_ms": round(create_ms, 1), "published_per_s": round(messages / publish_s),
            "consumed_per_s": round(messages / consume_s)}
