"""A flight's lock is made only by the first thread that waits for it (``_cold._wait``), not
per miss: a waiter must never miss the computing thread's release (``_cold._land``).

The unit tests pin each interleaving of a waiter's arrival and the landing; the stress test runs
many threads on fresh keys with the GIL switching as often as it can, in a subprocess with a
timeout (a lost release would hang it)."""
import subprocess
import sys
import textwrap
import threading

import pytest

from ormcache import _cold

WAIT = 10  # seconds: only reached when something is broken


def wait_in_thread(flight):
    """``_wait(flight)`` in a thread; -> the thread (joined for up to 1 s, never left blocked
    beyond the test: the caller lands the flight or the thread ends)."""
    thread = threading.Thread(target=lambda: _cold._wait(flight, threading.get_ident()), daemon=True)
    thread.start()
    thread.join(1)
    return thread


def test_a_flight_has_no_lock_until_someone_waits():
    flight = _cold._flight(threading.get_ident())
    assert flight.lock is None and not flight.landed
    _cold._land(flight)  # nobody waited: nothing to release
    assert flight.landed and flight.lock is None


def test_a_waiter_after_the_landing_does_not_wait():
    flight = _cold._flight(threading.get_ident())
    _cold._land(flight)
    thread = wait_in_thread(flight)
    assert not thread.is_alive()
    assert flight.lock is None  # not even a lock made


def test_a_waiter_before_the_landing_is_released_by_it():
    flight = _cold._flight(threading.get_ident())
    thread = wait_in_thread(flight)
    assert thread.is_alive() and flight.lock is not None and flight.lock.locked()
    assert _cold._waiting[thread.ident] is flight
    _cold._land(flight)
    thread.join(WAIT)
    assert not thread.is_alive() and _cold._waiting == {}


def test_waiters_share_one_lock_and_all_wake():
    flight = _cold._flight(threading.get_ident())
    first = wait_in_thread(flight)
    lock = flight.lock
    second = wait_in_thread(flight)
    assert first.is_alive() and second.is_alive() and flight.lock is lock
    _cold._land(flight)
    first.join(WAIT)
    second.join(WAIT)
    assert not first.is_alive() and not second.is_alive()


class LandsWhileTheLockIsMade:
    """A flight whose landing runs between a waiter's first look at ``landed`` and its making of
    the lock: the landing read ``lock`` (None) and released nothing. Reads of ``landed`` after
    the first see it landed."""

    def __init__(self):
        self.thread = threading.get_ident()
        self.lock = None
        self.value = None
        self.stored = False
        self.reads = 0

    @property
    def landed(self):
        self.reads += 1
        return self.reads > 1


@pytest.mark.skipif(_cold._LAND_GUARDED, reason=(
    "without the GIL the landing takes _cold._guard, which the waiter holds from its check to "
    "its making of the lock: no landing can run between them, the interleaving this flight fakes "
    "(test_a_waiter_before_the_landing_is_released_by_it covers the guarded landing)"))
def test_a_landing_between_the_check_and_the_lock_is_seen_after_the_lock():
    flight = LandsWhileTheLockIsMade()
    thread = wait_in_thread(flight)
    assert not thread.is_alive(), "waits for a release that will never come"
    assert flight.reads == 2 and flight.lock is not None  # made, then found landed
    assert _cold._waiting == {}


STRESS = textwrap.dedent(
    """
    import sys, threading
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    from ormcache import Registry, ormcache, _cold
    from ormcache import decorators
    import importlib
    decorators._impl = importlib.import_module(sys.argv[1])
    registry = Registry("flight-stress")
    calls = []

    class Model:
        _name = "m"
        pool = registry

        @ormcache("key")
        def get(self, key):
            calls.append(key)
            return key * 2

    THREADS, KEYS = 12, 400
    barrier = threading.Barrier(THREADS)
    results = [[] for _ in range(THREADS)]

    def run(i):
        model = Model()
        for key in range(KEYS):
            if key % 50 == 0:
                barrier.wait()
            results[i].append(model.get(key))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = [key * 2 for key in range(KEYS)]
    assert all(r == expected for r in results), "a wrong value"
    assert set(calls) == set(range(KEYS)), "a key never computed"
    assert Model.__dict__["get"].flights == {} and _cold._waiting == {}
    print("ok")
    """
)


def test_many_threads_on_fresh_keys_never_lose_a_release(hit_path):
    """12 threads call the same 400 fresh keys in step (a barrier every 50 keys): each key is
    computed, every thread gets every value, nothing is left behind; a waiter that missed
    a release would hang the subprocess (killed at the timeout, failing this test)."""
    done = subprocess.run([sys.executable, "-c", STRESS, hit_path.__name__],
                          capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
