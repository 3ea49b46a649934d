"""Generalised assignment instances in the `o2o solve` format (Beasley's
type C: costs 10-50, loads 5-25, each node's capacity 0.8 x its total load /
nodes), all orders must be assigned.

    python -m benchmarks.gap --nodes 20 --orders 200 --seed 1 --out docs/examples/problems/gap-20x200.json
"""
from __future__ import annotations

import argparse

import msgspec
import numpy as np

from engine.routing.problem_file import NodeSpec, OrderSpec, ProblemFile


def gap_c(nodes: int, orders: int, seed: int = 1) -> ProblemFile:
    rng = np.random.default_rng(seed)
    cost = rng.integers(10, 51, (orders, nodes)).astype(float)
    load = rng.integers(5, 26, (orders, nodes)).astype(float)
    capacity = np.floor(0.8 * load.sum(axis=0) / nodes)
    return ProblemFile(
        nodes=[NodeSpec(id=f"n{j + 1}", capacity=float(c)) for j, c in enumerate(capacity)],
        orders=[OrderSpec(id=f"o{i + 1}") for i in range(orders)],
        cost=cost.tolist(), load=load.tolist(),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=20)
    p.add_argument("--orders", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    with open(a.out, "wb") as f:
        f.write(msgspec.json.encode(gap_c(a.nodes, a.orders, a.seed)) + b"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
