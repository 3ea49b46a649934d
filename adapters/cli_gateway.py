"""`o2o gateway`: the channel gateway (docs/channels.md) in front of a
running engine: platform webhooks on /hooks/<channel>, the REST API on /v1,
its OpenAPI document on /openapi.json, counters on /metrics; status calls
back to the platforms from the event stream. Configured in the same file as
`o2o serve` (its [gateway] section); secrets come from the environment
variables the file names. SIGINT/SIGTERM: stop taking pushes, drain."""
from __future__ import annotations

import argparse
import asyncio

from adapters.nats_connection import CONNECTION, connection_options
from adapters.shutdown import stop_on_signals
from domain.errors import DomainError
from engine.config import load_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gateway", help="the channel gateway: platform webhooks, REST API, status back",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="configuration file (TOML; sample: docs/examples/channels/gateway.toml)")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8080; 0: a free one)")
    p.add_argument("--outbox", help="SQLite file of the calls owed to the platforms")
    p.add_argument("--network", help="network file the shop and item maps are checked against")
    connection_options(p, required=False)
    p.set_defaults(func=lambda a: asyncio.run(gateway(a)))


async def gateway(args: argparse.Namespace) -> int:
    from adapters.channels import ChannelConfigError
    from adapters.gateway.app import gateway_running

    flags = {"gateway": {"host": args.host, "port": args.port, "outbox": args.outbox},
             "network": {"file": args.network},
             "nats": {"url": args.nats, **{f.replace("-", "_"): getattr(args, f.replace("-", "_")) for f, _ in CONNECTION}}}
    try:
        config = load_config(args.config, overrides=flags)
        if not config.nats.url:
            raise SystemExit("o2o gateway: name the engine's NATS server (--nats URL, nats.url or O2O_NATS_URL)")
        stop = stop_on_signals()
        async with gateway_running(config) as gw:
            print(f"o2o gateway listening on {gw.url}, channels {', '.join(gw.channels) or 'none'}, "
                  f"{len(gw.clients)} API clients, NATS {config.nats.url}", flush=True)
            await stop.wait()
            print("shutting down", flush=True)
    except (DomainError, ChannelConfigError, ValueError) as e:
        raise SystemExit(f"o2o gateway: {e}") from None
    print("stopped", flush=True)
    return 0
