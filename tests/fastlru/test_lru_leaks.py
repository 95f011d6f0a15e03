"""Leaks: memory flat over a million operations, reference counts back to baseline, and
cycles through the cache collected by the GC."""
import contextlib
import gc
import sys
import tracemalloc
import weakref

import pytest

from support.lru import captured_unraisable


class Thing:
    """A weak-referenceable object (keys, values, holders)."""

    def __init__(self, name=""):
        self.name = name

    def __repr__(self):
        return f"Thing({self.name!r})"


class Boom(Exception):
    pass


@contextlib.contextmanager
def gc_disabled():
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def rc(obj):
    return sys.getrefcount(obj)


def rcs(objs):
    """Reference counts of ``objs`` (a list), measured the same way every time."""
    return [sys.getrefcount(o) for o in objs]


# ------------------------------------------------------------------ memory over 1M operations

def churn(lru, n, start):
    """``n`` mixed operations over a key space five times the count: many evictions."""
    space = lru.count * 5
    for i in range(start, start + n):
        k = (i * 7919) % space
        r = i % 10
        if r < 4:
            lru[k] = "v%d" % i
        elif r < 6:
            lru.get(k)
        elif r == 6:
            lru.pop(k, None)
        elif r == 7:
            lru.setdefault(k, [i])
        elif r == 8:
            lru.peek(k)
            k in lru
        elif len(lru) > lru.count // 2:
            lru.popitem()
        else:
            lru.update([(k, i), (k + 1, (i,))])


def measured(fn):
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        gc.collect()
        return tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_million_operations_memory_flat(LRU):
    # One million operations: the first 700k counted in allocated blocks (cheap), the last
    # 300k under tracemalloc (bytes; tracing costs ~7x, so not all of them).
    evicted = [0]

    def on_evict(key, value):
        evicted[0] += 1

    lru = LRU(1000, on_evict=on_evict)
    churn(lru, 100_000, 0)  # warm up: the table and lists reach their steady size
    gc.collect()
    blocks = sys.getallocatedblocks()
    for step in range(1, 7):
        churn(lru, 100_000, step * 100_000)
    gc.collect()
    grown_blocks = sys.getallocatedblocks() - blocks
    assert grown_blocks < 200, f"{grown_blocks} more allocated blocks after 600k operations"

    sizes = []

    def run():
        churn(lru, 50_000, 700_000)
        gc.collect()
        sizes.append(tracemalloc.get_traced_memory()[0])
        churn(lru, 250_000, 750_000)
        gc.collect()
        sizes.append(tracemalloc.get_traced_memory()[0])

    measured(run)
    grown = sizes[1] - sizes[0]
    assert grown < 8 * 1024, f"traced memory grew by {grown} bytes over 250k operations"
    assert evicted[0] > 10_000
    assert lru.info().evictions == evicted[0]
    lru._check()


@pytest.mark.timeout(600)
def test_weighted_churn_memory_flat(LRU):
    lru = LRU(500, maxweight=2000, getsizeof=len)
    sizes = []

    def run():
        def go(start):
            for i in range(start, start + 30_000):
                lru[i % 3000] = "x" * (i % 9)
                lru.get((i * 31) % 3000)
                if i % 5 == 0:
                    lru.pop((i * 17) % 3000, None)

        go(0)
        gc.collect()
        sizes.append(tracemalloc.get_traced_memory()[0])
        go(30_000)
        go(60_000)
        gc.collect()
        sizes.append(tracemalloc.get_traced_memory()[0])

    measured(run)
    assert sizes[1] - sizes[0] < 8 * 1024
    lru._check()


@pytest.mark.timeout(600)
def test_error_paths_do_not_leak(LRU):
    def getsizeof(value):
        if value == "raise":
            raise Boom
        if value == "neg":
            return -1
        if value == "float":
            return 1.5
        return len(value)

    def on_evict(key, value):
        raise Boom(key, value)

    lru = LRU(50, maxweight=100, getsizeof=getsizeof, on_evict=on_evict)
    sizes = []

    def attempt(fn, *args):
        try:
            fn(*args)
        except (Boom, KeyError, TypeError, ValueError):
            pass

    def go(start, seen):
        for i in range(start, start + 10_000):
            k = i % 200
            attempt(lru.__setitem__, k, "raise")
            attempt(lru.__setitem__, k, "neg")
            attempt(lru.__setitem__, k, "float")
            attempt(lru.__setitem__, k, "x" * 200)  # heavier than maxweight
            attempt(lru.__setitem__, [k], "x")  # unhashable
            attempt(lru.__getitem__, -k - 1)  # miss
            attempt(lru.__delitem__, -k - 1)
            attempt(lru.pop, -k - 1)
            lru[k] = "ok"  # evicts: on_evict raises, reported to the hook
            seen.clear()

    def run():
        with captured_unraisable() as seen:
            go(0, seen)
            gc.collect()
            sizes.append(tracemalloc.get_traced_memory()[0])
            go(10_000, seen)
            go(20_000, seen)
            gc.collect()
            sizes.append(tracemalloc.get_traced_memory()[0])

    measured(run)
    assert sizes[1] - sizes[0] < 8 * 1024
    lru._check()
    assert len(lru) == 50


