"""Quantities: the rules every aggregate and the engine share about them,
each written once."""
from __future__ import annotations

from typing import Any

from domain.errors import InvalidInput


def require_positive(value: Any, field: str) -> None:
    """A positive integer (bool is not one)."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidInput(field, f"must be a positive integer, got {value!r}")


def check_lines(lines: dict[str, int], field: str = "lines", empty: str = "at least one line is required") -> None:
    """SKU -> quantity, at least one line, every quantity positive."""
    if not lines:
        raise InvalidInput(field, empty)
    for sku, qty in lines.items():
        # a plain int above 0 passes at once (three checks per order placed); anything else is
        # require_positive's to judge, its field named only then
        if qty.__class__ is not int or qty <= 0:
            require_positive(qty, f"{field}.{sku}.qty")


# No lines, shared by every order with none pending or shorted (a dict each took memory per
# order held): lines are replaced, never changed in place (merge_lines makes a new dict)
NO_LINES: dict[str, int] = {}


def merge_lines(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """Both sets of lines in one, quantities of a SKU in both added up."""
    out = dict(a)
    for sku, qty in b.items():
        out[sku] = out.get(sku, 0) + qty
    return out


def available(on_hand: Any, reserved: Any, safety: Any) -> Any:
    """ATP before the floor at zero: on hand - reserved - safety stock (ints or numpy arrays)."""
    return on_hand - reserved - safety
