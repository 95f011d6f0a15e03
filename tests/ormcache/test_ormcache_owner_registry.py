"""Which registry a method's cache lives in (issue #21, small things): an owner's ``pool`` that
is not a ``Registry`` is refused with a clear ``TypeError`` (it fell back to
``default_registry`` silently), and ``Model.method.clear_cache()`` without the model raises
instead of clearing ``default_registry`` (an owner's registry is its ``pool``'s)."""
import asyncio

import pytest

from ormcache import Registry, default_registry, ormcache, ormcache_context, ormcache_multi


class NotARegistry:
    caches = {}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_pool_that_is_not_a_registry_is_refused(hit_path, registry, kind):
    calls = []

    class Model:
        _name = "res.partner"
        pool = NotARegistry()

        if kind == "sync":
            @ormcache("x")
            def get(self, x):
                calls.append(x)
                return x
        else:
            @ormcache("x")
            async def get(self, x):
                calls.append(x)
                return x

    before = {name: len(lru) for name, lru in default_registry.caches.items()}
    for _ in range(2):  # refused every time, never cached anywhere
        with pytest.raises(TypeError, match="pool must be a Registry.*not NotARegistry"):
            result = Model().get(1)
            if kind == "async":
                asyncio.run(result)
    assert calls == []
    assert {name: len(lru) for name, lru in default_registry.caches.items()} == before
    Model.pool = registry  # a Registry: served from it
    result = Model().get(1)
    assert (asyncio.run(result) if kind == "async" else result) == 1
    assert len(registry.caches["default"]) == 1


def test_add_value_and_clear_cache_refuse_a_pool_that_is_not_a_registry(hit_path):
    class Model:
        pool = NotARegistry()

        @ormcache("x")
        def get(self, x):
            return x

    with pytest.raises(TypeError, match="pool must be a Registry"):
        Model.get.clear_cache(Model())
    with pytest.raises(TypeError, match="pool must be a Registry"):
        Model.get.__cache__.add_value(Model(), 1, cache_value=2)


DECORATORS = {
    "ormcache": lambda: ormcache("x"),
    "context": lambda: ormcache_context("x", keys=("lang",)),
    "multi": lambda: ormcache_multi("x", multi="ids"),
}


@pytest.mark.parametrize("kind", sorted(DECORATORS))
def test_clear_cache_of_a_method_without_its_model_raises(hit_path, registry, kind):
    decorator = DECORATORS[kind]()
    if isinstance(decorator, ormcache_multi):
        def get(self, x, ids):
            return dict.fromkeys(ids, x)
    elif isinstance(decorator, ormcache_context):
        def get(self, x, context=None):
            return x
    else:
        def get(self, x):
            return x

    class Model:
        _name = "res.partner"
        pool = registry

    Model.get = decorator(get)
    model = Model()
    model.get(1, [1]) if isinstance(decorator, ormcache_multi) else model.get(1)
    registry.cache_invalidated.clear()
    with pytest.raises(TypeError, match=r"get.clear_cache\(\) needs the model.*clear_cache\(model\)"):
        Model.get.clear_cache()
    assert len(registry.caches["default"]) >= 1 and not registry.cache_invalidated  # unchanged
    Model.get.clear_cache(model)  # the model's registry
    assert len(registry.caches["default"]) == 0 and registry.cache_invalidated == {"default"}


def test_clear_cache_of_a_function_without_owner_clears_default_registry(hit_path, clean_default):
    @ormcache("x")
    def double(x):
        return 2 * x

    assert double(2) == 4 and len(default_registry.caches["default"]) == 1
    double.clear_cache()  # no owner: its registry is default_registry
    assert len(default_registry.caches["default"]) == 0
