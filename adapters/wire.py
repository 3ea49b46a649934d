"""The wire: JSON by default, MessagePack when the request asks for it in
a header; decode errors and domain errors become error replies that name
the field. This is the one place errors are mapped to codes."""
from __future__ import annotations

import re
from typing import Any

import msgspec

from domain.errors import DomainError

FORMAT_HEADER = "Content-Type"
MSGPACK = "application/msgpack"
JSON = "application/json"
MAX_PAYLOAD = 1024 * 1024  # bytes; larger requests get 400 without being decoded

_json = msgspec.json.Encoder()
_msgpack = msgspec.msgpack.Encoder()
_decoders: dict[tuple[type, str], Any] = {}


class WireError(Exception):
    """An error reply: code (400, 404, 409, 503) and a message naming the field."""

    def __init__(self, code: int, description: str):
        super().__init__(description)
        self.code = code
        self.description = description


def wants_msgpack(headers: dict[str, str] | None) -> bool:
    return bool(headers) and headers.get(FORMAT_HEADER, "").lower() == MSGPACK


def decode(data: bytes, type_: type, msgpack: bool = False) -> Any:
    if len(data) > MAX_PAYLOAD:
        raise WireError(400, f"$: payload of {len(data)} bytes exceeds the limit of {MAX_PAYLOAD} bytes")
    key = (type_, "msgpack" if msgpack else "json")
    dec = _decoders.get(key)
    if dec is None:
        dec = (msgspec.msgpack.Decoder if msgpack else msgspec.json.Decoder)(type_)
        _decoders[key] = dec
    try:
        return dec.decode(data)
    except msgspec.ValidationError as e:
        raise WireError(400, _field_first(str(e))) from None
    except msgspec.DecodeError as e:
        raise WireError(400, f"$: not valid {'MessagePack' if msgpack else 'JSON'} ({e})") from None


def encode(obj: Any, msgpack: bool = False) -> bytes:
    return _msgpack.encode(obj) if msgpack else _json.encode(obj)


def encode_into(obj: Any, buffer: bytearray) -> None:
    """JSON into `buffer` (replacing what it held): a reused buffer spares a bytes object per message."""
    _json.encode_into(obj, buffer)


def _field_first(message: str) -> str:
    """'Expected `int` >= 1 - at `$.lines[0].qty`' -> '$.lines[0].qty: expected int >= 1'."""
    m = re.match(r"^(.*) - at `(.*)`$", message)
    path, reason = (m.group(2), m.group(1)) if m else ("$", message)
    missing = re.match(r"^Object missing required field `(.*)`$", reason)
    if missing:
        return f"{path}.{missing.group(1)}: required field is missing"
    if not m:
        return f"$: {message}"
    reason = m.group(1).replace("`", "")
    return f"{m.group(2)}: {reason[:1].lower()}{reason[1:]}"


def from_exception(e: BaseException) -> WireError:
    if isinstance(e, WireError):
        return e
    if isinstance(e, DomainError):
        field = e.field if e.field.startswith("$") else f"$.{e.field}"
        return WireError(e.code, f"{field}: {e.reason}")
    return WireError(500, f"internal error: {type(e).__name__}")
