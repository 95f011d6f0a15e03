"""Expiry (``ttl=``/``timer=``) on both engines, with a fake timer: nothing here sleeps."""
import copy
import math
import pickle
import time

import pytest

from support.lru import captured_unraisable


class Clock:
    """A fake monotonic timer: ``clock.now`` seconds, advanced by hand."""

    def __init__(self, now=1000.0):
        self.now = now
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return self.now

    def __reduce__(self):
        return Clock, (self.now,)


def test_fresh_entries_are_returned_and_expired_ones_never(LRU):
    clock = Clock()
    lru = LRU(10, ttl=5, timer=clock)
    lru["a"] = 1
    clock.now += 4.999
    assert lru["a"] == 1
    assert lru.get("a") == 1
    assert "a" in lru
    assert lru.peek("a") == 1
    clock.now += 0.001  # exactly ttl seconds after the store: expired
    assert lru.get("a", "gone") == "gone"
    assert "a" not in lru
    assert lru.peek("a", "gone") == "gone"
    with pytest.raises(KeyError):
        lru["a"]
    assert lru.pop("a", "gone") == "gone"
    with pytest.raises(KeyError):
        del lru["a"]


def test_a_hit_does_not_extend_life_but_a_store_does(LRU):
    clock = Clock()
    lru = LRU(10, ttl=10, timer=clock)
    lru["a"] = 1
    lru["b"] = 2
    clock.now += 6
    assert lru["a"] == 1  # a hit: same expiry
    lru["b"] = 3  # a store: expires 10 s from now
    clock.now += 5
    assert lru.get("a") is None
    assert lru.get("b") == 3
    assert lru.setdefault("b", 4) == 3  # setdefault of a live key stores nothing
    clock.now += 5
    assert lru.get("b") is None


def test_len_iteration_and_views_skip_expired_entries(LRU):
    clock = Clock()
    lru = LRU(10, ttl=10, timer=clock)
    lru["old"] = 1
    clock.now += 5
    lru["new"] = 2
    lru["old"]  # most recent, but stored first
    assert len(lru) == 2
    clock.now += 5
    assert len(lru) == 1
    assert list(lru) == ["new"]
    assert list(reversed(lru)) == ["new"]
    assert lru.keys() == ["new"]
    assert lru.values() == [2]
    assert lru.items() == [("new", 2)]
    assert lru == {"new": 2}
    assert lru.info().size == 1
    assert lru.weight == 1
    assert repr(lru).startswith("LRU(10, [('new', 2)]")
    assert lru.popitem() == ("new", 2)
    clock.now += 100
    assert len(lru) == 0


def test_popitem_never_returns_an_expired_entry(LRU):
    clock = Clock()
    lru = LRU(10, ttl=10, timer=clock)
    lru["a"] = 1
    clock.now += 5
    lru["b"] = 2
    clock.now += 5
    assert lru.popitem() == ("b", 2)
    with pytest.raises(KeyError):
        lru.popitem()


def test_expired_entries_are_reported_to_on_evict_and_counted(LRU):
    clock = Clock()
    seen = []
    lru = LRU(10, ttl=1, timer=clock, on_evict=lambda k, v: seen.append((k, v)))
    lru["a"] = 1
    lru["b"] = 2
    clock.now += 1
    assert lru.get("a") is None  # a miss, and "a" is reclaimed at once
    assert seen == [("a", 1)]
    lru["c"] = 3  # a store reclaims whatever expired
    assert seen == [("a", 1), ("b", 2)]
    assert lru.info().misses == 1
    assert lru.info().evictions == 2
    assert lru.items() == [("c", 3)]
    lru._check()


def test_expired_entries_go_before_live_ones(LRU):
    # A full cache holding an expired entry drops it, not its least recent live entry.
    clock = Clock()
    lru = LRU(2, ttl=10, timer=clock)
    lru["a"] = 1
    clock.now += 5
    lru["b"] = 2
    lru["a"]  # "b" is now the least recent, "a" the oldest stored
    clock.now += 5
    lru["c"] = 3
    assert lru.items() == [("c", 3), ("b", 2)]