# ------------------------------------------------------------------ reference counts

def test_refcounts_back_after_clear(LRU):
    k, v, other = Thing("k"), Thing("v"), Thing("o")
    base = rc(k), rc(v), rc(other)
    lru = LRU(5)
    lru[k] = v
    assert rc(k) > base[0] and rc(v) > base[1]
    lru[k]
    lru.get(k)
    lru.peek(k)
    assert k in lru
    lru[k] = v  # replace by itself
    lru.setdefault(k, other)  # present: the default is not kept
    list(lru), list(reversed(lru)), lru.keys(), lru.values(), lru.items(), repr(lru)
    c = lru.copy()
    del c
    assert lru == {k: v}
    lru.info()
    lru.clear()
    assert (rc(k), rc(v), rc(other)) == base


def test_refcounts_back_after_del_cache(LRU):
    keys = [Thing(i) for i in range(10)]
    values = [Thing(i) for i in range(10)]
    objs = keys + values
    base = rcs(objs)
    lru = LRU(20, zip(keys, values))
    lru.update(zip(keys[:3], values[:3]))
    del lru
    gc.collect()
    assert rcs(objs) == base


def test_refcounts_pop_popitem_delitem_replace(LRU):
    k1, v1, k2, v2, k3, v3, v4, dflt = (Thing(n) for n in ("k1", "v1", "k2", "v2", "k3", "v3", "v4", "d"))
    objs = [k1, v1, k2, v2, k3, v3, v4, dflt]
    base = rcs(objs)
    lru = LRU(10, [(k1, v1), (k2, v2), (k3, v3)])
    got = lru.pop(k2)
    assert got is v2
    del got
    assert lru.pop(k2, dflt) is dflt
    pk, pv = lru.popitem()
    assert (pk, pv) == (k1, v1)
    del pk, pv
    lru[k3] = v4  # replace: v3 released
    assert rcs(objs)[5] == base[5]
    del lru[k3]
    try:
        del lru[k3]
    except KeyError:
        pass
    try:
        lru[k2]
    except KeyError:
        pass
    try:
        lru.pop(k2)
    except KeyError:
        pass
    assert rcs(objs) == base
    assert len(lru) == 0


@pytest.mark.parametrize("how", ["no-callback", "callback-drops", "callback-keeps", "callback-raises", "resize"])
def test_refcounts_of_evicted_items(LRU, how):
    kept = []

    def on_evict(key, value):
        if how == "callback-keeps":
            kept.append((key, value))
        elif how == "callback-raises":
            raise Boom(key, value)

    keys = [Thing(i) for i in range(6)]
    values = [Thing(i) for i in range(6)]
    objs = keys + values
    base = rcs(objs)
    lru = LRU(2 if how != "resize" else 6, on_evict=None if how == "no-callback" else on_evict)
    with captured_unraisable() as seen:
        for k, v in zip(keys, values):
            lru[k] = v
        del k, v
        if how == "resize":
            lru.count = 2
        assert len(lru) == 2
        if how == "callback-raises":
            assert len(seen) == 4
            assert all(a.exc_type is Boom for a in seen)
        seen.clear()
    # The four evicted entries are released (unless the callback kept them).
    if how == "callback-keeps":
        assert [kv[0] for kv in kept] == keys[:4]
        kept.clear()
    now = rcs(objs)
    assert now[:4] + now[6:10] == base[:4] + base[6:10]
    lru.clear()
    assert rcs(objs) == base


