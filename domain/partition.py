"""A partition's fencing token (docs/scale-out.md).

Its owner stamps it in every transaction that writes the partition's
nodes, orders or counter sales; a new owner's take-over is an event on it.
So a paused former owner's next write conflicts with the take-over
whatever it writes, even an order it routes to a node of another partition
or a progress step that touches no node."""
from __future__ import annotations

from eventsourcing.domain import Aggregate, event

from domain import ids
from domain.errors import Conflict


class PartitionFence(Aggregate):
    @staticmethod
    def create_id(partition: str, **_: object) -> object:
        return ids.partition_id(partition)

    @event("Opened")
    def __init__(self, partition: str, at: float) -> None:
        self.partition = partition
        self.epoch = 0
        self.owner = ""

    def take(self, epoch: int, owner: str, at: float) -> None:
        """A new owner at a newer epoch (its lease's revision)."""
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch <= self.epoch:
            raise Conflict("epoch", f"partition {self.partition} is held at epoch {self.epoch} by "
                                    f"{self.owner or '?'}; epoch {epoch!r} is not newer")
        self._taken(epoch=epoch, owner=owner, at=at)

    def stamp(self, epoch: int, at: float) -> None:
        """Marks a write by the owner at `epoch`; an older epoch is refused."""
        if epoch != self.epoch:
            raise Conflict("epoch", f"partition {self.partition} is held at epoch {self.epoch} by "
                                    f"{self.owner or '?'}, not at {epoch}")
        self._stamped(epoch=epoch, at=at)

    @event("Taken")
    def _taken(self, epoch: int, owner: str, at: float) -> None:
        self.epoch = epoch
        self.owner = owner

    @event("Stamped")
    def _stamped(self, epoch: int, at: float) -> None:
        pass
