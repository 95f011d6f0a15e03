"""A registry may add cache names of its own (e.g. for the SQLAlchemy layer): each clears only
itself and is signaled across processes like Odoo's names."""
import uuid

import pytest

from ormcache import CACHES_BY_KEY, Registry
from ormcache.signaling import PostgresSignaling


@pytest.fixture
def make_registry(LRU):
    made = []

    def make(**kwargs):
        registry = Registry(f"names-{uuid.uuid4().hex[:10]}", lru_factory=LRU, **kwargs)
        made.append(registry)
        return registry

    yield make
    for registry in made:
        if registry.signaling is not None:
            registry.signaling.close()
        Registry.delete(registry.db_name)


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
