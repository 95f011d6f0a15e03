"""Single flight is single (issue #20): a caller that missed the cache just before the leader
stored, and reaches the flight table just after the leader removed its flight, finds the value
in the cache instead of computing it again.

Each window is forced by a hook in the late caller, between its miss and its flight table, that
waits there until the leader's call has returned (a profile hook on ``lru_cache``'s single-flight
call, the key's ``__hash__`` on ``ormcache``'s miss, which hashes the key it stores; a coroutine
made before the leader's ran, and awaited after it, for the compiled ``async`` hits). Then bursts
of threads behind a barrier, on many cold keys, compute each key once.
"""
import asyncio
import importlib
import sys
import threading

import pytest

from ormcache import Registry, decorators, ormcache, ormcache_multi

WAIT = 10  # seconds: only reached when something is broken

LRU_CACHES = [
    pytest.param("fastlru._functools_c", id="c-extension", marks=pytest.mark.c_extension),
    pytest.param("fastlru._functools_py", id="pure-python"),
]


@pytest.fixture(params=LRU_CACHES)
def lru_cache(request):
    return importlib.import_module(request.param).lru_cache


def run_thread(target, *args):
    errors = []

    def guarded():
        try:
            target(*args)
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            errors.append(exc)

    thread = threading.Thread(target=guarded, daemon=True)
    thread.errors = errors
    thread.start()
    return thread


def join(*threads):
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive(), "hang"
        assert thread.errors == []


class Late:
    """The late caller's stop: ``reached`` once it missed (and is on its way to the flight
    table); it goes on once ``leader_done``."""

    def __init__(self):
        self.reached = threading.Event()
        self.leader_done = threading.Event()

    def stop(self):
        self.reached.set()
        assert self.leader_done.wait(WAIT)

    def race(self, call, key, calls):
        """The leader computes ``key`` (its computation waits until the late caller missed),
        the late caller stops between its miss and the flight table until the leader is done."""
        results = []

        def leader():
            results.append(call(key))
            self.leader_done.set()

        first = run_thread(leader)
        for _ in range(WAIT * 1000):  # until the leader computes: the late caller then misses
            if calls:
                break
            threading.Event().wait(0.001)
        late = run_thread(lambda: results.append(call(key)))
        join(first, late)
        return results


def test_lru_cache_late_caller_finds_the_value(lru_cache):
    late, calls = Late(), []

    @lru_cache(maxsize=None, single_flight=True)
    def double(x):
        calls.append(x)
        assert late.reached.wait(WAIT)
        return 2 * x

    def hook(frame, event, arg):  # the late caller's entry into single flight, after its miss
        if event == "call" and frame.f_code.co_name == "call" and frame.f_code.co_filename.endswith("_cached.py"):
            sys.setprofile(None)
            late.stop()

    def call(x):
        if threading.current_thread() is not threading.main_thread() and calls:
            sys.setprofile(hook)  # the late caller only
        try:
            return double(x)
        finally:
            sys.setprofile(None)

    assert late.race(call, 21, calls) == [42, 42]
    assert calls == [21]  # computed once


class StopKey:
    """A key whose ``__hash__``, on its ``at``-th call in the late caller's thread (the miss
    hashes the key it stores: after the lookup, before the flight table), stops there."""

    def __init__(self, late, at):
        self.late, self.at, self.hashes = late, at, {}

    def __hash__(self):
        me = threading.get_ident()
        count = self.hashes[me] = self.hashes.get(me, 0) + 1
        if me == self.late_thread and count == self.at:
            self.late.stop()
        return 7

    late_thread = None


HIT_PATHS = [
    pytest.param(("ormcache._cache_c", "fastlru._lru_c"), id="c-hit", marks=pytest.mark.c_extension),
    pytest.param(("ormcache._cache_py", "fastlru._lru_py"), id="py-hit"),
]
_names = iter(range(1 << 30))


@pytest.fixture(params=HIT_PATHS)
def ormcache_registry(request, monkeypatch):
    hit, lru = request.param
    monkeypatch.setattr(decorators, "_impl", importlib.import_module(hit))
    name = f"flight-single-{next(_names)}"
    registry = Registry(name, lru_factory=importlib.import_module(lru).LRU)
    yield registry
    Registry.delete(name)


def test_ormcache_late_caller_finds_the_value(ormcache_registry):
    late, calls = Late(), []

    class Model:
        _name = "m"
        pool = ormcache_registry

        @ormcache("key")
        def get(self, key):
            calls.append(key)
            assert late.reached.wait(WAIT)
            return "value"

    key = StopKey(late, 2)  # the lookup hashes it once, the miss a second time

    def call(k):
        if calls:
            StopKey.late_thread = threading.get_ident()
        return Model().get(k)

    try:
        assert late.race(call, key, calls) == ["value", "value"]
    finally:
        StopKey.late_thread = None
    assert calls == [key]  # computed once
    assert Model.get.flights == {}


def test_lru_cache_coroutine_made_before_the_value(lru_cache):
    calls = []

    @lru_cache(maxsize=None)
    async def double(x):
        calls.append(x)
        await asyncio.sleep(0)
        return 2 * x

    async def main():
        first, second = double(21), double(21)  # (the compiled wrapper looks up here: two misses)
        return [await first, await second]

    assert asyncio.run(main()) == [42, 42]
    assert calls == [21]


def test_ormcache_coroutine_made_before_the_value(ormcache_registry):
    calls = []

    class Model:
        _name = "m"
        pool = ormcache_registry

        @ormcache("key")
        async def get(self, key):
            calls.append(key)
            await asyncio.sleep(0)
            return key * 2

    async def main():
        first, second = Model().get(21), Model().get(21)
        return [await first, await second]

    assert asyncio.run(main()) == [42, 42]
    assert calls == [21]


@pytest.fixture
def fast_switches():
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads interleave at every chance
    yield
    sys.setswitchinterval(interval)


def bursts(call, keys, threads=8):
    """``threads`` threads behind a barrier, each calling ``call`` on every key in turn."""
    barrier = threading.Barrier(threads)

    def run():
        barrier.wait(WAIT)
        for key in keys:
            call(key)

    join(*[run_thread(run) for _ in range(threads)])


def test_lru_cache_bursts(lru_cache, fast_switches):
    calls = []

    @lru_cache(maxsize=None, single_flight=True)
    def square(x):
        calls.append(x)
        return x * x

    for burst in range(20):
        bursts(square, range(burst * 100, burst * 100 + 100))
    assert sorted(calls) == list(range(2000))


def test_ormcache_bursts(ormcache_registry, fast_switches):
    calls = []

    class Model:
        _name = "m"
        pool = ormcache_registry

        @ormcache("key")
        def get(self, key):
            calls.append(key)
            return key * key

        @ormcache_multi(multi="keys")
        def get_many(self, keys):
            calls.extend(keys)
            return {key: key * key for key in keys}

    model = Model()
    for burst in range(20):
        bursts(model.get, range(burst * 100, burst * 100 + 100))
    assert sorted(calls) == list(range(2000))
    del calls[:]
    for burst in range(20):
        bursts(lambda key: model.get_many([key, key + 1]), range(burst * 100, burst * 100 + 100))
    assert sorted(calls) == list(range(2001))
