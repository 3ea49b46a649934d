"""`o2o serve` as an operator starts it: from the shipped sample
configuration with a secret from the environment, and when it cannot
start: one line saying why, and nothing left running."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import msgspec
import nats
import pytest

from domain import ids
from engine.store.eventlog import EventLog
from tests.conftest import POSTGRES_URL
from tests.integration.conftest import ServeProcess, run

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "docs" / "examples" / "o2o.toml"


@pytest.mark.slow
def test_serve_runs_on_the_shipped_sample_configuration_with_the_phone_salt_from_the_environment(nats_server, tmp_path):
    store = f"sqlite:///{tmp_path}/events.db"
    env = {**os.environ, "O2O_PHONE_SALT": "salt-from-env"}
    serve = ServeProcess(nats_server.url, store, tmp_path / "serve.log", ("--config", str(SAMPLE)), env=env).start()

    async def sign_up() -> dict:
        nc = await nats.connect(nats_server.url)
        try:
            msg = await nc.request("o2o.members.signup", msgspec.json.encode(
                {"member": "m-77", "node": "S001", "phone": "13900000000"}), timeout=10)
            return msgspec.json.decode(msg.data)
        finally:
            await nc.close()

    try:
        assert run(sign_up())["member"] == "m-77"
    finally:
        assert serve.terminate() == 0
    log = EventLog(store)
    try:
        member = log.repository.get(ids.member_id("m-77"))
        assert member.phone_hash == hashlib.sha256(b"salt-from-env13900000000").hexdigest()
    finally:
        log.close()


def _nats_servers_under(folder: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "nats-server" in line and str(folder) in line]


def test_a_serve_that_cannot_open_its_store_says_why_in_one_line_and_leaves_no_nats_server_behind(tmp_path):
    done = subprocess.run([sys.executable, "-m", "adapters.cli", "serve", "--store",
                           "postgres://postgres@127.0.0.1:1/test?schema=nowhere"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("o2o serve: store: PostgreSQL at 127.0.0.1:1/test"), done.stderr
    assert "Traceback" not in done.stderr
    assert "nats-server started" in done.stdout  # it had started one: now gone
    assert _nats_servers_under(tmp_path) == []


@pytest.mark.postgres
def test_a_postgres_schema_that_does_not_exist_is_created_and_said_so(nats_server, tmp_path, postgres_url):
    import psycopg

    schema = f"o2o_new_{uuid.uuid4().hex[:10]}"
    serve = ServeProcess(nats_server.url, f"{POSTGRES_URL}?schema={schema}", tmp_path / "serve.log").start()
    try:
        assert f"created schema '{schema}'" in (tmp_path / "serve.log").read_text()
    finally:
        assert serve.terminate() == 0
        with psycopg.connect(POSTGRES_URL.replace("postgres://", "postgresql://"), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_serve_with_a_test_clock_starts_at_the_time_given_and_moves_only_when_asked(nats_server, tmp_path):
    serve = ServeProcess(nats_server.url, "memory:", tmp_path / "serve.log",
                         ("--test-clock", "2026-03-20T10:00:00+08:00")).start()

    async def move() -> tuple[dict, dict]:
        nc = await nats.connect(nats_server.url)
        try:
            advanced = await nc.request("o2o.clock.advance", b'{"seconds": 3600}', timeout=10)
            set_to = await nc.request("o2o.clock.set", b'{"at": 1774000000}', timeout=10)
            return msgspec.json.decode(advanced.data), msgspec.json.decode(set_to.data)
        finally:
            await nc.close()

    try:
        advanced, set_to = run(move())
    finally:
        assert serve.terminate() == 0
    assert "test clock at 2026-03-20T02:00:00+00:00" in (tmp_path / "serve.log").read_text()
    assert advanced == {"at": "2026-03-20T03:00:00Z", "epoch": 1773975600.0, "timers": 0}
    assert set_to["epoch"] == 1774000000.0
