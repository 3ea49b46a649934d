"""A reply's times and explanation: remembered values (engine/replies.py)
give what formatting them each time gives."""
from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given
from hypothesis import strategies as st

from engine import replies
from engine.replies import explain, ts

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(st.lists(finite, max_size=6))
def test_a_remembered_figure_reads_as_formatting_it_again(xs):
    for x in xs + xs:  # the second time from the memo
        assert replies._figure(x, "%.1f", replies._ONE) == "%.1f" % x
        assert replies._figure(x, "%.0f", replies._NONE) == "%.0f" % x


def test_zero_and_minus_zero_keep_their_own_text():
    for x in (0.0, -0.0, 0, -0.0, 0.0):
        assert replies._figure(x, "%.1f", replies._ONE) == "%.1f" % x
        assert replies._figure(x, "%.0f", replies._NONE) == "%.0f" % x


@given(st.lists(st.floats(min_value=0, max_value=4e9, allow_nan=False), max_size=6))
def test_a_remembered_time_is_the_timestamp_as_datetime(times):
    for t in times + times:
        assert ts(t) == datetime.fromtimestamp(t, tz=timezone.utc)


@given(st.dictionaries(st.sampled_from(["S1", "S2", "K1"]),
                       st.fixed_dictionaries({"distance_km": finite, "eta_min": finite, "total": finite},
                                             optional={"straight_line": st.just(1.0)}), max_size=3),
       st.lists(st.fixed_dictionaries({"node": st.sampled_from(["S3", "S4"]), "reason": st.text(max_size=8)}),
                max_size=5),
       st.none() | st.text(max_size=8))
def test_an_explanation_reads_as_each_part_formatted_in_turn(parts, lost, reason):
    text = explain(parts, lost, reason)
    if parts:
        assert text.startswith("routed to " + "; ".join(
            "%s (%.1f km, ETA %s%.0f min, cost %.1f)" % (n, c["distance_km"], "~" if c.get("straight_line") else "",
                                                        c["eta_min"], c["total"]) for n, c in parts.items()))
    if lost:
        assert "; passed over " + lost[0]["node"] + ": " + lost[0]["reason"] in text
