"""`o2o events` tails the engine's event stream (JetStream `O2O_EVENTS`),
one line per event: its subject, then its JSON."""
from __future__ import annotations

import argparse
import asyncio

from adapters.nats_connection import connect, connection_options


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("events", help="tail the engine's event stream (JetStream O2O_EVENTS)")
    e.add_argument("--from", dest="start", type=int, default=0, help="stream sequence to start at (default: new only)")
    e.add_argument("--subject", default="o2o.events.>")
    e.add_argument("--count", type=int, default=0, help="stop after this many events (0: follow)")
    connection_options(e, required=True)
    e.set_defaults(func=lambda a: asyncio.run(events(a)))


async def events(args: argparse.Namespace) -> int:
    nc = await connect(args, args.nats)
    js = nc.jetstream()
    from nats.js.api import ConsumerConfig, DeliverPolicy

    config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=args.start) \
        if args.start else ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
    sub = await js.subscribe(args.subject, stream="O2O_EVENTS", config=config, ordered_consumer=True)
    seen = 0
    try:
        async for msg in sub.messages:
            print(f"{msg.subject} {msg.data.decode()}", flush=True)
            seen += 1
            if args.count and seen >= args.count:
                break
    finally:
        await sub.unsubscribe()
        await nc.close()  # a reader has nothing to flush; draining an ordered consumer can hang
    return 0
