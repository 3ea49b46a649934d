"""The command-line clients, MessagePack, authentication and the demo, end to end."""
from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import msgspec
import nats
import nkeys
import pytest

from adapters.embedded_nats import EmbeddedNats
from domain.commands import Line, SubmitOrder
from engine.store.network_file import load_sample
from tests.integration.conftest import ServeProcess, run, running_service

NETWORK = load_sample()
STORE = NETWORK.nodes[7]
O2O = [sys.executable, "-m", "adapters.cli"]
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "order.json"


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


@pytest.mark.e2e
@pytest.mark.slow
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


@pytest.mark.e2e
@pytest.mark.slow
def test_o2o_submit_sends_the_shipped_pretty_printed_example_and_a_json_array_of_orders(nats_server, tmp_path):
    example = json.loads(EXAMPLE.read_text())
    array = tmp_path / "orders.json"
    array.write_text(json.dumps([msgspec.to_builtins(order(f"arr-{i}")) for i in range(2)], indent=2))

    async def go():
        async with running_service(nats_server.url):
            code, out, err = await cli("submit", str(EXAMPLE), "--nats", nats_server.url)
            assert code == 0, out + err
            assert [json.loads(x)["external_id"] for x in out.splitlines()] == [example["external_id"]]
            code, out, err = await cli("submit", str(array), "--nats", nats_server.url)
            assert code == 0, out + err
            assert [json.loads(x)["external_id"] for x in out.splitlines()] == ["arr-0", "arr-1"]

    run(go())


@pytest.mark.parametrize("server_args, serve_args, client", [
    (("--user", "o2o", "--pass", "s3cret"), ("--user", "o2o", "--password", "s3cret"), {"user": "o2o", "password": "s3cret"}),
    (("--auth", "t0ken"), ("--token", "t0ken"), {"token": "t0ken"}),
], ids=["user-password", "token"])
@pytest.mark.e2e
@pytest.mark.slow
def test_serve_connects_to_a_server_that_requires_credentials(tmp_path, server_args, serve_args, client):
    server = EmbeddedNats(tmp_path / "nats", extra_args=server_args).start()
    reply = serve_and_submit(server, f"nats://127.0.0.1:{server.port}", tmp_path, serve_args, "auth-1", **client)
    assert reply["external_id"] == "auth-1"


def serve_and_submit(server: EmbeddedNats, url: str, tmp_path, serve_args: tuple[str, ...], ext: str, **client) -> dict:
    """`o2o serve` with these connection options, one order from a client
    with those; both shut down after."""
    serve = ServeProcess(url, f"sqlite:///{tmp_path}/events.db", tmp_path / "serve.log", extra=serve_args).start()

    async def go():
        nc = await nats.connect(url, **client)
        msg = await nc.request("o2o.orders.submit", msgspec.json.encode(order(ext)), timeout=10)
        await nc.close()
        return json.loads(msg.data)

    try:
        return run(go())
    finally:
        code = serve.terminate()
        server.stop()  # even when serve did not exit cleanly: no nats-server left behind
        assert code == 0


@pytest.mark.e2e
@pytest.mark.slow
def test_serve_connects_with_an_nkey(tmp_path):
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    (tmp_path / "user.nk").write_bytes(seed)
    (tmp_path / "auth.conf").write_text(f'authorization {{ users = [ {{ nkey: "{public}" }} ] }}\n')
    server = EmbeddedNats(tmp_path / "nats", extra_args=("-c", str(tmp_path / "auth.conf"))).start()

    async def refused():
        await nats.connect(server.url, allow_reconnect=False, max_reconnect_attempts=0)

    with pytest.raises(Exception):  # the server does require the key
        run(refused())
    reply = serve_and_submit(server, server.url, tmp_path, ("--nkey", str(tmp_path / "user.nk")), "nkey-1",
                             nkeys_seed=str(tmp_path / "user.nk"))
    assert reply["external_id"] == "nkey-1"


@pytest.mark.e2e
@pytest.mark.slow
def test_the_demo_runs_on_embedded_defaults_and_a_rerun_plays_the_next_day(tmp_path):
    runs = []
    for _ in range(2):
        done = subprocess.run([*O2O, "demo", "--orders", "80", "--intake", "30", "--data", str(tmp_path / "data")],
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(done.stdout)
    for out in runs:
        routed = int(re.search(r"decisions +routed (\d+)", out).group(1))
        stored, published = map(int, re.search(r"events +(\d+) stored, (\d+) published", out).groups())
        assert routed > 0 and stored == published
        assert "30 came through the JetStream intake (1 repeat dropped" in out
        assert not re.search(r"refused.* 500:", out), out  # a refusal names a 4xx reason, never a bug
        assert "o2o.benefit.rules.publish" not in out  # published once, skipped on the rerun
        assert re.search(r"benefit \d{4}-\d{2}: [0-9,.]+ CNY credited to \d+ parties", out), out
    days = [re.search(r"lunch time on (\S+)", out).group(1) for out in runs]
    assert days[0] < days[1]  # the first run's orders hold its lunch slots
    assert (tmp_path / "data" / "events.db").exists()


def _certificates(d) -> tuple[str, str, str]:
    """A throwaway CA and a server certificate for 127.0.0.1 (openssl)."""
    ca_key, ca, key, csr, cert = (str(d / n) for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = d / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    for cmd in (
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "1",
         "-subj", "/CN=o2o test CA"],
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
         "-days", "1", "-extfile", str(ext)],
    ):
        subprocess.run(cmd, check=True, capture_output=True)
    return ca, cert, key


@pytest.mark.e2e
@pytest.mark.slow
def test_serve_connects_over_tls(tmp_path):
    import ssl

    ca, cert, key = _certificates(tmp_path)
    server = EmbeddedNats(tmp_path / "nats", extra_args=("--tls", "--tlscert", cert, "--tlskey", key)).start()
    reply = serve_and_submit(server, f"tls://127.0.0.1:{server.port}", tmp_path, ("--tls-ca", ca), "tls-1",
                             tls=ssl.create_default_context(cafile=ca))
    assert reply["external_id"] == "tls-1"
