"""Benefit sharing as it stands: the rule book's versions, every credited
line a refund may reverse (with what is left of it), and each party's
statement per period (its lines, their total, its payment); the opening
balance a statement carries is derived from the party's statements before
(only a negative balance carries). Fed by BenefitRules and PartyLedger events."""
from __future__ import annotations

from bisect import insort
from typing import Any, Callable
from uuid import UUID

import msgspec

from domain.benefit import BenefitRules, LedgerLine, PartyLedger


class CreditRecord(msgspec.Struct):
    base: int = 0  # what the line was credited on
    roles: dict[str, list[Any]] = {}  # role -> [party, amount, bp, version, period]
    reversed: dict[str, int] = {}  # role -> amount taken back
    reversed_base: int = 0
    sources: list[str] = []  # what booked it (and its reversals), each counted once in the bases


class Statement(msgspec.Struct):
    party: str
    period: str
    lines: list[LedgerLine] = []
    total: int = 0
    paid: int = 0
    paid_at: float | None = None
    reference: str | None = None


class BenefitView:
    def __init__(self) -> None:
        self.versions: list[Any] = []
        self.closed: list[str] = []
        self.credits: dict[tuple[str, str], CreditRecord] = {}  # (purchase, sku)
        self.statements: dict[tuple[str, str], Statement] = {}  # (party, period)
        self.periods: dict[str, list[str]] = {}  # party -> the periods it has statements in, in order
        self.credited: dict[str, int] = {}  # purchase -> credited in all (what a cap per order counts)
        self._ledgers: dict[UUID, tuple[str, str]] = {}

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        return {BenefitRules.Opened: lambda e: None, BenefitRules.Published: self._published,
                BenefitRules.PeriodClosed: lambda e: self.closed.append(e.period),
                PartyLedger.Opened: self._opened, PartyLedger.Booked: self._booked,
                PartyLedger.LinesBooked: self._booked_lines, PartyLedger.Paid: self._paid}

    def opening(self, party: str, period: str) -> int:
        """The balance carried into `period`: the statement before's closing, when negative."""
        carry = 0
        for p in self.periods.get(party, ()):
            if p >= period:
                break
            carry = min(0, carry + self.statements[party, p].total)
        return carry

    def parties_in(self, period: str) -> list[str]:
        """Parties with a statement in `period`: lines of their own there, or a negative balance carried in."""
        return sorted(party for party, periods in self.periods.items()
                      if period in periods or (periods[0] < period and self.opening(party, period) < 0))

    def _published(self, e: Any) -> None:
        self.versions.append(e.rules)

    def _opened(self, e: Any) -> None:
        key = self._ledgers[e.originator_id] = (e.party, e.period)
        self.statements[key] = Statement(e.party, e.period)
        insort(self.periods.setdefault(e.party, []), e.period)

    def _paid(self, e: Any) -> None:
        st = self.statements[self._ledgers[e.originator_id]]
        st.paid, st.paid_at, st.reference = e.amount, e.at, e.reference

    def _booked(self, e: Any) -> None:
        self._book(self.statements[self._ledgers[e.originator_id]], e.line)

    def _booked_lines(self, e: Any) -> None:
        st = self.statements[self._ledgers[e.originator_id]]
        for line in e.lines:
            self._book(st, line)

    def _book(self, st: Statement, line: LedgerLine) -> None:
        st.lines.append(line)
        st.total += line.amount
        c = self.credits.setdefault((line.root, line.sku), CreditRecord(roles={}, reversed={}, sources=[]))
        first = line.source not in c.sources
        if first:
            c.sources.append(line.source)
        if line.amount > 0:
            if first:
                c.base += line.base
            role = c.roles.setdefault(line.role, [st.party, 0, line.bp, line.version, st.period])
            role[1] += line.amount
            self.credited[line.root] = self.credited.get(line.root, 0) + line.amount
        else:
            if first:
                c.reversed_base -= line.base
            c.reversed[line.role] = c.reversed.get(line.role, 0) - line.amount
