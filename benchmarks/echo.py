"""The baseline: a bare NATS echo responder, a process of its own.

    python -m benchmarks.echo --url URL --subject S

Answers every request with its own payload, nothing else: what one Python
process on nats-py can answer at most, measured with the same generator as
the engine, so the engine's figures can be read as a share of it."""
from __future__ import annotations

import argparse
import asyncio
import sys

import nats

from adapters.shutdown import stop_on_signals


async def serve(url: str, subject: str) -> None:
    nc = await nats.connect(url, pending_size=256 * 1024 * 1024)
    publish = nc.publish

    async def echo(msg) -> None:
        await publish(msg.reply, msg.data)

    await nc.subscribe(subject, queue="echo", cb=echo, pending_msgs_limit=-1, pending_bytes_limit=-1)
    await nc.flush()
    print("echo ready", flush=True)
    stop = stop_on_signals()
    await stop.wait()
    await nc.drain()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--subject", default="bench.echo")
    a = p.parse_args(argv)
    asyncio.run(serve(a.url, a.subject))
    return 0


if __name__ == "__main__":
    sys.exit(main())
