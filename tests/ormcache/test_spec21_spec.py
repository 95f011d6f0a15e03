"""The typed method spec (issue #21): the decorator builds one immutable ``MethodSpec`` when it
binds, and every hit path (compiled, twin, async) is built from it alone, never from the
decorator; one ``Slot`` shape for the twin and the async path."""
import asyncio

import pytest

from ormcache import ormcache, ormcache_context, ormcache_multi
from ormcache._spec import NO_SLOT, SLOT_FIELDS, MethodSpec, slot_of
from support.models import make_model


def test_the_decorator_builds_one_spec_of_its_own_fields(registry, hit_path):
    @ormcache("x", cache="default")
    def f(self, x):
        return x

    Model = make_model(registry, f=f)
    decorator = Model.f.__cache__
    spec = decorator._spec
    assert isinstance(spec, MethodSpec)
    assert (spec.func, spec.key, spec.cache_name, spec.model, spec.has_owner, spec.counter_type) == (
        decorator.func, decorator.key, decorator.cache_name, None, True, hit_path.Counter)
    assert (spec.multi, spec.signature, spec.multi_position, spec.multi_name, spec.flights) == (None, None, -1, "", None)
    assert "f" in repr(spec)


def test_a_multi_spec_holds_the_multi_fields(registry, hit_path):
    @ormcache_multi("mode", multi="ids")
    def g(self, mode, ids):
        return {i: (mode, i) for i in ids}

    Model = make_model(registry, g=g)
    spec = Model.g.__cache__._spec
    assert (spec.multi, spec.multi_position, list(spec.signature.parameters)) == ("ids", 2, ["self", "mode", "ids"])
    assert spec.multi_name.endswith("returned no value for ids") and spec.flights == {}
    assert Model().g("r", [1]) == {1: ("r", 1)}


def test_the_spec_is_immutable():
    spec = MethodSpec(len, None, "default", "m", False, object)
    for name in ("func", "cache_name", "has_owner", "multi_position", "other"):
        with pytest.raises(AttributeError, match="immutable"):
            setattr(spec, name, None)
        with pytest.raises(AttributeError):
            delattr(spec, name)
    assert spec.func is len and spec.cache_name == "default"


@pytest.mark.parametrize("bad", [{"func": 1}, {"multi_position": "2"}, {"multi_position": True}])
def test_a_bad_spec_is_refused(bad):
    fields = dict(func=len, key=None, cache_name="default", model="m", has_owner=False, counter_type=object)
    with pytest.raises(TypeError, match="MethodSpec"):
        MethodSpec(**{**fields, **bad})


def test_hit_paths_are_built_from_a_spec_alone(registry, hit_path):
    """A spec built by hand serves calls: the hit paths read nothing else."""
    from ormcache.keys import compile_key

    def h(self, x):
        return ("h", x)

    async def a(self, x):
        return ("a", x)

    spec = MethodSpec(h, compile_key(h, ("x",)), "default", None, True, hit_path.Counter)
    aspec = MethodSpec(a, compile_key(a, ("x",)), "default", None, True, hit_path.Counter)
    Model = make_model(registry, h=hit_path.cached_method(spec), a=hit_path.cached_coroutine(aspec))
    m = Model()
    assert m.h(1) == m.h(1) == ("h", 1) and asyncio.run(m.a(2)) == asyncio.run(m.a(2)) == ("a", 2)
    assert registry.counters[("m", h)].hit == 1 and registry.counters[("m", a)].hit == 1
    assert ("m", h, 1) in registry.caches["default"].keys() and ("m", a, 2) in registry.caches["default"].keys()


@pytest.mark.c_extension
def test_the_compiled_path_takes_a_spec_not_the_decorator(registry):
    """Before, it read the decorator's attributes by name (any object with them would do)."""
    import sys

    from ormcache import _cache_c

    @ormcache("x")
    def f(self, x):
        return x

    with pytest.raises(TypeError, match="MethodSpec"):
        _cache_c.CachedMethod(f.__cache__)
    if sys.version_info >= (3, 10):  # 3.9: the pure-Python async wrapper
        with pytest.raises(TypeError, match="MethodSpec"):
            _cache_c.cached_coroutine(f.__cache__)


def test_context_and_ttl_specs(registry, hit_path):
    @ormcache_context("x", keys=("lang",))
    def c(self, x, context=None):
        return x

    @ormcache("x", ttl=60)
    def t(self, x):
        return x

    Model = make_model(registry, c=c, t=t)
    assert Model.c.__cache__._spec.key.context_keys == ("lang",)
    assert Model.t.__cache__._spec.cache_name == Model.t.__cache__.cache_name and str(Model.t.__cache__._spec.cache_name) == "default"
    m = Model()
    assert m.c(1, {"lang": "fr"}) == 1 and m.t(2) == 2


def test_the_slot_shape():
    """(pool, mkey, registry, model, lru, counter, get): the first six are the compiled
    ``_Slot``'s fields, in its order; one exact tuple, read by position on the hit paths."""
    assert SLOT_FIELDS == ("pool", "mkey", "registry", "model", "lru", "counter", "get")
    assert type(NO_SLOT) is tuple and len(NO_SLOT) == len(SLOT_FIELDS)
    with pytest.raises(AssertionError):
        NO_SLOT[6]("key", None)


def test_a_slot_of_a_spec_is_what_resolve_gives(registry, hit_path):
    from ormcache._cold import resolve

    @ormcache("x")
    def f(self, x):
        return x

    Model = make_model(registry, f=f)
    spec = Model.f.__cache__._spec
    slot = slot_of(spec, registry, "m")
    assert type(slot) is tuple and len(slot) == len(SLOT_FIELDS)
    assert slot[:6] == (registry, "m", *resolve(registry, "m", spec.func, spec.cache_name, spec.counter_type))
    assert slot[6](("m", spec.func, 1), "absent") == "absent"


def test_the_compiled_slot_has_the_same_first_fields():
    """The compiled ``_Slot`` (read from the ``.pyx`` the distribution ships) declares
    ``SLOT_FIELDS``' first six, in the same order, and says so."""
    import importlib.metadata
    import re

    pyx = next(f for f in importlib.metadata.files("fastlru") if str(f).replace("\\", "/") == "ormcache/_cache_c.pyx")
    text = pyx.read_text()
    body = text[text.index("cdef class _Slot:"):]
    body = body[:body.index("\n\n\n")]
    fields = []
    for line in re.findall(r"^    cdef (?:object|Counter) ([\w, ]+)$", body, re.M)[:2]:
        fields += [name.strip() for name in line.split(",")]
    assert tuple(fields) == SLOT_FIELDS[:6]
    assert "ormcache._spec" in body
