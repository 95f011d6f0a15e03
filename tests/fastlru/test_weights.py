"""Weights (``maxweight``, ``getsizeof``, ``weight``) of ``LRU`` and ``fastlru.Cache`` (every
policy), each on the compiled engine and its twin (the ``make_any`` fixture), with the same
semantics and messages. Which entries a weighted store evicts follows the type: ``LRU`` the
least recent (exact orders are asserted under ``make_any.kind == "LRU"`` or in ``LRU``-only
tests), ``Cache`` its policy (``popitem``'s order). Last, a differential fuzz of the compiled
``Cache`` against its twin with weights (``LRU``'s own is ``test_lru_fuzz.py``)."""
import random
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastlru
from support.twins import compare, pareto_sequence


def weigh_len(value):
    return len(value)


def recorder():
    """An on_evict callback that records its calls: ``rec.calls`` (key, value), ``rec.seen``
    the keys."""
    calls = []
    seen = []

    def rec(k, v):
        calls.append((k, v))
        seen.append(k)
    rec.calls = calls
    rec.seen = seen
    return rec


def test_no_maxweight(make_any):
    c = make_any(5, [(1, 10), (2, 20), (3, 30)])
    assert c.maxweight is None
    assert c.weight == 3 == len(c)
    del c[1]
    assert c.weight == 2


def test_maxweight_without_getsizeof_weighs_one(make_any):
    rec = recorder()
    c = make_any(10, maxweight=3, on_evict=rec)
    assert c.maxweight == 3
    for k in "abcd":
        c[k] = k
    assert c.weight == 3 == len(c)
    assert len(rec.seen) == 1 and rec.seen[0] not in c
    c._check()
    c["e"] = "e"
    assert c.weight == 3
    assert c.info().evictions == 2
    if make_any.kind == "LRU":
        assert c.keys() == ["e", "d", "c"]
        assert rec.calls == [("a", "a"), ("b", "b")]
    c._check()


def test_weight_bound(make_any):
    rec = recorder()
    c = make_any(10, maxweight=10, getsizeof=weigh_len, on_evict=rec)
    rng = random.Random(3)
    for i in range(300):
        c[i % 37] = "x" * rng.randrange(0, 11)
        assert c.weight <= 10
        c._check()
    assert sum(len(v) for v in c.values()) == c.weight
    assert c.info().evictions == len(rec.seen)


def test_weight_bound_evicts_the_least_recent(LRU):
    # LRU only: which entries make room is its order
    rec = recorder()
    lru = LRU(10, maxweight=10, getsizeof=weigh_len, on_evict=rec)
    lru["a"] = "aaaa"
    lru["b"] = "bbb"
    lru["c"] = "cc"
    assert lru.weight == 9
    lru["d"] = "dd"  # 11 > 10: evict a
    assert lru.keys() == ["d", "c", "b"]
    assert lru.weight == 7
    assert rec.calls == [("a", "aaaa")]
    lru["e"] = "eeeeeeee"  # 15 -> evict b (12) -> evict c (10)
    assert lru.keys() == ["e", "d"]
    assert lru.weight == 10
    assert rec.calls == [("a", "aaaa"), ("b", "bbb"), ("c", "cc")]
    assert lru.info().evictions == 3
    lru._check()


def test_weight_exactly_maxweight_fits(make_any):
    c = make_any(10, maxweight=4, getsizeof=weigh_len)
    c["a"] = "aaaa"
    assert c.items() == [("a", "aaaa")]
    assert c.weight == 4 and c["a"] == "aaaa"
    c["b"] = "bbbb"  # the only other entry must go
    assert c.weight == 4 and list(c) == ["b"]
    c._check()


def test_replace_updates_weight_and_is_never_its_own_victim(make_any):
    rec = recorder()
    c = make_any(10, maxweight=6, getsizeof=weigh_len, on_evict=rec)
    c["a"] = "aa"
    c["b"] = "bb"
    c["c"] = "cc"
    assert c.weight == 6
    c["b"] = "b"
    assert c.weight == 5 and rec.seen == []
    for k in "abc":  # every entry read: a policy may prefer any of them as a victim
        c[k]
    c["a"] = "aaaaaa"  # the others must go, never "a"
    assert c.items() == [("a", "aaaaaa")] and c.weight == 6
    assert sorted(rec.seen) == ["b", "c"]
    c["a"] = "a"
    assert c.weight == 1
    c._check()


