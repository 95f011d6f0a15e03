"""ormcache decorators and Registry: Odoo's test_ormcache behaviours and the issue's list.

Every test runs on both fastlru engines (``LRU`` fixture) and both hit paths (compiled
``_cache_c`` and pure-Python ``_cache_py``), each time on a fresh Registry.
"""
import functools
import inspect
import itertools
import logging
import threading

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import ormcache
from ormcache import (
    CACHE_SIZES,
    CACHES_BY_KEY,
    Registry,
    default_registry,
    get_cache_key_counter,
    ormcache as cached,
    ormcache_context,
    ormcache_multi,
)
from ormcache import decorators

_names = itertools.count()


def model_class(registry, name="test.model"):
    """A model in Odoo's owner protocol whose ``get(key)`` counts its computations."""

    class Model:
        _name = name
        pool = registry
        calls = []

        @cached("key")
        def get(self, key, default=None):
            """Return the value of key."""
            self.calls.append(key)
            return f"value of {key}"

    return Model


# -- Odoo's test_ormcache ---------------------------------------------------------------------


def test_miss_then_hits_after_clear(registry):
    Model = model_class(registry)
    model = Model()
    cache, key, counter = get_cache_key_counter(model.get, "x")
    hit, miss = counter.hit, counter.miss

    registry.clear_cache()
    assert key not in cache

    assert model.get("x") == "value of x"
    assert (counter.hit, counter.miss) == (hit, miss + 1)
    assert key in cache

    assert model.get("x") == "value of x"
    assert (counter.hit, counter.miss) == (hit + 1, miss + 1)
    assert key in cache

    registry.clear_cache()
    assert key not in cache
    assert model.get("x") == "value of x"
    assert (counter.hit, counter.miss) == (hit + 1, miss + 2)
    assert Model.calls == ["x", "x"]


# what clear_cache records and reset_changes forgets: test_odoo19_odoo_tests.test_invalidation


def test_invalidated_set_is_per_thread(registry):
    assert registry.cache_invalidated == set()
    seen = {}

    def other():
        registry.clear_cache("assets")
        registry.registry_invalidated = True
        seen["names"] = set(registry.cache_invalidated)
        seen["registry"] = registry.registry_invalidated

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen == {"names": {"assets"}, "registry": True}
    assert registry.cache_invalidated == set()
    assert registry.registry_invalidated is False


# -- Registry ------------------------------------------------------------------------------------


