"""The open-loop webhook generator, a process of its own:

    python -m benchmarks.gateway.httpgen --base URL --pushes FILE --rate R --out FILE

Push i is due at start + i / rate and is sent then, each on a task of its
own, whatever the answers do (no coordinated omission); its latency is
taken from that due time to the gateway's answer, so a generator that falls
behind counts against the gateway, not for it. Writes, per push, the
latency (NaN without an answer), the HTTP status (0: none within the
timeout, -2: the connection failed) and whether the body was the
platform's "ok", plus the generator's own figures."""
from __future__ import annotations

import argparse
import asyncio
import sys
import time

import aiohttp
import msgspec
import numpy as np

NO_ANSWER = 0
CONNECTION_FAILED = -2
SEND_TICK_S = 0.0005


class Pushes(msgspec.Struct):
    paths: list[str]
    bodies: list[bytes]
    content_types: list[str]
    ok_bodies: list[bytes]  # the platform's "ok" answer per push, compared byte for byte


class Result(msgspec.Struct):
    rate: float
    sent: int
    seconds: float  # from the first due time to the last answer
    latency_s: bytes  # float64 per push, NaN where no answer came
    status: bytes  # int16 per push: the HTTP status, NO_ANSWER or CONNECTION_FAILED
    ok: bytes  # bool per push: 200 and the platform's ok body
    max_send_lag_s: float
    cpu_s: float


def arrays(r: Result) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.frombuffer(r.latency_s, np.float64), np.frombuffer(r.status, np.int16),
            np.frombuffer(r.ok, np.bool_))


async def run(base: str, pushes: Pushes, rate: float, timeout: float) -> Result:
    n = len(pushes.bodies)
    latency = np.full(n, np.nan)
    status = np.zeros(n, np.int16)
    ok = np.zeros(n, np.bool_)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    tasks: set[asyncio.Task] = set()
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        start = 0.0

        async def one(i: int) -> None:
            try:
                async with http.post(base + pushes.paths[i], data=pushes.bodies[i],
                                     headers={"Content-Type": pushes.content_types[i]}) as r:
                    body = await r.read()
                    latency[i] = time.perf_counter() - (start + i / rate)
                    status[i] = r.status
                    ok[i] = r.status == 200 and body == pushes.ok_bodies[i]
            except asyncio.TimeoutError:
                status[i] = NO_ANSWER
            except aiohttp.ClientError:
                status[i] = CONNECTION_FAILED

        cpu0 = time.process_time()
        start = time.perf_counter()
        sent, lag = 0, 0.0
        while sent < n:
            now = time.perf_counter()
            due = min(n, int((now - start) * rate) + 1)
            if due > sent:
                lag = max(lag, now - (start + sent / rate))
            while sent < due:
                t = asyncio.create_task(one(sent))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
                sent += 1
            await asyncio.sleep(SEND_TICK_S)
        if tasks:
            await asyncio.wait(set(tasks))
        end = time.perf_counter()
    return Result(rate=rate, sent=n, seconds=end - start, latency_s=latency.tobytes(), status=status.tobytes(),
                  ok=ok.tobytes(), max_send_lag_s=lag, cpu_s=time.process_time() - cpu0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="the gateway's URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--pushes", required=True, help="msgpack file of Pushes")
    p.add_argument("--rate", type=float, required=True, help="pushes per second")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds a push may wait for its answer")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    with open(a.pushes, "rb") as f:
        pushes = msgspec.msgpack.decode(f.read(), type=Pushes)
    result = asyncio.run(run(a.base, pushes, a.rate, a.timeout))
    with open(a.out, "wb") as f:
        f.write(msgspec.msgpack.encode(result))
    print(f"sent {result.sent} at {a.rate:g}/s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
