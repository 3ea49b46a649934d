"""CPU of the gateway's own work on one push, in this process, without HTTP
or NATS: verify the signature, parse into our command, validate it as the
engine decodes it (what `Webhooks.handle` does between reading the body
and publishing). The best of three passes over the pushes, per channel."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from multidict import CIMultiDict

from benchmarks.gateway.pushes import SECRETS, gateway_toml, order_ids, pushes


def cpu_per_push(folder: Path, network_file: str, n: int = 2000) -> dict[str, Any]:
    from adapters.channels import build_channels
    from adapters.channels.base import Push
    from adapters.gateway.webhooks import Webhooks
    from engine.config import load_config
    from engine.store.network_file import load_network

    base = "http://127.0.0.1:8080"
    (folder / "inprocess.toml").write_text(gateway_toml(folder, network_file, 8080, "http://127.0.0.1:9"))
    config = load_config(folder / "inprocess.toml", environ={})
    channels = build_channels(config.gateway, load_network(network_file), SECRETS)
    ids = order_ids(10**9, n)
    p = pushes(base, ids)
    by_channel: dict[str, list[Any]] = {}
    for (channel, _), path, body, ctype in zip(ids, p.paths, p.bodies, p.content_types):
        by_channel.setdefault(channel, []).append((base + path, path.split("/", 3)[3] if path.count("/") > 2 else "",
                                                   CIMultiDict({"Content-Type": ctype}), body))

    async def one_pass(channel: Any, items: list[Any]) -> float:
        t0 = time.process_time()
        for url, tail, headers, body in items:
            push = Push(method="POST", url=url, tail=tail, headers=headers, body=body, query={},
                        received_at=time.time())
            channel.verify(push)
            [Webhooks._validated(i) for i in await channel.parse(push, None)]
        return time.process_time() - t0

    out = {}
    for name, items in by_channel.items():
        best = min(asyncio.run(one_pass(channels[name], items)) for _ in range(3))
        out[name] = {"pushes": len(items), "cpu_ms_per_push": round(1000 * best / len(items), 3)}
    return out
