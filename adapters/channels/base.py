"""What every channel adapter is: one interface the gateway drives, and the
conversions they share (money to minor units exactly, local times to UTC,
the shop and item maps).

A push goes through it in this order: `verify` on the raw bytes (signature,
replayed timestamp), `parse` into our commands (each with its JetStream
de-duplication key), then the gateway publishes them and answers with `ok`;
anything refused on the way becomes a `Refusal`, answered with `refuse` in the
platform's own words. The other way, `call_for` turns one of our order events
into a call the platform expects (confirm, cancel with its reason code,
ready, delivered) and `request_for` builds that call, signed at the moment it
is sent; `call_succeeded` reads the platform's answer.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Mapping

import msgspec

from domain.commands import Command, Discount, Line
from domain.network import Network


_KEY = re.compile(r"[A-Za-z0-9_.:@-]{1,100}")


class Refusal(Exception):
    """A push refused: `why` is what is counted (signature, replay, too_large,
    malformed, unmapped), `reason` names the field; `status` the HTTP code."""

    def __init__(self, why: str, reason: str, status: int = 400):
        super().__init__(f"{why}: {reason}")
        self.why = why
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Push:
    """A webhook as it arrived."""

    method: str
    url: str  # as the platform called it (the configured public URL + path + query)
    tail: str  # the path after /hooks/<channel>/ ("order", "cancel", ...), "" for the channel's root
    headers: Mapping[str, str]  # case-insensitive
    body: bytes
    query: Mapping[str, str]
    received_at: float  # epoch seconds
    parsed: dict[str, Any] = field(default_factory=dict)  # what an adapter decoded in verify, for parse


@dataclass(frozen=True)
class Intake:
    """One of our commands, and the key JetStream de-duplicates it by."""

    cmd: Command
    msg_id: str


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"


@dataclass(frozen=True)
class OrderEvent:
    """One of our order events, for a channel's order (`kind`: routed,
    accepted, declined, rejected, ready, dispatched, delivered, collected,
    cancelled)."""

    kind: str
    external_id: str
    mode: str = "delivery"
    reason: str = ""
    node: str = ""
    by_platform: bool = False  # a cancel the platform itself sent us: nothing to tell it


class Call(msgspec.Struct, frozen=True):
    """A call owed to a platform, as kept in the outbox until it is made."""

    action: str  # confirm, cancel, ready, delivering, delivered
    external_id: str
    args: dict[str, Any] = {}


@dataclass(frozen=True)
class HttpCall:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def answer_json(obj: Any, status: int = 200) -> Answer:
    return Answer(status, json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode())


class Catalog:
    """The shop-id -> node and item-code -> SKU maps of a channel, checked
    against the network: an unknown shop or item is a clear refusal."""

    def __init__(self, network: Network, shops: Mapping[str, str] | None = None,
                 items: Mapping[str, str] | None = None, where: str = "channel"):
        self.nodes = {n.id for n in network.nodes}
        self.skus = {s.id for s in network.skus}
        self.currency = network.currency
        self.minor_units = network.minor_units
        self.shops = dict(shops) if shops is not None else None
        self.items = dict(items) if items is not None else None
        for shop, node in (self.shops or {}).items():
            if node not in self.nodes:
                raise ValueError(f"{where}.shops[{shop!r}]: unknown node {node!r}")
        for item, sku in (self.items or {}).items():
            if sku not in self.skus:
                raise ValueError(f"{where}.items[{item!r}]: unknown SKU {sku!r}")

    def node(self, shop: Any, where: str) -> str:
        return _look_up(self.shops, self.nodes, shop, where, "shop")

    def sku(self, item: Any, where: str) -> str:
        return _look_up(self.items, self.skus, item, where, "item")

    def minor(self, amount: Any, where: str, unit: str = "major") -> int:
        """An amount in the currency's major unit (yuan, a decimal string or
        number) or already in minor units (fen), as an exact integer."""
        return to_minor(amount, self.minor_units, where, unit)


def _look_up(mapping: dict[str, str] | None, known: set[str], code: Any, where: str, what: str) -> str:
    """A platform's code through its map (none: the same id) to one of ours, or an unmapped refusal."""
    code = str(code)
    ours = code if mapping is None else mapping.get(code)
    if ours is None or ours not in known:
        raise Refusal("unmapped", f"{where}: unknown {what} {code!r}")
    return ours


