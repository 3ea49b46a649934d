"""`o2o benefit statement`: a period's statements from the event store, as CSV and HTML per party."""
from __future__ import annotations

import csv

import msgspec

from adapters.cli import main
from domain.commands import ClosePeriod, Line, PayStatements, PublishBenefitRules, SellOverCounter, SignUpMember
from engine.app import Engine
from engine.clock import SimClock
from tests.engine.test_benefit_semantics import R1, local, network


def store_with_two_periods(tmp_path) -> tuple[str, str]:
    url, path = f"sqlite:///{tmp_path}/events.db", tmp_path / "network.json"
    path.write_bytes(msgspec.json.encode(network()))
    clock = SimClock(local(2026, 3, 1, 8))
    e = Engine(network(), clock=clock, store=url).start()
    e.handle(PublishBenefitRules(rules=R1))
    e.sign_up(SignUpMember(member="m1", node="S1", via="clerk", clerk="c7"))
    e.sell(SellOverCounter(node="S2", sale_id="p1", lines=[Line("A", 1, unit_price=12345)], member="m1"))
    e.sell(SellOverCounter(node="S2", sale_id="p2", lines=[Line("A", 2, unit_price=5000)], member="m1"))
    clock.advance_to(local(2026, 4, 9))
    e.handle(ClosePeriod(period="2026-03"))
    e.handle(PayStatements(period="2026-03", reference="bank-0409"))
    e.close()
    return url, str(path)


def test_statements_are_written_per_party_as_csv_and_html_with_lines_adding_up_to_the_total(tmp_path, capsys):
    url, net = store_with_two_periods(tmp_path)
    out = tmp_path / "out"
    assert main(["benefit", "statement", "--store", url, "--network", net, "--period", "2026-03", "--out", str(out)]) == 0
    assert "4 statements for 2026-03" in capsys.readouterr().out
    summary = {row["party"]: row for row in csv.DictReader((out / "summary.csv").open())}
    assert set(summary) == {"clerk:c7", "manager:mgr-S1", "store:S1", "dealer:dealer-1"}
    store = summary["store:S1"]
    assert (store["status"], store["accrued"], store["paid"], store["reference"]) == ("paid", "6.70", "6.70", "bank-0409")
    lines = list(csv.DictReader((out / "store_S1.csv").open()))
    assert [row["amount"] for row in lines] == ["3.70", "3.00"] and {row["bp"] for row in lines} == {"300"}
    page = (out / "store_S1.html").read_text()
    assert "Benefit statement: store:S1" in page and "bank-0409" in page and "pos/S2/p1" in page
    assert 'href="store_S1.html"' in (out / "index.html").read_text()


def test_one_party_an_unknown_party_and_a_bad_period(tmp_path, capsys):
    url, net = store_with_two_periods(tmp_path)
    out = tmp_path / "one"
    args = ["benefit", "statement", "--store", url, "--network", net, "--out", str(out)]
    assert main(args + ["--period", "2026-03", "--party", "clerk:c7"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["clerk_c7.csv", "clerk_c7.html", "index.html", "summary.csv"]
    assert main(args + ["--period", "2026-03", "--party", "clerk:nobody"]) == 2
    assert "party: no statement of 'clerk:nobody'" in capsys.readouterr().err
    assert main(args + ["--period", "2026-13"]) == 2
    assert "period: expected a month" in capsys.readouterr().err
