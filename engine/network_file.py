"""Network files (JSON or TOML) decoded with msgspec into the typed, validated
structs of domain.network. A bad file gets an error naming the file, the
field and the reason."""
from __future__ import annotations

from pathlib import Path

import msgspec

from domain.errors import InvalidInput
from domain.network import Network, validate

SAMPLE_NETWORK = Path(__file__).parent / "data" / "sample-city.json"


class NetworkFileError(InvalidInput):
    def __init__(self, path: Path | str, field: str, reason: str):
        super().__init__(field, reason)
        self.path = str(path)

    def __str__(self) -> str:
        return f"{self.path}: {self.field}: {self.reason}"


def load_network(path: Path | str) -> Network:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise NetworkFileError(path, "$", f"cannot read the file ({e.strerror})") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            network = msgspec.json.decode(data, type=Network)
        elif suffix == ".toml":
            network = msgspec.toml.decode(data, type=Network)
        else:
            raise NetworkFileError(path, "$", f"unknown file type {suffix!r}: use .json or .toml")
        return validate(network)
    except msgspec.ValidationError as e:
        message = str(e)
        field = message.rsplit(" - at ", 1)[1].strip("`") if " - at " in message else "$"
        raise NetworkFileError(path, field, message.split(" - at ")[0]) from None
    except msgspec.DecodeError as e:
        raise NetworkFileError(path, "$", f"not valid {suffix[1:].upper()}: {e}") from None
    except InvalidInput as e:
        if isinstance(e, NetworkFileError):
            raise
        raise NetworkFileError(path, e.field, e.reason) from None


def load_sample() -> Network:
    return load_network(SAMPLE_NETWORK)


def dump_network(network: Network, path: Path | str) -> None:
    Path(path).write_bytes(msgspec.json.format(msgspec.json.encode(network), indent=1) + b"\n")
