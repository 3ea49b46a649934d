"""`o2o bench travel --quick` measures every source on the sample city and
the cold table client really asks the stand-in service."""
from __future__ import annotations

import json

import pytest

from adapters.cli import main


@pytest.mark.slow
def test_bench_travel_reports_each_source_per_batch(tmp_path, capsys):
    assert main(["bench", "travel", "--quick", "--orders", "200", "--repeat", "3", "--out", str(tmp_path)]) == 0
    (city,) = json.loads((tmp_path / "travel.json").read_text())["results"]
    assert list(city["sources"]) == ["straight", "matrix", "table warm", "table cold"]
    assert all(s["cpu_ms"] > 0 for s in city["sources"].values())
    cold = city["sources"]["table cold"]
    assert cold["calls"] >= 1 and cold["cells"] > 1
    assert "sample city" in capsys.readouterr().out
