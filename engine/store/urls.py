"""Where the events live, named by one URL:

    memory:                                  in-process, for tests
    sqlite:///relative/path.db               SQLite file (the default)
    sqlite:////absolute/path.db
    postgres://user:password@host:5432/db?schema=o2o&lock_timeout=5

`store_env(url)` turns it into the eventsourcing environment. PostgreSQL
gets a lock timeout (the library's default is to wait forever on its table
lock).
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, unquote, urlsplit

from domain.errors import InvalidInput

log = logging.getLogger("o2o.store")

DEFAULT_STORE = "sqlite:///o2o-data/events.db"
POSTGRES_LOCK_TIMEOUT_S = 5
# by topic, so reading a URL imports no database driver
SQLITE_RECORDER = "engine.store.recorders:SQLiteEventRecorder"
POSTGRES_RECORDER = "engine.store.recorders:PostgresEventRecorder"
MEMORY_STORE = "engine.store.recorders:MemoryFactory"


def store_env(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    env: dict[str, str] = {}
    if parts.scheme == "memory":
        env["PERSISTENCE_MODULE"] = MEMORY_STORE
    elif parts.scheme == "sqlite":
        path = sqlite_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        env.update(PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=str(path), SQLITE_LOCK_TIMEOUT="10",
                   APPLICATION_RECORDER_TOPIC=SQLITE_RECORDER)
    elif parts.scheme in ("postgres", "postgresql"):
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"schema", "lock_timeout", "pool_size"}
        if unknown:
            raise InvalidInput("store", f"unknown PostgreSQL option(s) {sorted(unknown)} in {url!r}")
        dbname = parts.path.lstrip("/")
        if not dbname:
            raise InvalidInput("store", f"no database name in {url!r} (postgres://user@host:5432/DBNAME)")
        env.update(
            PERSISTENCE_MODULE="eventsourcing.postgres",
            POSTGRES_DBNAME=dbname,
            POSTGRES_HOST=parts.hostname or "127.0.0.1",
            POSTGRES_PORT=str(parts.port or 5432),
            POSTGRES_USER=unquote(parts.username or os.environ.get("PGUSER", "postgres")),
            POSTGRES_PASSWORD=unquote(parts.password or os.environ.get("PGPASSWORD", "")),
            POSTGRES_LOCK_TIMEOUT=query.get("lock_timeout", str(POSTGRES_LOCK_TIMEOUT_S)),
            POSTGRES_POOL_SIZE=query.get("pool_size", "5"),
            APPLICATION_RECORDER_TOPIC=POSTGRES_RECORDER,
        )
        if "schema" in query:
            env["POSTGRES_SCHEMA"] = query["schema"]
    else:
        raise InvalidInput("store", f"unsupported store {url!r}: use memory:, sqlite:///PATH or postgres://USER@HOST:PORT/DB")
    return env


def sqlite_path(url: str) -> Path:
    """sqlite:///rel/path.db -> rel/path.db; sqlite:////abs/path.db -> /abs/path.db."""
    parts = urlsplit(url)
    if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
        raise InvalidInput("store", f"not a SQLite URL {url!r}: use sqlite:///relative.db or sqlite:////absolute.db")
    return Path(unquote(parts.path[1:]))


def describe(url: str) -> str:
    """The URL with any password hidden, for logs and summaries."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


@contextmanager
def creating_tables(env: dict[str, str]) -> Iterator[None]:
    """Around the library's CREATE TABLE IF NOT EXISTS: creates a missing
    PostgreSQL schema and holds an advisory lock, so engines starting at
    once on a fresh store create its tables one after the other (at once,
    PostgreSQL fails one of them with "tuple concurrently updated"). A
    server that cannot be reached is one clear error naming the store."""
    if env.get("PERSISTENCE_MODULE") != "eventsourcing.postgres":
        yield
        return
    import psycopg
    from psycopg.sql import SQL, Identifier

    schema = env.get("POSTGRES_SCHEMA")
    where = f"{env['POSTGRES_HOST']}:{env['POSTGRES_PORT']}/{env['POSTGRES_DBNAME']}"
    try:
        conn = psycopg.connect(host=env["POSTGRES_HOST"], port=int(env["POSTGRES_PORT"]), dbname=env["POSTGRES_DBNAME"],
                               user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None,
                               connect_timeout=10, autocommit=True)
    except psycopg.Error as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InvalidInput("store", f"PostgreSQL at {where}: {reason}") from None
    with conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"o2o-tables-{schema or ''}",))
        if schema and not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone():
            conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(schema)))
            log.warning("created schema %r in PostgreSQL at %s", schema, where)
        yield  # the session's lock ends with the connection
