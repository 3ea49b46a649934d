"""The report and the plots: changes read in the units of their KPI, a worse
variant shows red and a better one green, and every plot fits the page."""
from __future__ import annotations

import matplotlib.image
import pytest

from simulations import plots
from simulations.labels import KPIS, change
from simulations.report import html_report

KPI = {k.key: k for k in KPIS}


def day(**changes) -> dict:
    base = {"orders": 3000, "fill_rate": 0.9467, "on_time_rate": 0.9917, "handover_min_mean": 16.9,
            "handover_min_p95": 28.4, "delivery_cost_per_order": 2.94, "stockouts_online": 153, "stockouts_pos": 11,
            "reroutes": 115, "nodes_full_in_a_slot": 9, "kitchen_share": 0.057}
    return {**base, **changes}


def nodes(n: int = 3) -> list[dict]:
    return [{"node": f"S{i:03d}", "kind": "store", "lat": 31.2 + i / 100, "lon": 121.4 + i / 100, "orders": 10 * i,
             "peak_slot_use": i / n, "on_time_rate": 0.99} for i in range(1, n + 1)]


def hours() -> list[dict]:
    return [{"hour": h, "orders": 100 if 7 <= h <= 22 else 0, "fill_rate": 0.95 if 7 <= h <= 22 else None,
             "on_time_rate": 0.99 if 7 <= h <= 22 else None} for h in range(24)]


def test_rates_change_in_points_counts_in_units_and_a_tiny_change_never_reads_as_zero():
    assert change(KPI["fill_rate"], 0.9537, 0.9467) == "+0.70 pt"
    assert change(KPI["stockouts_online"], 130, 153) == "−23"
    assert change(KPI["handover_min_p95"], 28.36, 28.4) == "−0.04"
    assert change(KPI["handover_min_p95"], 28.4, 28.4) == ""
    assert change(KPI["fill_rate"], 0.9467, None) == ""


def test_the_report_shows_a_worse_variant_red_and_a_better_one_green(tmp_path):
    kpis = {"base": day(), "better": day(fill_rate=0.9537), "worse": day(fill_rate=0.847)}
    page = html_report(tmp_path / "r.html", "t", "d", "name = 't'", kpis,
                       {n: nodes() for n in kpis}, []).read_text()
    assert '<span class="d good">(+0.70 pt)</span>' in page
    assert '<span class="d bad">(−9.97 pt)</span>' in page


@pytest.mark.slow
def test_every_plot_fits_the_report_page_with_variants_or_without(tmp_path):
    for names in (["base"], ["base", "a-rather-long-variant-name", "b", "c", "d"]):
        kpis = {n: day(fill_rate=0.94 + i / 100) for i, n in enumerate(names)}
        out = tmp_path / str(len(names))
        for path in plots.draw(out, kpis, {n: nodes(60) for n in names}, {n: hours() for n in names}):
            height, width, _ = matplotlib.image.imread(path).shape
            assert width <= 1400, (path.name, width)  # the report's page: a wider plot is shrunk, its labels with it