def test_one_registry_per_database_even_under_threads(LRU):
    name = f"test-ormcache-{next(_names)}"
    barrier = threading.Barrier(16)
    found = []

    def get():
        barrier.wait()
        found.append(Registry(name, lru_factory=LRU))

    threads = [threading.Thread(target=get) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(found) == 16 and all(reg is found[0] for reg in found)
        assert found[0].db_name == name and Registry(name) is found[0]
        Registry.delete(name)
        fresh = Registry(name, lru_factory=LRU)
        assert fresh is not found[0]
    finally:
        Registry.delete(name)


def test_default_and_configured_sizes(LRU):
    name = f"test-ormcache-{next(_names)}"
    reg = Registry(name, lru_factory=LRU, sizes={"assets": 3})
    try:
        assert set(reg.caches) == set(CACHE_SIZES)
        assert {n: lru.count for n, lru in reg.caches.items()} == dict(CACHE_SIZES, assets=3)
        assert CACHE_SIZES["default"] == 8192 and CACHE_SIZES["groups"] == 64 and CACHE_SIZES["stable"] == 1024
        assert all(isinstance(lru, LRU) for lru in reg.caches.values())
    finally:
        Registry.delete(name)
    # a name Odoo does not have adds a cache of its own (tests/ormcache/test_registry_names.py)
    with pytest.raises(ValueError, match="non-empty strings"):
        Registry(f"test-ormcache-{next(_names)}", sizes={"": 3})


def test_clearing_a_name_expands_as_odoo(registry):
    # Odoo 19's expansions (issue #8 item 6 changed groups and assets; see test_registry_names.py)
    assert CACHES_BY_KEY["stable"] == ("stable", "default", "templates.cached_values")
    assert CACHES_BY_KEY["groups"] == ("groups", "templates", "templates.cached_values")
    assert CACHES_BY_KEY["assets"] == ("assets", "templates.cached_values")

    def fill():
        for name, lru in registry.caches.items():
            lru["k"] = name

    fill()
    registry.clear_cache("stable")
    assert {n for n, lru in registry.caches.items() if len(lru) == 0} == {"stable", "default", "templates.cached_values"}
    assert registry.cache_invalidated == {"stable"}
    fill()
    registry.clear_cache("groups")
    assert {n for n, lru in registry.caches.items() if len(lru) == 0} == {"groups", "templates", "templates.cached_values"}
    fill()
    assert registry._clear_local(["stable", "groups"]) == ["stable", "default", "templates.cached_values", "groups", "templates"]
    assert registry.cache_invalidated == {"stable", "groups"}  # _clear_local records nothing
    with pytest.raises(ValueError, match="unknown cache name 'bogus'"):
        registry.clear_cache("default", "bogus")
    assert len(registry.caches["assets"]) == 1  # nothing cleared by the failed call


def test_clear_all_caches_records_every_name(registry):
    for lru in registry.caches.values():
        lru["k"] = 1
    registry.clear_all_caches()
    assert all(len(lru) == 0 for lru in registry.caches.values())
    assert registry.cache_invalidated == set(CACHES_BY_KEY)  # the keys, as Odoo 19 (issue #8)


def test_method_clear_cache_clears_its_named_cache(registry):
    class Model:
        _name = "m"
        pool = registry

        @cached("x", cache="assets")
        def f(self, x):
            return [x]

    model = Model()
    first = model.f(1)
    registry.caches["default"]["other"] = 1
    Model.f.clear_cache(model)
    assert len(registry.caches["assets"]) == 0 and len(registry.caches["default"]) == 1
    assert registry.cache_invalidated == {"assets"}
    assert model.f(1) == first and model.f(1) is not first


# -- keys --------------------------------------------------------------------------------------


def test_positional_keyword_and_default_arguments_give_one_key(registry):
    calls = []

    class Model:
        _name = "m"
        pool = registry

        @cached("a", "b")
        def f(self, a, b=2, *, c=None):
            calls.append((a, b))
            return a * 10 + b

    m = Model()
    results = {m.f(1), m.f(1, 2), m.f(a=1), m.f(1, b=2), m.f(b=2, a=1), Model.f(m, 1), m.f(1, c="ignored")}
    assert results == {12} and calls == [(1, 2)]
    assert m.f(1, 3) == 13 and m.f(b=3, a=1) == 13 and calls == [(1, 2), (1, 3)]
    assert len(registry.caches["default"]) == 2


def test_tp_call_path_matches_vectorcall(registry):
    Model = model_class(registry)
    model = Model()
    wrapper = Model.__dict__["get"]
    assert wrapper.__call__(model, "k") == "value of k"
    assert wrapper.__call__(model, key="k") == "value of k"
    assert type(wrapper).__call__(wrapper, model, "k", default=1) == "value of k"
    assert model.get("k") == "value of k" and Model.calls == ["k"]


def test_keys_hold_model_and_method(registry):
    class A:
        _name = "a"
        pool = registry

        @cached("x")
        def f(self, x):
            return ("f", self._name, x)

        @cached("x")
        def g(self, x):
            return ("g", self._name, x)

    class B(A):
        _name = "b"

    assert (A().f(1), A().g(1), B().f(1), B().g(1)) == (("f", "a", 1), ("g", "a", 1), ("f", "b", 1), ("g", "b", 1))
    keys = set(registry.caches["default"].keys())
    assert keys == {(m, fn, 1) for m in ("a", "b") for fn in (A.f.__wrapped__, A.g.__wrapped__)}


def test_no_expression_means_one_entry_per_model(registry):
    calls = []

    class A:
        _name = "a"
        pool = registry

        @cached()
        def all(self):
            calls.append(self._name)
            return {self._name}

    class B(A):
        _name = "b"

    assert A().all() == {"a"} and A().all() == {"a"} and B().all() == {"b"}
    assert calls == ["a", "b"]


def test_expressions_over_parameters(registry):
    calls = []

    class Record:
        def __init__(self, id_):
            self.id = id_

    class Model:
        _name = "m"
        pool = registry

        @cached("rec.id", "frozenset(ids)", "len(names) > 1")
        def f(self, rec, ids, names=()):
            calls.append(rec.id)
            return rec.id

    m = Model()
    assert m.f(Record(1), [1, 2]) == 1
    assert m.f(Record(1), ids=(2, 1)) == 1
    assert m.f(Record(1), [1, 2], ("x",)) == 1
    assert m.f(Record(1), [1, 2], ("x", "y")) == 1
    assert calls == [1, 1]


def test_signature_with_annotations_varargs_and_kwonly(registry):
    calls = []
    sentinel = object()

    class Model:
        _name = "m"
        pool = registry

        @cached("a", "rest", "tuple(sorted(kw.items()))", "flag is marker")
        def f(self, a: int, *rest: str, flag: object = sentinel, marker=sentinel, **kw) -> int:
            calls.append(a)
            return a

    m = Model()
    assert m.f(1, "x", y=2) == m.f(1, "x", y=2) == 1
    assert m.f(1, "x", y=3) == 1
    assert m.f(1, "x", y=2, flag=None) == 1
    assert len(calls) == 3


def test_classmethod_staticmethod_and_plain_function(registry, clean_default):
    calls = []

    class Model:
        _name = "m"
        pool = registry

        @classmethod
        @cached("x")
        def cm(cls, x):
            calls.append(("cm", x))
            return (cls.__name__, x)

        @cached("x")
        @classmethod
        def cm2(cls, x):
            calls.append(("cm2", x))
            return (cls.__name__, x)

        @staticmethod
        @cached("x")
        def sm(x):
            calls.append(("sm", x))
            return -x

        @cached("x")
        @staticmethod
        def sm2(x):
            calls.append(("sm2", x))
            return -x

    @cached("x")
    def plain(x, y=0):
        calls.append(("plain", x))
        return x * 2

    m = Model()
    for _ in range(2):
        assert Model.cm(1) == m.cm(x=1) == ("Model", 1)
        assert Model.cm2(1) == ("Model", 1)
        assert Model.sm(2) == m.sm(x=2) == -2
        assert Model.sm2(2) == -2
        assert plain(3) == plain(x=3, y=5) == 6
    assert calls == [("cm", 1), ("cm2", 1), ("sm", 2), ("sm2", 2), ("plain", 3)]
    # classmethods use the class's pool; functions and staticmethods the default registry
    assert {key[0] for key in registry.caches["default"].keys()} == {"m"}
    models = {key[0] for key in default_registry.caches["default"].keys()}
    assert models == {"test_classmethod_staticmethod_and_plain_function.<locals>.Model", __name__}


def test_wrapper_metadata(registry):
    Model = model_class(registry)
    wrapper = Model.__dict__["get"]
    original = wrapper.__wrapped__
    assert wrapper.__name__ == "get" and wrapper.__doc__ == "Return the value of key."
    assert wrapper.__qualname__ == original.__qualname__ and wrapper.__module__ == __name__
    assert inspect.signature(wrapper) == inspect.signature(original)
    assert callable(wrapper.clear_cache) and isinstance(wrapper.__cache__, cached)
    bound = Model().get
    assert bound.__self__.__class__ is Model and bound.__func__ is wrapper


def test_owner_without_pool_uses_default_registry(hit_path, clean_default):
    class Plain:
        @cached("x")
        def f(self, x):
            return x + 1

    class NotARegistry:
        pool = "a connection pool, not a Registry"

        @cached("x")
        def f(self, x):
            return x + 2

    assert Plain().f(1) == 2 and Plain().f(1) == 2
    # a pool that is not a Registry is a mistake, said at once (issue #21; it used
    # default_registry silently): test_ormcache_owner_registry.py
    with pytest.raises(TypeError, match="pool must be a Registry"):
        NotARegistry().f(1)
    keys = set(default_registry.caches["default"].keys())
    assert (Plain.__qualname__, Plain.f.__wrapped__, 1) in keys
    assert not any(key[0] == NotARegistry.__qualname__ for key in keys)
    counter = default_registry.counters[(Plain.__qualname__, Plain.f.__wrapped__)]
    assert (counter.hit, counter.miss) == (1, 1)


def test_instance_pool_and_model_change_between_calls(registry, LRU):
    other = Registry(f"test-ormcache-{next(_names)}", lru_factory=LRU)
    try:
        Model = model_class(registry)
        a, b = Model(), Model()
        b.pool = other
        b._name = "other.model"
        assert a.get("k") == b.get("k") == a.get("k") == b.get("k") == "value of k"
        assert Model.calls == ["k", "k"]
        assert list(registry.caches["default"].keys()) == [("test.model", Model.get.__wrapped__, "k")]
        assert list(other.caches["default"].keys()) == [("other.model", Model.get.__wrapped__, "k")]
    finally:
        Registry.delete(other.db_name)


def test_skiparg_is_deprecated_but_works(registry):
    calls = []
    with pytest.warns(DeprecationWarning, match="skiparg"):

        class Model:
            _name = "m"
            pool = registry

            @cached(skiparg=2)
            def f(self, cr, x, y=0):
                calls.append(x)
                return x + y

    m = Model()
    assert m.f("cr1", 1) == 1 and m.f("cr2", 1) == 1 and m.f("cr1", 1, 1) == 2
    assert calls == [1, 1]
    assert set(registry.caches["default"].keys()) == {("m", Model.f.__wrapped__, 1), ("m", Model.f.__wrapped__, 1, 1)}


def test_mutable_results_are_returned_as_cached(registry):
    class Model:
        _name = "m"
        pool = registry

        @cached("x")
        def f(self, x):
            return [x]

    m = Model()
    assert m.f(1) is m.f(1)  # the same object: callers must not mutate it


def test_missing_argument_fails_like_the_method(registry):
    Model = model_class(registry)
    with pytest.raises(TypeError):
        Model().get()
    with pytest.raises(TypeError):
        Model.get()
    with pytest.raises(TypeError):
        Model().get("a", "b", "c")
    assert Model.calls == [] and len(registry.caches["default"]) == 0


# -- ormcache_context --------------------------------------------------------------------------


def test_context_keys_from_context_argument_and_from_owner(registry):
    calls = []

    class Env:
        def __init__(self, context):
            self.context = context

    class Model:
        _name = "m"
        pool = registry
        _context = {"lang": "fr_FR"}

        @ormcache_context("x", keys=("lang", "tz"))
        def f(self, x, context=None):
            calls.append(("f", x, (context or {}).get("lang")))
            return x

        @ormcache_context("x", keys=("lang",))
        def g(self, x):
            calls.append(("g", x))
            return x

    m = Model()
    assert m.f(1, {"lang": "en"}) == m.f(1, context={"lang": "en", "other": 1}) == 1
    assert m.f(1, {"lang": "de"}) == 1 and m.f(1) == 1 and m.f(1, {"lang": "en", "tz": "UTC"}) == 1
    assert [c for c in calls if c[0] == "f"] == [("f", 1, "en"), ("f", 1, "de"), ("f", 1, None), ("f", 1, "en")]

    assert m.g(1) == m.g(1) == 1
    with_env = Model()
    with_env.env = Env({"lang": "nl"})
    assert with_env.g(1) == with_env.g(1) == 1
    Model._context = {"lang": "nl"}
    assert m.g(1) == 1  # same lang as the env's: same entry
    assert [c for c in calls if c[0] == "g"] == [("g", 1), ("g", 1)]
    keys = {key[2:] for key in registry.caches["default"].keys() if key[1] is Model.g.__wrapped__}
    assert keys == {(1, ("fr_FR",)), (1, ("nl",))}


def test_context_keys_must_be_a_sequence(registry):
    with pytest.raises(TypeError, match="keys"):
        ormcache_context("x", keys="lang")


# -- ormcache_multi ----------------------------------------------------------------------------


def test_multi_partial_hits(registry):
    calls = []

    class Model:
        _name = "m"
        pool = registry

        @ormcache_multi("mode", multi="ids")
        def names(self, mode, ids):
            calls.append((mode, list(ids)))
            return {i: f"{mode}{i}" for i in ids}

    m = Model()
    assert m.names("a", [1, 2]) == {1: "a1", 2: "a2"}
    assert m.names("a", ids=[2, 3]) == {2: "a2", 3: "a3"}
    assert m.names(mode="a", ids=(3, 1, 2)) == {1: "a1", 2: "a2", 3: "a3"}
    assert m.names("b", [1]) == {1: "b1"}
    assert calls == [("a", [1, 2]), ("a", [3]), ("b", [1])]
    counter = registry.counters[("m", Model.names.__wrapped__)]
    assert (counter.hit, counter.miss) == (4, 4)


def test_multi_missing_id_raises_key_error_naming_it(registry):
    class Model:
        _name = "m"
        pool = registry

        @ormcache_multi(multi="ids")
        def f(self, ids):
            return {i: i for i in ids if i != 13}

    with pytest.raises(KeyError, match="ids 13"):
        Model().f([12, 13])
    assert Model().f([12]) == {12: 12}


def test_multi_must_name_a_parameter(registry):
    with pytest.raises(ValueError, match="'nope' is not a parameter"):

        @ormcache_multi(multi="nope")
        def f(self, ids):
            return {}


# -- errors ------------------------------------------------------------------------------------


def test_unhashable_key_is_an_error_logged_once_and_computed(registry, caplog):
    calls = []

    class Model:
        _name = "m"
        pool = registry

        @cached("x")
        def f(self, x):
            calls.append(x)
            return len(x)

    m = Model()
    with caplog.at_level(logging.WARNING, logger="ormcache"):
        assert m.f([1, 2]) == 2
        assert m.f([1, 2, 3]) == 3
        assert m.f((1,)) == 1 and m.f((1,)) == 1
    assert calls == [[1, 2], [1, 2, 3], (1,)]
    warnings = [r for r in caplog.records if r.name == "ormcache"]
    assert len(warnings) == 1
    assert "[1, 2]" in warnings[0].getMessage() and "Model.f" in warnings[0].getMessage()
    counter = registry.counters[("m", Model.f.__wrapped__)]
    assert (counter.err, counter.miss, counter.hit) == (2, 1, 1)


def test_method_errors_are_not_cached_and_not_chained(registry):
    calls = []

    class Model:
        _name = "m"
        pool = registry

        @cached("x")
        def f(self, x):
            calls.append(x)
            if len(calls) == 1:
                raise RuntimeError("first call fails")
            return x

        @cached("x")
        def g(self, x):
            raise LookupError(x)

    m = Model()
    with pytest.raises(RuntimeError) as info:
        m.f(1)
    assert info.value.__context__ is None  # not raised "during handling" of the cache's KeyError
    assert m.f(1) == 1 and m.f(1) == 1 and calls == [1, 1]
    with pytest.raises(LookupError):
        m.g([1])  # unhashable: computed without cache, its error propagates unchained
    with pytest.raises(LookupError) as info:
        m.g(2)
    assert info.value.__context__ is None


@pytest.mark.parametrize(
    "exprs, message",
    [
        (("x +",), "invalid key expression 'x \\+'"),
        (("os.path.join(x)",), "'os.path.join\\(x\\)' uses os"),
        (("x", "undefined_name"), "'undefined_name' uses undefined_name"),
        (("[y for y in x] + [z]",), "uses z"),
    ],
)
def test_bad_expressions_fail_at_decoration_naming_method_and_expression(registry, exprs, message):
    with pytest.raises(ValueError, match=message) as info:

        @cached(*exprs)
        def compute(self, x):
            return x

    assert "compute" in str(info.value)


def test_bad_decorator_arguments(registry):
    with pytest.raises(ValueError, match="unknown cache name"):
        cached("x", cache="nope")
    with pytest.raises(TypeError, match="string"):
        cached(3)(lambda self, x: x)
    decorator = cached("x")
    decorator(lambda self, x: x)
    with pytest.raises(TypeError, match="already bound"):
        decorator(lambda self, x: x)


# -- eviction, recursion, invalidation during a computation -------------------------------------


def test_eviction_when_the_named_cache_is_full(LRU, hit_path):
    name = f"test-ormcache-{next(_names)}"
    reg = Registry(name, lru_factory=LRU, sizes={"templates": 2})
    try:
        calls = []

        class Model:
            _name = "m"
            pool = reg

            @cached("x", cache="templates")
            def f(self, x):
                calls.append(x)
                return x

        m = Model()
        for x in (1, 2, 1, 3):  # 3 pushes out 2, the least recently used
            m.f(x)
        assert calls == [1, 2, 3] and len(reg.caches["templates"]) == 2
        m.f(1)
        m.f(2)
        assert calls == [1, 2, 3, 2]
        assert len(reg.caches["default"]) == 0
    finally:
        Registry.delete(name)


def test_recursion_on_the_same_and_other_keys(registry):
    calls = []

    class Model:
        _name = "m"
        pool = registry

        @cached("n")
        def fib(self, n):
            calls.append(n)
            return n if n < 2 else self.fib(n - 1) + self.fib(n - 2)

        @cached("x")
        def same(self, x, depth=0):
            calls.append(("same", depth))
            return depth if depth == 3 else self.same(x, depth + 1)

    m = Model()
    assert m.fib(30) == 832040 and sorted(calls) == list(range(31))
    # the same key from inside its own computation: computed again (no deadlock), depth ignored
    assert m.same("k") == 3 and m.same("k") == 3
    assert [c for c in calls if isinstance(c, tuple)] == [("same", 0), ("same", 1), ("same", 2), ("same", 3)]


def test_a_clear_during_the_computation_drops_its_value(registry):
    calls = []

    class Model:
        _name = "m"
        pool = registry

        @cached("x")
        def f(self, x):
            calls.append(x)
            if len(calls) == 1:
                self.pool.clear_cache()  # e.g. another thread's write, seen mid-computation
            return len(calls)

    m = Model()
    assert m.f(1) == 1
    assert len(registry.caches["default"]) == 0
    assert m.f(1) == 2 and m.f(1) == 2


def test_a_clear_between_the_check_and_the_store_drops_the_value(LRU, hit_path):
    """Another thread's clear can land after the miss checked the generation and before it
    stored: the stored value predates the clear and must not stay (ormcache and ormcache_multi)."""
    name = f"test-ormcache-{next(_names)}"
    armed = []

    class ClearingLRU(LRU):
        def __setitem__(self, key, value):
            if armed:
                armed.pop()
                reg._clear_local(["default"])  # what the other thread does, right now
            super().__setitem__(key, value)

    reg = Registry(name, lru_factory=ClearingLRU)
    try:

        class Model:
            _name = "m"
            pool = reg

            @cached("x")
            def f(self, x):
                return ("f", x)

            @ormcache_multi(multi="ids")
            def g(self, ids):
                return {i: ("g", i) for i in ids}

        m = Model()
        armed.append(True)
        assert m.f(1) == ("f", 1)
        assert len(reg.caches["default"]) == 0
        armed.append(True)
        assert m.g([1]) == {1: ("g", 1)}
        assert len(reg.caches["default"]) == 0
        assert m.f(2) == ("f", 2) and m.g([2]) == {2: ("g", 2)}
        assert len(reg.caches["default"]) == 2  # no clear: both stored
    finally:
        Registry.delete(name)


def test_both_engines_and_hit_paths_compute_the_same_keys(LRU, hit_path):
    """The key of a call is the same whichever hit path made it (they share registries)."""
    name = f"test-ormcache-{next(_names)}"
    reg = Registry(name, lru_factory=LRU)
    try:

        class Model:
            _name = "m"
            pool = reg

            @cached("b", "a")
            def f(self, a, b=1):
                return a - b

        m = Model()
        m.f(5)
        m.f(a=6, b=2)
        spec = Model.f.__cache__
        assert set(reg.caches["default"].keys()) == {spec.key_of(m, 5), spec.key_of(m, 6, b=2)}
        assert spec.key_of(m, 5) == ("m", Model.f.__wrapped__, 1, 5)
        assert type(reg.counters[("m", Model.f.__wrapped__)]) is hit_path.Counter
    finally:
        Registry.delete(name)


def test_chooser_reports_an_implementation():
    assert decorators.IMPLEMENTATION in ("c", "python")
    assert ormcache.IMPLEMENTATION == decorators.IMPLEMENTATION
    expected = "ormcache._cache_c" if decorators.IMPLEMENTATION == "c" else "ormcache._cache_py"
    assert decorators._impl.__name__ == expected


def test_lru_cache_like_wrapping_keeps_descriptors_working(registry):
    class Model:
        _name = "m"
        pool = registry

        @cached("x")
        def f(self, x):
            return (self, x)

    m = Model()
    method = getattr(m, "f")
    assert method(1) == (m, 1)
    assert functools.partial(Model.f, m)(1) == (m, 1)
    assert Model.f.__get__(None, Model) is Model.__dict__["f"]


# -- how a method finds its registry: slotted records, class changes, many models --------------


def test_slotted_records_follow_class_attribute_changes(registry, LRU):
    other = Registry(f"test-ormcache-{next(_names)}", lru_factory=LRU)
    try:
        calls = []

        class Model:
            __slots__ = ()  # as Odoo's BaseModel: pool and _name can only come from the class
            _name = "m"
            pool = registry

            @cached("x")
            def f(self, x):
                calls.append((self._name, self.pool.db_name))
                return x

        m = Model()
        assert m.f(1) == m.f(1) == 1
        Model.pool = other  # the registry of a model class is replaced (as on a module update)
        assert m.f(1) == m.f(1) == 1
        Model._name = "renamed"
        assert m.f(1) == 1
        assert calls == [("m", registry.db_name), ("m", other.db_name), ("renamed", other.db_name)]
        assert len(registry.caches["default"]) == 1 and len(other.caches["default"]) == 2
    finally:
        Registry.delete(other.db_name)


def test_slots_holding_pool_are_read_per_record(registry, LRU):
    other = Registry(f"test-ormcache-{next(_names)}", lru_factory=LRU)
    try:

        class Model:
            __slots__ = ("pool",)
            _name = "m"

            def __init__(self, pool):
                self.pool = pool

            @cached("x")
            def f(self, x):
                return (self.pool.db_name, x)

        a, b = Model(registry), Model(other)
        for _ in range(2):
            assert a.f(1) == (registry.db_name, 1) and b.f(1) == (other.db_name, 1)
        assert len(registry.caches["default"]) == len(other.caches["default"]) == 1
    finally:
        Registry.delete(other.db_name)


def test_one_method_serving_many_models(registry):
    calls = []

    class Base:
        __slots__ = ()
        pool = registry

        @cached("x")
        def f(self, x):
            calls.append(self._name)
            return (self._name, x)

    models = [type(f"M{i}", (Base,), {"__slots__": (), "_name": f"m{i}"})() for i in range(20)]
    for _ in range(3):  # more models than a method remembers: every answer still right
        for m in models:
            assert m.f(7) == (m._name, 7)
    assert sorted(calls) == sorted(m._name for m in models)
    assert len(registry.caches["default"]) == 20


def test_deleted_registries_are_not_kept_alive(LRU, hit_path):
    import gc
    import weakref

    class Model:
        _name = "m"
        pool = None

        @cached("x")
        def f(self, x):
            return x

    name = f"test-ormcache-{next(_names)}"
    Model.pool = Registry(name, lru_factory=LRU)
    assert Model().f(1) == 1
    ref = weakref.ref(Model.pool)
    Registry.delete(name)
    Model.pool = Registry(name, lru_factory=LRU)  # the new registry of that database
    try:
        assert Model().f(1) == 1
        gc.collect()
        assert ref() is None
    finally:
        Registry.delete(name)


def test_key_expression_errors_propagate_and_cache_nothing(registry):
    class Model:
        _name = "m"
        pool = registry

        @cached("rec.id")
        def f(self, rec):
            return rec

    with pytest.raises(AttributeError, match="id"):
        Model().f(object())
    assert len(registry.caches["default"]) == 0


def test_context_and_multi_with_defaults_and_keywords(registry):
    calls = []

    class Model:
        _name = "m"
        pool = registry
        _context = {"lang": "en"}

        @ormcache_context("mode", keys=("lang",))
        def label(self, x=1, mode="short"):
            calls.append(("label", x, mode))
            return f"{mode}:{x}"

        @ormcache_multi("mode", multi="ids")
        def names(self, ids=(1, 2), mode="a"):
            calls.append(("names", tuple(ids), mode))
            return {i: f"{mode}{i}" for i in ids}

    m = Model()
    assert m.label() == m.label(1) == m.label(mode="short") == m.label(2, "short") == "short:1"
    assert m.label(mode="long") == "long:1"
    assert m.names() == {1: "a1", 2: "a2"}
    assert m.names((2, 3), mode="a") == {2: "a2", 3: "a3"}
    assert m.names(ids=[1], mode="b") == {1: "b1"}
    assert calls == [("label", 1, "short"), ("label", 1, "long"), ("names", (1, 2), "a"), ("names", (3,), "a"), ("names", (1,), "b")]


def test_add_value_prefills_the_cache(registry):
    Model = model_class(registry)
    model = Model()
    Model.get.__cache__.add_value(model, "k", cache_value="prefilled")
    assert model.get("k") == model.get(key="k") == "prefilled"
    assert Model.calls == []


def test_calls_do_not_leak_references(registry):
    import sys

    value, arg, other = object(), object(), object()

    class Model:
        __slots__ = ()
        _name = "m"
        pool = registry

        @cached("x")
        def f(self, x):
            return value

        @cached("x")
        def g(self, x):
            raise ValueError("never cached")

        @cached("x", "y")
        def h(self, x, y=None):
            return value

    m = Model()
    m.f(arg)  # the entry holds one reference to the key's argument and to the value
    m.h(arg, y=other)

    def counts():
        return sys.getrefcount(value), sys.getrefcount(arg), sys.getrefcount(other), sys.getrefcount(m)

    before = counts()
    for _ in range(1000):
        assert m.f(arg) is value and m.f(x=arg) is value and Model.f(m, arg) is value
        assert m.h(arg, other) is value and m.h(arg, y=other) is value
        with pytest.raises(ValueError):
            m.g(arg)
        with pytest.raises(ValueError):
            m.g([arg])  # unhashable: the error path
    assert counts() == before


# -- property: a call computes exactly when its key was not computed since the last clear --------

_calls = st.tuples(st.just("call"), st.integers(0, 5), st.integers(0, 2), st.sampled_from(["pos", "kw", "mixed", "omit"]))
_ops = st.lists(st.one_of(_calls, st.just(("clear",)), st.just(("clear_other",))), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops)
def test_calls_compute_exactly_the_uncached_keys(LRU, hit_path, ops):
    name = f"test-ormcache-{next(_names)}"
    reg = Registry(name, lru_factory=LRU)
    try:
        computed = []

        class Model:
            _name = "m"
            pool = reg

            @cached("a", "b")
            def f(self, a, b=0):
                computed.append((a, b))
                return a * 10 + b

        m, cached_keys, expected = Model(), set(), 0
        for op in ops:
            if op[0] == "clear":
                reg.clear_cache()
                cached_keys.clear()
                continue
            if op[0] == "clear_other":
                reg.clear_cache("assets")  # another cache: nothing of ours goes
                continue
            _, a, b, form = op
            if form == "pos":
                result = m.f(a, b)
            elif form == "kw":
                result = m.f(b=b, a=a)
            elif form == "mixed":
                result = m.f(a, b=b)
            else:
                b = 0
                result = m.f(a)
            assert result == a * 10 + b
            if (a, b) not in cached_keys:
                cached_keys.add((a, b))
                expected += 1
            assert len(computed) == expected
        assert set(key[2:] for key in reg.caches["default"].keys()) == cached_keys
    finally:
        Registry.delete(name)


def test_arguments_are_not_kept_alive_by_the_wrapper(registry):
    import gc
    import weakref

    class Arg:
        pass

    class Model:
        __slots__ = ()
        _name = "m"
        pool = registry

        @cached("x")
        def f(self, x):
            return 1

        @cached("x")
        def g(self, x):
            raise ValueError(x)

    m = Model()
    a, b = Arg(), Arg()
    assert m.f(a) == 1 and m.f(a) == 1  # a miss (stored with its key), then a hit
    with pytest.raises(ValueError):
        m.g(b)  # a miss that fails: nothing stored
    refs = weakref.ref(a), weakref.ref(b)
    registry.clear_cache()
    del a, b
    gc.collect()
    assert [ref() for ref in refs] == [None, None]


def test_a_key_comparison_calling_the_same_method(registry):
    """A key's __hash__ and __eq__ run while the lookup is in progress: a nested call of the
    same method must not disturb the outer one's key."""
    calls, nested = [], []

    class Key:
        def __init__(self, name):
            self.name = name

        def __hash__(self):
            if self.name in ("outer", "outer-eq") and self.name not in nested:
                nested.append(self.name)
                assert Model().f(Key("inner")) == "inner"  # re-enters the wrapper mid-lookup
            return 1  # every Key collides: the lookup compares with __eq__

        def __eq__(self, other):
            if isinstance(other, Key) and self.name == "outer-eq" and "eq" not in nested:
                nested.append("eq")
                assert Model().f(Key("inner-eq")) == "inner-eq"
            return isinstance(other, Key) and other.name == self.name

    class Model:
        __slots__ = ()
        _name = "m"
        pool = registry

        @cached("x")
        def f(self, x):
            calls.append(x.name)
            return x.name

    m = Model()
    assert m.f(Key("first")) == "first"
    assert m.f(Key("outer")) == "outer" and m.f(Key("outer")) == "outer"
    assert m.f(Key("outer-eq")) == "outer-eq" and m.f(Key("outer-eq")) == "outer-eq"
    assert m.f(Key("inner")) == "inner" and m.f(Key("first")) == "first"
    names = ["first", "inner", "inner-eq", "outer", "outer-eq"]
    assert sorted(calls) == names and sorted(nested) == ["eq", "outer", "outer-eq"]
    assert sorted(key[2].name for key in registry.caches["default"].keys()) == names
