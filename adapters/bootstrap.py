"""The composition root: the one place that builds the engine from the
configuration (network, store, router, settings, clock) and starts the
service's parts around it (a nats-server when none is named, the NATS
connection, the engine worker, the JetStream intake, and the event
publisher or its relay process). `o2o serve`, `o2o demo`, the integration
tests, the simulations and the benchmarks all start here.
"""
from __future__ import annotations

import asyncio
import sys
import time
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

from domain.commands import PublishBenefitRules
from domain.errors import DomainError
from domain.network import Network
from engine.app import Engine
from engine.clock import Clock, TestClock, parse_time
from engine.config import Config, TravelSettings
from engine.partitions import partition_map
from engine.routing.types import Router
from engine.store.network_file import load_network
from engine.store.urls import sqlite_path
from engine.travel import STRAIGHT_LINE, Grid, TravelTimes


def build_engine(config: Config, network: Network | None = None, clock: Clock | None = None,
                 router: Router | None = None, partitions: dict[str, int] | None = None,
                 owner: str = "") -> Engine:
    """The engine the configuration describes, started: its read models
    rebuilt from the store and every node's inventory open. With
    `partitions` ({partition: lease epoch}) it is one of several engines on
    the store (docs/scale-out.md): it takes those partitions over, as `owner`."""
    if network is None:
        network = load_network(config.network.file)
    if clock is None:
        clock = configured_clock(config)
    pmap = partition_map(network, config.partitions) if partitions is not None else None
    if router is None and (config.travel.matrix or config.travel.url):
        from engine.routing.router import make_router

        router = make_router(config.engine.router, travel_source(config.travel, network))
    engine = Engine(network, config.engine, clock=clock, router=router, store=config.store.url, partitions=pmap,
                    owner=owner, schedule=config.schedule).start()
    try:
        for partition, epoch in sorted((partitions or {}).items()):
            engine.take(partition, epoch)
        publish_rules(engine, config)
    except DomainError:
        engine.close()
        raise
    return engine


def travel_source(settings: TravelSettings, network: Network) -> TravelTimes:
    """The configured source of travel minutes (docs/travel.md)."""
    if settings.matrix:
        from engine.store.travel_file import load_travel_matrix

        return load_travel_matrix(settings.matrix)
    if settings.url:
        from adapters.travel_table import TableService

        return TableService(Grid.around(network, settings.cell_m), settings.url, settings.protocol, settings.profile,
                            timeout_s=settings.timeout_s, cache_cells=settings.cache_cells,
                            cache_ttl_s=settings.cache_ttl_s, retry_after_s=settings.retry_after_s,
                            max_locations=settings.max_locations)
    return STRAIGHT_LINE


def publish_rules(engine: Engine, config: Config) -> None:
    """Publishes the configured benefit rule sets not yet published; a
    refusal names the configuration entry."""
    for i, rules in enumerate(config.benefit.rules):
        try:
            engine.handle(PublishBenefitRules(rules=rules))
        except DomainError as e:
            raise type(e)(f"config.benefit.rules[{i}].{e.field}", e.reason) from None


def configured_clock(config: Config) -> Clock | None:
    """A test clock when the configuration asks for one (`o2o serve --test-clock`),
    starting at its `start` (default now); else None: the system clock."""
    if not config.clock.test:
        return None
    start = config.clock.start.strip()
    return TestClock(parse_time(start, "clock.start") if start else time.time())


def data_folder(config: Config) -> Path:
    """Where an embedded nats-server keeps its data: beside a SQLite store."""
    url = config.store.url
    return sqlite_path(url).parent if url.startswith("sqlite:") else Path("o2o-data")


@dataclass
class Running:
    config: Config  # with the URL of the nats-server started, if one was
    engine: Engine
    service: Any  # adapters.service.O2OService
    relay: Any | None  # adapters.event_relay.Relay
    nats_server: Any | None  # adapters.embedded_nats.EmbeddedNats


@asynccontextmanager
async def running(config: Config, command: str = "o2o serve", engine: Engine | None = None,
                  clock: Clock | None = None, router: Router | None = None, intake: bool = True,
                  long_lived: bool = False, say: Any = None, partitions: dict[str, int] | None = None,
                  owner: str = "") -> AsyncIterator[Running]:
    """Everything `config` asks for, started in order, and stopped in the
    reverse order on the way out, also when a later part fails to start: no
    nats-server or relay is left behind. On the way out the service stops
    taking requests, finishes the batch in flight, stores it, replies,
    publishes and drains; the relay publishes what was stored, then exits.
    `long_lived`: a process serving until it stops (engine.memory).
    `partitions`, `owner`: scale-out (build_engine); the service serves the
    partitions' own subjects too."""
    from adapters.nats_connection import connect, connection_argv
    from adapters.embedded_nats import EmbeddedNats
    from adapters.event_relay import Relay
    from adapters.service import serving
    from engine.memory import keep_long_lived

    say = say or (lambda text: print(text, flush=True))
    async with AsyncExitStack() as stack:
        server = None
        if not config.nats.url:
            data = data_folder(config)
            server = EmbeddedNats(data / "nats", log_file=str(data / "nats-server.log")).start()
            stack.callback(server.stop)
            config = config.with_overrides({"nats": {"url": server.url}})
            say(f"nats-server started: {server.url} (JetStream data in {data / 'nats'})")
        if engine is None:
            engine = build_engine(config, clock=clock, router=router, partitions=partitions, owner=owner)
            stack.callback(engine.close)
        if long_lived:
            keep_long_lived()
        relay = None
        if config.nats.events == "relay" and not config.store.url.startswith("memory:"):
            relay = Relay(connection_argv(config.nats), config.store.url)
            stack.push_async_callback(relay.stop)  # after the engine stored its last batch: published too
        nc = await connect(config.nats, config.nats.url)
        stack.push_async_callback(_close_quietly, nc)
        if relay:
            await relay.start()  # a stream filled from another store ends the command here
        service = await stack.enter_async_context(serving(
            engine, nc, command, batching=config.batching, backpressure=config.backpressure, intake=intake,
            publish_events=relay is None and config.nats.events != "external"))
        if service.routes:
            for partition in sorted(engine.ownership.epochs):
                await service.routes.serve(partition)
        yield Running(config, engine, service, relay, server)


async def _close_quietly(nc: Any) -> None:
    """The service drains its connection on the way out; one that never got that far is closed."""
    if not nc.is_closed:
        try:
            await asyncio.wait_for(nc.close(), 5)
        except Exception as e:  # noqa: BLE001 - shutting down: say it and go on
            print(f"nats: {e}", file=sys.stderr)
