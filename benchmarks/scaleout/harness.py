"""What the scale-out benchmarks start and stop: `o2o` child processes
(engines, the relay), a fresh PostgreSQL schema per run, and retries for a
JetStream cluster that has just started."""
from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator


def launch(argv: list[str], log: Path) -> subprocess.Popen:
    """`o2o <argv>` in a child process, its output appended to `log`."""
    return subprocess.Popen([sys.executable, "-m", "adapters.cli", *argv], stdout=log.open("ab"),
                            stderr=subprocess.STDOUT)


def wait(proc: subprocess.Popen, log: Path, ready: str, timeout: float = 90.0) -> None:
    """Until `log` says `ready`; a child that exits or stays silent is an error naming its log."""
    deadline = time.monotonic() + timeout
    while ready not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{log.name}: did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM (after a SIGCONT, in case it was paused), then SIGKILL if it does not stop in 30 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def retry(fn, tries: int = 5, pause_s: float = 2.0):
    """fn(), again after a pause when it fails: JetStream's API answers late until its meta leader settles."""
    for i in range(tries):
        try:
            return fn()
        except Exception:  # noqa: BLE001 - the last failure is raised
            if i == tries - 1:
                raise
            time.sleep(pause_s)


@contextlib.contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """A store URL on a new schema of the PostgreSQL at `url`, dropped afterwards."""
    from benchmarks.store.stores import check_postgres, drop_schemas, new_store

    check_postgres(url)
    schemas: list[str] = []
    store = new_store("postgres", Path("."), url, schemas)
    try:
        yield store
    finally:
        drop_schemas(url, schemas)


@dataclass
class Setup:
    """A running 3-node cluster with the streams and the lease bucket, a store
    on a fresh schema with its tables, the relay, and the child processes
    started so far (stopped, before the servers, on the way out)."""

    cluster: Any  # adapters.embedded_nats.EmbeddedCluster
    store: str
    config_file: Path
    folder: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def engine_argv(self, mine: list[str], spare: list[str] = (), extra: tuple[str, ...] = ()) -> list[str]:
        argv = ["serve", "--nats", self.cluster.url, "--store", self.store, "--config", str(self.config_file),
                "--partitions", ",".join(mine), "--events", "external", *extra]
        return argv + (["--standby", ",".join(spare)] if spare else [])

    def start_engines(self, argvs: dict[str, list[str]], ready: str = "serving on") -> None:
        """Together, as `o2o cluster up` starts them, then waits for each to serve."""
        for name, argv in argvs.items():
            self.procs[name] = launch(argv, self.folder / f"engine-{name}.log")
        for name in argvs:
            wait(self.procs[name], self.folder / f"engine-{name}.log", ready)


@contextlib.contextmanager
def cluster_on_postgres(folder: Path, store_url: str, partitions: int, ttl: float,
                        network: Path | None = None) -> Iterator[Setup]:
    from adapters.cli_cluster import check_store, prepare_jetstream
    from adapters.embedded_nats import EmbeddedCluster
    from engine.config import Config

    config_file = folder / "o2o.toml"
    config_file.write_text(f"[partitions]\ncount = {partitions}\nlease_ttl_s = {ttl}\n"
                           + (f"[network]\nfile = \"{network}\"\n" if network else ""))
    config = Config().with_overrides({"partitions": {"count": partitions, "lease_ttl_s": ttl}})
    with fresh_schema(store_url) as store:
        check_store(store)  # the tables, made once: several processes creating them at once collide
        with EmbeddedCluster(folder / "nats", size=3) as cluster:
            retry(lambda: asyncio.run(prepare_jetstream(cluster.url, config, 3)))
            setup = Setup(cluster, store, config_file, folder)
            try:
                setup.procs["relay"] = launch(["relay", "--store", store, "--nats", cluster.url], folder / "relay.log")
                yield setup
            finally:  # before the servers stop: the engines drain to them
                for proc in setup.procs.values():
                    stop(proc)
