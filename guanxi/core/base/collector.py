"""Settings of Python's cyclic garbage collector for processes that allocate many short-lived
objects: a server answering GraphQL pages, a CSV import writing a million rows.

Both pay for the collector in two ways. With the default threshold (700) the youngest generation
is collected hundreds of times per request or write batch. And each full collection walks every
object still alive, including the tens of thousands allocated at start-up (modules, SQLAlchemy's
mappers and caches, the schema) that will never be garbage: during a 20,000-row import on SQLite
the 4-6 full collections took 0.4-0.6 s of ~3.5 s. ``gc.freeze()`` moves the objects alive now
into a permanent generation that collections skip, and a higher threshold collects the young
generation less often. Garbage is still collected, just in fewer passes over fewer objects.

:func:`tune_gc` does this for the rest of a server process's life; :func:`tuned_gc` for the
duration of one piece of work, then puts the thresholds back and unfreezes what it froze.
``server.gc_tuning = false`` turns both off (see docs/operations.md).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: (young generation, middle, old) collection thresholds while tuned
THRESHOLDS = (20_000, 50, 100)


class _Blocks:
    """How many :func:`tuned_gc` blocks are open (async tasks may nest or overlap them)."""

    open = 0


def tune_gc() -> None:
    """Server processes: freeze everything allocated at start-up and raise the thresholds, for
    good. A GraphQL page allocates tens of thousands of short-lived objects; measured: about 15%
    less CPU per page (``bench/graphql_list.py``)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


@contextmanager
def tuned_gc(enabled: bool = True) -> Iterator[None]:
    """Freeze the heap and raise the thresholds while the block runs; restore both after.

    Nests (only the outermost block acts), and leaves a heap that something else froze (a
    server's :func:`tune_gc`) frozen when it ends."""
    outermost = enabled and _Blocks.open == 0
    thresholds = gc.get_threshold()
    froze = outermost and gc.get_freeze_count() == 0
    if froze:
        gc.collect()
        gc.freeze()
    if outermost:
        gc.set_threshold(*THRESHOLDS)
    _Blocks.open += enabled
    try:
        yield
    finally:
        _Blocks.open -= enabled
        if outermost:
            gc.set_threshold(*thresholds)
        if froze:
            gc.unfreeze()
