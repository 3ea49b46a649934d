"""`python -m benchmarks.held` on a few hundred orders: what open and
completed orders leave allocated, in all and by line, and the collector
left as found."""
from __future__ import annotations

import gc
import json

from benchmarks.held import main


def test_open_and_completed_orders_report_what_they_hold_by_line(tmp_path, capsys):
    threshold = gc.get_threshold()
    figures = {}
    for kind, extra in (("open", []), ("completed", ["--complete"])):
        out = tmp_path / f"{kind}.json"
        assert main(["--orders", "300", "--batch", "100", "--top", "10", "--out", str(out), *extra]) == 0
        figures[kind] = json.loads(out.read_text())
        assert f"held per {kind} order" in capsys.readouterr().out
    opened, done = figures["open"], figures["completed"]
    # an open order keeps its aggregate and its reservations; a completed one only what the read models answer from
    assert 0 < done["bytes_per_order"] < opened["bytes_per_order"]
    assert opened["parts_completed"] == 0 and done["parts_completed"] >= 250  # the city serves about 98%
    for r in (opened, done):
        lines = r["by_line"]
        assert len(lines) == 10 and sum(x["bytes"] for x in lines) <= r["bytes_per_order"] + 1
        assert any(x["where"].startswith("engine/readmodels/orders.py:") for x in lines)
    assert any(x["where"].startswith("domain/") for x in opened["by_line"])
    assert gc.get_threshold() == threshold and not gc.get_freeze_count()
