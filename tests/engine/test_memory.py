"""The collector's policy for a long run: no full collections, young ones
less often, middle ones often enough to stay short; and back as it was."""
import gc

import time

from engine.memory import (MIDDLE, NEVER, YOUNG, YOUNG_EVERY_S, collect_if_due, keep_long_lived, let_go,
                           young_collections_only)


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
        let_go()


def test_under_the_policy_a_young_collection_comes_once_none_ran_for_a_while():
    seen: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "stop":
            seen.append(info["generation"])

    before = gc.get_threshold()
    gc.callbacks.append(count)
    try:
        collect_if_due()
        assert seen == []  # the policy is off: nothing collected on a timer
        keep_long_lived()
        seen.clear()
        collect_if_due()
        assert seen == []  # one just ran (keep_long_lived's own)
        time.sleep(YOUNG_EVERY_S)
        collect_if_due()
        assert len(seen) == 1 and seen[0] in (0, 1)
        let_go()
        time.sleep(YOUNG_EVERY_S)
        collect_if_due()
        assert len(seen) == 1
    finally:
        gc.callbacks.remove(count)
        gc.unfreeze()
        gc.set_threshold(*before)
        let_go()


def test_young_collections_only_restores_the_thresholds_it_found():
    before = gc.get_threshold()
    with young_collections_only():
        young, middle, full = gc.get_threshold()
        assert (young, middle, full) == (before[0], MIDDLE, NEVER)
    assert gc.get_threshold() == before