def read_map(path: str | None, where: str) -> dict[str, str] | None:
    """A map file: a JSON object or a TOML table of strings (platform id -> ours)."""
    if path is None:
        return None
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ValueError(f"{where}: cannot read {path} ({e.strerror})") from None
    try:
        if p.suffix == ".toml":
            import tomllib
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
        return msgspec.convert(data, dict[str, str])
    except (ValueError, msgspec.ValidationError) as e:
        raise ValueError(f"{where}: {path} is not a map of strings to strings ({e})") from None


def to_minor(amount: Any, minor_units: int, where: str, unit: str = "major") -> int:
    """Exact conversion: Decimal from the text, never a float's binary value."""
    if isinstance(amount, bool) or amount is None:
        raise Refusal("malformed", f"{where}: expected an amount, got {amount!r}")
    try:
        d = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    except InvalidOperation:
        raise Refusal("malformed", f"{where}: not an amount: {amount!r}") from None
    if not d.is_finite():
        raise Refusal("malformed", f"{where}: not an amount: {amount!r}")
    if unit == "major":
        d = d.scaleb(minor_units)
    if d != d.to_integral_value():
        raise Refusal("malformed", f"{where}: {amount} has a fraction of the smallest unit")
    if d < 0:
        raise Refusal("malformed", f"{where}: must not be negative, got {amount}")
    return int(d)


def settle(lines: list[Line], fees: int, paid: int | None) -> tuple[list[Discount], int, int | None]:
    """Order discounts, delivery fee and paid so that they add up as the
    engine checks (paid = lines - line discounts - order discounts + fee):
    what the platform took off besides the lines' own discounts is one
    order discount; if the customer paid more than that allows (a tax or a
    fee our contract has no field for), `paid` is left out."""
    goods = sum((ln.unit_price or 0) * ln.qty - ln.discount for ln in lines)
    if paid is None:
        return [], fees, None
    off = goods + fees - paid
    if off < 0 or off > goods:
        return [], fees, None
    return ([Discount(amount=off, code="platform")] if off else []), fees, paid


CHINA = timezone(timedelta(hours=8))


