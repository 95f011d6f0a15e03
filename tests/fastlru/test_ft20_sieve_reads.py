"""Lock-free SIEVE hits (issue #20, item 3): on free-threaded builds ``Cache(policy="sieve")``
serves a hit from a read index kept beside the arena (``src/fastlru/_ft_read.h``), without the
critical section. These tests run on every interpreter and both implementations: what they check
is what the index must never change. A reader never gets a value stored under another key, never
a value after its ``del``/``clear()``/replacement returned in the reading thread, ``len() <=
count`` holds, the statistics count every hit, and hostile keys keep the locked path's answers."""
import gc
import importlib
import random
import threading
import weakref

import pytest

from support.freethreaded import FREE_THREADED, fast_switching, run_threads, scaled  # noqa: F401 - autouse

IMPLEMENTATIONS = [
    pytest.param("fastlru._policy_c", id="c-extension", marks=pytest.mark.c_extension),
    pytest.param("fastlru._policy_py", id="pure-python"),
]


@pytest.fixture(params=IMPLEMENTATIONS, scope="module")
def Cache(request):
    return importlib.import_module(request.param).Cache


def sieve(Cache, count, **kwargs):
    return Cache(count, policy="sieve", **kwargs)


KEYS = [1, 2, "two", 3.5, b"four", 2 ** 70, -1, "", 0.0]  # the types the index takes, and -1


# -- one thread: the answers and statistics of the locked path ----------------------------------


@pytest.mark.parametrize("key", KEYS, ids=repr)
def test_a_hit_after_a_change_sees_the_change(Cache, key):
    c = sieve(Cache, 4)
    c[key] = "a"
    assert [c.get(key) for _ in range(3)] == ["a"] * 3  # the first hit publishes, then lock-free
    c[key] = "b"
    assert c.get(key) == "b" and c[key] == "b"
    del c[key]
    assert c.get(key) is None and key not in c
    c[key] = "c"
    assert c.get(key) == "c" and c.get(key) == "c"
    assert c.pop(key) == "c"
    assert c.get(key, "gone") == "gone"
    c[key] = "d"
    c.get(key)
    c.get(key)
    c.clear()
    assert c.get(key) is None
    with pytest.raises(KeyError):
        c[key]
    c[key] = "e"
    c.get(key)
    assert c.popitem() == (key, "e")
    assert c.get(key) is None


def test_equal_keys_of_other_types_share_an_entry(Cache):
    c = sieve(Cache, 4)
    c[1] = "int"
    assert c.get(1) == c.get(1.0) == c.get(1) == "int"
    c[1.0] = "float"  # the same entry: its value changes, its key stays 1
    assert c.get(1) == "float" and list(c.keys()) == [1]
    del c[1.0]
    assert c.get(1) is None and c.get(1.0) is None


def test_statistics_count_every_hit(Cache):
    c = sieve(Cache, 8)
    for k in range(8):
        c[k] = k
    for _ in range(5):
        for k in range(10):
            c.get(k)
    info = c.info()
    assert (info.hits, info.misses) == (40, 10)
    c.clear_stats()
    for k in range(8):
        assert c[k] == k
    assert (c.info().hits, c.info().misses) == (8, 0)


def test_evictions_follow_the_twin_with_warm_keys():
    # the same operations on the compiled engine and the twin: the same answers, victims, stats
    from fastlru import _policy_c, _policy_py

    rng = random.Random(20)
    ops = [(rng.random(), rng.randrange(40)) for _ in range(5000)]
    seen = []
    for module in (_policy_c, _policy_py):
        evicted = []
        c = module.Cache(16, policy="sieve", on_evict=lambda k, v: evicted.append((k, v)))
        answers = []
        for r, k in ops:
            key = k if k % 3 else str(k)
            if r < 0.6:
                answers.append(c.get(key))
            elif r < 0.85:
                c[key] = (key, r)
            elif r < 0.95:
                answers.append(c.pop(key, None))
            elif r < 0.98:
                c.count = 8 + k % 16
            else:
                c.clear()
        seen.append((answers, evicted, c.info(), c.items()))
    assert seen[0] == seen[1]


class Hostile(str):
    """A str whose == and hash are Python code: it never enters the index (locked path only)."""

    calls = 0

    def __hash__(self):
        Hostile.calls += 1
        return str.__hash__(self)

    def __eq__(self, other):
        Hostile.calls += 1
        return str.__eq__(self, other)


def test_keys_of_subclasses_keep_the_locked_path(Cache):
    c = sieve(Cache, 4)
    c["k"] = "plain"
    c.get("k")
    before = Hostile.calls
    assert c.get(Hostile("k")) == "plain"  # equal to the stored str: found, through __hash__
    assert Hostile.calls > before
    c[Hostile("h")] = "hostile"
    assert c.get("h") == "hostile" and c.get("h") == "hostile"
    del c["h"]
    assert c.get(Hostile("h")) is None and c.get("h") is None


