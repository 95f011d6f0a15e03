"""Signals recorded inside the writer's own transaction (issue #8, item 1 and interface8):
``record_changes()`` / ``changes_committed()`` / ``signaling_version()`` /
``cursor_scope(execute=...)``, against a private PostgreSQL (tests/support/servers.py)."""
import uuid

import psycopg
import pytest

from ormcache.registry import CACHES_BY_KEY
from ormcache.signaling import (
    LocalSignaling,
    PostgresSignaling,
    ReadOnlyBackendError,
    RedisSignaling,
    SignalingUnavailable,
)
from support.registries import signaling_registries, synced


@pytest.fixture
def make_registry():
    with signaling_registries("record", retry_interval=0) as make:
        yield make


@pytest.fixture
def pair(make_registry, pg_dsn):
    """Two registries (two 'processes') on one signaling database, both synced."""
    return synced(make_registry(PostgresSignaling(pg_dsn)), make_registry(PostgresSignaling(pg_dsn)))


@pytest.fixture
def writer(pg_dsn):
    """The writer's own connection (not the backend's), with a data table."""
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TABLE config (id int PRIMARY KEY, value int NOT NULL)")
        conn.execute("INSERT INTO config VALUES (1, 0)")
        conn.commit()
        yield conn


class Recorder:
    """An ``execute`` that records what it runs, on a real connection."""

    def __init__(self, conn):
        self.conn = conn
        self.statements = []

    def __call__(self, query):
        self.statements.append(query)
        return self.conn.execute(query)


def warm(registry):
    for name, lru in registry.caches.items():
        lru["k"] = name
    return registry


def test_the_signal_commits_with_the_data(pair, writer):
    first, second = pair
    warm(second)
    execute = Recorder(writer)
    writer.execute("UPDATE config SET value = 1")
    assert first.record_changes({"default"}, execute) is True
    assert len(execute.statements) == 1  # at most one statement inside the transaction
    assert second.check_signaling() == []  # not committed yet: nothing to see
    writer.commit()
    first.changes_committed({"default"})
    assert second.check_signaling() == list(CACHES_BY_KEY["default"])
    assert first.check_signaling() == []  # its own signal, counted by changes_committed()


def test_a_rolled_back_signal_is_never_seen(pair, writer):
    first, second = pair
    writer.execute("UPDATE config SET value = 1")
    assert first.record_changes({"assets", "default"}, Recorder(writer))
    writer.rollback()
    warm(second)
    assert second.check_signaling() == []
    assert first.check_signaling() == []


def test_a_registry_change_is_recorded_alone(pair, writer):
    first, second = pair
    reloads = []
    second.on_reload = reloads.append
    execute = Recorder(writer)
    assert first.record_changes({"default"}, execute, registry_changed=True)
    assert "orm_signaling_registry" in execute.statements[0]
    assert "orm_signaling_default" not in execute.statements[0]
    writer.commit()
    first.changes_committed({"default"}, registry_changed=True)
    warm(second)
    assert second.check_signaling() == sorted(second.caches)
    assert reloads == [second]
    assert first.check_signaling() == []


def test_changes_committed_moves_the_counters_and_clears_nothing(pair, writer):
    first, _ = pair
    execute = Recorder(writer)
    assert first.record_changes({"default"}, execute)
    warm(first)
    writer.commit()
    first.changes_committed({"default"})
    assert all(len(lru) == 1 for lru in first.caches.values())  # the caller's business
    assert first.check_signaling() == []


def test_cursor_scope_clears_once_more_after_publishing(make_registry):
    """A value filled by another thread from the old data between the writer's clear and its
    commit must not survive the scope in the writer's own process."""
    registry = make_registry(LocalSignaling())
    registry.check_signaling()
    with registry.cursor_scope():
        registry.clear_cache("assets")
        registry.caches["assets"]["old"] = 0  # another thread, before the commit
        registry.caches["routing"]["warm"] = 1
    assert "old" not in registry.caches["assets"]
    assert "warm" in registry.caches["routing"]