def test_ttl_with_a_weight_bound(LRU):
    clock = Clock()
    lru = LRU(10, ttl=10, timer=clock, maxweight=5, getsizeof=len)
    lru["a"] = "xxx"
    clock.now += 5
    lru["b"] = "yy"
    assert lru.weight == 5
    clock.now += 5
    lru["c"] = "zzz"  # "a" expired: its weight is free, "b" stays
    assert lru.items() == [("c", "zzz"), ("b", "yy")]
    assert lru.weight == 5
    lru._check()


def test_in_place_eviction_path_keeps_expiry(LRU):
    # count-bound stores reuse the least recent entry: its stamp must follow
    clock = Clock()
    lru = LRU(3, ttl=10, timer=clock)
    for i in range(100):
        lru[i] = i
        clock.now += 1
        lru._check()
    assert lru.keys() == [99, 98, 97]
    clock.now += 7  # 97 was stored 10 s ago
    assert lru.keys() == [99, 98]


def test_compaction_keeps_expiry_order(LRU):
    clock = Clock()
    lru = LRU(1000, ttl=100, timer=clock)
    for i in range(300):
        lru[i] = i
        clock.now += 0.25
    for i in range(299, 280, -1):
        lru[i]
    lru.count = 10  # compacts the arena
    lru._check()
    assert lru.keys() == list(range(281, 291))
    clock.now = 1000 + 100 + 0.25 * 286 - 0.1  # entries 0 to 285 expired
    lru["new"] = 1
    lru._check()
    assert lru.keys() == ["new", 286, 287, 288, 289, 290]


def test_ttl_none_is_the_default_and_never_calls_the_timer(LRU):
    clock = Clock()
    lru = LRU(3, timer=clock)
    lru["a"] = 1
    lru["a"]
    len(lru)
    assert clock.calls == 0
    assert lru.ttl is None
    assert LRU(3, ttl=2.5).ttl == 2.5
    assert LRU(3).timer is time.monotonic


def test_ttl_infinite_never_expires(LRU):
    clock = Clock()
    lru = LRU(3, ttl=math.inf, timer=clock)
    lru["a"] = 1
    clock.now = 1e300
    assert lru["a"] == 1


@pytest.mark.parametrize("ttl, exc, message", [
    (-1, ValueError, "ttl must be > 0"),
    (0, ValueError, "ttl must be > 0"),
    (math.nan, ValueError, "ttl must be a number of seconds, not NaN"),
    ("5", TypeError, "ttl must be a number of seconds, not str"),
    (True, TypeError, "ttl must be a number of seconds, not bool"),
    ([], TypeError, "ttl must be a number of seconds, not list"),
])
def test_bad_ttl_is_refused(LRU, ttl, exc, message):
    with pytest.raises(exc, match=message):
        LRU(3, ttl=ttl)


def test_timer_must_be_callable(LRU):
    with pytest.raises(TypeError, match="timer must be callable"):
        LRU(3, ttl=1, timer=5)


class TimerBoom(Exception):
    pass


@pytest.mark.parametrize("bad, exc, message", [
    (TimerBoom("down"), TimerBoom, "down"),
    ("noon", TypeError, "timer must return a number of seconds, not str"),
    (math.nan, ValueError, "timer returned NaN"),
    (None, TypeError, "timer must return a number of seconds, not NoneType"),
])
def test_a_failing_timer_leaves_the_cache_as_it_was(LRU, bad, exc, message):
    state = {"bad": False}

    def timer():
        if not state["bad"]:
            return 1000.0
        if isinstance(bad, BaseException):
            raise bad
        return bad

    seen = []
    lru = LRU(2, [("a", 1), ("b", 2)], ttl=10, timer=timer, on_evict=lambda k, v: seen.append(k))
    lru["a"]
    before = (lru.items(), lru.info())
    ops = [lambda: lru.__setitem__("c", 3), lambda: lru["a"], lambda: lru.get("b"),
           lambda: "a" in lru, lambda: lru.peek("a"), lambda: len(lru), lambda: lru.keys(),
           lambda: lru.pop("a"), lambda: lru.popitem(), lambda: list(lru),
           lambda: lru.setdefault("z", 1), lambda: lru.info(), lambda: lru.update(x=1)]
    for op in ops:
        state["bad"] = True
        with pytest.raises(exc, match=message):
            op()
        state["bad"] = False
        assert (lru.items(), lru.info()) == before
        assert seen == []
        lru._check()


