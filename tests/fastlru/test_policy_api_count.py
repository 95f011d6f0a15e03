"""fastlru.Cache's settable ``count`` (issue #22: the same API as LRU), for every policy of both
implementations: shrinking evicts the policy's own victims (``popitem``'s order) and reports
them; bad values are refused with the cache unchanged; a differential fuzz of the compiled
engine against its twin with resizes, weights and a clock."""
import random
import sys
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastlru
from support.twins import Clock, compare


def _fill(cache, seed):
    rng = random.Random(seed)
    for i in range(400):
        k = int(rng.paretovariate(0.9)) % 120
        if cache.get(k) is None:
            cache[k] = -k


@pytest.mark.parametrize("seed", range(3))
def test_shrinking_evicts_the_policys_victims(make, policy, seed):
    """LRU and SIEVE have no shares of the count: their victims are exactly what popitem
    takes. S3-FIFO and W-TinyLFU first take their shares of the new count (so popitem's order
    under the old one does not apply); the differential fuzz below pins their choice."""
    seen = []
    c = make(60, on_evict=lambda k, v: seen.append(k))
    twin = make(60)
    _fill(c, seed)
    _fill(twin, seed)
    assert c.items() == twin.items()
    before = dict(c.items())
    seen.clear()
    evictions = c.info().evictions
    c.count = 20
    if policy in ("lru", "sieve"):
        expected = [twin.popitem()[0] for _ in range(len(twin) - 20)]
        assert seen == expected
    assert len(set(seen)) == len(seen) == len(before) - 20
    assert set(seen) | set(c.keys()) == set(before) and not set(seen) & set(c.keys())
    expected = seen
    assert len(c) == 20 and c.count == 20
    assert c.info().evictions == evictions + len(expected)
    assert c.info().count == 20
    c._check()
    for i in range(200):  # still bounded by the new count, and works on
        c[1000 + i] = i
        c.get(1000 + i // 2)
        assert len(c) <= 20
    c._check()


def test_growing_makes_room(make):
    c = make(5)
    for i in range(10):
        c[i] = i
    assert len(c) == 5
    c.count = 50
    for i in range(100, 140):
        c[i] = i
    assert len(c) == 45 and c.count == 50
    c._check()
    c.count = 1
    assert len(c) == 1
    c._check()


@pytest.mark.parametrize("count, expected", [(0, 1), (-4, 1), (10 ** 30, sys.maxsize)])
def test_count_is_clamped_as_in_the_constructor(make, count, expected):
    c = make(3, [(1, 1), (2, 2)])
    c.count = count
    assert c.count == expected and len(c) == (1 if expected == 1 else 2)
    c._check()


@pytest.mark.parametrize("bad", ["3", 3.0, 2.5, None, [3]])
def test_non_int_count_leaves_the_cache_unchanged(make, bad):
    seen = []
    c = make(3, [(1, 1), (2, 2), (3, 3)], on_evict=lambda k, v: seen.append(k))
    before = (c.items(), c.info())
    with pytest.raises(TypeError, match="count must be an int"):
        c.count = bad
    assert (c.items(), c.info()) == before and seen == []
    c._check()


def test_count_cannot_be_deleted(make):
    c = make(3, [(1, 1)])
    with pytest.raises(AttributeError, match="count cannot be deleted"):
        del c.count
    assert c.count == 3 and c.items() == [(1, 1)]


def test_count_whose_comparisons_lie(make):
    class Zero(int):
        __lt__ = __le__ = __gt__ = __ge__ = __eq__ = lambda self, other: False
        __ne__ = lambda self, other: True
        __hash__ = int.__hash__

    c = make(5, [(i, i) for i in range(5)])
    c.count = Zero(-3)
    assert type(c.count) is int and c.count == 1 and len(c) == 1
    c.count = Zero(5)
    for i in range(10):
        c[i] = i
    assert len(c) == 5
    c._check()


def test_shrinking_reclaims_expired_entries_first(make):
    clock = Clock()
    seen = []
    c = make(5, ttl=10, timer=clock, on_evict=lambda k, v: seen.append(k))
    c["old"] = 1
    clock.now += 5
    c["a"] = 2
    c["b"] = 3
    clock.now += 5
    c.count = 2  # "old" expired: it goes, and nothing live has to
    assert seen == ["old"] and sorted(c.keys()) == ["a", "b"]
    c._check()


def test_shrinking_with_weights(make):
    c = make(10, maxweight=20, getsizeof=len)
    for k in "abcdefgh":
        c[k] = k * 2
    c.count = 3
    assert len(c) == 3 and c.weight == 6
    c._check()


def test_on_evict_may_use_the_cache_while_shrinking(make):
    c = None

    def on_evict(k, v):
        assert c.get(k) is None  # re-entering: the entry is already gone
        if isinstance(k, int) and k < 10:
            c["seen-%s" % (k,)] = v  # evicts further entries, reported in turn

    c = make(20, on_evict=on_evict)
    for i in range(20):
        c[i] = i
    c.count = 4
    assert len(c) <= 4
    c._check()


def test_count_changes_from_other_threads(make):
    c = make(100)
    stop = threading.Event()
    bad = []

    def writer(seed):
        rng = random.Random(seed)
        for i in range(3000):
            k = rng.randrange(300)
            c[k] = ("v", k)
            got = c.get(rng.randrange(300))
            if got is not None and got[0] != "v":
                bad.append(got)

    def resizer():
        rng = random.Random(99)
        while not stop.is_set():
            c.count = rng.choice([1, 5, 50, 100, 200])

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(3)]
    r = threading.Thread(target=resizer)
    r.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    r.join()
    assert bad == []
    assert len(c) <= c.count
    c._check()


