"""Snapshot-safe stores for plain ``@ormcache`` inside ``cursor_scope()`` (issue #8, item 3),
with real PostgreSQL connections and deterministic interleavings.

A value computed in a scope is not stored for others when an invalidation of the registry was
applied in this process after the scope began (its REPEATABLE READ snapshot may predate the
change), nor when the scope itself invalidated (it may have read its own uncommitted write).
Every test runs on both engines and both hit paths (the ``registry`` fixture).
"""
import threading
import uuid

import psycopg
import pytest
from psycopg import IsolationLevel

from ormcache import Registry, ormcache
from ormcache.signaling import PostgresSignaling

ISOLATION = {"read-committed": IsolationLevel.READ_COMMITTED,
             "repeatable-read": IsolationLevel.REPEATABLE_READ}


@pytest.fixture
def database(pg_dsn):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE config (id int PRIMARY KEY, value int NOT NULL)")
        conn.execute("INSERT INTO config VALUES (1, 0)")
    return pg_dsn


@pytest.fixture
def connect(database):
    opened = []

    def connect(isolation="read-committed"):
        conn = psycopg.connect(database)
        conn.isolation_level = ISOLATION[isolation]
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


@pytest.fixture
def signaled(registry, database):
    """The test's registry on PostgreSQL signaling, plus another 'process' (a registry of its
    own on the same signaling database) that writes."""
    registry.signaling = PostgresSignaling(database)
    registry.signaling_retry_interval = 0
    other = Registry(f"snapshots-{uuid.uuid4().hex[:8]}")
    other.signaling = PostgresSignaling(database)
    assert registry.check_signaling() == [] and other.check_signaling() == []
    yield registry, other
    registry.signaling.close()
    other.signaling.close()
    Registry.delete(other.db_name)


def model_class(registry):
    class Model:
        _name = "snapshot.model"
        pool = registry
        calls = 0

        def __init__(self, conn):
            self.conn = conn

        @ormcache()
        def value(self):
            type(self).calls += 1
            return self.conn.execute("SELECT value FROM config WHERE id = 1").fetchone()[0]

    return Model


def commit_elsewhere(other, conn, value):
    """The other process: change the row and record its signal in the same transaction."""
    with other.cursor_scope(execute=conn.execute):
        conn.execute("UPDATE config SET value = %s WHERE id = 1", [value])
        other.clear_cache("default")
    conn.commit()


def in_thread(func):
    result = []
    thread = threading.Thread(target=lambda: result.append(func()))
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    return result[0]


def test_an_old_snapshot_is_not_stored_after_a_later_invalidation(signaled, connect):
    """REPEATABLE READ: the reader's snapshot is taken, another process commits a change, a
    check of another thread applies it, then the reader misses: it reads its old snapshot
    (correct for it) but must not store that for everyone."""
    registry, other = signaled
    Model = model_class(registry)
    reader = connect("repeatable-read")
    with registry.cursor_scope():
        reader.execute("SELECT 1")  # the snapshot
        commit_elsewhere(other, connect(), 1)
        in_thread(registry.check_signaling)  # another thread's unit of work begins
        assert Model(reader).value() == 0  # its snapshot
        reader.commit()
    with registry.cursor_scope():
        assert Model(reader).value() == 1
        reader.commit()
    with registry.cursor_scope():
        assert Model(reader).value() == 1
        reader.commit()
    assert Model.calls == 2  # the value read by the later scope was stored


@pytest.mark.parametrize("isolation", sorted(ISOLATION))
def test_a_scope_that_invalidated_stores_nothing_for_the_others(signaled, connect, isolation):
    """The writer's scope reads its own uncommitted write: another thread must not get it."""
    registry, _ = signaled
    Model = model_class(registry)
    writer, reader = connect(isolation), connect(isolation)
    with registry.cursor_scope(execute=writer.execute):
        writer.execute("UPDATE config SET value = 5 WHERE id = 1")
        registry.clear_cache("default")
        assert Model(writer).value() == 5  # its own write

        def read():
            with registry.cursor_scope():
                try:
                    return Model(reader).value()
                finally:
                    reader.commit()

        assert in_thread(read) == 0  # not the uncommitted 5
    writer.commit()
    with registry.cursor_scope():
        assert Model(reader).value() == 5
        reader.commit()


def test_a_scope_stores_again_when_nothing_was_invalidated(signaled, connect):
    registry, _ = signaled
    Model = model_class(registry)
    reader = connect("repeatable-read")
    with registry.cursor_scope():
        assert Model(reader).value() == 0
        assert Model(reader).value() == 0
        reader.commit()
    assert Model.calls == 1


def test_an_invalidation_before_the_scope_does_not_stop_stores(signaled, connect):
    registry, other = signaled
    Model = model_class(registry)
    commit_elsewhere(other, connect(), 3)
    reader = connect("repeatable-read")
    with registry.cursor_scope():  # its check applies the invalidation, then the scope begins
        assert Model(reader).value() == 3
        assert Model(reader).value() == 3
        reader.commit()
    assert Model.calls == 1


def test_nested_scopes_keep_the_outer_start(signaled, connect):
    registry, other = signaled
    Model = model_class(registry)
    reader = connect("repeatable-read")
    with registry.cursor_scope():
        reader.execute("SELECT 1")
        commit_elsewhere(other, connect(), 1)
        with registry.cursor_scope():  # its check applies the change: the outer snapshot is old
            assert Model(reader).value() == 0
        reader.commit()
    with registry.cursor_scope():
        assert Model(reader).value() == 1
        reader.commit()
