"""The stores' internet POS: counter sales, member sign-ups at the till and
refunds of counter sales, in our own JSON (POS vendors differ; this is the
contract a till integration writes to, docs/channels.md).

In: a JSON POST of one event, or `{"events": [...]}` (up to 500: a till that
was offline uploads its sales late; each carries its own `sold_at`). Signed
like Stripe's webhooks: `X-O2o-Timestamp` (epoch seconds) and
`X-O2o-Signature` = hex HMAC-SHA256 of `<timestamp>.<raw body>` keyed with the
channel's secret; a timestamp outside the replay window is refused. Events:
`sale` -> SellOverCounter (`sold_at` -> UTC), `signup` -> SignUpMember (via
pos), `refund` -> RefundSale. Prices are decimal strings in the currency's
major unit. Answer `{"ok": true, "accepted": n}`; a refusal `{"ok": false,
"error": ...}`. Nothing goes back: the till is the node.
"""
from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal
from typing import Any

import msgspec

from adapters.channels.base import (Answer, Channel, Intake, Push, Refusal, answer_json, check_fresh, decode_json,
                                    epoch, key, local_time, settle)
from domain.commands import Line, RefundSale, ReturnLine, SellOverCounter, SignUpMember

MAX_EVENTS = 500


class PosLine(msgspec.Struct, forbid_unknown_fields=True):
    item: str
    qty: int
    price: Decimal | None = None
    discount: Decimal = Decimal(0)


class Sale(msgspec.Struct, tag="sale", forbid_unknown_fields=True):
    store: str
    sale_id: str
    lines: list[PosLine]
    sold_at: str | None = None
    member: str | None = None
    paid: Decimal | None = None


class Signup(msgspec.Struct, tag="signup", forbid_unknown_fields=True):
    store: str
    member: str
    clerk: str | None = None
    phone: str | None = None


class Return(msgspec.Struct, tag="refund", forbid_unknown_fields=True):
    store: str
    sale_id: str
    refund_id: str
    reason: str
    lines: list[PosLine] = []
    write_off: bool = False


Event = Sale | Signup | Return


class Batch(msgspec.Struct, forbid_unknown_fields=True):
    events: list[Event]


def signature(timestamp: str, body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class Pos(Channel):
    kind = "pos"

    def verify(self, push: Push) -> None:
        stamp = push.headers.get("X-O2o-Timestamp", "")
        given = push.headers.get("X-O2o-Signature", "")
        if not stamp or not given:
            raise Refusal("signature", "X-O2o-Signature: missing", 401)
        if not hmac.compare_digest(given.lower().encode(), signature(stamp, push.body, self.secret).encode()):
            raise Refusal("signature", "X-O2o-Signature: does not match", 401)
        check_fresh(epoch(stamp, "X-O2o-Timestamp"), push.received_at, self.settings.replay_window_s,
                    "X-O2o-Timestamp")

    async def parse(self, push: Push, http: Any = None) -> list[Intake]:
        body = push.body.lstrip()
        if body.startswith(b'{"events"'):
            events = decode_json(body, "$", Batch).events
            if len(events) > MAX_EVENTS:
                raise Refusal("malformed", f"$.events: at most {MAX_EVENTS} in one upload")
            paths = [f"$.events[{i}]" for i in range(len(events))]
        else:
            events, paths = [decode_json(body, "$", Event)], ["$"]
        return [self._one(e, where) for e, where in zip(events, paths)]

    def _one(self, e: Event, where: str) -> Intake:
        catalog = self.catalog
        node = catalog.node(e.store, f"{where}.store")
        if isinstance(e, Signup):
            member = key(e.member, f"{where}.member")
            return Intake(SignUpMember(member=member, node=node, via="pos", clerk=e.clerk, phone=e.phone),
                          f"{self.name}:signup:{member}")
        sale_id = key(e.sale_id, f"{where}.sale_id")
        if isinstance(e, Return):
            refund_id = key(e.refund_id, f"{where}.refund_id")
            lines = [ReturnLine(sku=catalog.sku(ln.item, f"{where}.lines[{i}].item"), qty=ln.qty)
                     for i, ln in enumerate(e.lines)]
            return Intake(RefundSale(node=node, sale_id=sale_id, refund_id=refund_id, reason=e.reason[:500],
                                     lines=lines, write_off=e.write_off),
                          f"{self.name}:refund:{node}:{sale_id}:{refund_id}")
        lines = []
        for i, ln in enumerate(e.lines):
            at = f"{where}.lines[{i}]"
            unit = catalog.minor(ln.price, f"{at}.price") if ln.price is not None else None
            lines.append(Line(sku=catalog.sku(ln.item, f"{at}.item"), qty=ln.qty, unit_price=unit,
                              discount=catalog.minor(ln.discount, f"{at}.discount")))
        paid = catalog.minor(e.paid, f"{where}.paid") if e.paid is not None else None
        discounts, _, paid = settle(lines, 0, paid) if all(ln.unit_price is not None for ln in lines) else ([], 0, paid)
        sold_at = local_time(e.sold_at, self.settings.timezone_hours, f"{where}.sold_at") if e.sold_at else None
        cmd = SellOverCounter(node=node, sale_id=sale_id, lines=lines, discounts=discounts, paid=paid,
                              member=key(e.member, f"{where}.member") if e.member else None, sold_at=sold_at)
        return Intake(cmd, f"{self.name}:sale:{node}:{sale_id}")

    def is_probe(self, push: Push) -> bool:
        return push.method == "GET"

    def ok(self, push: Push) -> Answer:
        return answer_json({"ok": True})

    def refuse(self, refusal: Refusal) -> Answer:
        return answer_json({"ok": False, "error": refusal.reason}, refusal.status)
