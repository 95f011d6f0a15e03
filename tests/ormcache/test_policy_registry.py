"""Registry(policies={name: policy}): a named cache that is a fastlru.Cache; the decorators
serve from it, clearing clears it, bad names and policies are refused."""

import pytest

import fastlru
from ormcache import ormcache
from support.registries import fresh_registries


@pytest.fixture
def make_registry():
    with fresh_registries("policies") as new:
        yield new


@pytest.mark.parametrize("policy", fastlru.POLICIES)
def test_a_named_cache_with_a_policy_serves_the_decorators(make_registry, hit_path, policy):
    registry = make_registry(policies={"default": policy}, sizes={"orm_cached": 4})
    cache = registry.caches["default"]
    assert isinstance(cache, fastlru.Cache) and cache.policy == policy
    assert cache.count == 8192
    assert isinstance(registry.caches["stable"], fastlru.LRU)  # the others keep LRU
    calls = []

    class Model:
        _name = "res.partner"
        pool = registry

        @ormcache("x")
        def double(self, x):
            calls.append(x)
            return 2 * x

    m = Model()
    assert [m.double(1), m.double(1), m.double(2), m.double(1)] == [2, 2, 4, 2]
    assert calls == [1, 2]
    assert len(cache) == 2 and cache.info().hits >= 2
    registry.clear_cache("default")
    assert len(cache) == 0 and registry.caches["default"] is cache
    assert m.double(1) == 2 and calls == [1, 2, 1]
    assert "policies={'default': %r}" % policy in repr(registry)


def test_bad_policies_are_refused(make_registry):
    with pytest.raises(ValueError, match="unknown cache name 'nope'"):
        make_registry(policies={"nope": "sieve"})
    with pytest.raises(ValueError, match="unknown policy 'arc' for 'default'"):
        make_registry(policies={"default": "arc"})
    with pytest.raises(ValueError, match="unknown policy"):
        make_registry(policies={"default": None})


def test_an_own_name_may_have_a_policy(make_registry):
    registry = make_registry(sizes={"orm_cached": 5}, policies={"orm_cached": "s3fifo"})
    assert registry.caches["orm_cached"].policy == "s3fifo"
    assert registry.caches["orm_cached"].count == 5
