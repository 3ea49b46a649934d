"""`python -m benchmarks.store_index` on a few hundred orders: the engine's
saves are kept whole and written again into every variant of the table."""
from __future__ import annotations

import json

from benchmarks.store_index import main


def test_every_variant_holds_every_row_the_engine_saved(tmp_path, capsys):
    assert main(["--orders", "300", "--batch", "100", "--rounds", "1", "--page-sizes", "4096", "8192",
                 "--pragma", "cache_size=-65536", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "store-index.json").read_text())
    assert report["orders"] == 300
    assert report["rows"] >= 2 * 300  # each order's Placed, and its Routed or its Rejected (with a Refunded)
    variants = {r["variant"]: r for r in report["results"]}
    assert set(variants) == {"primary key", "primary key, order ids hashed", "no key", "primary key, pages of 8192",
                             "primary key, cache_size=-65536"}
    assert variants["primary key"]["keyed"] and not variants["no key"]["keyed"]
    for r in report["results"]:
        (run,) = r["runs"]
        assert run["rows"] == report["rows"]
        assert r["us_per_order"]["total"] > 0
    assert "us CPU per order" in capsys.readouterr().out