def test_weight_replace_updates_weight(LRU):
    # LRU only: a replacement makes the key the most recent, and the least recent go first
    rec = recorder()
    lru = LRU(10, maxweight=6, getsizeof=weigh_len, on_evict=rec)
    lru["a"] = "aa"
    lru["b"] = "bb"
    lru["c"] = "cc"
    assert lru.weight == 6
    lru["b"] = "b"
    assert lru.weight == 5
    assert lru.keys() == ["b", "c", "a"]
    lru["c"] = "cccc"  # 2 + 1 + 4 = 7 > 6: evict a
    assert lru.keys() == ["c", "b"]
    assert lru.weight == 5
    assert rec.calls == [("a", "aa")]
    lru["c"] = "cccccc"  # replacing the key itself: pushes out b, c stays
    assert lru.items() == [("c", "cccccc")]
    assert lru.weight == 6
    assert rec.calls == [("a", "aa"), ("b", "b")]
    lru._check()


def test_weight_tracks_removals(make_any):
    c = make_any(10, maxweight=100, getsizeof=weigh_len)
    c.update([("a", "1"), ("b", "22"), ("c", "333"), ("d", "4444")])
    assert c.weight == 10
    del c["a"]
    assert c.weight == 9
    assert c.pop("b") == "22"
    assert c.weight == 7
    k, v = c.popitem()
    if make_any.kind == "LRU":
        assert k == "c"
    assert c.weight == 7 - len(v)
    c.clear()
    assert c.weight == 0 and c.maxweight == 100
    c["e"] = "ee"
    assert c.weight == 2
    c.clear()
    c.setdefault("z", "zz")
    assert c.weight == 2
    c._check()


def test_count_bound_also_applies(make_any):
    c = make_any(2, maxweight=100, getsizeof=weigh_len)
    c["a"] = "aa"
    c["b"] = "bbb"
    assert c.weight == 5
    c["c"] = "c"
    assert len(c) == 2 and c.weight == sum(len(v) for v in c.values())
    c._check()


def test_weight_count_bound_also_applies(LRU):
    # LRU only: the count bound and a smaller count drop the least recent
    lru = LRU(2, maxweight=100, getsizeof=weigh_len)
    lru.update([("a", "1"), ("b", "22"), ("c", "333")])
    assert lru.keys() == ["c", "b"]
    assert lru.weight == 5
    lru.count = 1
    assert lru.keys() == ["c"]
    assert lru.weight == 3


def test_zero_weight_items(make_any):
    c = make_any(3, maxweight=0, getsizeof=weigh_len)
    c["a"] = ""
    c["b"] = ""
    assert c.weight == 0 and len(c) == 2
    if make_any.kind == "LRU":
        assert c.keys() == ["b", "a"]
    kept = c.keys()
    with pytest.raises(ValueError, match="more than maxweight 0"):
        c["c"] = "c"
    assert len(c) == 2 and "c" not in c
    assert c.keys() == kept
    c._check()


def test_heavier_than_maxweight_is_refused(make_any):
    rec = recorder()
    c = make_any(10, [("a", "aa"), ("b", "bb")], maxweight=5, getsizeof=weigh_len,
                 on_evict=rec)
    before = c.items()
    if make_any.kind == "LRU":
        assert before == [("b", "bb"), ("a", "aa")]
    with pytest.raises(ValueError):
        c["c"] = "cccccc"
    assert c.items() == before
    assert c.weight == 4
    # An old value under that key stays.
    with pytest.raises(ValueError):
        c["a"] = "aaaaaa"
    assert c.items() == before
    assert c["a"] == "aa"
    with pytest.raises(ValueError):
        c.setdefault("d", "dddddd")
    assert "d" not in c
    with pytest.raises(ValueError):
        c.update({"e": "eeeeee"})
    assert "e" not in c
    assert rec.calls == []
    assert c.info().evictions == 0
    c._check()


