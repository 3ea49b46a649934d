"""Store URLs name the persistence; a bad one is refused with the reason."""
from __future__ import annotations

import pytest

from domain.errors import InvalidInput
from engine.store.urls import describe, sqlite_path, store_env


def test_memory_sqlite_and_postgres_urls_select_the_library_recorders(tmp_path):
    assert store_env("memory:")["PERSISTENCE_MODULE"] == "engine.store.recorders:MemoryFactory"
    env = store_env(f"sqlite:///{tmp_path}/a/events.db")
    assert env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite" and env["SQLITE_DBNAME"] == f"{tmp_path}/a/events.db"
    assert (tmp_path / "a").is_dir()
    pg = store_env("postgres://alice:s3cret@db.local:6543/orders?schema=o2o")
    assert pg["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
    assert (pg["POSTGRES_HOST"], pg["POSTGRES_PORT"], pg["POSTGRES_DBNAME"]) == ("db.local", "6543", "orders")
    assert (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_SCHEMA"]) == ("alice", "s3cret", "o2o")


def test_postgres_always_gets_a_lock_timeout():
    assert int(store_env("postgres://u@h/db")["POSTGRES_LOCK_TIMEOUT"]) > 0
    assert store_env("postgres://u@h/db?lock_timeout=2")["POSTGRES_LOCK_TIMEOUT"] == "2"


def test_a_relative_sqlite_path_stays_relative():
    assert str(sqlite_path("sqlite:///o2o-data/events.db")) == "o2o-data/events.db"
    assert str(sqlite_path("sqlite:////var/lib/o2o.db")) == "/var/lib/o2o.db"


@pytest.mark.parametrize("url, words", [
    ("mysql://h/db", "unsupported store"),
    ("postgres://u@h/", "no database name"),
    ("postgres://u@h/db?colour=red", "unknown PostgreSQL option"),
    ("sqlite://host/x.db", "not a SQLite URL"),
])
def test_a_bad_store_url_is_refused_naming_the_reason(url, words):
    with pytest.raises(InvalidInput, match=words) as e:
        store_env(url)
    assert e.value.field == "store"


def test_passwords_are_hidden_when_a_store_is_described():
    assert describe("postgres://alice:s3cret@h/db") == "postgres://alice:***@h/db"


@pytest.mark.postgres
def test_engines_opening_a_fresh_postgres_store_at_once_all_open_it(postgres_url):
    """Unserialised, concurrent CREATE TABLE IF NOT EXISTS fails some of them
    with "tuple concurrently updated" (seen when a cluster's engines start)."""
    import threading

    from engine.store.eventlog import EventLog

    start, errors, logs = threading.Barrier(8), [], []

    def open_it():
        start.wait()
        try:
            logs.append(EventLog(postgres_url))
        except Exception as e:  # noqa: BLE001 - the test reports every failure
            errors.append(e)

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for log in logs:
        log.close()
    assert errors == [] and len(logs) == 8
