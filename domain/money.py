"""Money: integer minor units of the network's currency (fen for CNY),
never floats. What an order or a counter sale was paid, line by line, and
the two rules that share an amount out exactly.

- `allocate` shares a total over weights by the largest-remainder method:
  each part gets the floor of its exact share, and the units left over go
  one each to the largest remainders, ties to the earlier part. The parts
  always add up to the total.
- `portion` is what `qty` units of what is left of a line come to: the
  exact share rounded half to even, and all that is left when the units
  are the last ones, so refunds of a line in any steps add up to the line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from msgspec import Struct

from domain.errors import Conflict, InvalidInput, NotFound


class LineMoney(Struct, frozen=True, array_like=True, gc=False):  # ints only: no cycles, no GC tracking
    """One SKU's line of an order or a sale (lines of the same SKU merged)."""

    qty: int
    gross: int  # unit price x quantity
    discount: int  # the line's own discounts
    order_discount: int  # its share of the order's discounts
    points: int  # its share of the points used (points, not money)
    points_value: int  # its share of what those points took off
    paid: int  # cash: gross - discount - order_discount - points_value


class OrderMoney(Struct, frozen=True, gc=False):  # holds LineMoney only: no cycles
    """What the customer paid, as recorded when the order was placed (or the sale made)."""

    currency: str
    lines: dict[str, LineMoney]
    discounts: int = 0  # order-level, shared out over the lines
    delivery_fee: int = 0  # not shared out: no line's, and never a base for points or benefit
    points_used: int = 0
    points_value: int = 0
    paid: int = 0  # the lines' cash + the delivery fee

    @property
    def lines_qty(self) -> dict[str, int]:
        return {sku: line.qty for sku, line in self.lines.items()}

    @property
    def goods(self) -> int:
        """The lines' cash (what was paid for goods)."""
        return sum(line.paid for line in self.lines.values())


