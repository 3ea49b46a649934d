"""Generalised assignment instances in the `o2o solve` format, all orders
must be assigned (orders = jobs, nodes = agents), generated as the classical
types are (Chu & Beasley 1997; type E as used by Yagiura et al.):

| type | load a | cost c | capacity of node i |
| --- | --- | --- | --- |
| A | U[5,25] | U[10,50] | 0.6 (n/m) 15 + 0.4 max_i sum of a over the jobs cheapest at i |
| B | U[5,25] | U[10,50] | 0.7 x type A's |
| C | U[5,25] | U[10,50] | 0.8 sum_j a_ij / m |
| D | U[1,100] | 111 - a + U[-10,10] | 0.8 sum_j a_ij / m |
| E | 1 - 10 ln U(0,1] | 1000 / a - 10 U[0,1] | max(0.8 sum_j a_ij / m, max_j a_ij) |

Integers throughout (E's loads and costs truncated). B, C, D and E are tight:
types D and E are the hard ones (cost falls as load rises).

    python -m benchmarks.gap --type D --nodes 20 --orders 200 --seed 1 --out gap-d-20x200.json
"""
from __future__ import annotations

import argparse

import msgspec
import numpy as np

from engine.routing.problem_file import NodeSpec, OrderSpec, ProblemFile

TYPES = ("A", "B", "C", "D", "E")


def gap_arrays(kind: str, nodes: int, orders: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cost, load) as orders x nodes, and capacity per node."""
    rng = np.random.default_rng(seed)
    m, n = nodes, orders
    if kind in "ABC":
        cost = rng.integers(10, 51, (n, m))  # cost first: docs/examples/problems/gap-20x200.json is type C, seed 1
        load = rng.integers(5, 26, (n, m))
        if kind == "C":
            capacity = np.floor(0.8 * load.sum(axis=0) / m)
        else:
            cheapest = cost.argmin(axis=1)  # numpy's argmin takes the first: the lowest-numbered node on ties
            at = np.bincount(cheapest, weights=load[np.arange(n), cheapest], minlength=m)
            capacity = np.full(m, np.floor(0.6 * (n / m) * 15 + 0.4 * at.max()))
            if kind == "B":
                capacity = np.floor(0.7 * capacity)
    elif kind == "D":
        load = rng.integers(1, 101, (n, m))
        cost = 111 - load + rng.integers(-10, 11, (n, m))
        capacity = np.floor(0.8 * load.sum(axis=0) / m)
    elif kind == "E":
        load = np.floor(1 - 10 * np.log(1 - rng.random((n, m)))).astype(np.int64)  # 1 - random() is in (0, 1]
        cost = np.floor(1000 / load - 10 * rng.random((n, m))).astype(np.int64)
        capacity = np.maximum(np.floor(0.8 * load.sum(axis=0) / m), load.max(axis=0))
    else:
        raise ValueError(f"GAP type {kind!r}: expected one of {', '.join(TYPES)}")
    return cost.astype(float), load.astype(float), capacity.astype(float)


def gap(kind: str, nodes: int, orders: int, seed: int = 1) -> ProblemFile:
    cost, load, capacity = gap_arrays(kind, nodes, orders, seed)
    return ProblemFile(
        nodes=[NodeSpec(id=f"n{j + 1}", capacity=float(c)) for j, c in enumerate(capacity)],
        orders=[OrderSpec(id=f"o{i + 1}") for i in range(orders)],
        cost=cost.tolist(), load=load.tolist(),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--type", default="C", choices=TYPES)
    p.add_argument("--nodes", type=int, default=20)
    p.add_argument("--orders", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    spec = gap(a.type, a.nodes, a.orders, a.seed)
    with open(a.out, "wb") as f:
        f.write(msgspec.json.encode(spec) + b"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
