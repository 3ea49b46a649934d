"""A road table service standing in for OSRM and Valhalla, for tests, the
benchmark and trying `--travel-url` without a road network: a real HTTP
server answering OSRM's `GET /table/v1/{profile}/{lon,lat;...}` and
Valhalla's `POST /sources_to_targets` with straight-line km x `detour` at
`speed_kmh` (optionally a per-pair detour function). It counts the calls,
and can be made slow (`delay_s`) or failing (`fail`) to test the client.

    python -m adapters.table_standin --port 5000 [--detour 1.3]
"""
from __future__ import annotations

import argparse
import asyncio
import threading
from typing import Callable

import numpy as np
from aiohttp import web

from engine.geo import local_km

Detour = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (src lat, lon, dst lat, lon) -> x


class TableStandin:
    def __init__(self, detour: float | Detour = 1.3, speed_kmh: float = 20.0, max_locations: int = 100):
        self.detour, self.speed_kmh, self.max_locations = detour, speed_kmh, max_locations
        self.delay_s = 0.0
        self.fail = False
        self.calls = 0
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def seconds(self, slat, slon, dlat, dlon) -> np.ndarray:
        """(sources, destinations) seconds, as this service answers them."""
        slat, slon, dlat, dlon = (np.asarray(a, float) for a in (slat, slon, dlat, dlon))
        km = local_km(slat[:, None], slon[:, None], dlat[None, :], dlon[None, :])
        factor = self.detour(slat[:, None], slon[:, None], dlat[None, :], dlon[None, :]) if callable(self.detour) \
            else self.detour
        return km * factor * 3600 / self.speed_kmh

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/table/v1/{profile}/{coords}", self._osrm)
        app.router.add_post("/sources_to_targets", self._valhalla)
        return app

    async def _answer(self) -> None:
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            raise web.HTTPServiceUnavailable(text="stand-in told to fail")

    async def _osrm(self, request: web.Request) -> web.Response:
        await self._answer()
        try:
            points = [tuple(map(float, p.split(","))) for p in request.match_info["coords"].split(";")]
            q = request.query
            src = [int(i) for i in q["sources"].split(";")] if "sources" in q else list(range(len(points)))
            dst = [int(i) for i in q["destinations"].split(";")] if "destinations" in q else list(range(len(points)))
        except (ValueError, KeyError) as e:
            return web.json_response({"code": "InvalidQuery", "message": str(e)}, status=400)
        if len(src) * len(dst) > self.max_locations ** 2:
            return web.json_response({"code": "TooBig", "message": "too many table coordinates"}, status=400)
        lon, lat = np.array(points).T
        table = self.seconds(lat[src], lon[src], lat[dst], lon[dst])
        return web.json_response({"code": "Ok", "durations": np.round(table, 1).tolist()})

    async def _valhalla(self, request: web.Request) -> web.Response:
        await self._answer()
        body = await request.json()
        s, t = body["sources"], body["targets"]
        table = self.seconds([p["lat"] for p in s], [p["lon"] for p in s], [p["lat"] for p in t], [p["lon"] for p in t])
        return web.json_response({"sources_to_targets": [
            [{"from_index": i, "to_index": j, "time": round(float(x), 1)} for j, x in enumerate(row)]
            for i, row in enumerate(table.tolist())]})

    # run on a thread of its own, so a blocking client in the test's thread can call it
    def start(self, host: str = "127.0.0.1", port: int = 0) -> "TableStandin":
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._serve(host, port))
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="table-standin", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the table stand-in did not start")
        return self

    async def _serve(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.url = f"http://{bound[0]}:{bound[1]}"

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> "TableStandin":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m adapters.table_standin", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--detour", type=float, default=1.3, help="road km per straight km (default 1.3)")
    p.add_argument("--speed-kmh", type=float, default=20.0)
    a = p.parse_args(argv)
    standin = TableStandin(a.detour, a.speed_kmh)
    web.run_app(standin.app(), host=a.host, port=a.port, print=lambda *_: print(f"table stand-in on http://{a.host}:{a.port}"))


if __name__ == "__main__":
    main()
