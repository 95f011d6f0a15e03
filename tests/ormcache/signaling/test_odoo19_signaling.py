"""Issue #19, item 3: Odoo 19's signaling housekeeping, as Odoo's own tests check it
(odoo/addons/base/tests/test_ormcache.py: ``test_signaling_01_*``, ``test_signaling_gc``).

- the sender logs ``Caches invalidated, signaling through the database: [<sorted names>]``
  (``Registry changed, signaling through the database`` for a registry change);
- the receiver logs ``Invalidating caches after database signaling: [<sorted caches>]``;
- ``PostgresSignaling.gc()`` / ``Registry.gc_signaling()``: Odoo's garbage collection of the
  ``orm_signaling_*`` rows (older than an hour and not among the 10 newest), for a scheduled
  job; here it also keeps every version (``sum(weight)``) unchanged.
"""
import logging

import psycopg
import pytest

from ormcache.signaling import PostgresSignaling
from support.registries import signaling_registries, synced

LOGGER = "ormcache.signaling"


@pytest.fixture
def make_registry():
    with signaling_registries("odoo19-signaling", retry_interval=0, background_retry=False) as make:
        yield make


@pytest.fixture
def pair(make_registry, pg_dsn):
    return synced(make_registry(PostgresSignaling(pg_dsn)), make_registry(PostgresSignaling(pg_dsn)))


def messages(caplog):
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.INFO]


def test_signaling_logs_sorted_names_on_both_sides(pair, caplog):
    sender, receiver = pair
    sender.clear_cache("default")  # cleared in this order, logged sorted
    sender.clear_cache("assets")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        sender.signal_changes()
    assert messages(caplog) == ["Caches invalidated, signaling through the database: ['assets', 'default']"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert sender.check_signaling() == []  # its own signal: nothing to log
    assert messages(caplog) == []
    with caplog.at_level(logging.INFO, logger=LOGGER):
        receiver.check_signaling()
    assert messages(caplog) == [
        "Invalidating caches after database signaling: ['assets', 'default', 'templates.cached_values']"]


def test_signaling_logs_a_registry_change(pair, caplog):
    sender, receiver = pair
    sender.registry_invalidated = True
    sender.clear_cache("assets")  # implied by the reload: not signaled apart
    with caplog.at_level(logging.INFO, logger=LOGGER):
        sender.signal_changes()
    assert messages(caplog) == ["Registry changed, signaling through the database"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        receiver.check_signaling()
    assert messages(caplog) == ["Reloading the model registry after database signaling."]


def test_signaling_gc(pg_dsn, make_registry):
    """Odoo's test_signaling_gc on ``orm_signaling_registry``, plus: every version survives."""
    registry = make_registry(PostgresSignaling(pg_dsn))
    assert registry.check_signaling() == []  # creates the tables
    backend = registry.signaling
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        cr = conn.cursor()
        cr.execute("SELECT coalesce(max(id), 0) FROM orm_signaling_registry")
        start = cr.fetchone()[0]

        def assert_signal_count(count, max_id, message):
            cr.execute("SELECT count(*), max(id) FROM orm_signaling_registry")
            assert cr.fetchone() == (count, start + max_id), message

        def version():
            return backend.read_versions(registry.db_name, ["registry"])[1][0]

        cr.execute("DELETE FROM orm_signaling_registry")
        for _ in range(7):
            cr.execute("INSERT INTO orm_signaling_registry (date) VALUES (now() - interval '2 hours')")
        cr.execute("INSERT INTO orm_signaling_registry DEFAULT VALUES")
        assert_signal_count(8, 8, "8 signals were inserted")
        assert version() == 8
        assert registry.gc_signaling() == 0
        assert_signal_count(8, 8, "less than 10 signals, no deletion")

        for _ in range(5):
            cr.execute("INSERT INTO orm_signaling_registry DEFAULT VALUES")
        assert_signal_count(13, 13, "5 more signals were inserted")
        assert registry.gc_signaling() == 3
        assert_signal_count(10, 13, "more than 10 signals, some should have been deleted")
        assert version() == 13  # the deleted rows' weights went to the newest

        for _ in range(7):
            cr.execute("INSERT INTO orm_signaling_registry DEFAULT VALUES")
        assert_signal_count(17, 20, "7 more signals were inserted")
        registry.check_signaling()  # takes the signals inserted above
        other = make_registry(PostgresSignaling(pg_dsn))
        assert other.check_signaling() == []
        assert registry.gc_signaling() == 4
        assert_signal_count(13, 20, "keeping the 13 signals younger than one hour")
        assert version() == 20
        # the collection changed no version: neither registry clears anything
        assert registry.check_signaling() == [] and other.check_signaling() == []


def test_signaling_gc_bad_arguments_change_nothing(pg_dsn, make_registry):
    registry = make_registry(PostgresSignaling(pg_dsn))
    assert registry.check_signaling() == []
    with pytest.raises(ValueError, match="keep must be at least 1"):
        registry.gc_signaling(keep=0)
    with pytest.raises(ValueError, match="older_than"):
        registry.gc_signaling(older_than=float("nan"))


def test_signaling_gc_without_rows(make_registry, redis_server, redis_prefix):
    from ormcache.signaling import RedisSignaling

    registry = make_registry(RedisSignaling(redis_server.url, key_prefix=redis_prefix))
    assert registry.check_signaling() == []
    assert registry.gc_signaling() == 0  # counters, no rows: nothing to collect
