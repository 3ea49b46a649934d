"""Runs a scenario: its base day and every variant, one after another or in
worker processes (each variant is independent: the same results either
way), with one progress bar counting orders; with replications, all of that
once per seed (seed, seed + 1, ...: replication r of every variant sees the
same customers)."""
from __future__ import annotations

import multiprocessing
import queue
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import msgspec
from tqdm import tqdm

from domain.network import Network
from engine.memory import young_collections_only
from engine.store.network_file import SAMPLE_NETWORK, load_network
from simulations import results
from simulations.demand import Day, base_day, surge_size
from simulations.network_gen import CitySpec, generate
from simulations.day import simulate, variant_network, variant_partitions
from simulations.scenario import Scenario, ScenarioError, Variant, load_scenario

PROGRESS_EVERY = 50  # orders a worker reports at a time


@dataclass
class VariantResult:
    name: str
    kpis: dict
    nodes: list[dict]
    hourly: list[dict]
    breaks: list[str]  # conservation breaks: none, unless there is a bug
    seconds: float
    cpu_seconds: float
    benefit: dict | None = None  # statements and sign-ups, when the scenario reports them
    routing: dict | None = None  # batches and route times (not in kpis: those are free of run times)


def network_of(s: Scenario, folder: Path) -> Network:
    if s.network.generate is not None:
        g = s.network.generate
        return generate(CitySpec(g.stores, g.kitchens, g.skus, g.radius_km, g.districts, g.seed, s.name))
    path = SAMPLE_NETWORK if s.network.file == "sample" else folder / s.network.file
    return load_network(path)


def run_variant(s: Scenario, network: Network, day: Day, v: Variant | None,
                progress: Callable[[int], None] = lambda n: None) -> VariantResult:
    outcome = simulate(s, network, day, v, s.store, progress=progress)
    try:
        return VariantResult(outcome.variant, results.kpis(outcome), results.nodes(outcome), results.hourly(outcome),
                             results.conservation(outcome), round(outcome.seconds, 2),
                             round(outcome.cpu_seconds, 2), results.benefit(outcome), outcome.routing)
    finally:
        outcome.engine.close()


def run_scenario(path: str | Path, progress: bool = True, jobs: int = 1) -> tuple[Scenario, list[VariantResult]]:
    """Raises a ScenarioError naming the field before anything runs."""
    s, runs = run_replications(path, 1, progress, jobs)
    return s, runs[0]


@young_collections_only()
def run_replications(path: str | Path, replications: int, progress: bool = True,
                     jobs: int = 1) -> tuple[Scenario, list[list[VariantResult]]]:
    """Every variant once per seed: the scenario's seed + r for replication r.
    Raises a ScenarioError naming the field before anything runs."""
    s, folder = load_scenario(path)
    if replications < 1:
        raise ScenarioError("--replications", f"must be at least 1, got {replications}")
    network = network_of(s, folder)
    variants: list[Variant | None] = [None, *s.variants]
    for v in variants:
        variant_partitions(variant_network(network, s, v), s, v)  # a variant naming what the network lacks fails
        # here, not in a worker
    runs = []
    seeds = [_seeded(s, s.seed + r, r) for r in range(replications)]
    total = sum(x.demand.orders + sum(surge_size(x, network, u, d) for u in (v.surges if v else []))
                for x in seeds for v in variants for d in range(s.days))
    with tqdm(total=total, desc=s.name, unit="order", disable=not progress) as bar:
        for seeded in seeds:
            seed = f"seed {seeded.seed} " if replications > 1 else ""
            if jobs <= 1 or len(variants) == 1:
                day = base_day(seeded, network)
                out = []
                for v in variants:
                    bar.set_postfix_str(seed + (v.name if v else "base"))
                    out.append(run_variant(seeded, network, day, v, bar.update))
                runs.append(out)
            else:
                bar.set_postfix_str(seed.strip())
                runs.append(_in_workers(Path(path), len(variants), jobs, bar, seeded.seed))
    return s, runs


def _seeded(s: Scenario, seed: int, r: int) -> Scenario:
    """Replication r: its seed, and event stores of its own after the first."""
    store = s.store.replace("{variant}", f"{{variant}}-seed{seed}") if r else s.store
    return msgspec.structs.replace(s, seed=seed, store=store)


def _in_workers(path: Path, n: int, jobs: int, bar: tqdm, seed: int) -> list[VariantResult]:
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no solver threads or locks inherited
    with ctx.Manager() as manager, ProcessPoolExecutor(min(jobs, n), mp_context=ctx) as pool:
        ticks = manager.Queue()
        futures = [pool.submit(_worker, str(path), i, ticks, seed) for i in range(n)]
        while True:
            done, _ = wait(futures, timeout=0.2)
            try:
                while True:
                    bar.update(ticks.get_nowait())
            except queue.Empty:
                pass
            if len(done) == n:
                return [f.result() for f in futures]


@young_collections_only()
def _worker(path: str, index: int, ticks, seed: int) -> VariantResult:
    s, folder = load_scenario(path)
    s = _seeded(s, seed, seed - s.seed)
    network = network_of(s, folder)
    pending = 0

    def report(k: int) -> None:
        nonlocal pending
        pending += k
        if pending >= PROGRESS_EVERY:
            ticks.put(pending)
            pending = 0

    result = run_variant(s, network, base_day(s, network), None if index == 0 else s.variants[index - 1], report)
    ticks.put(pending)
    return result
