"""``ormcache_multi`` on a method whose ids cannot be given positionally (keyword-only, or
``*ids``): cached per id on both hit paths. Before, the compiled one cached such a method as a
plain ``ormcache`` (one entry per model): ``f(ids=[2, 3])`` after ``f(ids=[1, 2])`` returned
``{1: 10, 2: 20}`` without calling the method."""
import pytest

from ormcache import ormcache_multi
from support.models import make_model


def keyword_only(calls):
    @ormcache_multi(multi="ids")
    def f(self, *, ids):
        calls.append(list(ids))
        return {i: i * 10 for i in ids}

    return f


def var_positional(calls):
    @ormcache_multi(multi="ids")
    def f(self, *ids):
        calls.append(list(ids))
        return {i: i * 10 for i in ids}

    return f


def test_keyword_only_ids_are_cached_per_id(registry):
    calls = []
    Model = make_model(registry, f=keyword_only(calls))
    m = Model()
    assert m.f(ids=[1, 2]) == {1: 10, 2: 20}
    assert m.f(ids=[2, 3]) == {2: 20, 3: 30}
    assert m.f(ids=[3, 1]) == {3: 30, 1: 10}
    assert calls == [[1, 2], [3]]
    func = Model.f.__wrapped__
    assert set(registry.caches["default"].keys()) == {("m", func, 1), ("m", func, 2), ("m", func, 3)}


def test_var_positional_ids_are_bound_as_the_method_binds_them(registry):
    """``*ids`` gives the ids as the tuple of the extra arguments: looked up per id, the
    missing ones passed back as the extra arguments."""
    calls = []
    Model = make_model(registry, f=var_positional(calls))
    m = Model()
    assert m.f(1, 2) == {1: 10, 2: 20}
    assert m.f(2, 3) == {2: 20, 3: 30}
    assert calls == [[1, 2], [3]]


@pytest.mark.c_extension
def test_the_compiled_wrapper_refuses_a_multi_spec_without_positional_ids(registry):
    from ormcache import _cache_c

    Model = make_model(registry, f=keyword_only([]))
    spec = Model.f.__cache__._spec
    with pytest.raises(ValueError, match="not positional"):
        _cache_c.cached_multi(spec, Model.f)
