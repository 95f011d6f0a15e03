"""Single flight under many threads at once (meant for free-threaded CPython; see
tests/support/freethreaded.py): over many bursts of 8+ threads calling one cold key together,
each key is computed exactly once (cachebox's per-key lock computes twice on 3.14t, its issue
#61), including re-entrant chains of keys, by ``lru_cache(single_flight=True)`` and ``@ormcache``,
compiled and twin. Every caller gets the computed value; nothing is left in a flight table."""
import collections
import importlib
import threading

import pytest

from ormcache import _cold
from ormcache import ormcache as cached
from support.freethreaded import fast_switching, run_threads, scaled  # noqa: F401 - autouse
from support.lru import WRAPPERS

THREADS = 8
PAUSE = 0.0002  # seconds between two disturbances from another thread


class Calls:
    """Counts computations per key (from any thread)."""

    def __init__(self):
        self.counts = collections.Counter()
        self.lock = threading.Lock()

    def add(self, key):
        with self.lock:
            self.counts[key] += 1

    def computed_more_than_once(self):
        return {key: n for key, n in self.counts.items() if n != 1}


def bursts(call, count, threads=THREADS):
    """``count`` bursts: in each, ``threads`` threads pass a barrier together and call
    ``call(burst)`` (a cold key each time); returns the wrong results seen."""
    barrier = threading.Barrier(threads)
    wrong = []

    def work(tid):
        for burst in range(count):
            barrier.wait()
            result = call(burst)
            if result != ("value", burst):
                wrong.append((burst, result))

    errors = run_threads([work] * threads, timeout=600)
    assert errors == []
    return wrong


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.timeout(900)
def test_lru_cache_single_flight_computes_each_cold_key_once(wrapper):
    module = importlib.import_module(wrapper)
    calls = Calls()
    count = scaled(10_000, 2_000)

    @module.lru_cache(maxsize=None, single_flight=True)
    def compute(key):
        calls.add(key)
        return ("value", key)

    assert bursts(compute, count) == []
    assert sum(calls.counts.values()) == len(calls.counts) == count
    assert calls.computed_more_than_once() == {}
    info = compute.cache_info()
    assert info.misses + info.hits == count * THREADS and info.currsize == count


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.timeout(900)
def test_lru_cache_single_flight_reentrant_chains(wrapper):
    # each burst's key computes the next two keys of its chain (re-entrant calls of the same
    # wrapper from inside a computation); every key of every chain is computed once
    module = importlib.import_module(wrapper)
    calls = Calls()
    count = scaled(3_000, 500)

    @module.lru_cache(maxsize=None, single_flight=True)
    def chain(key, depth=0):
        calls.add((key, depth))
        if depth < 2:
            assert chain(key, depth + 1) == ("value", key)
        return ("value", key)

    assert bursts(chain, count) == []
    assert len(calls.counts) == 3 * count
    assert calls.computed_more_than_once() == {}


@pytest.mark.timeout(900)
def test_ormcache_single_flight_computes_each_cold_key_once(registry, LRU, hit_path):
    calls = Calls()
    matched = (LRU.__module__ == "fastlru._lru_c") == (hit_path.__name__ == "ormcache._cache_c")
    # 10,000 bursts where the engine and the hit path match (compiled, twin); fewer across
    count = scaled(10_000 if matched else 2_000, 2_000 if matched else 500)

    class Model:
        _name = "m"
        pool = registry

        @cached("key")
        def compute(self, key):
            calls.add(key)
            return ("value", key)

    model = Model()
    assert bursts(model.compute, count) == []
    assert sum(calls.counts.values()) == len(calls.counts) == count
    assert calls.computed_more_than_once() == {}
    assert Model.__dict__["compute"].flights == {} and _cold._waiting == {}


@pytest.mark.timeout(900)
def test_ormcache_single_flight_reentrant_chains(registry):
    calls = Calls()
    count = scaled(3_000, 500)

    class Model:
        _name = "m"
        pool = registry

        @cached("key", "depth")
        def chain(self, key, depth=0):
            calls.add((key, depth))
            if depth < 2:
                assert self.chain(key, depth + 1) == ("value", key)
            return ("value", key)

    model = Model()
    assert bursts(model.chain, count) == []
    assert len(calls.counts) == 3 * count
    assert calls.computed_more_than_once() == {}
    assert Model.__dict__["chain"].flights == {} and _cold._waiting == {}


@pytest.mark.timeout(900)
def test_ormcache_bursts_while_other_threads_clear_and_resize(registry, LRU):
    # clears and count changes from other threads: a key may be computed again after a clear
    # or an eviction, but every caller gets its key's value and no flight is left behind
    lru = registry.caches["default"]
    stop = threading.Event()

    class Model:
        _name = "m"
        pool = registry

        @cached("key")
        def compute(self, key):
            return ("value", key)

    model = Model()

    def disturb(tid):
        n = 0
        while not stop.wait(PAUSE):  # paced: spinning would starve the bursts on 2 cores
            n += 1
            if tid:
                lru.count = 1 + n % 64
            else:
                registry.clear_cache()

    disturbers = [threading.Thread(target=disturb, args=(i,), daemon=True) for i in range(2)]
    for thread in disturbers:
        thread.start()
    try:
        assert bursts(model.compute, scaled(3_000, 200)) == []
    finally:
        stop.set()
        for thread in disturbers:
            thread.join(60)
    assert not any(thread.is_alive() for thread in disturbers)
    if hasattr(lru, "_check"):
        assert lru._check() is None
    assert len(lru) <= lru.count
    assert Model.__dict__["compute"].flights == {} and _cold._waiting == {}
