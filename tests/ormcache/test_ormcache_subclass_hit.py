"""A ``Registry(lru_factory=...)`` whose LRU overrides ``__getitem__`` (issue #20): every hit
path reads through it, as README promises (``ormcache`` reads and stores with ``lru[key]``), the
twin as the compiled one, sync, async and ``ormcache_multi``.

The LRU here stores each value with the version it was stored under and serves it only while
that version is current: a stale entry is a miss (``KeyError(key)``), so the method runs again.
"""
import asyncio
import itertools

import pytest

from ormcache import Registry, ormcache, ormcache_multi
from support.models import make_model

_names = itertools.count()


@pytest.fixture
def versioned(LRU, hit_path):
    """(registry, state): a registry whose LRUs serve a value only under ``state["version"]``."""
    state = {"version": 1}

    class Versioned(LRU):
        def __setitem__(self, key, value):
            super().__setitem__(key, (value, state["version"]))

        def __getitem__(self, key):
            value, version = super().__getitem__(key)
            if version != state["version"]:
                raise KeyError(key)
            return value

    name = f"subclass-hit-{next(_names)}"
    registry = Registry(name, lru_factory=Versioned)
    yield registry, state
    Registry.delete(name)


def record(registry, calls):
    """A record of a model with ``get``/``aget`` (``@ormcache("key")``) and ``many``/``amany``
    (``@ormcache_multi(multi="ids")``), each recording what it computes in ``calls``."""

    @ormcache("key")
    def get(self, key):
        calls.append(key)
        return f"computed {key} #{len(calls)}"

    @ormcache("key")
    async def aget(self, key):
        calls.append(key)
        return f"computed {key} #{len(calls)}"

    @ormcache_multi(multi="ids")
    def many(self, ids):
        calls.extend(ids)
        return {id_: f"computed {id_} #{len(calls)}" for id_ in ids}

    @ormcache_multi(multi="ids")
    async def amany(self, ids):
        calls.extend(ids)
        return {id_: f"computed {id_} #{len(calls)}" for id_ in ids}

    return make_model(registry, get=get, aget=aget, many=many, amany=amany)()


def test_hit_reads_through_getitem(versioned):
    registry, state = versioned
    calls = []
    model = record(registry, calls)
    assert model.get(1) == "computed 1 #1"
    assert model.get(1) == "computed 1 #1"  # the hit: the value, not what the LRU stores
    assert calls == [1]
    state["version"] = 2  # stale now: __getitem__ says it is missing
    assert model.get(1) == "computed 1 #2"
    assert model.get(1) == "computed 1 #2"
    assert calls == [1, 1]


def test_async_hit_reads_through_getitem(versioned):
    registry, state = versioned
    calls = []
    model = record(registry, calls)
    assert asyncio.run(model.aget(1)) == "computed 1 #1"
    assert asyncio.run(model.aget(1)) == "computed 1 #1"
    state["version"] = 2
    assert asyncio.run(model.aget(1)) == "computed 1 #2"
    assert asyncio.run(model.aget(1)) == "computed 1 #2"
    assert calls == [1, 1]


def test_multi_hits_read_through_getitem(versioned):
    registry, state = versioned
    calls = []
    model = record(registry, calls)
    assert model.many([1, 2]) == {1: "computed 1 #2", 2: "computed 2 #2"}
    assert model.many([1, 2]) == {1: "computed 1 #2", 2: "computed 2 #2"}
    assert model.many(ids=[2]) == {2: "computed 2 #2"}  # (a keyword call: the Python wrapper)
    state["version"] = 2
    assert model.many([2, 3]) == {2: "computed 2 #4", 3: "computed 3 #4"}
    assert model.many(ids=[1]) == {1: "computed 1 #5"}
    assert calls == [1, 2, 2, 3, 1]


def test_async_multi_hits_read_through_getitem(versioned):
    registry, state = versioned
    calls = []
    model = record(registry, calls)
    assert asyncio.run(model.amany([1, 2])) == {1: "computed 1 #2", 2: "computed 2 #2"}
    assert asyncio.run(model.amany([1, 2])) == {1: "computed 1 #2", 2: "computed 2 #2"}
    state["version"] = 2
    assert asyncio.run(model.amany([2, 3])) == {2: "computed 2 #4", 3: "computed 3 #4"}
    assert calls == [1, 2, 2, 3]


def test_a_foreign_key_error_is_a_failed_lookup(versioned):
    """A ``KeyError`` that is not the miss of this very key is a failed lookup (counted, the
    method computed without the cache), on both hit paths alike."""
    registry, state = versioned
    calls = []
    model = record(registry, calls)
    lru = registry.caches["default"]
    assert model.get(1) == "computed 1 #1"
    broken = type(lru).__getitem__

    def raising(self, key):
        raise KeyError("something else")

    type(lru).__getitem__ = raising
    try:
        assert model.get(1) == "computed 1 #2"
    finally:
        type(lru).__getitem__ = broken
    assert registry.counters[("m", type(model).get.__wrapped__)].err == 1
