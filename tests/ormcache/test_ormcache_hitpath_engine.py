"""The compiled hit path's own lookup in the compiled engine (issue #11: the key's hash folded
from the slot's constant prefix, ``fastlru._lru_c._get_known`` instead of ``lru[key]``).

It must find exactly what ``lru[key]`` / ``lru.get(key)`` finds: every test runs on both fastlru
engines and both hit paths (``registry`` fixture); the hostile cases run in a subprocess with a
timeout.
"""
import pytest

from support.models import counter_of, run_isolated, value_model


class FixedHash:
    """Hashes to ``value`` (any int: big, negative, -1 which Python turns into -2)."""

    def __init__(self, value):
        self.value = value

    def __hash__(self):
        return self.value


ARGUMENTS = [0, 1, -1, -2, 2 ** 70, -(2 ** 70), 1.5, float("inf"), None, "s", "", b"b", ("t", 1), (),
             frozenset({1, 2}), True, FixedHash(-1), FixedHash(2 ** 63 - 1), FixedHash(-(2 ** 63)), FixedHash(12345)]


@pytest.mark.parametrize("argument", ARGUMENTS, ids=repr)
def test_a_hit_finds_the_key_stored_under_the_tuple_hash(registry, argument):
    """A value stored under the plain key tuple (hashed by tuple.__hash__) is the hit of a call
    with that argument: the folded hash is the tuple's."""
    calls = []
    Model = value_model(registry, calls)
    lru = registry.caches["default"]
    lru[("m", Model.f.__wrapped__, argument)] = "stored"
    assert Model().f(argument) == "stored"
    assert Model().f(argument) == "stored"
    assert calls == []
    counter = counter_of(registry, Model)
    assert (counter.hit, counter.miss, counter.err) == (2, 0, 0)
    assert lru.info().hits == 2 and lru.info().misses == 0


def test_equal_arguments_that_are_other_objects_hit(registry):
    """An argument equal to the stored key's, but another object (a string built at run time, a
    big int, 1.0 for 1), is a hit through the key's __eq__, as lru[key] finds it."""
    calls = []
    Model = value_model(registry, calls)
    m = Model()
    assert m.f("".join(["pa", "ram"])) == ("value", "param")
    assert m.f("".join(["par", "am"])) == ("value", "param")
    big = 10 ** 30
    assert m.f(big) == ("value", big) and m.f(int(str(big))) == ("value", big)
    assert m.f(1) == ("value", 1) and m.f(1.0) == ("value", 1) and m.f(True) == ("value", 1)
    assert calls == ["param", big, 1]
    counter = counter_of(registry, Model)
    assert (counter.hit, counter.miss, counter.err) == (4, 3, 0)


class NeverEqual(tuple):
    """A key tuple with its own __eq__ (hashed as the tuple): the engine must ask it."""

    asked = 0

    def __eq__(self, other):
        type(self).asked += 1
        return False

    __hash__ = tuple.__hash__


def test_a_stored_tuple_with_its_own_eq_is_asked(registry):
    """A stored key of the probe's very items, but of a tuple type with its own __eq__, is
    equal only if that __eq__ says so (here never: the call misses and computes)."""
    calls = []
    Model = value_model(registry, calls)
    lru = registry.caches["default"]
    NeverEqual.asked = 0
    lru[NeverEqual(("m", Model.f.__wrapped__, "k"))] = "wrong"
    assert Model().f("k") == ("value", "k")
    assert Model().f("k") == ("value", "k")
    assert calls == ["k"] and NeverEqual.asked >= 1
    counter = counter_of(registry, Model)
    assert (counter.hit, counter.miss, counter.err) == (1, 1, 0)
    assert len(lru) == 2


def test_an_lru_subclass_lookup_is_honoured(LRU, hit_path):
    """A registry whose caches are a subclass of the engine overriding its lookups: every hit
    goes through the subclass (the compiled engine's own lookup serves the exact type only)."""
    from ormcache import Registry

    asked = []

    class Recording(LRU):
        def __getitem__(self, key):
            asked.append(key)
            return "from the subclass"

        def get(self, key, default=None):
            asked.append(key)
            return "from the subclass"

    reg = Registry("test-registry-subclass-engine", lru_factory=Recording)
    try:
        calls = []
        Model = value_model(reg, calls)
        assert Model().f("k") == "from the subclass"
        assert calls == [] and asked == [("m", Model.f.__wrapped__, "k")]
    finally:
        Registry.delete("test-registry-subclass-engine")


def test_engine_statistics_count_a_hit_and_a_miss(registry):
    """The engine counts an ormcache hit and miss as lru[key] would (the same on both paths)."""
    calls = []
    Model = value_model(registry, calls)
    lru = registry.caches["default"]
    before = lru.info()
    assert Model().f("k") == ("value", "k")
    after_miss = lru.info()
    assert after_miss.misses - before.misses >= 1 and after_miss.hits == before.hits
    assert Model().f("k") == ("value", "k")
    assert (lru.info().hits, lru.info().misses) == (after_miss.hits + 1, after_miss.misses)
    assert lru.keys()[0] == ("m", Model.f.__wrapped__, "k")  # made most recent


