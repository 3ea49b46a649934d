"""o2o serve's side of the leases: a partition it cannot take over (NATS did
not answer, its fence lost to a writer) is given back, and the engine stays up."""
from __future__ import annotations

import asyncio

import nats

from adapters.cli_serve import follow_leases
from domain.errors import Conflict


class Service:
    def __init__(self, failures):
        self.failures, self.taken, self.dropped = list(failures), [], []

    async def take(self, partition, epoch):
        if self.failures:
            raise self.failures.pop(0)
        self.taken.append((partition, epoch))
        return 3

    async def drop(self, partition):
        self.dropped.append(partition)


class Held:
    def __init__(self, changes):
        self.changes, self.given_back = list(changes), []

    def take_changes(self):
        out, self.changes = self.changes, []
        return out

    def give_back(self, partition):
        self.given_back.append(partition)


def test_a_take_that_fails_gives_the_lease_back_and_the_next_one_serves(capsys):
    service = Service([nats.errors.TimeoutError(), Conflict("store", "gave up after 5 concurrent-write conflicts")])
    held = Held([("take", "p2", 7)])
    asyncio.run(follow_leases(service, held, {"p1": 5}))
    assert held.given_back == ["p1", "p2"] and service.dropped == ["p1", "p2"] and service.taken == []
    held.changes = [("take", "p1", 9)]
    asyncio.run(follow_leases(service, held))
    assert service.taken == [("p1", 9)] and held.given_back == ["p1", "p2"]
    out = capsys.readouterr()
    assert "took partition p1 over at epoch 9 (3 nodes fenced)" in out.out
    assert "partition p1: could not take it over" in out.err and "giving its lease back" in out.err


def test_partitions_held_before_start_are_served_without_counting_as_takeovers(capsys):
    service, held = Service([]), Held([])
    asyncio.run(follow_leases(service, held, {"p1": 5}))
    assert service.taken == [("p1", 5)]
    assert "serving partition p1 at epoch 5" in capsys.readouterr().out
