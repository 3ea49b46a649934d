"""The NATS connection every command that talks to a server opens: the
flags that choose the server and authenticate (`connection_options`), the
connection they make (`connect`), and the same flags handed on to a child
process (`connection_argv`, for the relay `o2o serve` starts)."""
from __future__ import annotations

import argparse
import ssl
import sys
from typing import Any

import nats

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
