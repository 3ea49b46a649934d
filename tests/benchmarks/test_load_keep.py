"""`o2o bench load --keep DIR` keeps the network file and the stores; it never mixes two runs in one folder."""
from __future__ import annotations

import pytest

from benchmarks.load import _folder


def test_keep_makes_the_folder_and_leaves_it_after_the_run(tmp_path):
    kept = tmp_path / "kept" / "here"
    with _folder(str(kept)) as folder:
        (folder / "network.json").write_text("{}")
    assert (kept / "network.json").exists()


def test_keep_refuses_a_folder_holding_an_earlier_runs_sessions(tmp_path):
    (tmp_path / "session-0").mkdir()
    (tmp_path / "session-0" / "events.db").write_text("earlier")
    with pytest.raises(SystemExit, match="--keep .* holds an earlier run's sessions"):
        _folder(str(tmp_path)).__enter__()  # refused on entering, before a run could write there
    assert (tmp_path / "session-0" / "events.db").read_text() == "earlier"  # and the earlier run left as it was


def test_without_keep_the_folder_is_gone_after_the_run():
    with _folder(None) as folder:
        (folder / "network.json").write_text("{}")
    assert not folder.exists()
