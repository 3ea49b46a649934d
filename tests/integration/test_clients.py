"""The command-line clients, MessagePack, authentication and the demo, end to end."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import msgspec
import nats

from adapters.embedded_nats import EmbeddedNats
from domain.commands import Line, SubmitOrder
from engine.network_file import load_sample
from tests.integration.conftest import ServeProcess, run, running_service

NETWORK = load_sample()
STORE = NETWORK.nodes[7]
O2O = [sys.executable, "-m", "adapters.cli"]


def order(ext: str) -> SubmitOrder:
    return SubmitOrder(channel="app", external_id=ext, lines=[Line(NETWORK.skus[1].id, 1)], lat=STORE.lat, lon=STORE.lon)


async def cli(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(*O2O, *args, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    return proc.returncode, out.decode(), err.decode()


def test_messagepack_in_gets_messagepack_out(nats_server):
    async def go():
        async with running_service(nats_server.url) as (engine, nc):
            headers = {"Content-Type": "application/msgpack"}
            msg = await nc.request("o2o.orders.submit", msgspec.msgpack.encode(order("mp-1")), timeout=10, headers=headers)
            assert msg.headers["Content-Type"] == "application/msgpack"
            assert msgspec.msgpack.decode(msg.data)["external_id"] == "mp-1"

    run(go())


def test_o2o_submit_prints_a_reply_per_line_and_o2o_events_tails_the_stream(nats_server):
    lines = "\n".join(msgspec.json.encode(order(f"cli-{i}")).decode() for i in range(3)) + "\n{\"channel\": 1}\n"

    async def go():
        async with running_service(nats_server.url):
            code, out, _ = await cli("submit", "-", "--nats", nats_server.url, stdin=lines.encode())
            replies = [json.loads(x) for x in out.splitlines()]
            assert code == 1  # one line was bad
            assert [r.get("external_id") for r in replies[:3]] == ["cli-0", "cli-1", "cli-2"]
            assert replies[3]["line"] == 4 and "$.channel" in replies[3]["error"]
            await asyncio.sleep(0.5)
            code, out, _ = await cli("events", "--nats", nats_server.url, "--from", "1", "--count", "5")
            assert code == 0 and out.splitlines()[0].startswith("o2o.events.node_inventory.opened ")

    run(go())


def test_serve_connects_with_a_user_and_password(tmp_path):
    server = EmbeddedNats(tmp_path / "nats", extra_args=("--user", "o2o", "--pass", "s3cret")).start()
    url = f"nats://127.0.0.1:{server.port}"
    serve = ServeProcess(url, f"sqlite:///{tmp_path}/events.db", tmp_path / "serve.log",
                         extra=("--user", "o2o", "--password", "s3cret")).start()

    async def go():
        nc = await nats.connect(url, user="o2o", password="s3cret")
        msg = await nc.request("o2o.orders.submit", msgspec.json.encode(order("auth-1")), timeout=10)
        await nc.close()
        return json.loads(msg.data)

    try:
        assert run(go())["external_id"] == "auth-1"
    finally:
        assert serve.terminate() == 0
        server.stop()


def test_the_demo_runs_on_embedded_defaults(tmp_path):
    done = subprocess.run([*O2O, "demo", "--orders", "60", "--data", str(tmp_path / "data")], capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "replies " in done.stdout and "events" in done.stdout
    assert (tmp_path / "data" / "events.db").exists()
