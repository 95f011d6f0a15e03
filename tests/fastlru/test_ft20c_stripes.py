"""The read index of ``Cache(policy="sieve")`` per thread (issue #20, item 3): on free-threaded
builds each thread reads from a dict of its own, filled by its own hits under its own key objects
(``src/fastlru/_ft_read.h``), and a thread's stripe goes back to the pool when the thread ends.
These tests run on every interpreter and both implementations: what they check is what the
stripes must never change. Keys equal but not identical, made by different threads, find one
entry; more threads than stripes read right answers; a stripe left by a thread that ended holds
nothing stale and keeps no value alive; the statistics count every hit."""
import gc
import importlib
import threading
import weakref

import pytest

from support.freethreaded import FREE_THREADED, fast_switching, run_threads, scaled  # noqa: F401 - autouse

IMPLEMENTATIONS = [
    pytest.param("fastlru._policy_c", id="c-extension", marks=pytest.mark.c_extension),
    pytest.param("fastlru._policy_py", id="pure-python"),
]
STRIPES = 16  # _ft_read.h's FASTLRU_FT_STRIPES: more threads than this share the locked path


@pytest.fixture(params=IMPLEMENTATIONS, scope="module")
def Cache(request):
    return importlib.import_module(request.param).Cache


def own(key):
    """An object equal to ``key`` but not ``key`` (made by the calling thread)."""
    if isinstance(key, int):
        return int(repr(key))
    if isinstance(key, str):
        return "".join(list(key))
    return bytes(bytearray(key))


KEYS = [10_001, 2 ** 70, "a key", "another key", b"bytes key"]


def in_thread(fn):
    """fn() run to its end in a new thread; what it returned."""
    out = []
    errors = run_threads([lambda _: out.append(fn())])
    assert errors == []
    return out[0]


def test_equal_keys_made_by_other_threads_find_one_entry(Cache):
    c = Cache(8, policy="sieve")
    for k in KEYS:
        c[k] = ("v1", k)

    def read():
        mine = [own(k) for k in KEYS]
        return [c.get(k) for k in mine for _ in range(3)]  # the later reads: this thread's index

    assert in_thread(read) == [("v1", k) for k in KEYS for _ in range(3)]
    assert read() == [("v1", k) for k in KEYS for _ in range(3)]
    for k in KEYS:
        c[own(k)] = ("v2", k)  # replaced through a third object: every thread's index lets go
    assert in_thread(read) == [("v2", k) for k in KEYS for _ in range(3)]
    assert read() == [("v2", k) for k in KEYS for _ in range(3)]
    del c[own(KEYS[0])]
    assert c.get(KEYS[0]) is None and in_thread(lambda: c.get(own(KEYS[0]))) is None
    assert c._check() is None


def test_a_thread_that_ended_leaves_nothing_stale(Cache):
    c = Cache(16, policy="sieve")
    for k in KEYS:
        c[k] = ("v1", k)
    for _ in range(3):  # its stripe is filled, then it ends: the next thread may take the stripe
        in_thread(lambda: [c.get(own(k)) for k in KEYS for _ in range(2)])
    c[KEYS[1]] = ("v2", KEYS[1])
    c.pop(KEYS[2])
    expected = [None if k == KEYS[2] else ("v2" if k == KEYS[1] else "v1", k) for k in KEYS]
    for _ in range(3):
        assert in_thread(lambda: [c.get(own(k)) for k in KEYS]) == expected
        assert in_thread(lambda: [c.get(k) for k in KEYS]) == expected
    c.clear()
    assert in_thread(lambda: [c.get(own(k)) for k in KEYS]) == [None] * len(KEYS)
    assert c._check() is None


def test_a_stripe_of_an_ended_thread_keeps_no_value_alive(Cache):
    class Value:
        pass

    c = Cache(8, policy="sieve")
    v = Value()
    ref = weakref.ref(v)
    c["k"] = v
    del v
    in_thread(lambda: [c.get(own("k")) for _ in range(3)])  # in that thread's index
    del c["k"]
    gc.collect()
    assert ref() is None
    c["k"] = Value()
    ref = weakref.ref(c["k"])
    in_thread(lambda: [c.get(own("k")) for _ in range(3)])
    c.clear()
    gc.collect()
    assert ref() is None


THREADS = scaled(3 * STRIPES, 8)
ROUNDS = scaled(400, 40)


def test_more_threads_than_stripes_read_right_answers_and_count_every_hit(Cache):
    c = Cache(64, policy="sieve")
    stable = list(range(20_000, 20_032))  # never changed: every read of them is a hit
    hot = ["hot%d" % i for i in range(8)]  # replaced by the owner while everybody reads
    for k in stable:
        c[k] = k
    for k in hot:
        c[k] = (k, 0)
    before = c.info().hits
    latest = {k: 0 for k in hot}
    failures = []
    done = threading.Event()
    reads = [0] * THREADS

    def owner(_):
        try:
            for n in range(1, ROUNDS * 4):
                k = hot[n % len(hot)]
                c[own(k)] = (k, n)
                latest[k] = n
        finally:
            done.set()

    def reader(i):
        mine = [own(k) for k in stable]
        mine_hot = [own(k) for k in hot]
        n = 0
        for r in range(ROUNDS):
            for k in mine:
                if c.get(k) != k:
                    failures.append(("stable", k))
                n += 1
            for k in mine_hot:
                floor = latest[k]
                v = c.get(k)
                if v is None or v[0] != k or v[1] < floor:
                    failures.append(("hot", k, floor, v))
                n += 1
        reads[i] = n

    assert run_threads([owner] + [reader] * (THREADS - 1)) == []
    assert failures == []
    assert c.info().hits - before == sum(reads)  # every read was a hit, each counted once
    assert c._check() is None
