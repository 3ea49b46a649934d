"""Domain errors. Each names the field or entity and the reason; the engine
maps them to replies in one place (400 / 404 / 409)."""
from __future__ import annotations


class DomainError(Exception):
    code = 400

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class InvalidInput(DomainError):
    """The command itself is malformed (bad quantity, missing field)."""

    code = 400


class NotFound(DomainError):
    """An unknown node, SKU, order or member."""

    code = 404


class Conflict(DomainError):
    """Valid input that the current state forbids (cancel after hand-over,
    reserve beyond ATP, redeem more points than held)."""

    code = 409
