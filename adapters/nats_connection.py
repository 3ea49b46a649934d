"""The NATS connection every command that talks to a server opens: the
flags that choose the server and authenticate (`connection_options`), the
connection they make (`connect`), and the same flags handed on to a child
process (`connection_argv`, for the relay `o2o serve` starts); many
messages written to it at once (`publish_all`); its reading held for a
while (`hold_reading`)."""
from __future__ import annotations

import argparse
import logging
import ssl
import sys
from typing import Any, Callable

import nats

from engine.memory import untraced

log = logging.getLogger("o2o.nats")

# the connection flags besides --nats, with their help
CONNECTION = [("creds", "NATS credentials file (JWT + NKey)"), ("nkey", "NKey seed file"), ("user", None),
              ("password", None), ("token", None), ("tls-ca", "CA certificate to verify the server"),
              ("tls-cert", "client certificate (mutual TLS)"), ("tls-key", "client key (mutual TLS)")]


def connection_options(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--nats", required=required, help="server URL(s), comma-separated" +
                   ("" if required else " (default: start an embedded nats-server)"))
    for flag, text in CONNECTION:
        p.add_argument(f"--{flag}", help=text)


def connection_argv(settings: Any) -> list[str]:
    """The connection settings (the configuration's NatsSettings), as a child process is passed them."""
    argv = ["--nats", settings.url or ""]
    for flag, _ in CONNECTION:
        value = getattr(settings, flag.replace("-", "_"), None)
        if value:
            argv += [f"--{flag}", str(value)]
    return argv


async def _quiet(e: Exception) -> None:
    print(f"nats: {e}", file=sys.stderr)


async def connect(args: Any, url: str, **extra: Any) -> nats.NATS:
    """`args`: the parsed flags, or the configuration's NatsSettings (the same names)."""
    if args.creds or args.nkey:
        try:
            import nkeys  # noqa: F401  nats-py signs the server's nonce with it
        except ModuleNotFoundError:
            raise SystemExit("o2o: --creds and --nkey need the nkeys package: pip install 'nats-py[nkeys]'") from None
    tls = None
    if args.tls_ca or args.tls_cert:
        tls = ssl.create_default_context(cafile=args.tls_ca)
        if args.tls_cert:
            tls.load_cert_chain(args.tls_cert, args.tls_key)
    return await nats.connect(
        servers=url.split(","), user=args.user, password=args.password, token=args.token,
        user_credentials=args.creds, nkeys_seed=args.nkey, tls=tls, name="o2o",
        max_reconnect_attempts=-1, reconnect_time_wait=0.5, error_cb=_quiet, **extra,
    )


def hold_reading(nc: Any) -> Callable[[], None] | None:
    """Stops reading the connection until the returned function is called
    (None, holding nothing, where its transport cannot pause: a websocket).
    The transport is looked up each time: a reconnect makes a new one."""
    transport = getattr(getattr(nc._transport, "_io_writer", None), "transport", None)
    if transport is None or not nc.is_connected:
        return None
    transport.pause_reading()
    return transport.resume_reading


async def publish_all(nc: Any, commands: bytes | bytearray, n: int, size: int) -> bool:
    """`n` PUB or HPUB commands (`size`: their payloads' bytes) written to the
    connection at once, not a publish each with its checks and flush;
    False, sending nothing, while the client is not connected or drains
    (publish's own rules apply then). A write that fails is logged: those
    messages are lost, as with a publish into a lost connection."""
    if not nc.is_connected or nc.is_draining_pubs:
        return False
    try:
        nc.stats["out_msgs"] += n  # what Client.publish does for each message
        nc.stats["out_bytes"] += size
        await nc._send_command(commands)
        if nc._flush_queue is not None and nc._flush_queue.empty():
            await nc._flush_pending()
    except Exception as e:
        log.warning("could not publish %d messages: %s", n, untraced(e))
    return True