@pytest.mark.parametrize("kind", ["local", "redis", "postgres-off"])
def test_backends_that_cannot_record_return_false_and_run_nothing(make_registry, kind, request):
    if kind == "local":
        backend = LocalSignaling()
    elif kind == "redis":
        backend = RedisSignaling(request.getfixturevalue("redis_server").url,
                                 key_prefix=request.getfixturevalue("redis_prefix"))
    else:
        backend = PostgresSignaling(request.getfixturevalue("pg_dsn"), record_in_transaction=False)
    registry = make_registry(backend)
    ran = []
    assert registry.record_changes({"default"}, ran.append) is False
    assert ran == []


def test_unknown_names_are_refused_before_anything_runs(pair, writer):
    first, _ = pair
    execute = Recorder(writer)
    with pytest.raises(ValueError, match="unknown cache name 'bogus'"):
        first.record_changes({"default", "bogus"}, execute)
    assert execute.statements == []


def test_a_writer_on_another_database_fails_loudly(pair, postgres_server):
    """The statement checks the epoch token of the signaling database: recording into another
    database (whose signals nobody reads) fails the transaction instead of losing the signal."""
    first, _ = pair
    name = f"other_{uuid.uuid4().hex[:8]}"
    dsn = postgres_server.create_database(name)
    try:
        with PostgresSignaling(dsn) as other_backend:  # the same tables, another token
            other_backend.read("x", ["registry", "default"])
        with psycopg.connect(dsn) as other:
            with pytest.raises(psycopg.errors.InvalidTextRepresentation,
                               match="not in the signaling database"):
                first.record_changes({"default"}, Recorder(other))
    finally:
        postgres_server.drop_database(name)


def test_the_max_id_race_is_not_lost(pair, pg_dsn):
    """interface8: T1 inserts id 5, T2 inserts id 6 and commits, a reader sees 6, then T1
    commits. With max(id) as the version T1's signal would be lost; here it is seen."""
    first, second = pair
    with psycopg.connect(pg_dsn) as t1, psycopg.connect(pg_dsn) as t2:
        assert first.record_changes({"default"}, Recorder(t1))   # takes the lower id
        assert first.record_changes({"default"}, Recorder(t2))   # takes the higher id
        ids = [conn.execute("SELECT max(id) FROM orm_signaling_default").fetchone()[0] for conn in (t1, t2)]
        assert ids[0] < ids[1]
        t2.commit()
        warm(second)
        assert second.check_signaling() == list(CACHES_BY_KEY["default"])
        warm(second)
        t1.commit()
        assert second.check_signaling() == list(CACHES_BY_KEY["default"])


def test_pruning_keeps_tables_small_and_versions_exact(make_registry, pg_dsn, writer):
    backend = PostgresSignaling(pg_dsn, prune_every=5)
    writer_registry, reader = make_registry(backend), make_registry(PostgresSignaling(pg_dsn))
    writer_registry.check_signaling(), reader.check_signaling()
    for round_ in range(23):
        if round_ % 2:
            assert writer_registry.record_changes({"assets"}, Recorder(writer))
            writer.commit()
        else:
            writer_registry.clear_cache("assets")
            writer_registry.signal_changes()
    assert reader.signaling.read("x", ["assets"])[1] == {"assets": 23}
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT count(*) FROM orm_signaling_assets").fetchone()[0]
    assert rows <= 5
    backend.prune(["assets"])
    assert reader.signaling.read("x", ["assets"])[1] == {"assets": 23}
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM orm_signaling_assets").fetchone()[0] == 1


