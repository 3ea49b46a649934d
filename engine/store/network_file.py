"""Network files (JSON or TOML) decoded with msgspec into the typed, validated
structs of domain.network. A bad file gets an error naming the file, the
field and the reason. The format is described in docs/network.md."""
from __future__ import annotations

import re
from pathlib import Path

import msgspec

from domain.errors import InvalidInput
from domain.network import Network, validate

SAMPLE_NETWORK = Path(__file__).parent.parent / "data" / "sample-city.json"

_JSON = msgspec.json.Decoder(Network)


class NetworkFileError(InvalidInput):
    def __init__(self, path: Path | str, field: str, reason: str):
        super().__init__(field, reason)
        self.path = str(path)

    def __str__(self) -> str:
        return f"{self.path}: {self.field}: {self.reason}"


def load_network(path: Path | str) -> Network:
    """Reads, decodes and validates a .json or .toml network file; raises
    NetworkFileError (an InvalidInput) naming the file, field and reason."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise NetworkFileError(path, "$", f"unknown file type {suffix!r}: use .json or .toml")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise NetworkFileError(path, "$", f"cannot read the file ({e.strerror})") from None
    try:
        network = _JSON.decode(data) if suffix == ".json" else msgspec.toml.decode(data, type=Network)
        return validate(network)
    except msgspec.ValidationError as e:
        reason, _, field = str(e).partition(" - at ")
        raise NetworkFileError(path, _stock_field(data, suffix) if "[...]" in field else field.strip("`") or "$",
                               reason) from None
    except msgspec.DecodeError as e:
        raise NetworkFileError(path, "$", f"not valid {suffix[1:].upper()}: {_where(str(e), data)}") from None
    except InvalidInput as e:
        raise NetworkFileError(path, e.field, e.reason) from None


def _where(message: str, data: bytes) -> str:
    """msgspec.json names a byte offset; people look for a line and column."""
    m = re.search(r"\(byte (\d+)\)$", message)
    if m:
        at = int(m.group(1))
    elif message == "Input data was truncated":
        at = len(data.rstrip())
    else:
        return message  # TOML errors already give a line
    line = data.count(b"\n", 0, at) + 1
    column = at - (data.rfind(b"\n", 0, at) + 1) + 1
    return f"{message.split(' (byte')[0]} at line {line}, column {column}"


def _stock_field(data: bytes, suffix: str) -> str:
    """msgspec writes `$.stock[...][...]` for a bad value under a dict key;
    the stock table is the only dict in a network, so find the entry."""
    raw = msgspec.json.decode(data) if suffix == ".json" else msgspec.toml.decode(data)
    for node, lines in raw.get("stock", {}).items():
        if not isinstance(lines, dict):
            return f"$.stock.{node}"
        for sku, qty in lines.items():
            if type(qty) is not int or qty < 0:
                return f"$.stock.{node}.{sku}"
    return "$.stock"


def load_sample() -> Network:
    return load_network(SAMPLE_NETWORK)


def dump_network(network: Network, path: Path | str) -> None:
    Path(path).write_bytes(msgspec.json.format(msgspec.json.encode(network), indent=1) + b"\n")
