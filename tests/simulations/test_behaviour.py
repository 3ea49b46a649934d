"""Node behaviour drawn per order and node: the same draws in every variant,
a busy node runs late, a courier keeps deliveries waiting; and the
conservation check catches a unit that went missing."""
from __future__ import annotations

from domain.commands import AcceptOrder, DeclineOrder, ReportProgress
from engine.store.network_file import load_sample
from simulations.demand import base_day
from simulations.results import conservation
from simulations.day import Routed, simulate, simulated_parts
from simulations.scenario import Behaviour, Demand, Scenario

NOW = 1_796_000_000.0


def handed_over(plan: list) -> float:
    return next(t for t, cmd in plan if isinstance(cmd, ReportProgress) and cmd.step in ("delivered", "collected"))


def part(order: str = "o-1", fill: float = 0.0, mode: str = "delivery") -> Routed:
    return Routed(order=f"id-of-{order}", name=f"web/{order}", node="S001", mode=mode, eta_at=NOW + 1200, at=NOW, fill=fill, prep_minutes=10.0)


def test_the_same_order_at_the_same_node_behaves_the_same_every_time():
    plan = simulated_parts(Scenario(name="t"))
    assert plan(part()) == plan(part())
    assert plan(part("o-1")) != plan(part("o-2"))
    moved = part("o-1")  # drawn by the order's name: however ids are made, the same draws
    assert [t for t, _ in plan(Routed(**{**moved.__dict__, "order": "another-id"}))] == [t for t, _ in plan(moved)]


def test_a_node_accepts_then_picks_readies_and_hands_over_in_order():
    plans = [simulated_parts(Scenario(name="t"))(part(f"o-{i}", mode=m)) for i in range(200) for m in ("delivery", "pickup")]
    for plan in plans:
        kinds = [type(cmd) for _, cmd in plan]
        assert kinds[0] in (AcceptOrder, DeclineOrder)
        times = [t for t, _ in plan]
        assert times == sorted(times)
    declined = sum(isinstance(p[0][1], DeclineOrder) for p in plans)
    assert 0 < declined < 0.1 * len(plans)  # 3% by default


def test_a_full_node_runs_late_by_its_preparation_time_and_couriers_add_waiting():
    plan = simulated_parts(Scenario(name="t", behaviour=Behaviour(decline_share=0, cancel_share=0)))
    idle, full = handed_over(plan(part(fill=0.0))), handed_over(plan(part(fill=1.0)))
    assert full - idle == 600.0  # busy_delay 1 x 10 preparation minutes
    no_wait = simulated_parts(Scenario(name="t", behaviour=Behaviour(decline_share=0, cancel_share=0,
                                                                     courier_wait_minutes=0)))
    assert handed_over(no_wait(part())) <= idle
    assert handed_over(no_wait(part(mode="pickup"))) == handed_over(plan(part(mode="pickup")))


def test_the_conservation_check_finds_a_unit_that_went_missing():
    s = Scenario(name="t", start="11:00", end="12:00", demand=Demand(orders=40))
    network = load_sample()
    outcome = simulate(s, network, base_day(s, network), None, "memory:")
    assert conservation(outcome) == []
    outcome.pos_sold[("S001", network.skus[0].id)] += 1
    assert conservation(outcome) == [f"S001/{network.skus[0].id}: on hand "
                                     f"{outcome.engine.readmodels.atp.on_hand[0, 0]}, expected "
                                     f"{outcome.engine.readmodels.atp.on_hand[0, 0] - 1}"]
    outcome.engine.close()
