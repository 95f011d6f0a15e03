"""The engine under many threads at once (meant for free-threaded CPython; see
tests/support/freethreaded.py): eviction churn never lets ``len()`` exceed ``count`` (CPython's
own ``lru_cache`` does, gh-148180), ``on_evict``, ``clear()`` and count changes from other
threads, and a differential fuzz where each thread checks every answer against its own model
while the others mutate the same cache. No crash, hang, lost or wrong value."""
import importlib
import random
import sys
import threading

import pytest

from support.freethreaded import FREE_THREADED, fast_switching, run_threads, scaled  # noqa: F401 - autouse
from support.lru import WRAPPERS

PAUSE = 0.0002  # seconds between two disturbances from another thread


def check_after(lru):
    assert lru._check() is None
    assert len(lru) <= lru.count
    assert len(lru) == len(list(lru)) == len(lru.keys()) == lru.info().size


def test_the_interpreter_says_whether_the_gil_is_off():
    # the suite's numbers follow this; on a free-threaded build the extension keeps the GIL off
    import fastlru  # noqa: F401 - importing it must not enable the GIL
    import ormcache  # noqa: F401

    if hasattr(sys, "_is_gil_enabled"):
        assert FREE_THREADED is (not sys._is_gil_enabled())
        if sysconfig_free_threaded():
            assert FREE_THREADED, "importing fastlru or ormcache enabled the GIL"
    else:
        assert not FREE_THREADED


def sysconfig_free_threaded():
    import sysconfig

    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


@pytest.mark.timeout(600)
def test_eviction_churn_from_16_threads_never_exceeds_count(LRU):
    count = 64
    evicted = []
    lru = LRU(count, on_evict=lambda key, value: evicted.append((key, value)))
    ops = scaled(20_000, 2_000)
    over = []
    stop = threading.Event()

    def writer(tid):
        for i in range(ops):
            lru[(tid, i)] = (tid, i)
            size = len(lru)
            if size > count:
                over.append(size)
            value = lru.get((tid, i - 1))
            if value is not None and value != (tid, i - 1):
                over.append(("wrong value", (tid, i - 1), value))

    def watcher(tid):
        while not stop.wait(PAUSE):
            if len(lru) > count or lru.info().size > count or len(lru.keys()) > count:
                over.append("watcher")

    def writers_then_stop(tid):
        try:
            writer(tid)
        finally:
            done.append(tid)
            if len(done) == 16:
                stop.set()

    done = []
    errors = run_threads([writers_then_stop] * 16 + [watcher, watcher])
    assert errors == []
    assert over == []
    check_after(lru)
    assert len(lru) == count
    info = lru.info()
    assert info.evictions == len(evicted) == 16 * ops - count
    assert all(key == value for key, value in evicted)
    # every key stored is either still cached or was evicted exactly once: none lost, none twice
    assert sorted(evicted + lru.items()) == sorted(((t, i), (t, i)) for t in range(16) for i in range(ops))


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.timeout(600)
def test_lru_cache_churn_from_16_threads_never_exceeds_maxsize(wrapper):
    module = importlib.import_module(wrapper)
    maxsize = 32

    @module.lru_cache(maxsize=maxsize)
    def double(x):
        return 2 * x

    ops = scaled(20_000, 2_000)
    bad = []

    def work(tid):
        rnd = random.Random(tid)
        for i in range(ops):
            x = rnd.randrange(200) if i % 2 else tid * 1_000_000 + i
            if double(x) != 2 * x:
                bad.append(x)
            if double.cache_info().currsize > maxsize:
                bad.append("over maxsize")

    assert run_threads([work] * 16) == []
    assert bad == []
    info = double.cache_info()
    assert info.currsize == maxsize
    assert info.hits + info.misses == 16 * ops


