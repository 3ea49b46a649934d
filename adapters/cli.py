"""The `o2o` command line: a thin table of subcommands.

Each subcommand lives in its own module exposing `register(subparsers)`,
which adds its parser and sets `func(args) -> int`. Modules are named by
string so simulations/ and benchmarks/ stay clients nobody imports, and
only the named command's module is imported: all of them together
(OR-Tools, SciPy's statistics, matplotlib) took about 1.8 s of every
`o2o` process's start, `o2o submit` and the relay's included.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# Before numpy loads: the router's searches end at a deadline, so BLAS threads buy no answer
# sooner, only CPU (5,000 orders, 1 s: 1.48 s of CPU against 0.99 with one; benchmarks/README.md),
# and the other cores are the event loop's, the relay's and nats-server's
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# command -> the module that registers it (tests/cli/test_cli_table.py keeps them in step)
COMMANDS = {
    "network": "adapters.cli_network",
    "state": "adapters.cli_state",
    "replenish": "adapters.cli_replenish",
    "benefit": "adapters.cli_benefit",
    "solve": "adapters.cli_solve",
    "serve": "adapters.cli_serve",
    "gateway": "adapters.cli_gateway",
    "submit": "adapters.cli_submit",
    "events": "adapters.cli_events",
    "relay": "adapters.event_relay",
    "schemas": "adapters.cli_schemas",
    "cluster": "adapters.cli_cluster",
    "demo": "simulations.cli",
    "simulate": "simulations.cli",
    "replay": "simulations.cli",
    "bench": "benchmarks.cli",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with `command`'s module registered, or every module's
    (for `o2o --help`, no command or one not in the table)."""
    parser = argparse.ArgumentParser(prog="o2o", description="O2O order-routing and inventory engine")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
