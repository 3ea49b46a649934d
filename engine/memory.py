"""The garbage-collector policy for a long run of the engine (a service, a
simulated day).

The read models and the open orders are millions of long-lived objects and
the engine leaves no reference cycles behind (a refused command's error is
handed back without its traceback, which held the engine's frames), yet
CPython's full collections walk all of them, each a stall of every order
in flight that grows with the open orders (figures in benchmarks/README.md).
So full collections are left out: young objects are still collected (cycles
from the event loop die young)."""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator, TypeVar

NEVER = 2**31 - 1
# Young collections after this many new containers (CPython's default 700):
# each costs a fixed part besides walking the young objects, and an order
# makes some hundred containers, most kept (figures in benchmarks/README.md)
YOUNG = 10_000
E = TypeVar("E", bound=BaseException)


def keep_long_lived() -> None:
    """For a process serving until it stops: call once the engine is up (its
    read models rebuilt); what was built so far is frozen out of every
    collection, and young collections come less often."""
    _, middle, _ = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, middle, NEVER)


@contextmanager
def young_collections_only() -> Iterator[None]:
    """Full collections paused for a while (also as a decorator), then back."""
    young, middle, full = gc.get_threshold()
    gc.set_threshold(young, middle, NEVER)
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
