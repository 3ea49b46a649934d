"""The stores written to: a new SQLite file or a new PostgreSQL schema each,
and the writer that saves already-made events into them."""
from __future__ import annotations

import uuid
from pathlib import Path

from domain.errors import InvalidInput
from engine.store.urls import store_env


def check_postgres(url: str) -> None:
    env = store_env(url)
    if env.get("PERSISTENCE_MODULE") != "eventsourcing.postgres":
        raise InvalidInput("--postgres", f"not a PostgreSQL URL: {url!r}")
    if "POSTGRES_SCHEMA" in env:
        raise InvalidInput("--postgres", "name no schema: the benchmark makes schemas of its own and drops them")
    try:
        _pg(url).close()
    except Exception as e:
        raise InvalidInput("--postgres", f"cannot connect to {url}: {e}") from None


def _pg(url: str):
    import psycopg

    env = store_env(url)
    return psycopg.connect(dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
                           user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None,
                           autocommit=True, connect_timeout=5)


def new_store(backend: str, folder: Path, postgres: str, schemas: list[str]) -> str:
    """An empty store: a new SQLite file, or a new PostgreSQL schema (dropped at the end)."""
    name = uuid.uuid4().hex[:10]
    if backend == "sqlite":
        return f"sqlite:///{folder / f'written-{name}.db'}"
    schema = f"o2o_bench_{name}"
    with _pg(postgres) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    schemas.append(schema)
    return f"{postgres}{'&' if '?' in postgres else '?'}schema={schema}"


def drop_schemas(postgres: str, schemas: list[str]) -> None:
    if schemas:
        with _pg(postgres) as conn:
            for schema in schemas:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
