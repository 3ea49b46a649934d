"""The gateway put together: the configured channels (secrets from the
environment, shop and item maps checked against the network), its own
NATS connection (its own restricted user), the webhooks, the REST API,
the status relay and its outbox, on one aiohttp server."""
from __future__ import annotations

import logging
import os
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Mapping

import aiohttp
from aiohttp import web

from adapters.channels import build_channels
from adapters.gateway.api import Client, RestApi
from adapters.gateway.outbox import Outbox
from adapters.gateway.status import StatusRelay
from adapters.gateway.webhooks import Webhooks
from engine.config import Config, NatsSettings
from engine.store.network_file import load_network

log = logging.getLogger("o2o.gateway")


def gateway_nats(config: Config) -> NatsSettings:
    """The engine's connection settings with the gateway's own user over them."""
    g = config.gateway
    if g.nats_user or g.nats_creds:
        return NatsSettings(url=config.nats.url, user=g.nats_user, password=g.nats_password, creds=g.nats_creds,
                            tls_ca=config.nats.tls_ca, tls_cert=config.nats.tls_cert, tls_key=config.nats.tls_key)
    return config.nats


def api_clients(config: Config, environ: Mapping[str, str]) -> list[Client]:
    clients = []
    for name, c in config.gateway.clients.items():
        key = environ.get(c.key_env, "")
        if not key:
            raise ValueError(f"config.gateway.clients.{name}.key_env: the variable {c.key_env} is not set")
        clients.append(Client(name=name, key=key, channel=c.channel, rate=c.rate_per_s, burst=c.burst,
                              tokens=c.burst, last=time.monotonic()))
    return clients


class Gateway:
    def __init__(self, config: Config, environ: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.time):
        env = os.environ if environ is None else environ
        self.config = config
        network = load_network(config.network.file)
        self.channels = build_channels(config.gateway, network, env, clock=clock)
        self.clients = api_clients(config, env)
        self.clock = clock
        self.url = ""
        self._runner: web.AppRunner | None = None
        self.nc: Any = None
        self.http: aiohttp.ClientSession | None = None
        self.outbox: Outbox | None = None
        self.status: StatusRelay | None = None
        self.webhooks: Webhooks | None = None
        self.api: RestApi | None = None

    async def start(self) -> "Gateway":
        from adapters.nats_connection import connect

        g = self.config.gateway
        settings = gateway_nats(self.config)
        self.nc = await connect(settings, settings.url or "nats://127.0.0.1:4222")
        self.http = aiohttp.ClientSession()
        self.outbox = Outbox(g.outbox)
        self.webhooks = Webhooks(self.nc, self.channels, self.http, g.max_body_bytes, g.public_url, self.clock)
        self.api = RestApi(self.nc, self.clients)
        self.status = StatusRelay(self.nc, self.channels, self.outbox, self.http, g.call_timeout_s,
                                  g.max_call_attempts, self.clock, backoff_s=g.call_backoff_s)
        await self.status.start()
        app = web.Application(client_max_size=max(g.max_body_bytes, 1024 * 1024), middlewares=[_json_errors])
        app.add_routes(self.webhooks.routes() + self.api.routes() +
                       [web.get("/metrics", self.metrics), web.get("/healthz", self.health)])
        self._runner = web.AppRunner(app, access_log=None)  # an access log would carry query strings (signatures)
        await self._runner.setup()
        site = web.TCPSite(self._runner, g.host, g.port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://{g.host}:{port}"
        return self

    async def health(self, request: web.Request) -> web.Response:
        ok = self.nc is not None and self.nc.is_connected
        return web.json_response({"nats": ok}, status=200 if ok else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        """Prometheus text: pushes by channel and outcome, API refusals, calls owed/made/parked."""
        lines = ["# TYPE o2o_gateway_pushes_total counter"]
        for (channel, outcome), n in sorted(self.webhooks.counts.items()):
            lines.append(f'o2o_gateway_pushes_total{{channel="{channel}",outcome="{outcome}"}} {n}')
        lines.append("# TYPE o2o_gateway_api_refused_total counter")
        for why, n in sorted(self.api.refused.items()):
            lines.append(f'o2o_gateway_api_refused_total{{why="{why}"}} {n}')
        lines.append("# TYPE o2o_gateway_calls gauge")
        for state, n in sorted((await self.outbox.run(self.outbox.counts)).items()):
            lines.append(f'o2o_gateway_calls{{state="{state}"}} {n}')
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self.status is not None:
            await self.status.stop()
        if self.http is not None:
            await self.http.close()
        if self.nc is not None and not self.nc.is_closed:
            try:
                await self.nc.drain()
            except Exception:
                pass
        if self.outbox is not None:
            self.outbox.close()


@asynccontextmanager
async def gateway_running(config: Config, environ: Mapping[str, str] | None = None,
                          clock: Callable[[], float] = time.time) -> AsyncIterator[Gateway]:
    gateway = Gateway(config, environ, clock)
    try:
        yield await gateway.start()
    finally:
        await gateway.stop()


@web.middleware
async def _json_errors(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
    """aiohttp's own refusals (no such route, method not allowed, body too large) in the API's
    JSON form, as every other error the gateway gives."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400 or e.content_type == "application/json":
            raise
        return web.json_response({"error": f"$: {e.reason.lower()}"}, status=e.status, headers={
            k: v for k, v in e.headers.items() if k in ("Allow", "Retry-After")})
