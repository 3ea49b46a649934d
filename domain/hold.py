"""A hold: stock set aside at one node for a quoted cart for a few minutes,
so that the submit that follows the quote finds it there. The stock is
reserved in the node's inventory under `reservation_key`; the hold is used
by one order, or lapses at its time (the engine's timer) and the stock goes
back."""
from __future__ import annotations

from eventsourcing.domain import Aggregate, event

from domain import ids
from domain.errors import Conflict, InvalidInput

MAX_HOLD_MINUTES = 30


def reservation_key(quote_id: str) -> str:
    """What a hold's stock is reserved under in the node's inventory."""
    return f"hold/{quote_id}"


class Hold(Aggregate):
    @staticmethod
    def create_id(quote_id: str, **_: object) -> object:
        return ids.hold_id(quote_id)

    @classmethod
    def place(cls, quote_id: str, node: str, mode: str, lines: dict[str, int], minutes: int, at: float) -> "Hold":
        if not 1 <= minutes <= MAX_HOLD_MINUTES:
            raise InvalidInput("hold_minutes", f"a hold lasts 1 to {MAX_HOLD_MINUTES} minutes")
        return cls(quote_id=quote_id, node=node, mode=mode, lines=dict(lines), expires_at=at + minutes * 60, at=at)

    @event("Placed")
    def __init__(self, quote_id: str, node: str, mode: str, lines: dict[str, int], expires_at: float,
                 at: float) -> None:
        self.quote_id = quote_id
        self.node = node
        self.mode = mode
        self.lines = lines
        self.expires_at = expires_at
        self.status = "held"  # held | used | lapsed
        self.order_id: str | None = None

    def check_use(self, lines: dict[str, int], mode: str, pickup_node: str | None, at: float) -> bool:
        """Whether an order with these lines may use the hold now: False once it
        lapsed or was used (the order is routed as any other); a different
        cart or way is refused, naming the field."""
        if self.status != "held" or at >= self.expires_at:
            return False
        if lines != self.lines:
            raise InvalidInput("hold", f"the cart differs from the one held under {self.quote_id}")
        if mode != self.mode or (mode == "pickup" and pickup_node != self.node):
            raise InvalidInput("hold", f"held for {self.mode} at {self.node}")
        return True

    def use(self, order_id: str, at: float) -> None:
        if self.status != "held":
            raise Conflict("hold", f"hold {self.quote_id} is {self.status}")
        self._used(order_id=order_id, at=at)

    @event("Used")
    def _used(self, order_id: str, at: float) -> None:
        self.status = "used"
        self.order_id = order_id

    def lapse(self, at: float) -> None:
        if self.status != "held":
            raise Conflict("hold", f"hold {self.quote_id} is {self.status}")
        self._lapsed(at=at)

    @event("Lapsed")
    def _lapsed(self, at: float) -> None:
        self.status = "lapsed"
