"""The shipped NATS configuration (docs/examples/channels/nats-server.conf):
the gateway's user has every permission the gateway needs (a push goes
through to the platform's confirm), and no more: a channel's user cannot
publish another channel's intake, the gateway cannot call engine endpoints
its API does not use."""
from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import aiohttp
import nats
import pytest

from adapters.bootstrap import running
from adapters.embedded_nats import free_port, server_binary
from adapters.gateway.app import gateway_running
from engine.clock import ShiftedClock
from engine.config import Config
from tests.gateway.platforms import SECRETS, FakePlatforms, gateway_config, meituan_order, meituan_push
from tests.gateway.test_gateway import FORM, until
from tests.integration.conftest import NOON, run

CONF = Path(__file__).resolve().parents[2] / "docs" / "examples" / "channels" / "nats-server.conf"
PASSWORDS = {"O2O_ENGINE_NATS_PASSWORD": "engine-pw", "O2O_GATEWAY_NATS_PASSWORD": "gateway-pw",
             "O2O_GATEWAY_MEITUAN_NATS_PASSWORD": "meituan-pw"}


@pytest.fixture
def secured_nats(tmp_path):
    port = free_port()
    log = open(tmp_path / "nats.log", "ab")
    proc = subprocess.Popen([server_binary(), "-c", str(CONF), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd",
                             str(tmp_path / "js")], env={**os.environ, **PASSWORDS}, stdout=log, stderr=log)
    import socket
    import time
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "nats.log").read_text()
            time.sleep(0.05)
    yield f"nats://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(5)


@pytest.mark.slow
def test_the_gateway_user_can_do_its_job_and_a_channel_cannot_publish_anothers_subjects(secured_nats, tmp_path):
    async def go():
        engine_config = Config().with_overrides({"nats": {"url": secured_nats, "user": "engine",
                                                          "password": "engine-pw", "events": "inline"},
                                                 "store": {"url": "memory:"}})
        async with running(engine_config, "test", clock=ShiftedClock(NOON), say=lambda text: None):
            platforms = await FakePlatforms().start()
            try:
                config = gateway_config(tmp_path, secured_nats, api=platforms.url).with_overrides(
                    {"gateway": {"nats_user": "gateway", "nats_password": "gateway-pw"}})
                async with gateway_running(config, SECRETS) as gw, aiohttp.ClientSession() as http:
                    url = f"{gw.url}/hooks/meituan/order"
                    async with http.post(url, data=meituan_push(url, meituan_order()), headers=FORM) as r:
                        assert r.status == 200 and await r.json() == {"data": "ok"}
                    await until(lambda: platforms.made("meituan", "order/confirm"), 15)
                    with pytest.raises(Exception):  # not an endpoint the gateway's API uses
                        await gw.nc.request("o2o.orders.accept", b'{"order_id":"x"}', timeout=1)
            finally:
                await platforms.stop()

            meituan = await nats.connect(secured_nats, user="gateway-meituan", password="meituan-pw",
                                         error_cb=_quiet)
            admin = await nats.connect(secured_nats, user="engine", password="engine-pw")
            try:
                js = meituan.jetstream()
                ack = await js.publish("o2o.intake.meituan", b'{"channel":"meituan"}',
                                       headers={"Nats-Msg-Id": "meituan:perm-test"})
                assert ack.stream == "O2O_INTAKE"
                before = (await admin.jetstream().stream_info("O2O_INTAKE")).state.messages
                with pytest.raises(Exception):
                    await js.publish("o2o.intake.eleme", b'{"channel":"eleme"}', timeout=1)
                await asyncio.sleep(0.2)
                assert (await admin.jetstream().stream_info("O2O_INTAKE")).state.messages == before
            finally:
                await meituan.close()
                await admin.close()

    run(go())


async def _quiet(e):
    """nats-py's error callback: the refused publishes are what these tests provoke."""