@pytest.mark.timeout(600)
def test_on_evict_clear_and_count_changes_from_other_threads(LRU):
    lock = threading.Lock()
    evicted = []

    def on_evict(key, value):
        if value != ("v", key):
            raise AssertionError(f"{key!r} evicted with {value!r}")
        with lock:
            evicted.append(key)
        lru.get(key)  # re-entering from the callback is allowed: the entry is gone already

    lru = LRU(100, on_evict=on_evict)
    ops = scaled(20_000, 3_000)
    stop = threading.Event()
    bad = []
    unraisable = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append

    def writer(tid):
        rnd = random.Random(tid)
        try:
            for i in range(ops):
                key = (tid, rnd.randrange(400))
                lru[key] = ("v", key)
                value = lru.get((tid, rnd.randrange(400)))
                if value is not None and value[0] != "v":
                    bad.append(value)
                if len(lru) > 200:  # the biggest count the resizers set
                    bad.append(("len", len(lru)))
        finally:
            done.append(tid)
            if len(done) == 12:
                stop.set()

    # paced: spinning would starve the writers on 2 cores
    def resizer(tid):
        rnd = random.Random(tid)
        while not stop.wait(PAUSE):
            lru.count = rnd.randint(1, 200)

    def clearer(tid):
        while not stop.wait(PAUSE):
            lru.clear()

    done = []
    try:
        errors = run_threads([writer] * 12 + [resizer, resizer, clearer, clearer])
    finally:
        sys.unraisablehook = old_hook
    assert errors == []
    assert unraisable == []
    assert bad == []
    check_after(lru)
    assert lru.info().evictions == len(evicted) > 0
    lru.count = 10
    lru.update([(("end", i), ("v", ("end", i))) for i in range(20)])
    assert lru.keys() == [("end", i) for i in range(19, 9, -1)]
    check_after(lru)


class Key:
    """A key with a Python ``__hash__``/``__eq__`` (colliding hashes, so ``__eq__`` runs and
    other threads change the cache in the middle of a lookup)."""

    __slots__ = ("n",)

    def __init__(self, n):
        self.n = n

    def __hash__(self):
        return self.n % 8

    def __eq__(self, other):
        return isinstance(other, Key) and other.n == self.n

    def __repr__(self):
        return f"Key({self.n})"


def fuzz_worker(lru, ops, seed, model, evicting, bad):
    """Random operations on the thread's own keys of a cache that other threads share; every
    answer is checked against ``model`` (the thread's dict). With ``evicting``, entries may also
    vanish (other threads' stores evict them): an answer is then either the model's or a miss,
    never another value."""

    def work(tid):
        rnd = random.Random(seed * 1000 + tid)
        missing = object()
        for _ in range(ops):
            n = tid * 1000 + rnd.randrange(24)
            key = Key(n) if rnd.random() < 0.3 else (tid, n)
            expected = model[tid].get(key, missing)
            op = rnd.randrange(8)
            if op <= 2:
                value = (n, rnd.random())
                lru[key] = value
                model[tid][key] = value
                continue
            if op == 3:
                got = lru.get(key, missing)
            elif op == 4:
                got = lru.pop(key, missing)
                model[tid].pop(key, None)
            elif op == 5:
                got = lru.peek(key, missing)
            elif op == 6:
                got = (key in lru) and lru.peek(key, missing)  # another thread never writes it
                if got is False:
                    got = missing
            else:
                value = (n, rnd.random())
                got = lru.setdefault(key, value)
                if got is value:  # it was missing and is now stored
                    if expected is not missing and not evicting:
                        bad.append((tid, key, expected, "setdefault stored over it"))
                        return
                    model[tid][key] = value
                    continue
            if got is missing and evicting:
                model[tid].pop(key, None)
            elif got is not expected:
                bad.append((tid, key, expected, got))
                return

    return work


@pytest.mark.parametrize("evicting", [False, True], ids=["no-eviction", "evicting"])
@pytest.mark.timeout(600)
def test_differential_fuzz_with_threads(LRU, evicting):
    threads = 8
    ops = scaled(20_000, 3_000)
    for seed in range(scaled(3, 1)):
        lru = LRU(40 if evicting else 1_000_000)
        model = [{} for _ in range(threads)]
        bad = []
        errors = run_threads([fuzz_worker(lru, ops, seed, model, evicting, bad)] * threads)
        assert errors == []
        assert bad == []
        check_after(lru)
        if not evicting:
            merged = {key: value for part in model for key, value in part.items()}
            assert dict(lru.items()) == merged
        else:
            for key, value in lru.items():
                tid = key[0] if isinstance(key, tuple) else key.n // 1000
                assert model[tid][key] is value