@pytest.mark.parametrize("result, error, message", [
    (-1, ValueError, "getsizeof returned a negative weight: -1"),
    (11, ValueError, "item weighs 11, more than maxweight 10"),
    ("3", TypeError, "getsizeof's result must be an int, not str"),
    (2.0, TypeError, "getsizeof's result must be an int, not float"),
])
def test_bad_weight_leaves_cache_unchanged(make_any, result, error, message):
    rec = recorder()
    c = make_any(3, [("a", 1), ("b", 2)], maxweight=10,
                 getsizeof=lambda v: 1 if v != "bad" else result, on_evict=rec)
    before = c.items()
    with pytest.raises(error, match=message):
        c["c"] = "bad"
    with pytest.raises(error, match=message):
        c["a"] = "bad"  # a replacement: the old value stays
    assert c.items() == before and c.weight == 2 and rec.seen == []
    c._check()


def test_getsizeof_raising_leaves_cache_unchanged(make_any):
    def boom(v):
        raise KeyError("weigh")
    c = make_any(3, [("a", 1)], maxweight=10, getsizeof=lambda v: boom(v) if v == "x" else 1)
    with pytest.raises(KeyError, match="weigh"):
        c["b"] = "x"
    assert c.items() == [("a", 1)] and c.weight == 1
    c._check()


def test_setdefault_of_present_key_weighs_nothing(make_any):
    weighed = []

    def getsizeof(v):
        weighed.append(v)
        return 1
    c = make_any(3, [("a", 1)], maxweight=3, getsizeof=getsizeof)
    weighed.clear()
    assert c.setdefault("a", 99) == 1
    assert weighed == []
    assert c.setdefault("b", 2) == 2
    assert weighed == [2] and c.weight == 2


def test_setdefault_present_does_not_weigh_the_default(make_any):
    # Present: "returns value and promotes"; the default is not stored, so it is not weighed.
    c = make_any(5, [("a", "aa"), ("b", "bb")], maxweight=5, getsizeof=weigh_len)
    before = c.items()
    assert c.setdefault("a") == "aa"  # len(None) would raise TypeError
    assert c.setdefault("b", "far-too-heavy") == "bb"
    if make_any.kind == "LRU":
        assert c.items() == [("b", "bb"), ("a", "aa")]
    assert sorted(c.items()) == sorted(before)
    assert c.weight == 4
    c._check()


def test_reentrant_getsizeof(make_any):
    """getsizeof runs outside the cache's lock: it may use the cache itself."""
    c = None

    def getsizeof(v):
        c["side-%d" % v] = 0  # stores (and weighs) another entry, recursively bounded
        return 1 if v < 0 else 2

    c = make_any(20, maxweight=9,
                 getsizeof=lambda v: getsizeof(v) if isinstance(v, int) and v > 0 else 1)
    for i in range(1, 30):
        c[i] = i
        assert c.weight <= 9
        c._check()


@pytest.mark.parametrize("kwargs, error, message", [
    ({"getsizeof": weigh_len}, TypeError, "getsizeof needs maxweight"),
    ({"maxweight": 3, "getsizeof": 5}, TypeError, "getsizeof must be callable"),
    ({"maxweight": -1}, ValueError, "maxweight must be >= 0"),
    ({"maxweight": "3"}, TypeError, "maxweight must be an int, not str"),
    ({"maxweight": 3.0}, TypeError, "maxweight must be an int, not float"),
])
def test_constructor_errors(make_any, kwargs, error, message):
    with pytest.raises(error, match=message):
        make_any(3, **kwargs)


def test_huge_maxweight_is_clamped(make_any):
    c = make_any(3, maxweight=10 ** 30, getsizeof=lambda v: sys.maxsize)
    assert c.maxweight == sys.maxsize
    c["a"] = 1
    assert c.weight == sys.maxsize
    c["b"] = 2  # sys.maxsize twice does not fit: no overflow, "a" goes
    assert list(c) == ["b"] and c.weight == sys.maxsize
    c._check()


def test_huge_maxweight_is_accepted(make_any):
    # "maxweight: int >= 0": any such int, however large, is a valid bound.
    c = make_any(3, maxweight=sys.maxsize, getsizeof=lambda v: v)
    assert c.maxweight == sys.maxsize
    c["a"] = 2**62
    assert c.weight == 2**62
    huge = make_any(3, maxweight=10**30, getsizeof=lambda v: v)
    assert huge.maxweight >= sys.maxsize
    huge["a"] = 2**62
    huge["b"] = 1
    if make_any.kind == "LRU":
        assert huge.items() == [("b", 1), ("a", 2**62)]
    assert sorted(huge.items()) == [("a", 2**62), ("b", 1)]
    huge._check()


