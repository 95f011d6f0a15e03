"""A store on an ``LRU`` with a ttl whose key's ``__eq__`` (or ``__hash__``) raises.

A store reclaims the expired entries before it looks its key up. If the key's ``__eq__`` then
raises, the store raises that error, and the entries it already reclaimed are handled as a
successful store would: reported to ``on_evict``, counted as evictions, their references
released (the compiled engine kept them forever, unreported; the twin dropped the reports). This
is the choice ``fastlru.Cache`` made for the same pattern. Compiled and twin alike.
"""
import gc
import weakref

import pytest

from support.twins import Clock


class Value:
    """A value that can be weakly referenced (to prove it was released)."""


class RaisingEq:
    """Every instance hashes alike, so a lookup of one compares it with a stored one."""

    def __hash__(self):
        return 1

    def __eq__(self, other):
        raise ZeroDivisionError("eq")


class RaisingHash:
    def __hash__(self):
        raise ZeroDivisionError("hash")


def _setitem(lru, key):
    lru[key] = "new"


def _setdefault(lru, key):
    lru.setdefault(key, "new")


def _update_pairs(lru, key):
    lru.update([(key, "new")])


def _update_mapping(lru, key):
    lru.update({key: "new"})


STORES = [
    pytest.param(_setitem, id="setitem"),
    pytest.param(_setdefault, id="setdefault"),
    pytest.param(_update_pairs, id="update-pairs"),
    pytest.param(_update_mapping, id="update-mapping"),
]


def _expired_cache(LRU, weighted):
    """A ttl cache holding two expired entries (values weakly referenced) and a live
    ``RaisingEq`` key; returns ``(lru, clock, seen, refs)``."""
    clock = Clock()
    seen = []
    kwargs = {"maxweight": 100} if weighted else {}
    lru = LRU(5, ttl=1, timer=clock, on_evict=lambda k, v: seen.append(k), **kwargs)
    values = [Value(), Value()]
    refs = [weakref.ref(v) for v in values]
    lru["old1"] = values[0]
    lru["old2"] = values[1]
    del values
    clock.now += 0.9
    lru[RaisingEq()] = "live"
    clock.now += 0.6  # old1 and old2 expired (at +1), the RaisingEq key lives (until +1.9)
    assert seen == []
    return lru, clock, seen, refs


@pytest.mark.parametrize("weighted", [False, True], ids=["counted", "weighted"])
@pytest.mark.parametrize("store", STORES)
def test_a_raising_eq_in_a_store_reports_and_releases_what_expired(LRU, store, weighted):
    lru, clock, seen, refs = _expired_cache(LRU, weighted)
    with pytest.raises(ZeroDivisionError, match="eq"):
        store(lru, RaisingEq())
    gc.collect()
    if weighted and store is _setdefault:
        # a weighted setdefault looks its key up first (a present key weighs nothing), before
        # reclaiming anything: the cache is left exactly as it was
        assert seen == []
        assert all(ref() is not None for ref in refs)
        lru._check()
    assert lru.info().evictions == 2  # (info() reclaims what had not been yet)
    assert seen == ["old1", "old2"]
    assert all(ref() is None for ref in refs), "the expired values leaked"
    assert len(lru) == 1
    assert lru.info().size == 1
    assert lru.keys()[0].__class__ is RaisingEq
    lru._check()
    # still a working cache
    lru["after"] = 1
    assert lru["after"] == 1 and len(lru) == 2
    lru._check()


def test_a_raising_hash_in_a_store_leaves_the_cache_as_it_was(LRU):
    lru, clock, seen, refs = _expired_cache(LRU, False)
    for store in (_setitem, _setdefault, _update_pairs):
        with pytest.raises(ZeroDivisionError, match="hash"):
            store(lru, RaisingHash())
    assert seen == []
    assert all(ref() is not None for ref in refs)
    lru._check()
    assert len(lru) == 1 and seen == ["old1", "old2"]  # reclaimed by the next operation
    gc.collect()
    assert all(ref() is None for ref in refs)


def test_the_entry_compared_is_kept_and_the_next_store_reclaims_nothing_twice(LRU):
    """After the raising store, a good store reports nothing again (no double on_evict)."""
    lru, clock, seen, refs = _expired_cache(LRU, False)
    with pytest.raises(ZeroDivisionError):
        lru[RaisingEq()] = "new"
    lru["good"] = 1
    assert seen == ["old1", "old2"]
    assert lru.info().evictions == 2
    assert sorted(k for k in lru.keys() if isinstance(k, str)) == ["good"]
    lru._check()


@pytest.mark.c_extension
def test_a_failed_allocation_in_a_weighted_replace_reports_and_releases_what_expired():
    """The compiled engine's weighted replace reserves room for its evictions after reclaiming
    the expired entries; if that allocation fails (MemoryError), those entries are reported
    and released as above (they leaked, unreported). Every single failed allocation of the
    store is tried in turn: whichever fails, the cache stays consistent and nothing leaks.
    (Compiled only: allocation failures are the C engine's own; the twin's lists make no
    such promise.)"""
    import _testcapi  # every CPython CI runs has it (pyenv's, Debian's 3.14, the 3.13t build): no skip
    from fastlru._lru_c import LRU

    failed = 0
    for start in range(40):
        clock = Clock()
        names = ("old", "a", "b", "c", "d", "e")
        reported = dict.fromkeys(names, False)  # set in place: on_evict allocates nothing

        def on_evict(k, v, reported=reported):
            reported[k] = True

        lru = LRU(10, ttl=1, timer=clock, maxweight=10, getsizeof=lambda v: v.w,
                  on_evict=on_evict)
        values = {k: Value() for k in names}
        for v in values.values():
            v.w = 1
        refs = {k: weakref.ref(v) for k, v in values.items()}
        lru["old"] = values["old"]
        clock.now += 0.9
        for k in names[1:]:
            lru[k] = values[k]
        clock.now += 0.6  # "old" expired; the heavy value below evicts 3 more
        heavy = Value()
        heavy.w = 9
        del values, v
        _testcapi.set_nomemory(start, start + 1)
        try:
            lru["c"] = heavy
        except MemoryError:
            failed += 1
        finally:
            _testcapi.remove_mem_hooks()
        lru._check()
        present = set(lru.keys())
        assert all(reported[k] for k in names if k not in present and k != "c"), (start, reported)
        assert lru.info().evictions == sum(reported.values()), start
        lru.clear()
        del lru
        gc.collect()
        assert [k for k, r in refs.items() if r() is not None] == [], start
    assert failed  # the sweep did make the store fail
