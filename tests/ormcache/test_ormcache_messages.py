"""Mistakes users make with the decorators get a message saying what to write instead."""
import pytest

from ormcache import ormcache, ormcache_context, ormcache_multi


@pytest.mark.parametrize("decorator", [ormcache, ormcache_context, ormcache_multi])
def test_a_bare_decorator_says_to_call_it(registry, decorator):
    name = decorator.__name__
    with pytest.raises(TypeError, match=rf"@{name} must be called: write @{name}\('arg', \.\.\.\)") as info:

        class Model:
            pool = registry

            @decorator
            def get(self, ids):
                return ids

    assert "Model.get" in str(info.value) and f"@{name}()" in str(info.value)
    for wrapped in (classmethod, staticmethod):
        with pytest.raises(TypeError, match="must be called"):
            decorator(wrapped(lambda cls, ids: ids))


def test_expressions_and_called_decorators_still_work(registry):
    class Model:
        _name = "m"
        pool = registry

        @ormcache()
        def one(self):
            return 1

        @ormcache("key")
        def get(self, key):
            return key

    assert (Model().one(), Model().get("k")) == (1, "k")


@pytest.mark.parametrize("result", [[10, 20], (10, 20), {10, 20}, None, "ab"])
def test_a_multi_method_not_returning_a_dict_says_a_dict_is_expected(registry, result):
    class Model:
        _name = "m"
        pool = registry

        @ormcache_multi(multi="ids")
        def names(self, ids):
            return result

    with pytest.raises(TypeError, match=r"ormcache_multi method .*Model.names must return a dict "
                                        rf"\{{id: value\}} for the ids of 'ids', not a {type(result).__name__}"):
        Model().names([0, 1])
    assert len(registry.caches["default"]) == 0  # nothing was stored
