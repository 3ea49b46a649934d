"""What `o2o bench load` runs: the network (roomy), the orders (the
simulations' demand generator) and the runs, in sessions."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

import msgspec

from domain.network import Network, Window

SCENARIO = Path(__file__).resolve().parents[2] / "simulations" / "scenarios" / "ordinary-day.toml"
SWEEP = (1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000)
ECHO_SWEEP = (5000, 10_000, 20_000, 40_000, 60_000, 80_000, 100_000, 120_000)
SUBMIT = "o2o.orders.submit"
ECHO = "bench.echo"


def roomy(network: Network, orders: Sequence[Any] = ()) -> Network:
    """Open all day, 1,000 times the capacity and 100 times the stock, and
    room for all of `orders` at every node: a slot's capacity for all of
    them, as much of each SKU a node carries as they ask for in all. A run
    of 150 s at 4,000/s sold out 100 times the stock after about 40 s and
    filled 1,000 times the capacity after about 100 s, and from then on
    measured rejections (58% of the orders by the end), not routing and
    storing (benchmarks/README.md, issue 19)."""
    nodes = [msgspec.structs.replace(n, hours=[Window("00:00", "24:00")],
                                     capacity_per_slot=max(n.capacity_per_slot * 1000, len(orders)))
             for n in network.nodes]
    asked: dict[str, int] = {}
    for cmd in orders:
        for line in cmd.lines:
            asked[line.sku] = asked.get(line.sku, 0) + line.qty
    stock = {node: {sku: max(q * 100, asked.get(sku, 0)) for sku, q in lines.items()}
             for node, lines in network.stock.items()}
    return msgspec.structs.replace(network, nodes=nodes, stock=stock)


def demand(scenario: str, n: int) -> tuple[Network, list[Any]]:
    """The scenario's network and n orders drawn by the simulations' generator
    (no members: the engine under load has none signed up)."""
    from simulations.demand import base_day
    from simulations.variants import network_of
    from simulations.scenario import load_scenario

    s, folder = load_scenario(scenario)
    network = network_of(s, folder)
    s = msgspec.structs.replace(s, demand=msgspec.structs.replace(s.demand, orders=n),
                                pos=msgspec.structs.replace(s.pos, sales_per_store_hour=0.0),
                                members=msgspec.structs.replace(s.members, count=0))
    return network, [cmd for _, cmd in base_day(s, network).orders]


class Plan(msgspec.Struct):
    name: str  # "warm-up", "main", "sweep", "echo"
    subject: str
    rate: int
    seconds: float

    @property
    def count(self) -> int:
        return max(1, int(self.rate * self.seconds))


def sessions(args: argparse.Namespace) -> list[list[Plan]]:
    """The runs, in sessions: each engine session starts a fresh engine (its own
    store and nats-server), so the sweep's orders do not slow the main run;
    --repeat N main runs come first, each in a session of its own."""
    if args.quick:
        args.rate, args.seconds, args.rates, args.sweep_seconds = 1000, 5.0, [500, 1000, 2000], 3.0
        args.echo_rates, args.sweep, args.intake = [2000, 4000], True, 2000
    warm = Plan("warm-up", SUBMIT, 500, 2.0)  # first batches load aggregates and warm caches
    out = [[warm, Plan("main", SUBMIT, args.rate, args.seconds)] for _ in range(max(1, getattr(args, "repeat", 1)))]
    if args.sweep:
        out.append([warm] + [Plan("sweep", SUBMIT, r, args.sweep_seconds) for r in args.rates])
    if not args.no_echo:
        out.append([Plan("echo", ECHO, r, args.sweep_seconds) for r in args.echo_rates])
    return out


class Session(msgspec.Struct):
    runs: list[dict[str, Any]]
    store: str
    intake: dict[str, Any] | None = None
    events: dict[str, Any] | None = None
    engine_peak_rss_bytes: int | None = None
    zero_loss: dict[str, Any] | None = None
