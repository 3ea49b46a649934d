"""`o2o submit` sends orders to the engine (`o2o.orders.submit`) and prints
one line per order: its reply, or what went wrong with it.

The input (a file, or - for stdin) is JSON lines, one order a line, read
and sent as it comes; or one JSON document, pretty-printed or not: an order
(as docs/examples/order.json) or an array of orders. A failure names the
order by its `line` (JSON lines) or its `item` (1-based, in a document)."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import IO, Iterator

import msgspec
import nats

from adapters.nats_connection import connect, connection_options
from adapters.wire import WireError, decode
from domain.commands import SubmitOrder


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("submit", help="send orders (a JSON document, an array of them or JSON lines; FILE or -) "
                                      "and print the replies", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("file", help="SubmitOrder JSON: one order, an array of orders or JSON lines; - for stdin")
    s.add_argument("--in-flight", type=int, default=100, help="requests in flight at once")
    s.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each reply")
    s.add_argument("--retries", type=int, default=5,
                   help="times to send an order again after a 503, a timeout or no service (idempotent)")
    connection_options(s, required=True)
    s.set_defaults(func=lambda a: asyncio.run(submit(a)))


class NotJson(Exception):
    """A document that is not JSON, with the line it goes wrong on."""

    def __init__(self, line: int, description: str):
        super().__init__(description)
        self.line = line
        self.description = description


def orders(source: IO[str]) -> Iterator[tuple[str, int, bytes]]:
    """(`line` or `item`, its number, the order's JSON) for every order in
    `source`. JSON lines when the first line that is not blank is a whole
    JSON object (read line by line, so a pipe is sent as it comes), or
    when a later line is a whole order (the first line is a bad one); else
    the rest is one JSON document: an order or an array of orders (one
    that is not JSON raises NotJson naming the line)."""
    first = 0
    for first, line in enumerate(source, 1):
        if line.strip():
            break
    else:
        return
    head = line.strip()
    if head.startswith("{") and _is_json(head):
        yield "line", first, head.encode()
        for n, line in enumerate(source, first + 1):
            if line.strip():
                yield "line", n, line.strip().encode()
        return
    text = line + source.read()
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        lines = text.splitlines()
        if any(_is_order(x) for x in lines[1:]):  # JSON lines after all, the first one bad: each line answered
            for n, x in enumerate(lines, first):
                if x.strip():
                    yield "line", n, x.strip().encode()
            return
        raise NotJson(first + e.lineno - 1, f"$: not valid JSON: {e.msg} at line {first + e.lineno - 1}, "
                                            f"column {e.colno}") from None
    for k, order in enumerate(document if isinstance(document, list) else [document], 1):
        yield "item", k, msgspec.json.encode(order)


def _is_json(text: str) -> bool:
    try:
        msgspec.json.decode(text)
    except msgspec.DecodeError:
        return False
    return True


def _is_order(text: str) -> bool:
    try:
        decode(text.strip().encode(), SubmitOrder)
    except WireError:
        return False
    return True


async def submit(args: argparse.Namespace) -> int:
    source = sys.stdin if args.file == "-" else open(args.file)
    nc = await connect(args, args.nats)
    gate = asyncio.Semaphore(args.in_flight)
    failures = 0

    def failed(key: str, n: int, code: str, error: str) -> str:
        nonlocal failures
        failures += 1
        return msgspec.json.encode({key: n, "code": code, "error": error}).decode()

    async def one(key: str, n: int, payload: bytes) -> str:
        try:
            decode(payload, SubmitOrder)  # refuse locally what the service would refuse
        except WireError as e:
            return failed(key, n, "400", e.description)
        for attempt in range(args.retries + 1):
            # a 503, a timeout or no service yet stored nothing (or stored it once): sending again is safe
            pause = min(0.2 * 2 ** attempt, 5.0)
            try:
                async with gate:
                    msg = await nc.request("o2o.orders.submit", payload, timeout=args.timeout)
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as e:
                if attempt == args.retries:
                    return failed(key, n, "timeout", f"no answer: {type(e).__name__}")
                await asyncio.sleep(pause)
                continue
            code = (msg.headers or {}).get("Nats-Service-Error-Code")
            if code == "503" and attempt < args.retries:
                await asyncio.sleep(pause)
                continue
            return failed(key, n, code, msg.headers["Nats-Service-Error"]) if code else msg.data.decode()
        raise AssertionError("unreachable")

    try:
        window: list = []
        try:
            for key, n, payload in orders(source):
                window.append(one(key, n, payload))
                if len(window) >= 10 * args.in_flight:  # print as we go, in input order
                    print("\n".join(await asyncio.gather(*window)), flush=True)
                    window = []
        except NotJson as e:
            print(failed("line", e.line, "400", e.description), flush=True)
        if window:
            print("\n".join(await asyncio.gather(*window)), flush=True)
    finally:
        await nc.drain()
        if source is not sys.stdin:
            source.close()
    return 1 if failures else 0