def test_ttl_and_timer_survive_copy_and_pickle(LRU):
    clock = Clock()
    lru = LRU(5, [("a", 1)], ttl=10, timer=clock, maxweight=9)
    for again in (lru.copy(), copy.copy(lru), pickle.loads(pickle.dumps(lru))):
        assert again.ttl == 10
        assert again.maxweight == 9
        assert again.items() == [("a", 1)]
        again.timer.now += 10  # the copy's entries were stored when it was made
        assert again.items() == []
        again.timer.now -= 10
    lru = LRU(5, [("a", 1)], ttl=3)
    again = pickle.loads(pickle.dumps(lru))
    assert again.ttl == 3
    assert again.timer is time.monotonic


def test_repr_shows_ttl_and_timer(LRU):
    lru = LRU(5, ttl=2.5)
    assert repr(lru) == "LRU(5, [], ttl=2.5)"
    clock = Clock()
    lru = LRU(5, ttl=2, timer=clock)
    assert repr(lru) == f"LRU(5, [], ttl=2.0, timer={clock!r})"


def test_on_evict_errors_of_expired_entries_are_reported_not_raised(LRU):
    clock = Clock()

    def explode(key, value):
        raise TimerBoom(key)

    lru = LRU(5, [("a", 1)], ttl=1, timer=clock, on_evict=explode)
    clock.now += 2
    with captured_unraisable() as seen:
        assert lru.get("a") is None
    assert [type(s.exc_value) for s in seen] == [TimerBoom]
    assert len(lru) == 0


def test_a_timer_going_backwards_does_not_break_the_cache(LRU):
    clock = Clock()
    lru = LRU(5, ttl=10, timer=clock)
    lru["a"] = 1
    clock.now -= 50
    lru["b"] = 2  # expires before "a" although stored later
    clock.now += 45
    assert lru.get("b") is None  # checked against its own time
    assert lru.get("a") == 1
    lru._check()
    clock.now += 100
    assert len(lru) == 0
    lru._check()


def test_expired_entries_release_their_references(LRU):
    import sys

    class Key:
        def __hash__(self):
            return 1

    clock = Clock()
    key, value = Key(), object()
    before = (sys.getrefcount(key), sys.getrefcount(value))
    lru = LRU(3, ttl=1, timer=clock)
    reclaimers = [lambda: lru.get(key), lambda: lru.pop(key, None), lambda: len(lru),
                  lambda: lru.__setitem__("other", 1), lambda: lru.keys(), lambda: lru.info(),
                  lambda: lru.popitem() if len(lru) else None, lambda: list(lru)]
    for reclaim in reclaimers:
        for _ in range(100):
            lru[key] = value
            clock.now += 1
            reclaim()
        assert key not in lru
        lru.clear()
        assert (sys.getrefcount(key), sys.getrefcount(value)) == before
    lru._check()


def test_threads_storing_and_reading_with_expiry(LRU):
    # threads hammering one expiring cache while its clock moves: never a wrong value, entries
    # expire under contention, and the list, the table and the store order stay consistent
    import threading

    clock = Clock()
    lru = LRU(50, ttl=5, timer=clock)
    errors = []

    def work(seed):
        for i in range(2000):
            k = (seed * 7 + i) % 80
            if i % 3:
                lru[k] = (k, clock.now)
            else:
                got = lru.get(k)
                if got is not None and got[0] != k:
                    errors.append((k, got))
            if i % 50 == 0:
                clock.now += 1

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lru._check()
    assert len(lru) <= 50
    assert errors == []