def test_weights_near_the_integer_limit(make_any):
    c = make_any(3, maxweight=sys.maxsize, getsizeof=lambda v: v)
    c["a"] = 2**62
    c["b"] = 2**62  # 2**63 > sys.maxsize: "a" goes
    assert c.items() == [("b", 2**62)]
    c["c"] = sys.maxsize  # alone it fits exactly
    assert c.items() == [("c", sys.maxsize)]
    assert c.weight == sys.maxsize
    c["d"] = 0
    if make_any.kind == "LRU":
        assert c.items() == [("d", 0), ("c", sys.maxsize)]
    assert sorted(c.items()) == [("c", sys.maxsize), ("d", 0)]
    c._check()


def test_maxweight_and_weight_are_read_only(make_any):
    c = make_any(3, maxweight=5)
    with pytest.raises(AttributeError):
        c.maxweight = 10
    assert c.maxweight == 5
    with pytest.raises(AttributeError):
        c.weight = 10
    assert c.maxweight == 5


def _ops(rng, n, keys):
    out = []
    for _ in range(n):
        k = rng.randrange(keys)
        r = rng.random()
        if r < 0.45:
            out.append(("get", k))
        elif r < 0.9:
            out.append(("set", k, "x" * rng.randrange(0, 6)))
        elif r < 0.95:
            out.append(("pop", k))
        else:
            out.append(("setdefault", k, "y" * rng.randrange(0, 6)))
    return out


def _run(cache, op):
    if op[0] == "get":
        return cache.get(op[1])
    if op[0] == "set":
        cache[op[1]] = op[2]
        return None
    if op[0] == "pop":
        return cache.pop(op[1], None)
    return cache.setdefault(op[1], op[2])


@pytest.mark.parametrize("seed", range(4))
def test_weighted_victims_follow_the_policy(make_any, seed):
    """The entries a weighted store evicts are those ``popitem`` would take, in order, from
    the same cache (the policy's own victims, not some fixed order; LRU's: the least recent)."""
    rng = random.Random(seed)
    ops = _ops(rng, 400, 40)
    rec = recorder()
    weighted = make_any(30, maxweight=12, getsizeof=weigh_len, on_evict=rec)
    done = []
    for op in ops:
        if op[0] in ("set", "setdefault"):
            k = op[1]
            # a twin cache in the very same state: popitem() until the new value fits
            twin = make_any(30, maxweight=12, getsizeof=weigh_len)
            for o in done:
                _run(twin, o)
            expected = []
            present = k in weighted
            if not present or op[0] == "set":
                room = 12 - len(op[2])
                if present:
                    room += len(weighted.peek(k))
                while twin.weight > room:
                    if present:
                        twin.pop(k)  # out of the policy while others make room
                        room -= len(weighted.peek(k))
                        present = False
                        continue
                    expected.append(twin.popitem()[0])
            del rec.seen[:]
            _run(weighted, op)
            got = list(rec.seen)
            # a count eviction may follow the weight evictions
            assert got[:len(expected)] == expected, (op, got, expected)
        else:
            _run(weighted, op)
        done.append(op)
        weighted._check()


# ---------------------------------------------------------------- compiled vs twin


op_strategy = st.tuples(
    st.sampled_from(["get", "get", "set", "set", "set", "setdefault", "pop", "popitem", "clear"]),
    st.integers(0, 25), st.integers(0, 7))


@pytest.mark.c_extension
@pytest.mark.parametrize("policy", fastlru.POLICIES)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(1, 12), maxweight=st.integers(0, 20),
       sequence=st.lists(op_strategy, max_size=120))
def test_compiled_matches_twin_with_weights(policy, count, maxweight, sequence):
    compare(policy, count, {"maxweight": maxweight, "getsizeof": weigh_len}, sequence)


@pytest.mark.c_extension
@pytest.mark.parametrize("policy", fastlru.POLICIES)
def test_long_weighted_runs_match(policy):
    compare(policy, 40, {"maxweight": 90, "getsizeof": weigh_len}, pareto_sequence(11))