def local_time(text: Any, hours: float, where: str) -> float:
    """A naive local time ("2024-06-10 14:13:20" or ISO) at a fixed offset, or
    an ISO time with its own offset, as UTC epoch seconds."""
    if not isinstance(text, str) or not text:
        raise Refusal("malformed", f"{where}: expected a time, got {text!r}")
    try:
        t = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        raise Refusal("malformed", f"{where}: not a time: {text!r}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone(timedelta(hours=hours)))
    return t.timestamp()


def epoch(value: Any, where: str) -> float:
    """Epoch seconds (or milliseconds, told apart by size) as seconds."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise Refusal("malformed", f"{where}: not a timestamp: {value!r}") from None
    if not 0 <= v < 1e14:  # NaN and infinities fail this too
        raise Refusal("malformed", f"{where}: not a timestamp: {value!r}")
    return v / 1000.0 if v > 1e11 else v


def check_fresh(at: float, now: float, window_s: float, where: str) -> None:
    if window_s and abs(now - at) > window_s:
        raise Refusal("replay", f"{where}: timestamp {at:.0f} is {now - at:+.0f} s from now (window {window_s:g} s)",
                      401)


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def promise_minutes(deliver_at: float | None, now: float) -> int | None:
    """A scheduled delivery time as the contract's promise, in minutes from now."""
    if not deliver_at:
        return None
    minutes = int((deliver_at - now + 59) // 60)
    return min(max(minutes, 5), 7 * 1440)


SCHEDULED_WINDOW_MINUTES = 30  # a platform's scheduled delivery time ends a window this long


def delivery_window(deliver_at: float | None, now: float) -> dict[str, datetime]:
    """A pre-order's delivery time as the submit's window (handed over in the
    half hour up to it), booked by the engine for that slot; nothing for an
    order as soon as possible or a time already past."""
    if not deliver_at or deliver_at <= now:
        return {}
    end = datetime.fromtimestamp(deliver_at, timezone.utc)
    return {"window_start": end - timedelta(minutes=SCHEDULED_WINDOW_MINUTES), "window_end": end}


class Channel:
    """The interface (and the shared parts) of a channel adapter."""

    kind = ""
    dedup_header: str | None = None  # a header that names the push itself (Shopify's webhook id)

    def __init__(self, name: str, settings: Any, catalog: Catalog, secret: str = "", token: str = "",
                 clock: Callable[[], float] | None = None):
        self.name = name
        self.settings = settings
        self.catalog = catalog
        self.secret = secret
        self.token = token
        self.clock = clock or time.time

    def __repr__(self) -> str:  # never the secret
        return f"<{type(self).__name__} {self.name}>"

    # -- in -------------------------------------------------------------
    def is_probe(self, push: Push) -> bool:
        """A heartbeat or URL check: answered ok, nothing published."""
        return push.method == "GET"

    def verify(self, push: Push) -> None:
        raise NotImplementedError

    async def parse(self, push: Push, http: Any) -> list[Intake]:
        """Our commands; `http` (an aiohttp session) for channels whose push is thin."""
        raise NotImplementedError

    def ok(self, push: Push) -> Answer:
        raise NotImplementedError

    def refuse(self, refusal: Refusal) -> Answer:
        raise NotImplementedError

    # -- out ------------------------------------------------------------
    ACTIONS: Mapping[str, str] = {}  # our event kind -> the platform call's action
    REASONS: Mapping[str, Any] = {}  # a keyword of our reason -> the platform's reason code
    DEFAULT_REASON: Any = None

    def call_for(self, event: OrderEvent) -> Call | None:
        """The call our event owes the platform, if any (a cancel the platform sent us owes none)."""
        action = self.ACTIONS.get(event.kind)
        if action is None or (event.kind == "cancelled" and event.by_platform):
            return None
        args: dict[str, Any] = {}
        if action == "cancel":
            args = {"reason_code": reason_code(event.reason, self.REASONS, self.DEFAULT_REASON),
                    "reason": event.reason[:100]}
        return Call(action=action, external_id=event.external_id, args=args)

    def request_for(self, call: Call) -> HttpCall:
        raise NotImplementedError

    def call_succeeded(self, status: int, body: bytes) -> bool:
        return 200 <= status < 300


def reason_code(reason: str, codes: Mapping[str, Any], default: Any) -> Any:
    """Our reason text (a rejection's, a cancel's) -> the platform's code, by keyword."""
    text = reason.lower()
    for word, code in codes.items():
        if word in text:
            return code
    return default


def decode_json(raw: bytes | str, where: str, type_: Any = Any) -> Any:
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as e:
        raise Refusal("malformed", f"{where}: {e}") from None
    except msgspec.DecodeError as e:
        raise Refusal("malformed", f"{where}: not JSON ({e})") from None


def need(f: Mapping[str, Any], name: str) -> Any:
    value = f.get(name)
    if value is None or value == "":
        raise Refusal("malformed", f"{name}: required field is missing")
    return value


def key(value: Any, name: str = "id") -> str:
    """A platform id as our Key (ids stay strings: Chinese platforms' exceed 2^53)."""
    text = str(value)
    if isinstance(value, (bool, float)) or not _KEY.fullmatch(text):
        raise Refusal("malformed", f"{name}: not an id: {text[:40]!r}")
    return text


def ident(f: Mapping[str, Any], name: str) -> str:
    return key(need(f, name), name)


def coordinate(f: Mapping[str, Any], name: str, limit: float = 180.0) -> float:
    try:
        v = float(need(f, name))
    except (TypeError, ValueError):
        raise Refusal("malformed", f"{name}: not a number") from None
    if v != v or abs(v) > limit:
        raise Refusal("malformed", f"{name}: out of range")
    return v
