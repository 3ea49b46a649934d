"""The `o2o` command line: a thin table of subcommands.

Each subcommand lives in its own module exposing `register(subparsers)`,
which adds its parser and sets `func(args) -> int`. Modules are named by
string so simulations/ and benchmarks/ stay clients nobody imports.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = [
    "adapters.cli_network",
    "adapters.cli_state",
    "adapters.cli_replenish",
    "adapters.cli_benefit",
    "adapters.cli_solve",
    "adapters.cli_serve",
    "adapters.cli_gateway",
    "adapters.cli_submit",
    "adapters.cli_events",
    "adapters.event_relay",
    "adapters.cli_schemas",
    "adapters.cli_cluster",
    "simulations.cli",
    "benchmarks.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="o2o", description="O2O order-routing and inventory engine")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue  # not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