def to_minor(amount: float, minor_units: int) -> int:
    """A price in the major unit (as a network file writes it) in minor units, rounded half up."""
    return int(Decimal(str(amount)).scaleb(minor_units).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def allocate(total: int, weights: list[int]) -> list[int]:
    """`total` shared over `weights` by the largest remainder; equal shares if every weight is 0."""
    if not weights:
        return []
    if total == 0:
        return [0] * len(weights)
    if sum(weights) <= 0:
        weights = [1] * len(weights)
    whole = sum(weights)
    parts, remainders = [], []
    for w in weights:  # integers only: total * w / whole as a floor and a remainder
        q, r = divmod(total * w, whole)
        parts.append(q)
        remainders.append(r)
    left = total - sum(parts)
    for i in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        parts[i] += 1
    return parts


def divide(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half to even, in integers (denominator > 0)."""
    q, r = divmod(numerator, denominator)
    if 2 * r > denominator or (2 * r == denominator and q % 2):
        q += 1
    return q


def portion(amount_left: int, qty_left: int, qty: int) -> int:
    """What `qty` of the `qty_left` units still held come to, of `amount_left`."""
    if qty >= qty_left:
        return amount_left
    return divide(amount_left * qty, qty_left)


def price(lines: list, list_price: dict[str, int], currency: str, discounts: int = 0, delivery_fee: int = 0,
          points_used: int = 0, points_value: int = 0, paid: int | None = None) -> OrderMoney:
    """The money of an order or sale from its wire lines (sku, qty, unit_price
    or None for the price list, discount): order discounts, points used and
    their value shared over the lines (largest remainder by what each line
    still costs), checked to add up to `paid` when that is given. Raises
    InvalidInput naming the field."""
    if not discounts and not points_used and not points_value:  # most orders: nothing to share out
        return _undiscounted(lines, list_price, currency, delivery_fee, paid)
    merged: dict[str, list[int]] = {}  # sku -> [qty, gross, discount]
    for k, line in enumerate(lines):
        unit = list_price[line.sku] if line.unit_price is None else line.unit_price
        gross = unit * line.qty
        if line.discount > gross:
            raise InvalidInput(f"lines[{k}].discount", f"{line.discount} is more than the line's {gross}")
        m = merged.get(line.sku)
        if m is None:
            merged[line.sku] = [line.qty, gross, line.discount]
        else:
            m[0] += line.qty
            m[1] += gross
            m[2] += line.discount
    after_line = [m[1] - m[2] for m in merged.values()]
    goods = sum(after_line)
    if discounts > goods:
        raise InvalidInput("discounts", f"{discounts} off is more than the lines' {goods}")
    if points_value and not points_used:
        raise InvalidInput("points_value", "points took money off, but points_used is 0")
    order_share = allocate(discounts, after_line)
    after_order = [a - d for a, d in zip(after_line, order_share)]
    goods = sum(after_order)
    if points_value > goods:
        raise InvalidInput("points_value", f"{points_value} is more than the goods' {goods} after discounts")
    value_share = allocate(points_value, after_order)
    points_share = allocate(points_used, after_order)
    goods -= points_value
    out = {s: LineMoney(m[0], m[1], m[2], od, pts, pv, a - pv) for (s, m), od, pts, pv, a
           in zip(merged.items(), order_share, points_share, value_share, after_order)}
    total = goods + delivery_fee
    if paid is not None and paid != total:
        _not_paid(paid, out, discounts, points_value, delivery_fee, total)
    return OrderMoney(currency=currency, lines=out, discounts=discounts, delivery_fee=delivery_fee,
                      points_used=points_used, points_value=points_value, paid=total)


def _undiscounted(lines: list, list_price: dict[str, int], currency: str, delivery_fee: int,
                  paid: int | None) -> OrderMoney:
    """price() of lines with no order discount and no points, in one pass (a
    LineMoney made per line, merged again where a SKU comes back): the same
    money, checks and errors, for about half the instructions."""
    out: dict[str, LineMoney] = {}
    goods = 0
    for k, line in enumerate(lines):
        sku, qty, discount = line.sku, line.qty, line.discount
        gross = (list_price[sku] if line.unit_price is None else line.unit_price) * qty
        if discount > gross:
            raise InvalidInput(f"lines[{k}].discount", f"{discount} is more than the line's {gross}")
        cash = gross - discount if discount else gross  # the same int, not an equal one more held per line
        goods += cash
        m = out.get(sku)
        out[sku] = LineMoney(qty, gross, discount, 0, 0, 0, cash) if m is None else LineMoney(
            m.qty + qty, m.gross + gross, m.discount + discount, 0, 0, 0, m.paid + cash)
    total = goods + delivery_fee
    if paid is not None and paid != total:
        _not_paid(paid, out, 0, 0, delivery_fee, total)
    return OrderMoney(currency, out, 0, delivery_fee, 0, 0, total)


def _not_paid(paid: int, lines: dict[str, LineMoney], discounts: int, points_value: int, delivery_fee: int,
              total: int) -> None:
    gross, line_off = sum(m.gross for m in lines.values()), sum(m.discount for m in lines.values())
    raise InvalidInput("paid", f"{paid} does not add up: lines {gross} - line discounts {line_off} - order "
                               f"discounts {discounts} - points {points_value} + delivery {delivery_fee} = {total}")


class Refund(Struct, frozen=True):
    """What a refund of some units of some lines gives back, per SKU."""

    lines: dict[str, int]  # sku -> units
    cash: dict[str, int]  # sku -> money
    points: dict[str, int]  # sku -> points used on them, returned
    delivery_fee: int = 0

    @property
    def total(self) -> int:
        return sum(self.cash.values()) + self.delivery_fee


def refund_of(money: OrderMoney, returned: dict[str, int], refunded: dict[str, list[int]], lines: dict[str, int],
              delivery_fee: int = 0) -> Refund:
    """The cash and points `lines` (sku -> units) give back, given what was
    already returned (sku -> units) and refunded (sku -> [cash, points])."""
    cash, points = {}, {}
    for sku, qty in lines.items():
        line = money.lines[sku]
        left = line.qty - returned.get(sku, 0)
        done_cash, done_points = refunded.get(sku, (0, 0))
        cash[sku] = portion(line.paid - done_cash, left, qty)
        points[sku] = portion(line.points - done_points, left, qty)
    return Refund(lines=dict(lines), cash=cash, points=points, delivery_fee=delivery_fee)


def returned_goods(money: OrderMoney, held: dict[str, int], returned: dict[str, int],
                   refunded: dict[str, list[int]], lines: dict[str, int], fee_left: int,
                   return_to: str | None, write_off: bool, shorted: dict[str, int] | None = None) -> Refund:
    """A refund of goods the customer holds (`held`: sku -> units handed
    over): of `lines` (sku -> units), or, with no lines, of all still held
    and what is left of the delivery fee. The goods come back to a node or
    are written off. `returned` counts units refunded, including `shorted`
    ones never handed over. Raises naming the field."""
    if not return_to and not write_off:
        raise InvalidInput("return_to", "goods handed over come back to a node (return_to) or are written off")
    if return_to and write_off:
        raise InvalidInput("write_off", "either return_to a node or write_off, not both")
    shorted = shorted or {}
    left = {sku: q - returned.get(sku, 0) + shorted.get(sku, 0) for sku, q in held.items()}
    if not lines:
        lines = {sku: q for sku, q in left.items() if q > 0}
        if not lines and fee_left <= 0:
            raise Conflict("lines", "everything was already refunded")
        return refund_of(money, returned, refunded, lines, fee_left)
    for k, (sku, qty) in enumerate(lines.items()):
        if sku not in money.lines:
            raise NotFound(f"lines[{k}].sku", f"no line of {sku!r} to refund")
        if qty > left.get(sku, 0):
            raise Conflict(f"lines[{k}].qty", f"{left.get(sku, 0)} of {sku} held and not yet refunded")
    return refund_of(money, returned, refunded, lines, 0)


@dataclass
class Refunds:
    """What was refunded of an order's or a sale's money, and under which refund ids."""

    returned: dict[str, int] = field(default_factory=dict)  # sku -> units
    refunded: dict[str, list[int]] = field(default_factory=dict)  # sku -> [cash, points]
    delivery_fee: int = 0
    ids: dict[str, str] = field(default_factory=dict)  # refund id -> the request's fingerprint

    @property
    def total(self) -> int:
        return sum(cash for cash, _ in self.refunded.values()) + self.delivery_fee

    def seen(self, refund_id: str, fingerprint: str) -> bool:
        """A repeat of a refund already made; another request under its id is a conflict."""
        if refund_id not in self.ids:
            return False
        if self.ids[refund_id] != fingerprint:
            raise Conflict("refund_id", f"refund {refund_id} was already made with another request")
        return True

    def record(self, refund_id: str, fingerprint: str, lines: dict[str, int], cash: dict[str, int],
               points: dict[str, int], delivery_fee: int = 0) -> None:
        self.ids[refund_id] = fingerprint
        for sku, qty in lines.items():
            self.returned[sku] = self.returned.get(sku, 0) + qty
            done = self.refunded.setdefault(sku, [0, 0])
            done[0] += cash.get(sku, 0)
            done[1] += points.get(sku, 0)
        self.delivery_fee += delivery_fee


NO_REFUNDS = Refunds()  # what an order without refunds shares; never recorded into
