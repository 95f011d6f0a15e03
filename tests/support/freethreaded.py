"""Helpers of the free-threaded suite (tests/fastlru/ and tests/ormcache/test_freethreaded_*.py).

The suite is meant for free-threaded CPython (3.13t and later), where threads really run at once
and the engine's critical sections are all that keeps it consistent; it also runs on GIL builds,
with a tiny switch interval and smaller numbers (``scaled``), to keep their time down.
"""
import sys
import threading

import pytest

FREE_THREADED = hasattr(sys, "_is_gil_enabled") and not sys._is_gil_enabled()
HANG = 120  # seconds a thread may take before the test calls it hung; only reached when broken


def scaled(free_threaded, gil):
    """``free_threaded`` on a free-threaded interpreter, else ``gil``."""
    return free_threaded if FREE_THREADED else gil


def run_threads(workers, timeout=HANG):
    """Starts one thread per callable (each gets its index), released together by a barrier;
    fails if one is still running after ``timeout`` seconds; returns what they raised."""
    errors = []
    barrier = threading.Barrier(len(workers))

    def wrap(fn, i):
        try:
            barrier.wait()
            fn(i)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on
            errors.append((i, repr(exc)))

    threads = [threading.Thread(target=wrap, args=(fn, i), daemon=True) for i, fn in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread hung (deadlock?)"
    return errors


@pytest.fixture(autouse=True)
def fast_switching():
    """On a GIL build, the GIL changes hands in the middle of operations (autouse in the modules
    that import it)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)
    assert sys.getswitchinterval() == old