def test_refcounts_failed_stores(LRU):
    def getsizeof(value):
        if value.name == "raise":
            raise Boom(value)
        return {"neg": -1, "float": 1.0, "heavy": 99, "none": None}.get(value.name, 1)

    lru = LRU(3, maxweight=10, getsizeof=getsizeof)
    key = Thing("key")
    bad = [Thing(n) for n in ("raise", "neg", "float", "heavy", "none")]
    objs = [key] + bad
    base = rcs(objs)
    for b in bad:
        try:
            lru[key] = b
        except (Boom, TypeError, ValueError):
            pass
        try:
            lru.setdefault(key, b)
        except (Boom, TypeError, ValueError):
            pass
        try:
            lru.update([(key, b)])
        except (Boom, TypeError, ValueError):
            pass
    del b
    assert rcs(objs) == base
    assert len(lru) == 0


def test_refcounts_options_released(LRU):
    def on_evict(key, value):
        pass

    def getsizeof(value):
        return 1

    base = rc(on_evict), rc(getsizeof)
    lru = LRU(3, on_evict=on_evict, maxweight=5, getsizeof=getsizeof)
    c = lru.copy()
    del lru, c
    gc.collect()
    assert (rc(on_evict), rc(getsizeof)) == base


def test_refcounts_iterators_released(LRU):
    lru = LRU(3, [(1, 1)])
    base = rc(lru)
    it = iter(lru)
    rit = reversed(lru)
    next(it)
    del it, rit
    gc.collect()
    assert rc(lru) == base


# ------------------------------------------------------------------ GC of cycles

def test_gc_collects_cycle_through_values(LRU):
    with gc_disabled():
        lru = LRU(3)
        v = Thing("v")
        v.cache = lru  # value -> cache -> value
        lru["k"] = v
        wr = weakref.ref(v)
        del v, lru
        assert wr() is not None  # only the GC can free a cycle
        gc.collect()
        assert wr() is None


def test_gc_collects_cycle_through_keys(LRU):
    with gc_disabled():
        lru = LRU(3)
        k = Thing("k")
        k.cache = lru
        lru[k] = 1
        wr = weakref.ref(k)
        del k, lru
        gc.collect()
        assert wr() is None


def test_gc_collects_cycle_through_callbacks(LRU):
    with gc_disabled():
        holder = Thing("holder")
        lru = LRU(3, on_evict=lambda k, v: holder, maxweight=50, getsizeof=lambda v: len(holder.name))
        holder.cache = lru
        lru["k"] = "v"
        wr = weakref.ref(holder)
        del holder, lru
        gc.collect()
        assert wr() is None


def test_gc_collects_cycle_through_value_that_is_the_cache_itself(LRU):
    with gc_disabled():
        lru = LRU(3)
        marker = Thing("m")
        lru["self"] = lru
        lru["m"] = marker
        wr = weakref.ref(marker)
        del lru, marker
        assert wr() is not None
        gc.collect()
        assert wr() is None


def test_gc_collects_large_cycle_and_copy(LRU):
    with gc_disabled():
        lru = LRU(100)
        values = [Thing(i) for i in range(100)]
        for i, v in enumerate(values):
            v.cache = lru
            lru[i] = v
        c = lru.copy()
        refs = [weakref.ref(v) for v in values]
        del values, v, lru, c
        gc.collect()
        assert all(r() is None for r in refs)


@pytest.mark.parametrize("how", ["pop", "popitem", "replace", "delitem", "evict", "clear", "resize"])
def test_value_in_cycle_released_when_removed(LRU, how):
    # The value references the cache; once the cache drops it, it goes without a GC pass.
    with gc_disabled():
        lru = LRU(2)
        v = Thing("v")
        v.cache = lru
        lru["k"] = v
        lru["other"] = 0
        wr = weakref.ref(v)
        del v
        if how == "pop":
            lru.pop("k")
        elif how == "popitem":
            assert lru.popitem()[0] == "k"
        elif how == "replace":
            lru["k"] = 1
        elif how == "delitem":
            del lru["k"]
        elif how == "evict":
            lru["new"] = 1
        elif how == "clear":
            lru.clear()
        elif how == "resize":
            lru.count = 1
        assert wr() is None
        assert "k" not in lru or how == "replace"
        lru._check()
        # And the cache itself is still collectable afterwards (no hidden reference).
        lru["again"] = Thing("again")
        lru["again"].cache = lru
        wr2 = weakref.ref(lru["again"])
        del lru
        gc.collect()
        assert wr2() is None


def test_gc_while_cache_is_in_use(LRU):
    # Values in cycles with the cache, GC passes forced between operations: no crash.
    lru = LRU(50)
    for i in range(2000):
        v = Thing(i)
        v.cache = lru
        lru[i % 120] = v
        if i % 97 == 0:
            gc.collect()
            lru._check()
    assert len(lru) == 50
    lru._check()
    lru.clear()
    gc.collect()
