"""`o2o bench <name>`: the benchmarks, one module each, named here so the
CLI stays a table (a module exposes `register(subparsers)`)."""
from __future__ import annotations

import argparse
import importlib

BENCHES = ["benchmarks.solver", "benchmarks.load", "benchmarks.store", "benchmarks.engine", "benchmarks.gateway",
           "benchmarks.benefit", "benchmarks.travel", "benchmarks.quotes", "benchmarks.steps", "benchmarks.scaleout",
           "benchmarks.scaleout.border",
           "benchmarks.scaleout.filters", "benchmarks.scaleout.chaos"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="load and solver benchmarks (figures, not tests)")
    benches = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    for name in BENCHES:
        importlib.import_module(name).register(benches)
