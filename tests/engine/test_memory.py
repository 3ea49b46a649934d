"""The collector's policy for a long run: no full collections, young ones
less often, middle ones often enough to stay short; and back as it was."""
import gc

from engine.memory import MIDDLE, NEVER, YOUNG, keep_long_lived, young_collections_only


def test_a_long_run_freezes_what_was_built_and_collects_young_and_middle_only():
    before = gc.get_threshold()
    try:
        kept = [[i] for i in range(100)]  # containers built before the engine was up
        keep_long_lived()
        assert gc.get_freeze_count() >= len(kept)
        assert gc.get_threshold() == (YOUNG, MIDDLE, NEVER)
        assert MIDDLE < 10  # CPython's default middle threshold made pauses five times as long
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_young_collections_only_restores_the_thresholds_it_found():
    before = gc.get_threshold()
    with young_collections_only():
        young, middle, full = gc.get_threshold()
        assert (young, middle, full) == (before[0], MIDDLE, NEVER)
    assert gc.get_threshold() == before
