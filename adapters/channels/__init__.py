"""Channel adapters: one module per channel, one interface (base.Channel).
`build_channels` makes the configured ones, with their secrets from the
environment and their shop and item maps checked against the network."""
from __future__ import annotations

import os
from typing import Any, Callable, Mapping

from adapters.channels.base import Catalog, Channel, read_map
from adapters.channels.eleme import Eleme
from adapters.channels.jddj import Jddj
from adapters.channels.meituan import Meituan
from adapters.channels.pos import Pos
from adapters.channels.shopify import Shopify
from domain.network import Network

KINDS: dict[str, type[Channel]] = {c.kind: c for c in (Meituan, Eleme, Jddj, Shopify, Pos)}


class ChannelConfigError(ValueError):
    pass


def build_channels(gateway: Any, network: Network, environ: Mapping[str, str] | None = None,
                   clock: Callable[[], float] | None = None) -> dict[str, Channel]:
    """The configured channels; a missing secret, an unreadable map or a map
    naming an unknown node or SKU is one error naming the setting."""
    env = os.environ if environ is None else environ
    out: dict[str, Channel] = {}
    for name, s in gateway.channels.items():
        where = f"config.gateway.channels.{name}"
        secret = token = ""
        if s.secret_env:
            secret = env.get(s.secret_env, "")
            if not secret:
                raise ChannelConfigError(f"{where}.secret_env: the variable {s.secret_env} is not set")
        else:
            raise ChannelConfigError(f"{where}.secret_env: required (the variable holding the signing secret)")
        if s.token_env:
            token = env.get(s.token_env, "")
            if not token:
                raise ChannelConfigError(f"{where}.token_env: the variable {s.token_env} is not set")
        try:
            catalog = Catalog(network, read_map(s.shops, f"{where}.shops"), read_map(s.items, f"{where}.items"), where)
        except ValueError as e:
            raise ChannelConfigError(str(e)) from None
        out[name] = KINDS[s.kind](name, s, catalog, secret=secret, token=token, clock=clock)
    return out
