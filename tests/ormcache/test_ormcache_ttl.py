"""``ormcache(..., ttl=seconds)``: a method's entries expire; other methods' entries do not.

A ttl method stores its entries in its registry's expiring cache of (cache name, ttl): an LRU
of the named cache's size made by the registry's ``lru_factory(count, ttl=ttl)``, cleared
with the named cache. Every test runs on both engines and both hit paths, with a fake timer
(nothing here sleeps).
"""
import functools
import itertools

import pytest

import ormcache
from ormcache import Registry, get_cache_key_counter, ormcache as cached, ormcache_context, ormcache_multi
from support.models import make_model

_names = itertools.count()


class Clock:
    """A fake monotonic timer, advanced by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def timed_registry(LRU, hit_path, clock):
    """A fresh Registry whose LRUs read ``clock``."""
    name = f"test-ttl-registry-{next(_names)}"
    reg = Registry(name, lru_factory=functools.partial(LRU, timer=clock))
    yield reg
    Registry.delete(name)


def expiring_model(registry, calls, ttl=60, cache="default"):
    """``fresh(key)`` expires after ``ttl``, ``forever(key)`` does not; both record their calls."""

    @cached("key", ttl=ttl, cache=cache)
    def fresh(self, key):
        calls.append(("fresh", key))
        return f"fresh {key} #{len(calls)}"

    @cached("key", cache=cache)
    def forever(self, key):
        calls.append(("forever", key))
        return f"forever {key} #{len(calls)}"

    return make_model(registry, "ttl.model", fresh=fresh, forever=forever)


def test_entries_of_a_ttl_method_expire_and_others_do_not(timed_registry, clock):
    calls = []
    model = expiring_model(timed_registry, calls)()
    first, kept = model.fresh("a"), model.forever("a")
    clock.now += 59.999
    assert model.fresh("a") == first and model.forever("a") == kept
    assert len(calls) == 2
    clock.now += 0.001  # ttl seconds after the store: expired, computed again
    again = model.fresh("a")
    assert again != first
    assert model.forever("a") == kept
    assert calls == [("fresh", "a"), ("forever", "a"), ("fresh", "a")]
    clock.now += 30
    assert model.fresh("a") == again  # the new value lives ttl seconds from its own store
    counter = timed_registry.counters[("ttl.model", type(model).fresh.__wrapped__)]
    assert (counter.hit, counter.miss) == (2, 2)


def test_the_expiring_cache_is_the_named_caches_sibling(timed_registry, clock, LRU):
    calls = []
    Model = expiring_model(timed_registry, calls, ttl=5, cache="stable")
    model = Model()
    model.fresh("a")
    model.forever("a")
    lru, key, _ = get_cache_key_counter(model.fresh, "a")
    assert lru is timed_registry.expiring_cache("stable", 5)
    assert isinstance(lru, LRU) and lru.ttl == 5.0 and lru.count == timed_registry.caches["stable"].count
    assert key in lru and key not in timed_registry.caches["stable"]
    # methods with the same (cache, ttl) share it; another ttl has its own
    assert timed_registry.expiring_cache("stable", 5.0) is lru
    assert timed_registry.expiring_cache("stable", 6) is not lru
    usage = {name: entries for name, entries, _, _ in ormcache.statistics.cache_usage(timed_registry)}
    assert usage["stable"] == 1 and usage["stable ttl=5"] == 1
    assert [row["entries"] for row in ormcache.stats(timed_registry) if row["method"].endswith("fresh")] == [1]


def test_clearing_the_named_cache_clears_its_expiring_caches(timed_registry):
    calls = []
    Model = expiring_model(timed_registry, calls, ttl=60, cache="default")
    model = Model()
    model.fresh("a")
    timed_registry.clear_cache("stable")  # expands to 'default' and clears its ttl sibling
    model.fresh("a")
    Model.fresh.clear_cache(model)
    model.fresh("a")
    timed_registry.clear_all_caches()
    model.fresh("a")
    assert calls == [("fresh", "a")] * 4
    assert timed_registry.cache_invalidated >= {"stable", "default"}


def test_context_and_multi_methods_take_a_ttl(timed_registry, clock):
    calls = []

    class Model:
        _name = "ttl.multi"
        pool = timed_registry

        @ormcache_context("key", keys=("lang",), ttl=10)
        def label(self, key, context=None):
            calls.append(("label", key))
            return f"{key}@{(context or {}).get('lang')}"

        @ormcache_multi("mode", multi="ids", ttl=10)
        def names(self, mode, ids):
            calls.append(("names", tuple(ids)))
            return {i: f"{mode}{i}" for i in ids}

    model = Model()
    assert model.label("k", context={"lang": "fr"}) == "k@fr"
    assert model.names("m", [1, 2]) == {1: "m1", 2: "m2"}
    clock.now += 9
    model.label("k", context={"lang": "fr"})
    assert model.names("m", [2, 3]) == {2: "m2", 3: "m3"}
    clock.now += 1  # the first entries expire, id 3 (stored at +9) does not
    model.label("k", context={"lang": "fr"})
    assert model.names("m", [1, 2, 3]) == {1: "m1", 2: "m2", 3: "m3"}
    assert calls == [("label", "k"), ("names", (1, 2)), ("names", (3,)), ("label", "k"), ("names", (1, 2))]


def test_add_value_of_a_ttl_method_expires_too(timed_registry, clock):
    calls = []
    Model = expiring_model(timed_registry, calls, ttl=3)
    model = Model()
    Model.fresh.__cache__.add_value(model, "k", cache_value="prefilled")
    assert model.fresh("k") == "prefilled"
    clock.now += 3
    assert model.fresh("k") != "prefilled"
    assert calls == [("fresh", "k")]


@pytest.mark.parametrize(
    "ttl, error, message",
    [(0, ValueError, "ttl must be > 0"), (-1, ValueError, "ttl must be > 0"),
     (float("nan"), ValueError, "NaN"), ("60", TypeError, "number of seconds"),
     (True, TypeError, "number of seconds")],
)
def test_a_bad_ttl_fails_at_decoration(hit_path, ttl, error, message):
    for decorator in (cached, ormcache_context, ormcache_multi):
        with pytest.raises(error, match=message):
            decorator(ttl=ttl)
    with pytest.raises(ValueError, match="ttl must be > 0"):
        Registry("<default>").expiring_cache("default", 0)


def test_repr_shows_the_ttl(timed_registry):
    Model = expiring_model(timed_registry, [], ttl=60)
    assert repr(Model.fresh.__cache__).endswith("cache='default' ttl=60.0>")
    assert "ttl" not in repr(Model.forever.__cache__)