def test_a_hit_is_made_most_recent(registry):
    calls = []
    Model = value_model(registry, calls)
    lru = registry.caches["default"]
    for key in ("a", "b", "c"):
        Model().f(key)
    assert Model().f("a") == ("value", "a") and calls == ["a", "b", "c"]
    assert [key[2] for key in lru.keys()] == ["a", "c", "b"]


def test_a_hit_on_an_expiring_cache(registry):
    """An expiring cache (ormcache(..., ttl=)) is served by the engine's expiring lookup."""
    from ormcache import ormcache as cached

    calls = []

    class Model:
        _name = "m"
        pool = registry

        @cached("x", ttl=3600)
        def f(self, x):
            calls.append(x)
            return ("value", x)

    assert Model().f("k") == ("value", "k") and Model().f("k") == ("value", "k")
    assert calls == ["k"]
    counter = counter_of(registry, Model)
    assert (counter.hit, counter.miss, counter.err) == (1, 1, 0)
    lru = registry.expiring_cache("default", 3600)
    assert lru.ttl == 3600 and lru.info().hits == 1


# -- hostile keys: a lookup that runs user code may change the cache under it --------------------


def test_eq_that_clears_the_cache_during_a_hit(hit_path, lru_module):
    """Colliding keys whose __eq__ clears the cache, stores, or calls the method again while the
    hit's lookup compares them: no crash, and every call returns its own value."""
    run_isolated(hit_path.__name__, lru_module.__name__, """
        class Hostile:
            def __init__(self, name, action):
                self.name, self.action = name, action

            def __hash__(self):
                return 7

            def __eq__(self, other):
                action, self.action = self.action, None
                if action == "clear":
                    registry.caches["default"].clear()
                elif action == "store":
                    for i in range(64):
                        registry.caches["default"][("x", i)] = i
                elif action == "reenter":
                    Model().f(Hostile("inner", None))
                return isinstance(other, Hostile) and other.name == self.name

        for action in ("clear", "store", "reenter"):
            registry.caches["default"].clear()
            first, second = Hostile("a", action), Hostile("b", None)
            assert Model().f(first) == ("value", first)
            assert Model().f(second) == ("value", second)  # compares with first: its action runs
            assert Model().f(second) == ("value", second)
            assert Model().f(first) == ("value", first)
        print("ok")
    """)


def test_hash_that_changes_the_cache_during_a_hit(hit_path, lru_module):
    """An argument whose __hash__ clears the cache, re-enters the method or raises, on calls
    that would hit: no crash; a raising __hash__ is a lookup error (counted, computed)."""
    run_isolated(hit_path.__name__, lru_module.__name__, """
        class Hostile:
            def __init__(self):
                self.mode = None

            def __hash__(self):
                mode = self.mode
                if mode == "clear":
                    registry.caches["default"].clear()
                elif mode == "reenter":
                    self.mode = None
                    Model().f(self)
                    self.mode = "reenter"
                elif mode == "raise":
                    raise ValueError("no hash")
                return 99

            def __eq__(self, other):
                return self is other

        key = Hostile()
        assert Model().f(key) == ("value", key) and Model().f(key) == ("value", key)
        assert calls == [key] and counter().hit == 1
        key.mode = "clear"
        assert Model().f(key) == ("value", key)
        key.mode = "reenter"
        for _ in range(3):
            assert Model().f(key) == ("value", key)
        key.mode = "raise"
        err = counter().err
        assert Model().f(key) == ("value", key) and counter().err == err + 1
        print("ok")
    """)


def test_multi_ids_hit_with_the_tuple_hash(registry):
    """``ormcache_multi``'s ids are looked up as their plain key tuples are hashed and compared:
    None, -1 (hashed -2), big ints, equal other objects and values stored under the plain tuple
    are all hits on the second call."""
    from ormcache import ormcache_multi

    calls = []

    class Model:
        _name = "m"
        pool = registry

        @ormcache_multi(multi="ids")
        def names(self, ids):
            calls.append(list(ids))
            return {i: f"n{i}" for i in ids}

    big = 10 ** 30
    ids = [None, -1, big, "".join(["i", "d"]), 1.5]
    expected = {i: f"n{i}" for i in ids}
    assert Model().names(ids) == expected
    registry.caches["default"][("m", Model.names.__wrapped__, "stored")] = "from the cache"
    again = [None, -1, int(str(big)), "".join(["i", "d"]), 1.5, "stored"]
    assert Model().names(again) == {**expected, "stored": "from the cache"}
    assert calls == [ids]
    counter = registry.counters[("m", Model.names.__wrapped__)]
    assert (counter.hit, counter.miss, counter.err) == (6, 5, 0)
