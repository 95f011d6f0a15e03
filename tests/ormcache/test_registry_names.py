"""A registry may add cache names of its own (e.g. for the SQLAlchemy layer): each clears only
itself and is signaled across processes like Odoo's names."""
import functools

import pytest

from ormcache import CACHES_BY_KEY
from ormcache.signaling import PostgresSignaling
from support.registries import fresh_registries


@pytest.fixture
def make_registry(LRU):
    with fresh_registries("names") as new:
        yield functools.partial(new, lru_factory=LRU)


def test_an_own_name_is_a_cache_that_clears_only_itself(make_registry, LRU):
    registry = make_registry(sizes={"orm_cached": 5, "assets": 7})
    assert registry.caches["orm_cached"].count == 5
    assert registry.caches["assets"].count == 7
    assert isinstance(registry.caches["orm_cached"], LRU)
    assert registry.caches_by_key["orm_cached"] == ("orm_cached",)
    assert registry.caches_by_key["stable"] == CACHES_BY_KEY["stable"]
    assert "orm_cached" not in CACHES_BY_KEY  # other registries do not get it
    for name in registry.caches:
        registry.caches[name]["k"] = 1
    registry.clear_cache("orm_cached")
    assert [n for n, c in registry.caches.items() if not len(c)] == ["orm_cached"]
    assert registry.cache_invalidated == {"orm_cached"}


@pytest.mark.parametrize("name", ["", 3, None])
def test_bad_names_are_refused(make_registry, name):
    with pytest.raises(ValueError, match="cache names are non-empty strings"):
        make_registry(sizes={name: 5})


def test_an_unknown_name_is_still_refused_when_clearing(make_registry):
    registry = make_registry(sizes={"orm_cached": 5})
    registry.caches["default"]["k"] = 1
    with pytest.raises(ValueError, match="unknown cache name 'bogus'"):
        registry.clear_cache("bogus")
    assert len(registry.caches["default"]) == 1


def test_an_own_name_is_signaled_to_other_processes(make_registry, pg_dsn):
    first = make_registry(sizes={"orm_cached": 5})
    second = make_registry(sizes={"orm_cached": 5})
    first.signaling = PostgresSignaling(pg_dsn)
    second.signaling = PostgresSignaling(pg_dsn)
    assert first.check_signaling() == [] and second.check_signaling() == []
    second.caches["orm_cached"]["k"] = 1
    second.caches["default"]["k"] = 1
    first.clear_cache("orm_cached")
    first.signal_changes()
    assert "orm_cached" in second.check_signaling()
    assert len(second.caches["orm_cached"]) == 0
    assert len(second.caches["default"]) == 1  # the other names stay warm


# -- Odoo 19 parity (issue #8, item 6): what a name clears decides what other workers clear --

ODOO_19_CACHES_BY_KEY = {
    "default": ("default", "templates.cached_values"),
    "assets": ("assets", "templates.cached_values"),
    "templates": ("templates", "templates.cached_values"),
    "routing": ("routing", "routing.rewrites", "templates.cached_values"),
    "groups": ("groups", "templates", "templates.cached_values"),
}


def test_names_expand_exactly_as_odoo_19():
    assert {name: CACHES_BY_KEY[name] for name in ODOO_19_CACHES_BY_KEY} == ODOO_19_CACHES_BY_KEY
    # our one extra key, where Odoo 19 has none (Odoo master's expansion)
    assert set(CACHES_BY_KEY) - set(ODOO_19_CACHES_BY_KEY) == {"stable"}
    assert CACHES_BY_KEY["stable"] == ("stable", "default", "templates.cached_values")


@pytest.mark.parametrize("key", sorted(ODOO_19_CACHES_BY_KEY))
def test_clearing_a_key_clears_its_containers_only(make_registry, key):
    registry = make_registry()
    for lru in registry.caches.values():
        lru["k"] = 1
    registry.clear_cache(key)
    assert {n for n, lru in registry.caches.items() if not len(lru)} == set(ODOO_19_CACHES_BY_KEY[key])
    assert registry.cache_invalidated == {key}


@pytest.mark.parametrize("container", ["routing.rewrites", "templates.cached_values"])
def test_a_container_name_with_a_dot_is_refused(make_registry, container):
    registry = make_registry()
    for lru in registry.caches.values():
        lru["k"] = 1
    with pytest.raises(ValueError, match="container"):
        registry.clear_cache("default", container)
    assert all(len(lru) == 1 for lru in registry.caches.values())  # nothing cleared
    assert registry.cache_invalidated == set()


def test_clear_all_caches_records_the_keys_not_the_containers(make_registry):
    registry = make_registry(sizes={"orm_cached": 5})
    for lru in registry.caches.values():
        lru["k"] = 1
    registry.clear_all_caches()
    assert all(not len(lru) for lru in registry.caches.values())
    assert registry.cache_invalidated == {*ODOO_19_CACHES_BY_KEY, "stable", "orm_cached"}


def test_the_signaled_names_are_the_keys(make_registry):
    registry = make_registry(sizes={"orm_cached": 5})
    assert set(registry._signaling_keys) == {"registry", *ODOO_19_CACHES_BY_KEY, "stable", "orm_cached"}


def test_an_own_name_with_a_dot_is_refused(make_registry):
    with pytest.raises(ValueError, match="dot"):
        make_registry(sizes={"my.cache": 5})
    registry = make_registry(sizes={"routing.rewrites": 3})  # resizing a container is fine
    assert registry.caches["routing.rewrites"].count == 3
    assert "routing.rewrites" not in registry.caches_by_key


@pytest.mark.parametrize("container", ["routing.rewrites", "templates.cached_values"])
def test_a_method_may_cache_in_a_container_cleared_through_its_keys(make_registry, container):
    """As in Odoo (``@ormcache(..., cache='routing.rewrites')``): the decorator takes any cache
    of the registry; clearing a key whose expansion holds the container clears it."""
    from ormcache import ormcache

    registry = make_registry()

    class Model:
        _name = "container.model"
        pool = registry

        @ormcache("x", cache=container)
        def get(self, x):
            return x * 2

    assert Model().get(2) == 4
    assert len(registry.caches[container]) == 1
    registry.clear_cache("routing" if container == "routing.rewrites" else "default")
    assert len(registry.caches[container]) == 0