def test_signaling_version(make_registry, pair, writer, postgres_server):
    first, second = pair
    fresh = make_registry(PostgresSignaling(first.signaling.dsn))
    assert fresh.signaling_version("default") is None  # never synced
    epoch, registry_version, version = second.signaling_version("default")
    assert second.signaling_version("assets")[:2] == (epoch, registry_version)
    assert first.record_changes({"default"}, Recorder(writer))
    writer.commit()
    first.changes_committed({"default"})
    assert first.signaling_version("default") == (epoch, registry_version, version + 1)
    assert second.signaling_version("default") == (epoch, registry_version, version)  # not caught up
    second.check_signaling()
    assert second.signaling_version("default") == (epoch, registry_version, version + 1)
    with pytest.raises(ValueError, match="unknown cache name"):
        second.signaling_version("templates.nope")
    postgres_server.stop()
    try:
        second.check_signaling()
        assert second.signaling_version("default") is None  # cannot vouch during an outage
    finally:
        postgres_server.start()
    second.check_signaling()
    assert second.signaling_version("default") == (epoch, registry_version, version + 1)


def test_cursor_scope_records_in_the_callers_transaction(pair, writer):
    first, second = pair
    with first.cursor_scope(execute=writer.execute):
        writer.execute("UPDATE config SET value = 2")
        first.clear_cache("assets")
    assert first.cache_invalidated == set()
    warm(second)
    assert second.check_signaling() == []  # the caller has not committed yet
    writer.commit()
    assert second.check_signaling() == list(CACHES_BY_KEY["assets"])
    # without changes_committed() the writer sees its own signal as one more invalidation
    assert first.check_signaling() == list(CACHES_BY_KEY["assets"])


def test_cursor_scope_with_execute_publishes_after_when_it_cannot_record(make_registry, writer):
    registry, other = make_registry(LocalSignaling()), None
    ran = []
    with registry.cursor_scope(execute=ran.append):
        registry.clear_cache("assets")
    assert ran == [] and registry.cache_invalidated == set()
    other = make_registry(registry.signaling)
    assert registry.signaling.read(other.db_name, ["assets"])[1] == {"assets": 0}
    assert registry.signaling.read(registry.db_name, ["assets"])[1] == {"assets": 1}


def test_recording_keeps_working_when_the_backend_connection_is_gone(pair, writer, pg_dsn):
    """Once the tables and the token are known, recording needs no round trip to the backend:
    a writer whose signaling connection is cut still commits its signals with its data."""
    first, second = pair
    assert first.record_changes({"default"}, Recorder(writer))  # learns the token
    writer.commit()
    first.signaling._conn.close()
    first.signaling.dsn = pg_dsn.replace("host=127.0.0.1", "host=127.0.0.2 port=1")  # unreachable
    with pytest.raises(SignalingUnavailable):
        first.signaling.read("x", ["default"])
    warm(second)
    second.check_signaling()
    warm(second)
    assert first.record_changes({"assets"}, Recorder(writer))
    writer.commit()
    assert second.check_signaling() == list(CACHES_BY_KEY["assets"])


def test_old_version_processes_fail_loudly_instead_of_missing_signals(pair, pg_dsn):
    """The sequences of older ormcache versions become views that raise: an old process's
    checks fail (it then clears every cache at each check) and its signals raise."""
    with psycopg.connect(pg_dsn, autocommit=True) as old:
        old.execute("CREATE SEQUENCE IF NOT EXISTS ormcache_signaling_default")  # skipped, no error
        with pytest.raises(psycopg.errors.RaiseException, match="must be upgraded"):
            old.execute("SELECT (SELECT CASE WHEN is_called THEN last_value ELSE 0 END "
                        "FROM ormcache_signaling_default)")
        with pytest.raises(psycopg.Error, match="not a sequence"):
            old.execute("SELECT nextval('ormcache_signaling_default')")


def test_record_is_refused_on_a_read_only_backend_only_if_tables_are_missing(make_registry, pg_dsn):
    backend = PostgresSignaling(pg_dsn + " options='-c default_transaction_read_only=on'")
    registry = make_registry(backend)
    with pytest.raises(ReadOnlyBackendError):
        backend.bump("x", ["default"])
    assert registry.record_changes({"default"}, print) is False  # tables unknown: publish after
