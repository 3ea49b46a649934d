"""`o2o gateway` as an operator runs it, killed with SIGKILL between the
engine's event and the platform's call: after a restart the platform gets
its call, once."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from adapters.embedded_nats import free_port
from domain import ids
from tests.gateway.platforms import SECRETS, FakePlatforms, gateway_config, meituan_order, meituan_push
from tests.gateway.test_gateway import FORM, until
from tests.integration.conftest import nats_server, run, running_service  # noqa: F401  (a fixture)


def toml(data: dict, prefix: str = "") -> str:
    """Enough TOML for a configuration: tables of strings, numbers and booleans."""
    scalars, tables = [], []
    for k, v in data.items():
        if isinstance(v, dict):
            tables.append(toml(v, f"{prefix}{k}."))
        elif v is not None:
            value = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' if isinstance(v, str)
                     else str(v).lower() if isinstance(v, bool) else repr(v))
            scalars.append(f"{k} = {value}")
    head = f"[{prefix.rstrip('.')}]\n" if prefix and scalars else ""
    return head + "".join(f"{s}\n" for s in scalars) + "".join(tables)


class GatewayProcess:
    def __init__(self, config_file: Path, url: str, log: Path, nth: int = 1):
        self.config_file, self.url, self.log, self.nth = config_file, url, log, nth  # nth start in this log
        self.proc: subprocess.Popen | None = None

    def start(self) -> "GatewayProcess":
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "adapters.cli", "gateway", "--config", str(self.config_file),
                                      "--nats", self.url], stdout=out, stderr=out, env={**os.environ, **SECRETS})
        deadline = time.monotonic() + 30
        while self.log.read_text().count("listening on") < self.nth:
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            assert time.monotonic() < deadline, self.log.read_text()[-2000:]
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@pytest.mark.e2e
@pytest.mark.slow
def test_a_gateway_killed_between_our_event_and_the_platform_call_makes_the_call_once_after_restart(
        nats_server, tmp_path):
    platform_port, port = free_port(), free_port()
    config = gateway_config(tmp_path, nats_server.url, api=f"http://127.0.0.1:{platform_port}",
                            port=port, call_backoff_s=0.2)
    data = {"network": {"file": config.network.file}, "gateway": {
        k: v for k, v in __import__("msgspec").to_builtins(config.gateway).items() if k != "clients"}}
    (tmp_path / "gateway.toml").write_text(toml(data))
    log = tmp_path / "gateway.log"

    async def go():
        async with running_service(nats_server.url) as (engine, nc):
            first = GatewayProcess(tmp_path / "gateway.toml", nats_server.url, log)
            await asyncio.to_thread(first.start)
            url = f"http://127.0.0.1:{port}/hooks/meituan/order"
            async with aiohttp.ClientSession() as http:
                async with http.post(url, data=meituan_push(url, meituan_order()), headers=FORM) as r:
                    assert r.status == 200 and await r.json() == {"data": "ok"}
            order_id = str(ids.order_id("meituan", "27001234567890123"))
            await until(lambda: order_id in engine.readmodels.orders
                        and engine.readmodels.orders[order_id].status == "routed")
            await asyncio.sleep(1.0)  # the gateway took the event and tried Meituan, which is down
            first.kill()
            platforms = await FakePlatforms().start(platform_port)
            try:
                second = GatewayProcess(tmp_path / "gateway.toml", nats_server.url, log, nth=2)
                await asyncio.to_thread(second.start)
                try:
                    await until(lambda: platforms.made("meituan", "order/confirm"), 20)
                    await asyncio.sleep(2.0)
                    assert len(platforms.made("meituan", "order/confirm")) == 1
                    assert platforms.made("meituan", "order/confirm")[0]["signed"]
                finally:
                    second.proc.send_signal(signal.SIGTERM)
                    await asyncio.to_thread(second.proc.wait, 20)
            finally:
                await platforms.stop()
            assert "mt-s3cret" not in log.read_text()  # secrets never logged

    run(go())
