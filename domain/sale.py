"""A sale over the counter: what the customer paid, line by line, and what
was refunded of it. Its goods leave the node's inventory with the sale
(NodeInventory.SoldOverCounter); the sale keeps the money, for refunds at
any later time, points and benefit sharing."""
from __future__ import annotations

from eventsourcing.domain import Aggregate, event

from domain import ids
from domain.money import NO_REFUNDS, OrderMoney, Refund, Refunds, returned_goods
from domain.trigger import create


class Sale(Aggregate):
    class Made(Aggregate.Created):
        """Made directly (`Sale.make`, domain/trigger.py), as Order.Placed: every counter sale has one."""

        node: str
        sale_id: str
        member: str | None
        money: OrderMoney
        at: float

    @staticmethod
    def create_id(node: str, sale_id: str, **_: object) -> object:
        return ids.sale_id(node, sale_id)

    @classmethod
    def make(cls, node: str, sale_id: str, member: str | None, money: OrderMoney, at: float) -> "Sale":
        return create(cls, cls.Made, id=ids.sale_id(node, sale_id), node=node, sale_id=sale_id, member=member,
                      money=money, at=at)

    def __init__(self, node: str, sale_id: str, member: str | None, money: OrderMoney, at: float) -> None:
        self.node = node
        self.sale_id = sale_id
        self.member = member
        self.money = money
        self.made_at = at
        self.refunds = NO_REFUNDS  # shared until the first refund

    @property
    def kept(self) -> int:
        return self.money.paid - self.refunds.total

    def refund(self, refund_id: str, fingerprint: str, lines: dict[str, int], reason: str, at: float,
               return_to: str | None = None, write_off: bool = False) -> Refund | None:
        """Money back for goods sold here (no lines: all not yet refunded).
        None for a repeat of a refund already made (same id and request)."""
        if self.refunds.seen(refund_id, fingerprint):
            return None
        refund = returned_goods(self.money, self.money.lines_qty, self.refunds.returned, self.refunds.refunded, lines,
                                0, return_to, write_off)
        self._refunded(refund_id=refund_id, fingerprint=fingerprint, reason=reason, lines=refund.lines,
                       cash=refund.cash, points=refund.points, return_to=return_to, write_off=write_off, at=at)
        return refund

    @event("Refunded")
    def _refunded(self, refund_id: str, fingerprint: str, reason: str, lines: dict[str, int], cash: dict[str, int],
                  points: dict[str, int], return_to: str | None, write_off: bool, at: float) -> None:
        if self.refunds is NO_REFUNDS:
            self.refunds = Refunds()
        self.refunds.record(refund_id, fingerprint, lines, cash, points)