class Mutating:
    """A key whose __eq__ clears the cache: the probe restarts, the index never disagrees."""

    def __init__(self, cache):
        self.cache = cache

    def __hash__(self):
        return hash("k")

    def __eq__(self, other):
        self.cache.clear()
        return False


def test_a_key_that_clears_the_cache_during_its_lookup(Cache):
    c = sieve(Cache, 4)
    c["k"] = "v"
    c.get("k")
    c.get("k")
    assert c.get(Mutating(c)) is None
    assert c.get("k") is None and len(c) == 0


def test_the_index_is_garbage_collected_with_the_cache(Cache):
    class Value:
        pass

    c = sieve(Cache, 4)
    v = Value()
    v.cache = c  # a cycle through the value, which the index holds too
    c["k"] = v
    c.get("k")
    c.get("k")
    gone = weakref.ref(v)
    del c, v
    gc.collect()
    assert gone() is None


def test_a_value_whose_release_reenters_the_cache(Cache):
    # the index lets go of a value after its lock; the value's __del__ uses the cache meanwhile
    c = sieve(Cache, 4)

    class Value:
        def __del__(self):
            c["del"] = "ran"
            c.get("del")

    c["k"] = Value()
    c.get("k")
    c.get("k")
    del c["k"]
    gc.collect()
    assert c.get("del") == "ran" and c.get("k") is None
    c["k"] = Value()
    c.get("k")
    c.get("k")
    c.clear()
    gc.collect()
    assert c.get("del") == "ran"


# -- many threads: readers against writers ---------------------------------------------------

THREADS = scaled(8, 4)
ROUNDS = scaled(3000, 300)


def test_readers_never_see_a_foreign_or_removed_value(Cache):
    # each owner thread stores, replaces, deletes and clears only its own keys, and checks what
    # it then reads; reader threads check that a value always belongs to the key read
    count = 24
    evicted = []
    c = sieve(Cache, count, on_evict=lambda k, v: evicted.append(v[0] == k))
    owners = 3
    keys_of = [[o * 1000 + i for i in range(12)] + ["o%d-%d" % (o, i) for i in range(12)]
               for o in range(owners)]
    stop = threading.Event()
    failures = []

    def owner(o):
        rng = random.Random(o)
        keys = keys_of[o]
        try:
            for n in range(ROUNDS):
                k = rng.choice(keys)
                c[k] = (k, n)
                for _ in range(3):  # warm: later hits come from the index where there is one
                    v = c.get(k)
                    if v is not None and v != (k, n):
                        failures.append(("stored", k, n, v))
                c[k] = (k, -n)
                v = c.get(k)
                if v is not None and v != (k, -n):
                    failures.append(("replaced", k, n, v))
                if n % 3 == 0:
                    c.pop(k, None)
                    if c.get(k) is not None:
                        failures.append(("deleted", k, n, c.get(k)))
                if n % 97 == 0:
                    c.clear()
                    for j in keys:
                        if c.get(j) is not None:
                            failures.append(("cleared", j, n))
                if n % 53 == 0:
                    c.count = rng.choice([6, count, 12])
                info = c.info()  # size and count read together (others change count)
                if info.size > info.count:
                    failures.append(("len", info.size, info.count))
        finally:
            stop.set()

    def reader(i):
        rng = random.Random(100 + i)
        flat = [k for keys in keys_of for k in keys]
        while not stop.is_set():
            for _ in range(200):
                k = rng.choice(flat)
                v = c.get(k)
                if v is not None and v[0] != k:
                    failures.append(("foreign", k, v))
                v = c.get(k, None)
                if v is not None and v[0] != k:
                    failures.append(("foreign", k, v))

    workers = [owner] * owners + [reader] * (THREADS - owners)
    errors = run_threads(workers)
    assert errors == []
    assert failures == []
    assert all(evicted)
    assert len(c) <= c.count
    assert c._check() is None


def test_a_hot_key_read_by_all_while_its_owner_replaces_it(Cache):
    # versions only grow: once the owner's replacement returned, nobody may read an older one
    c = sieve(Cache, 8)
    c["hot"] = 0
    latest = [0]
    stop = threading.Event()
    failures = []

    def owner(_):
        try:
            for n in range(1, ROUNDS * 4):
                c["hot"] = n
                latest[0] = n
                if c.get("hot") != n:
                    failures.append(("own", n))
        finally:
            stop.set()

    def reader(_):
        while not stop.is_set():
            floor = latest[0]
            v = c.get("hot")
            if v is None or v < floor:
                failures.append(("stale", floor, v))

    assert run_threads([owner] + [reader] * (THREADS - 1)) == []
    assert failures == []
    assert c.get("hot") == latest[0]
