"""The pure-Python engines share one home (issue #21): ``_engine_py._Engine`` holds the methods
whose bodies ``LRU`` and ``Cache`` wrote twice. Sharing must not change what a cache is: no
``__dict__`` (as the compiled engines, which refuse unknown attributes), weak references still
taken, and the shared methods one object in both twins."""
import importlib
import weakref

import pytest

ENGINES = [
    pytest.param("fastlru._lru_c", "LRU", id="LRU-c-extension", marks=pytest.mark.c_extension),
    pytest.param("fastlru._lru_py", "LRU", id="LRU-pure-python"),
    pytest.param("fastlru._policy_c", "Cache", id="Cache-c-extension", marks=pytest.mark.c_extension),
    pytest.param("fastlru._policy_py", "Cache", id="Cache-pure-python"),
]

SHARED = ["_now", "_expire_now", "_weigh", "_release_evicted", "_table_insert", "_popped",
          "__getitem__", "get", "__setitem__", "__delitem__", "__len__", "maxweight", "weight",
          "ttl", "timer", "info", "clear_stats"]


@pytest.mark.parametrize("module_name, class_name", ENGINES)
def test_a_cache_takes_no_unknown_attribute_and_a_weak_reference(module_name, class_name):
    cls = getattr(importlib.import_module(module_name), class_name)
    cache = cls(2)
    with pytest.raises(AttributeError):
        cache.unknown = 1
    assert not hasattr(cache, "__dict__")
    assert weakref.ref(cache)() is cache


@pytest.mark.parametrize("name", SHARED)
def test_the_twins_share_one_definition(name):
    from fastlru import _engine_py, _lru_py, _policy_py

    shared = _engine_py._Engine.__dict__[name]
    assert name not in vars(_lru_py.LRU) and name not in vars(_policy_py.Cache)
    assert getattr(_lru_py.LRU, name) is getattr(_policy_py.Cache, name) is (
        shared if isinstance(shared, property) else getattr(_engine_py._Engine, name))


@pytest.mark.parametrize("module_name, class_name", ENGINES)
@pytest.mark.parametrize("kwargs, message", [
    ({"on_evict": 1}, "on_evict must be callable"),
    ({"getsizeof": 1, "maxweight": 1}, "getsizeof must be callable"),
    ({"getsizeof": len}, "getsizeof needs maxweight"),
    ({"on_evict": 1, "getsizeof": 1}, "on_evict must be callable"),
])
def test_the_option_checks_keep_their_order_and_messages(module_name, class_name, kwargs, message):
    cls = getattr(importlib.import_module(module_name), class_name)
    with pytest.raises(TypeError, match=message):
        cls(2, **kwargs)
