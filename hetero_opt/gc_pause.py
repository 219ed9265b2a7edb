"""Pausing Python's cyclic garbage collector around short, allocation-heavy work."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0  # gc_paused() blocks open, in every thread
_restore = False  # whether the collector ran when the first of them opened


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the ``with`` block, if it runs; restore it after.

    The work it wraps (building an instance, a view, the greedy, binding, verifying, scoring) makes
    many short-lived acyclic objects, freed by reference counting. Unpaused, their allocations trigger
    collections that walk every long-lived object, the instance's 20k-80k nodes included: 37-213 ms of
    a production load, up to ~0.3 s of a 4x production placement call (process time, measured).
    Paused, one young collection walks what survives after the block; nothing is left uncollected.

    The collector's switch is global to the process while blocks may run in several threads at once
    (the service runs ``solve()`` in a thread pool): blocks are counted under a lock, the first to open
    records whether the collector ran and the last to close restores it. A bare read-then-disable per
    block could read "off" while another thread's block was closing and then leave it off for good.
    """
    global _depth, _restore
    with _lock:
        if _depth == 0:
            _restore = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _restore:
                gc.enable()
