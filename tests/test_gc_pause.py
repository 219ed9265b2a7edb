"""gc_pause.gc_paused: the collector is restored after the block, alone, nested, on error and across threads."""

from __future__ import annotations

import gc
import sys
import threading
import time

import pytest

from hetero_opt.gc_pause import gc_paused


@pytest.fixture(autouse=True)
def _restore_gc() -> object:
    was = gc.isenabled()
    yield
    gc.enable() if was else gc.disable()


def _nested_then_fail() -> None:
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block does not re-enable inside the outer one
        raise KeyError("x")


@pytest.mark.parametrize("enabled", [True, False])
def test_restored_after_nested_blocks_and_errors(enabled: bool) -> None:
    gc.enable() if enabled else gc.disable()
    with pytest.raises(KeyError):
        _nested_then_fail()
    assert gc.isenabled() is enabled


def test_concurrent_pauses_leave_the_collector_enabled() -> None:
    """solve() runs in a thread pool under the service (/v1/solve): pauses from several threads at once
    must not leave the collector off for good. With a bare read-then-disable, a thread that reads
    ``isenabled() == False`` while another thread's pause ends, then disables, never re-enables."""
    gc.enable()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, to hit the window
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            with gc_paused():
                pass

    try:
        for _ in range(50):
            stop.clear()
            threads = [threading.Thread(target=worker) for _ in range(4)]
            for t in threads:
                t.start()
            time.sleep(0.01)
            stop.set()
            for t in threads:
                t.join()
            assert gc.isenabled(), "the cyclic GC was left disabled by concurrent gc_paused() blocks"
    finally:
        sys.setswitchinterval(interval)
