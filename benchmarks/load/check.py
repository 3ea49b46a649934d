"""The zero-loss check: what was answered against what the event store holds."""
from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from benchmarks import loadgen
from domain import ids
from engine.store.eventlog import EventLog


def zero_loss(store: str, sent: list[tuple[list[Any], loadgen.Result | None]]) -> dict[str, Any]:
    """Every order answered once; every order answered ok stored once with one routing outcome;
    every order refused (an error reply) stored not at all."""
    placed: Counter = Counter()
    outcomes: Counter = Counter()
    log = EventLog(store)
    try:
        for _, event in log.stored_events():
            topic = type(event).__qualname__
            if topic == "Order.Placed":
                placed[event.originator_id] += 1
            elif topic in ("Order.Routed", "Order.Rejected"):
                outcomes[event.originator_id] += 1
    finally:
        log.close()
    answered = refused = unanswered = doubled = misrouted = 0
    missing = twice = stored_refused = 0
    for orders, r in sent:
        if r is None:  # the JetStream intake: acknowledged means stored, every one was
            code, replies = np.zeros(len(orders), np.int32), np.ones(len(orders), np.int16)
        else:
            _, code, replies = loadgen.arrays(r)
        doubled += int((replies > 1).sum())
        for cmd, c in zip(orders, code.tolist()):
            oid = ids.order_id(cmd.channel, cmd.external_id)
            if c == loadgen.TIMEOUT:
                unanswered += 1
                continue
            if c == loadgen.MISROUTED:  # an ok reply naming another order: this one's fate is unknown to its client
                misrouted += 1
                continue
            if c == 0:
                answered += 1
                if placed[oid] == 0 or outcomes[oid] == 0:
                    missing += 1
                elif placed[oid] > 1 or outcomes[oid] > 1:
                    twice += 1
            else:
                refused += 1
                stored_refused += placed[oid] > 0
    ok = missing == twice == stored_refused == doubled == unanswered == misrouted == 0
    return {"ok": ok, "orders_sent": answered + refused + unanswered + misrouted, "answered": answered,
            "refused": refused, "unanswered": unanswered, "doubled_replies": doubled,
            "answered_with_another_orders_reply": misrouted, "answered_but_not_stored": missing,
            "stored_twice": twice, "refused_but_stored": stored_refused}


def all_ok(checks: list[dict[str, Any]]) -> dict[str, Any]:
    """The sessions' zero-loss checks added up."""
    out: dict[str, Any] = {"ok": all(c["ok"] for c in checks)}
    for key in checks[0]:
        if key != "ok":
            out[key] = sum(c[key] for c in checks)
    return out
