"""A store written when each ledger line was an event of its own (Booked)
replays into the same statements as lines booked together (LinesBooked)."""
from __future__ import annotations

from domain.benefit import LedgerLine, PartyLedger
from engine.readmodels.benefit import BenefitView
from engine.store.eventlog import EventLog


def line(n: int) -> LedgerLine:
    return LedgerLine(key=f"pos/S1/p{n}/A/store", root=f"pos/S1/p{n}", source=f"pos/S1/p{n}", sku="A", role="store",
                      amount=100 + n, base=1000, bp=300, version="R1", at=1.0e9 + n, payable_at=1.0e9 + n)


def test_lines_booked_one_event_each_replay_like_lines_booked_together(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    log = EventLog(url)
    old = PartyLedger(party="store:S1", period="2001-09", at=1.0e9)
    for n in range(3):
        old._booked(line=line(n))  # as stores written before LinesBooked hold them
    new = PartyLedger(party="store:S2", period="2001-09", at=1.0e9)
    assert new.book([line(n) for n in range(3)] + [line(0)]) == 3  # a repeated key is booked once
    log.save(old, new)
    log.close()
    log = EventLog(url)
    view = BenefitView()
    for _, event in log.stored_events():
        view.handlers()[type(event)](event)
    a, b = view.statements["store:S1", "2001-09"], view.statements["store:S2", "2001-09"]
    assert a.lines == b.lines and a.total == b.total == 303
    reloaded = log.repository.get(old.id)
    assert reloaded.book([line(1)]) == 0 and reloaded.total == 303
    log.close()


def test_lines_booked_store_what_the_event_method_stored():
    """LinesBooked is triggered directly since it stopped being an @event method: b8a2b92 stored these
    bytes (after the timestamp) for these lines, and they replay to the same ledger."""
    log = EventLog("memory:")
    ledger = PartyLedger(party="store:S1", period="2023-11", at=1000.0)
    lines = [LedgerLine(key=f"order/o1/S1/A/{role}", root="order/o1", source="order/o1/S1", sku="A", role=role,
                        amount=60 + i, base=2000, bp=300, version="R1", at=1001.0, payable_at=605801.0, pool=100)
             for i, role in enumerate(("store", "clerk"))]
    assert ledger.book(lines + lines[:1]) == 2
    log.save(ledger)
    booked = list(log.recorder.select_notifications(1, 10))[1]
    assert booked.topic == "domain.benefit:PartyLedger.LinesBooked"
    assert booked.state.endswith(
        b'"lines":[{"key":"order/o1/S1/A/store","root":"order/o1","source":"order/o1/S1","sku":"A","role":"store",'
        b'"amount":60,"base":2000,"bp":300,"version":"R1","at":1001.0,"payable_at":605801.0,"cites":null,"pool":100},'
        b'{"key":"order/o1/S1/A/clerk","root":"order/o1","source":"order/o1/S1","sku":"A","role":"clerk",'
        b'"amount":61,"base":2000,"bp":300,"version":"R1","at":1001.0,"payable_at":605801.0,"cites":null,"pool":100}]}')
    reloaded = log.repository.get(ledger.id)
    assert (reloaded.total, reloaded.keys, reloaded.version) == (121, ledger.keys, 2)
