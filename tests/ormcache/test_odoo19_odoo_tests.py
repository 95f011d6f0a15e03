"""Odoo's own ``test_ormcache`` (odoo/addons/base/tests/test_ormcache.py, the 18 and 19 eras),
translated onto ormcache's API: a model with Odoo's ``_xmlid_lookup`` shape stands for
``ir.model.data``; ``Registry`` for Odoo's registry; two registries on one PostgreSQL database
for two workers (Odoo simulates the other worker by rewinding ``cache_sequences``).

The ``tx_hit``/``tx_miss`` assertions of the 19-era ``test_ormcache`` are in
``test_odoo19_tx_stats.py`` (they need ``Registry.tx_stats`` and a ``cursor_scope()``), and
``test_signaling_gc`` is in ``test_odoo19_signaling.py``.
"""
import logging
import threading
import uuid

import pytest

from ormcache import get_cache_key_counter
from ormcache.registry import CACHES_BY_KEY, Registry
from ormcache.signaling import PostgresSignaling


def cleared_by(*names):
    """Odoo 19's ``_cleared_by``: the sorted caches the keys ``names`` clear, as logged."""
    return repr(sorted({sub for name in names for sub in CACHES_BY_KEY[name]}))


def test_ormcache(registry, IMD):
    """Test the effectiveness of the ormcache() decorator (hit and miss counters)."""
    XMLID = "base.group_no_one"
    cache, key, counter = get_cache_key_counter(IMD._xmlid_lookup, XMLID)
    hit, miss = counter.hit, counter.miss

    registry.clear_cache()
    assert key not in cache

    IMD._xmlid_lookup(XMLID)
    assert (counter.hit, counter.miss) == (hit, miss + 1)
    assert key in cache

    IMD._xmlid_lookup(XMLID)
    assert (counter.hit, counter.miss) == (hit + 1, miss + 1)
    assert key in cache

    IMD._xmlid_lookup(XMLID)
    assert (counter.hit, counter.miss) == (hit + 2, miss + 1)
    assert key in cache


def test_invalidation(registry):
    assert registry.cache_invalidated == set()
    registry.clear_cache()
    registry.clear_cache("templates")
    assert registry.cache_invalidated == {"default", "templates"}
    registry.reset_changes()
    assert registry.cache_invalidated == set()
    registry.clear_cache("assets")
    assert registry.cache_invalidated == {"assets"}
    registry.reset_changes()
    assert registry.cache_invalidated == set()


def test_invalidation_thread_local(registry):
    caches = ["default", "templates", "assets"]
    n = len(caches)
    barriers = [threading.Barrier(n, timeout=5) for _ in range(3)]
    operations = []
    errors = []

    def run(cache):
        try:
            assert registry.cache_invalidated == set()
            registry.clear_cache(cache)
            operations.append("clear_cache")
            barriers[0].wait()
            assert registry.cache_invalidated == {cache}
            operations.append("assert_contains")
            barriers[1].wait()
            registry.reset_changes()
            operations.append("reset_changes")
            barriers[2].wait()
            assert registry.cache_invalidated == set()
            operations.append("assert_empty")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            for barrier in barriers:
                barrier.abort()

    threads = [threading.Thread(target=run, args=(cache,)) for cache in caches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert operations == (["clear_cache"] * n + ["assert_contains"] * n
                          + ["reset_changes"] * n + ["assert_empty"] * n)


@pytest.fixture
def workers(pg_dsn):
    """Two registries (two workers) on one PostgreSQL database, both caught up."""
    made = [Registry(f"odoo19-workers-{uuid.uuid4().hex[:10]}") for _ in range(2)]
    for registry in made:
        registry.signaling = PostgresSignaling(pg_dsn)
        registry.signaling_background_retry = False
        assert registry.check_signaling() == []
    yield made
    for registry in made:
        registry.signaling.close()
        Registry.delete(registry.db_name)


@pytest.mark.parametrize("names", [("assets",), ("assets", "default")], ids=["single", "multiple"])
def test_signaling_01(workers, caplog, names):
    registry, other = workers
    with caplog.at_level(logging.INFO, logger="ormcache.signaling"):
        for name in names:
            registry.cache_invalidated.add(name)
        assert registry.cache_invalidated == set(names)
        registry.signal_changes()
        assert not registry.cache_invalidated
    assert [r.getMessage() for r in caplog.records] == [
        f"Caches invalidated, signaling through the database: {sorted(names)!r}"]
    versions = {name: registry.signaling_version(name)[2] for name in registry.caches_by_key}
    assert {name for name, version in versions.items() if version} == set(names)

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ormcache.signaling"):
        registry.check_signaling()  # the registry sequence is up to date on the same worker
    assert caplog.records == []

    with caplog.at_level(logging.INFO, logger="ormcache.signaling"):
        other.check_signaling()  # the other worker
    assert [r.getMessage() for r in caplog.records] == [
        "Invalidating caches after database signaling: " + cleared_by(*names)]
