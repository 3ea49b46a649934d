"""Benefit sharing in the engine: when a member's purchase is handed over
(an order's part) or made (a counter sale), the parties of the member's
origin are credited under the rule set in force, line by line, within the
member's attribution window; a refund reverses the lines it gives back at
the rates the credits froze. Booked in the same transaction as the event
that earned it, once per (source, line, role). The rules are
domain/benefit.py's; the read model engine/readmodels/benefit.py keeps the
credits a refund needs and the statements."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from domain.benefit import ROLES, LedgerLine, RuleSet, capped, period_of, rates_for, reversal, split, window_end
from domain.money import OrderMoney, Refund, portion

if TYPE_CHECKING:
    from engine.app import Engine
    from engine.unit_of_work import UnitOfWork

DAY = 86_400.0
ORDER_LINE = ""  # the purchase itself: what fixed amounts per order are booked on


def parties(e: "Engine", origin: Any) -> dict[str, str]:
    """An origin (domain.member.Origin) as parties, role -> "role:id" (vacant roles left out); the
    manager and region as the sign-up or rebinding recorded them (the network's for one that did not)."""
    node = e.nodes.get(origin.node)
    manager = origin.manager if origin.manager is not None else (node.manager if node else None)
    region = origin.region if origin.region is not None else (node.region if node else None)
    ids = {"clerk": origin.clerk, "store": origin.node, "manager": manager,
           "dealer": origin.dealer or (node.dealer if node else None), "region": region}
    return {role: f"{role}:{who}" for role, who in ids.items() if who}


def book_in(e: "Engine", uow: "UnitOfWork", at: float) -> tuple[str, str | None]:
    """The period a line dated `at` is booked in: its own, or, once that is
    closed, the current one (citing its own)."""
    book = uow.benefit_rules()
    length = book.period_length if book is not None else "month"
    period = period_of(at, e.network.timezone, length)
    if book is None or period not in book.closed:
        return period, None
    return period_of(e.clock.now(), e.network.timezone, length), period


def credit(e: "Engine", uow: "UnitOfWork", member_name: str | None, root: str, source: str,
           money: OrderMoney | None, lines: dict[str, int], at: float) -> int:
    """Credits the lines (sku -> units) of a purchase handed over or sold, and
    the roles' fixed amounts once per purchase; the number of lines booked."""
    if member_name is None or money is None:
        return 0
    book = uow.benefit_rules()
    rules = book.in_force(at) if book is not None else None
    if rules is None:
        return 0
    member = uow.member(member_name)
    if at >= window_end(member.signed_up_at, rules, e.network.timezone):
        return 0
    who = parties(e, member.origin_at(at))
    filled = set(who)
    excluded_skus, excluded_categories = set(rules.excluded_skus), set(rules.excluded_categories)
    credited: list[tuple[str, int, dict[str, int], dict[str, int]]] = []  # (sku, base, rates, role -> amount)
    pools: dict[str, int] = {}
    for sku, qty in lines.items():
        category = e.skus[sku].category if sku in e.skus else None
        if sku in excluded_skus or (category is not None and category in excluded_categories):
            continue
        line = money.lines[sku]
        base = portion(line.paid, line.qty, qty)
        rates = rates_for(rules, category, filled)
        credited.append((sku, base, rates, split(base, rates)))
        pools[sku] = sum(credited[-1][3].values())
    view = e.readmodels.benefit
    fixed = fixed_amounts(rules, filled)
    if credited and fixed and (root, ORDER_LINE) not in view.credits:  # once per purchase, with its first lines
        credited.append((ORDER_LINE, 0, {role: 0 for role in fixed}, fixed))
        pools[ORDER_LINE] = sum(fixed.values())
    if rules.cap_per_order is not None:  # what earlier parts of the purchase took counts against the cap
        cut = capped([amounts for *_, amounts in credited], max(rules.cap_per_order - view.credited.get(root, 0), 0))
        credited = [(sku, base, rates, amounts) for (sku, base, rates, _), amounts in zip(credited, cut)]
    period, cites = book_in(e, uow, at)
    by_party: dict[str, list[LedgerLine]] = {}
    for sku, base, rates, amounts in credited:
        for role, amount in amounts.items():
            if amount:
                by_party.setdefault(who[role], []).append(LedgerLine(
                    key=f"{source}/{sku}/{role}", root=root, source=source, sku=sku, role=role, amount=amount, base=base,
                    bp=rates[role], version=rules.version, at=at, payable_at=at + rules.hold_days * DAY, cites=cites,
                    pool=pools[sku]))
    return book_lines(uow, by_party, period, at)


def book_lines(uow: "UnitOfWork", by_party: dict[str, list[LedgerLine]], period: str, at: float) -> int:
    """Each party's lines in one event on its ledger of the period; the lines booked."""
    return sum(uow.ledger(party, period, at).book(lines) for party, lines in by_party.items())


def reverse(e: "Engine", uow: "UnitOfWork", root: str, refund_source: str, refund: Refund, whole: bool,
            at: float) -> int:
    """Takes back, role by role at the frozen rates, what the refunded cash of
    each credited line earned, and the fixed amounts once the whole purchase
    is back; booked in the party's current period, citing the credit's when
    it is another."""
    credits = e.readmodels.benefit.credits
    period, _ = book_in(e, uow, at)
    back_by_sku = [(sku, cash) for sku, cash in refund.cash.items() if cash]
    if whole:
        back_by_sku.append((ORDER_LINE, 0))
    by_party: dict[str, list[LedgerLine]] = {}
    for sku, cash in back_by_sku:
        c = credits.get((root, sku))
        if c is None:
            continue
        left = {r: v[1] - c.reversed.get(r, 0) for r, v in c.roles.items()}
        back = left if sku == ORDER_LINE else reversal(
            {r: v[1] for r, v in c.roles.items()}, c.reversed, c.base - c.reversed_base, cash)
        for role, amount in back.items():
            if amount:
                party, _, bp, version, credited_in = c.roles[role]
                by_party.setdefault(party, []).append(LedgerLine(
                    key=f"{refund_source}/{sku}/{role}", root=root, source=refund_source, sku=sku, role=role, amount=-amount,
                    base=-min(cash, c.base - c.reversed_base), bp=bp, version=version, at=at, payable_at=at,
                    cites=credited_in if credited_in != period else None))
    return book_lines(uow, by_party, period, at)


def fixed_amounts(rules: RuleSet, filled: set[str]) -> dict[str, int]:
    """The roles' fixed amounts per purchase, a vacant role's moved where the rules send it (or dropped)."""
    out: dict[str, int] = {}
    for role in ROLES:
        rate = rules.roles.get(role)
        if rate is None or not rate.fixed:
            continue
        to = role if role in filled else rules.vacant_to.get(role)
        if to in filled:
            out[to] = out.get(to, 0) + rate.fixed
    return {role: out[role] for role in ROLES if out.get(role)}
