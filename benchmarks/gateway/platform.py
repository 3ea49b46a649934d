"""The platforms' APIs for `o2o bench gateway`, a process of its own: every
call the gateway's status side makes (confirm, cancel, ...) is answered the
way Meituan and Ele.me say yes, and counted; nothing is checked.

    python -m benchmarks.gateway.platform --port P"""
from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web


async def serve(port: int) -> None:
    calls = {"n": 0}

    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        calls["n"] += 1
        if request.path.startswith("/eleme"):
            return web.json_response({"id": json.loads(raw or b"{}").get("id"), "result": None, "error": None})
        if request.path == "/calls":
            return web.json_response(calls)
        return web.json_response({"data": "ok"})

    app = web.Application()
    app.add_routes([web.route("*", "/{tail:.*}", handle)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"platforms ready on {port}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    asyncio.run(serve(p.parse_args().port))


if __name__ == "__main__":
    main()
