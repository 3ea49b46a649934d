"""The open-loop load generator, a process of its own:

    python -m benchmarks.loadgen --url URL --subject S --payloads FILE --rate R --out FILE

Request i is due at start + i / rate and is sent then, whatever the replies
do (no coordinated omission); its latency is taken from that due time, so
a generator that falls behind counts against the service, not for it.
Replies come back on one wildcard inbox subscription, the request's index
in the reply subject: no future, no task per request. Writes, per request,
the latency (NaN without a reply), the error code of the reply (0: none)
and how many replies came back, plus the generator's own figures."""
from __future__ import annotations

import argparse
import asyncio
import re
import resource
import sys
import time

import msgspec
import nats
import numpy as np

TIMEOUT = -1  # code of a request that heard nothing within the timeout
MISROUTED = -2  # code of a request answered ok with a reply naming another order
_EXTERNAL_ID = re.compile(rb'"external_id":\s*("[^"]*")')
SEND_TICK_S = 0.0005  # the sender wakes this often and sends every request due


class Payloads(msgspec.Struct):
    items: list[bytes]
    subjects: list[str] | None = None  # one per item, over --subject (a client that knows where each goes)


def write_payloads(path: str, payloads: list[bytes], subjects: list[str] | None = None) -> None:
    with open(path, "wb") as f:
        f.write(msgspec.msgpack.encode(Payloads(payloads, subjects)))


def read_payloads(path: str) -> Payloads:
    with open(path, "rb") as f:
        return msgspec.msgpack.decode(f.read(), type=Payloads)


class Result(msgspec.Struct):
    rate: float
    sent: int
    seconds: float  # from the first due time to the last reply
    latency_s: bytes  # float64 per request, NaN where no reply came
    code: bytes  # int32 per request: 0 ok, the service's error code, TIMEOUT or MISROUTED
    replies: bytes  # int16 per request: replies received (1, or 0, or more: doubled)
    max_send_lag_s: float  # how far behind its schedule the generator ever was
    cpu_s: float  # the generator's own CPU


def arrays(r: Result) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.frombuffer(r.latency_s, np.float64), np.frombuffer(r.code, np.int32),
            np.frombuffer(r.replies, np.int16))


async def run(url: str, subject: str, payloads: list[bytes], rate: float, timeout: float,
              subjects: list[str] | None = None) -> Result:
    n = len(payloads)
    # an order's ok reply names its external_id: a reply meant for another request shows (JSON orders only)
    expect = [m.group(1) if (m := _EXTERNAL_ID.search(p)) else None for p in payloads]
    latency = np.full(n, np.nan)
    code = np.zeros(n, np.int32)
    replies = np.zeros(n, np.int16)
    nc = await nats.connect(url, pending_size=256 * 1024 * 1024, flush_timeout=30)
    inbox = nc.new_inbox()
    prefix = len(inbox) + 1
    start = 0.0
    answered = 0
    all_in = asyncio.Event()

    async def on_reply(msg) -> None:
        nonlocal answered
        now = time.perf_counter()
        i = int(msg.subject[prefix:])
        replies[i] += 1
        if replies[i] > 1:
            return
        answered += 1
        latency[i] = now - (start + i / rate)
        headers = msg.headers
        if headers and "Nats-Service-Error-Code" in headers:
            c = headers["Nats-Service-Error-Code"]
            code[i] = int(c) if c.isdigit() else 500
        elif expect[i] is not None and expect[i] not in msg.data:
            code[i] = MISROUTED
        if answered == n:
            all_in.set()

    await nc.subscribe(f"{inbox}.*", cb=on_reply, pending_msgs_limit=-1, pending_bytes_limit=-1)
    await nc.flush()
    cpu0 = time.process_time()
    publish = nc.publish
    replies_to = [f"{inbox}.{i}" for i in range(n)]
    start = time.perf_counter()
    sent, lag = 0, 0.0
    while sent < n:
        now = time.perf_counter()
        due = min(n, int((now - start) * rate) + 1)
        if due > sent:
            lag = max(lag, now - (start + sent / rate))
        while sent < due:
            await publish(subjects[sent] if subjects else subject, payloads[sent], reply=replies_to[sent])
            sent += 1
        await asyncio.sleep(SEND_TICK_S)
    last_due = start + (n - 1) / rate
    try:
        await asyncio.wait_for(all_in.wait(), max(0.0, last_due + timeout - time.perf_counter()))
    except asyncio.TimeoutError:
        pass
    end = time.perf_counter()
    await asyncio.sleep(0.2)  # a doubled reply would come now
    await nc.close()
    late = np.isnan(latency) | (latency > timeout)
    code[late & (code == 0)] = TIMEOUT
    return Result(rate=rate, sent=n, seconds=end - start, latency_s=latency.tobytes(), code=code.tobytes(),
                  replies=replies.tobytes(), max_send_lag_s=lag, cpu_s=time.process_time() - cpu0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--subject", required=True)
    p.add_argument("--payloads", required=True, help="msgpack file written by write_payloads")
    p.add_argument("--rate", type=float, required=True, help="requests per second")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds a request may wait for its reply")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    loaded = read_payloads(a.payloads)
    result = asyncio.run(run(a.url, a.subject, loaded.items, a.rate, a.timeout, loaded.subjects))
    with open(a.out, "wb") as f:
        f.write(msgspec.msgpack.encode(result))
    print(f"sent {result.sent} at {a.rate:g}/s; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} KB",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
