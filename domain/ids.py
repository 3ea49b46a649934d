"""Deterministic aggregate ids: the same business key always maps to the
same aggregate, which makes submission idempotent and lookups direct."""
from __future__ import annotations

from functools import lru_cache
from hashlib import sha1
from uuid import NAMESPACE_URL, UUID, SafeUUID, uuid5

_ROOT = uuid5(NAMESPACE_URL, "https://o2o-engine.dev/")
_ROOT_BYTES = _ROOT.bytes
_VERSION_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))  # the version and variant bits, as UUID(version=5) sets them
_VERSION_5 = (5 << 76) | (0x8000 << 48)
_new, _setattr, _from_bytes, _to_bytes = object.__new__, object.__setattr__, int.from_bytes, int.to_bytes


def _uuid(value: int) -> UUID:
    """UUID(int=value) without UUID.__init__'s checks and conversions: the
    version and variant bits are already in `value`."""
    u = _new(UUID)
    _setattr(u, "int", value)
    _setattr(u, "is_safe", SafeUUID.unknown)
    return u


def named(name: str) -> UUID:
    """`uuid5(_ROOT, name)`, made by `_uuid`, for the id made anew for every
    order (figures in benchmarks/README.md; tests/domain/test_ids.py checks
    that the two agree)."""
    return _uuid(_from_bytes(sha1(_ROOT_BYTES + name.encode()).digest()[:16]) & _VERSION_CLEAR | _VERSION_5)


def plain_hex(u: UUID) -> str:
    """`u.hex`: UUID formats the 128-bit int with `%`, several times dearer
    than the bytes' hex (once per order placed and per row stored: benchmarks/README.md)."""
    return _to_bytes(u.int, 16, "big").hex()


def text(u: UUID) -> str:
    """`str(u)`, from plain_hex."""
    return dashed(plain_hex(u))


def dashed(h: str) -> str:
    """`str(UUID(h))` of a UUID's 32 hex digits (as SQLite stores ids)."""
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@lru_cache(maxsize=65_536)  # asked for on every reservation: uuid5 is dear (a SHA-1 and a UUID)
def inventory_id(node_id: str) -> UUID:
    return uuid5(_ROOT, f"inventory/{node_id}")


# An order's id is a function of its name (the same order submitted twice is
# one aggregate), ordered by the digits its external id ends in: platforms'
# ids mostly rise with time, so a batch's orders share the store's index
# pages instead of dirtying one each (benchmarks/README.md, fourteenth round).
# The name splits into (channel, stem, last digits): a 68-bit hash of channel
# and stem, then the digits' count and value, in the bits a version-8 UUID
# leaves free, most significant first. A name not ending in a digit keeps the
# uuid5 every order id was before; orders stored under their uuid5 are found
# by name through engine.readmodels.orders.OrderView.stored_id.
_DIGITS = "0123456789"  # ASCII only: int() reads other scripts' digits too
_MAX_DIGITS = 15  # 10**15 < 2**50
_VERSION_8 = (8 << 76) | (0x8000 << 48)
_LOW_62 = (1 << 62) - 1


@lru_cache(maxsize=4_096)  # a channel's ids mostly share one stem (a prefix, a day): no SHA-1 per order
def _stem_bits(channel: str, stem: str) -> int:
    h = sha1(b"%s%d:%s%s" % (_ROOT_BYTES, len(c := channel.encode()), c, stem.encode())).digest()
    return (_from_bytes(h[:9], "big") >> 4) << 54  # 68 bits, above the digits' count and value


@lru_cache(maxsize=65_536)  # asked for several times per order as it is placed and routed
def order_id(channel: str, external_id: str) -> UUID:
    stem = external_id.rstrip(_DIGITS)
    n = len(external_id) - len(stem)
    if not n:
        return named(f"order/{channel}/{external_id}")
    if n > _MAX_DIGITS:
        stem, n = external_id[:-_MAX_DIGITS], _MAX_DIGITS
    p = _stem_bits(channel, stem) | n << 50 | int(external_id[-n:])  # 122 bits
    return _uuid((p >> 74) << 80 | ((p >> 62) & 0xFFF) << 64 | (p & _LOW_62) | _VERSION_8)


@lru_cache(maxsize=65_536)
def member_id(member: str) -> UUID:
    return uuid5(_ROOT, f"member/{member}")


def identity_id(kind: str, external_id: str) -> UUID:
    return uuid5(_ROOT, f"identity/{kind}/{external_id}")


def sale_id(node_id: str, sale_id: str) -> UUID:
    return uuid5(_ROOT, f"sale/{node_id}/{sale_id}")


BENEFIT_RULES_ID = uuid5(_ROOT, "benefit/rules")  # one rule book, its versions its events


@lru_cache(maxsize=65_536)  # a hand-over books on the same few parties' ledgers again and again
def ledger_id(party: str, period: str) -> UUID:
    return uuid5(_ROOT, f"ledger/{party}/{period}")


def partition_id(partition: str) -> UUID:
    return uuid5(_ROOT, f"partition/{partition}")


def hold_id(quote_id: str) -> UUID:
    return uuid5(_ROOT, f"hold/{quote_id}")
