"""Shared fixtures: event stores by URL.

`store_url` runs a test on every store the engine supports. PostgreSQL is
the local server (O2O_TEST_POSTGRES overrides the URL); each test gets a
schema of its own, dropped afterwards. A missing server fails the test: to
run without one, deselect with `-m "not postgres"` (the markers are declared
in pyproject.toml).
"""
from __future__ import annotations

import contextlib
import gc
import os
import uuid
from collections import Counter
from typing import Any, Callable

import pytest

POSTGRES_URL = os.environ.get("O2O_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")


@pytest.fixture
def postgres_url():
    """A PostgreSQL store URL on a fresh schema."""
    with postgres_schema() as url:
        yield url


@contextlib.contextmanager
def postgres_schema():
    """A fresh schema on the test PostgreSQL, dropped afterwards; a missing server fails the test."""
    import psycopg

    from engine.store.urls import store_env

    env = store_env(POSTGRES_URL)
    conninfo = dict(
        dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
        user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None, connect_timeout=5,
    )
    try:
        conn = psycopg.connect(autocommit=True, **conninfo)
    except psycopg.OperationalError as e:
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is needed (set O2O_TEST_POSTGRES, or -m 'not postgres'): {e}")
    schema = f"o2o_test_{uuid.uuid4().hex[:12]}"
    conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{POSTGRES_URL}?schema={schema}"
    finally:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    if request.param == "memory":
        return "memory:"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/events.db"
    return request.getfixturevalue("postgres_url")


def garbage_left(run: Callable[[], Any]) -> tuple[Any, Counter]:
    """Runs `run` with the collector off, then counts by type what only a
    cyclic collection would free (reference cycles it left behind)."""
    gc.collect()
    gc.disable()
    try:
        result = run()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        return result, Counter(type(x).__name__ for x in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