# ---------------------------------------------------------------- compiled vs twin


op_strategy = st.tuples(
    st.sampled_from(["get", "get", "set", "set", "set", "pop", "popitem", "tick",
                     "count", "count"]),
    st.integers(0, 25), st.integers(0, 14),
).map(lambda op: (op[0], op[1], op[2] % 6) if op[0] == "set" else op)  # values of 0-5


OPTIONS = [{}, {"maxweight": 15, "getsizeof": len}, {"ttl": 6.0},
           {"ttl": 6.0, "maxweight": 15, "getsizeof": len}]


@pytest.mark.c_extension
@pytest.mark.parametrize("policy", fastlru.POLICIES)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(1, 12), options=st.sampled_from(OPTIONS),
       sequence=st.lists(op_strategy, max_size=120))
def test_compiled_matches_twin_with_resizes(policy, count, options, sequence):
    compare(policy, count, options, sequence)


@pytest.mark.c_extension
@pytest.mark.parametrize("policy", fastlru.POLICIES)
def test_long_runs_with_resizes_match(policy):
    """Long enough for W-TinyLFU's sketch reset and hill climber across resizes."""
    rng = random.Random(17)
    sequence = []
    for i in range(6000):
        k = int(rng.paretovariate(0.9)) % 25
        sequence.append(("get", k, 0))
        if rng.random() < 0.5:
            sequence.append(("set", k, rng.randrange(6)))
        if i % 500 == 499:
            sequence.append(("count", 0, rng.randrange(1, 15)))
    compare(policy, 12, {}, sequence)


def test_a_big_shrink_gives_the_memory_back(make):
    """As LRU's count: once fewer than half the arena's entries may remain (and it has more
    than 64), the live entries move to a new arena of their size and the table shrinks."""
    import tracemalloc

    keys = [("key", i) for i in range(5_000)]  # held here: evictions free no key
    tracemalloc.start()  # before the arena is allocated: only traced blocks count when freed
    try:
        c = make(5_000, maxweight=10 ** 9, ttl=10 ** 9)
        for k in keys:
            c[k] = None
        before = tracemalloc.get_traced_memory()[0]
        c.count = 10
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert before - after > 5_000 * 16  # at least 16 bytes an entry went back
    assert len(c) == 10
    c._check()
    for k in keys[:100]:  # and it works on, growing again
        c[k] = 1
        c.get(k)
    c.count = 500
    for k in keys[:400]:
        c[k] = 2
    assert len(c) <= 500
    c._check()


@pytest.mark.c_extension
@pytest.mark.parametrize("policy", fastlru.POLICIES)
@pytest.mark.parametrize("options", OPTIONS, ids=["plain", "weights", "ttl", "ttl+weights"])
def test_compaction_matches_twin(policy, options):
    rng = random.Random(23)
    sequence = []
    for i in range(3000):
        k = rng.randrange(300)
        sequence.append(("set", k, rng.randrange(6)))
        sequence.append(("get", rng.randrange(300), 0))
        if i % 300 == 299:
            sequence.append(("count", 0, rng.randrange(1, 15)))  # compacts
            sequence.append(("tick", 0, 1))
        elif i % 300 == 100:
            sequence.append(("count", 0, 200))
    compare(policy, 200, options if "maxweight" not in options else
             dict(options, maxweight=400), sequence)
