"""`o2o bench gateway --quick` end to end, and its zero-loss check: the
figures must describe what was sent and stored (not their speed), and the
check must catch a push answered ok that the intake or the store lacks."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from adapters.cli import main
from benchmarks.gateway import httpgen, zero_loss
from benchmarks.gateway.pushes import order_ids
from domain import ids


@pytest.mark.e2e
@pytest.mark.slow
def test_a_quick_run_reports_every_figure_and_passes_the_zero_loss_check(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["bench", "gateway", "--quick", "--out", str(out)]) == 0
    report = json.loads((out / "gateway.json").read_text())
    assert (out / "gateway.png").stat().st_size > 0
    runs = {(r["target"], r["name"], r["offered_per_s"]) for r in report["runs"]}
    assert {("engine", "step", 20), ("alone", "step", 20)} <= runs
    for r in report["runs"]:
        assert r["sent"] == int(r["offered_per_s"] * r["seconds"])
        assert r["answered_ok"] + sum(r["errors"].values()) == r["sent"]
        if r["latency_ms"]:
            lat = r["latency_ms"]
            assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert r["gateway_cpu_ms_per_webhook"] >= 0 and ("engine_cpu_s" in r) == (r["target"] == "engine")
    z = report["zero_loss"]
    assert z["ok"] and z["engine"]["ok"] and z["alone"]["ok"]
    for target in ("engine", "alone"):
        pushed = sum(r["sent"] for r in report["runs"] if r["target"] == target)
        assert z[target]["pushes"] == pushed == z[target]["intake_messages"] + z[target]["not_answered_ok"]
    assert z["engine"]["answered_but_not_stored"] == z["engine"]["stored_twice"] == 0
    assert set(report["sustained"]) == {"engine", "alone"}
    assert {c: v["pushes"] > 0 and v["cpu_ms_per_push"] > 0 for c, v in report["in_process"].items()} == {
        "meituan": True, "eleme": True}
    assert "zero-loss check (engine): passed" in capsys.readouterr().out


def _result(ok: list[bool]) -> httpgen.Result:
    n = len(ok)
    return httpgen.Result(rate=1.0, sent=n, seconds=1.0, latency_s=np.zeros(n).tobytes(),
                          status=np.array([200 if x else 503 for x in ok], np.int16).tobytes(),
                          ok=np.array(ok, np.bool_).tobytes(), max_send_lag_s=0.0, cpu_s=0.0)


def test_the_zero_loss_check_catches_a_push_answered_ok_but_missing_or_kept_twice():
    pushed = order_ids(0, 4)
    keys = [f"{c}:{o}" for c, o in pushed]
    placed = Counter(ids.order_id(c, o) for c, o in pushed)
    assert zero_loss([(pushed, _result([True] * 4))], Counter(keys), placed)["ok"]
    z = zero_loss([(pushed, _result([True] * 4))], Counter(keys[1:] + keys[2:3]), placed)
    assert not z["ok"] and (z["answered_but_not_in_intake"], z["in_intake_twice"]) == (1, 1)
    placed[ids.order_id(*pushed[3])] = 0
    z = zero_loss([(pushed, _result([True] * 4))], Counter(keys), placed)
    assert not z["ok"] and z["answered_but_not_stored"] == 1
    z = zero_loss([(pushed, _result([True, True, True, False]))], Counter(keys[:3]), None)
    assert z["ok"] and z["not_answered_ok"] == 1 and z["answered_but_not_stored"] is None
