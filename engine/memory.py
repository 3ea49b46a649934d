"""The garbage-collector policy for a long run of the engine (a service, a
simulated day).

The read models and the open orders are millions of long-lived objects and
the engine leaves no reference cycles behind (a refused command's error is
handed back without its traceback, which held the engine's frames), yet
CPython's full collections walk all of them, each a stall of every order
in flight that grows with the open orders (figures in benchmarks/README.md).
So full collections are left out: young objects are still collected (cycles
from the event loop die young), and middle collections come often enough to
stay short."""
from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from typing import Iterator, TypeVar

NEVER = 2**31 - 1
# Young collections after this many new containers (CPython's default 700):
# each costs a fixed part besides walking the young objects, and an order
# makes some hundred containers, most kept (figures in benchmarks/README.md)
YOUNG = 10_000
# A middle collection after every second young one (CPython's default: ten). It walks
# what the young ones kept since the last, all of which an order keeps: in tens it
# paused the engine 17-30 ms of CPU each, in twos 4-13 ms, and the collector's CPU per
# order fell 6.4-7.1 -> 3.8-6.0 us (fewer cache misses; benchmarks/README.md)
MIDDLE = 2
# ... and at least this often while the engine works. CPython counts containers made less those freed, old ones
# included: once finished orders leave memory as fast as new ones come (engine.readmodels.orders), young
# collections came six times rarer, each walking what was made since, 3 -> 18 ms over 100,000 orders and
# growing (benchmarks/README.md)
YOUNG_EVERY_S = 0.1
E = TypeVar("E", bound=BaseException)
_last = [0.0]  # when the last collection ended, while keep_long_lived's policy is on (else 0)


def _ended(phase: str, info: dict) -> None:
    if phase == "stop":
        _last[0] = time.perf_counter()


def keep_long_lived() -> None:
    """For a process serving until it stops: call once the engine is up (its
    read models rebuilt); what was built so far is frozen out of every
    collection, and young collections come less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, NEVER)
    if _ended not in gc.callbacks:
        gc.callbacks.append(_ended)
    _last[0] = time.perf_counter()


def collect_if_due() -> None:
    """Called by the engine after each command: under keep_long_lived's
    policy, a young collection (a middle one when its turn has come, as
    the counts would pick) if none ran for YOUNG_EVERY_S."""
    last = _last[0]
    if last and time.perf_counter() - last >= YOUNG_EVERY_S:
        gc.collect(1 if gc.get_count()[1] >= MIDDLE else 0)


def let_go() -> None:
    """keep_long_lived's timed collections off again (a bench's run ended)."""
    if _ended in gc.callbacks:
        gc.callbacks.remove(_ended)
    _last[0] = 0.0


@contextmanager
def kept_long_lived() -> Iterator[None]:
    """keep_long_lived's policy for a while (a bench's run in a process that
    goes on), then the collector as it was: nothing frozen, full collections back."""
    threshold = gc.get_threshold()
    keep_long_lived()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
        let_go()


@contextmanager
def young_collections_only() -> Iterator[None]:
    """Full collections paused for a while (also as a decorator), then back."""
    young, middle, full = gc.get_threshold()
    gc.set_threshold(young, MIDDLE, NEVER)
    try:
        yield
    finally:
        gc.set_threshold(young, middle, full)


def untraced(e: E) -> E:
    """An error fit to be kept after it was caught (in a batch's results, a
    reply): without its traceback and the error it replaced, which held the
    frames that hold it, a cycle only a full collection frees."""
    e.__traceback__ = None
    e.__context__ = None
    return e
