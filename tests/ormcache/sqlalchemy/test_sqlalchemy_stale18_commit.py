"""Issue 18: a commit that raises leaves nothing behind (item 7). Whatever fails around the COMMIT
(recording the signal in the transaction), the transaction is rolled back or the connection
discarded before it goes back to the pool: no later transaction on that connection commits the
write whose ``commit()`` raised, nor trips over its failed state.

Before the fix: the role that may not record signals left its pooled connection in a failed
transaction (the next request: ``InFailedSqlTransaction``), 5 of 5 rounds; on SQLite with
``PostgresSignaling``, the write whose commit raised became durable once the next read-only
transaction on that connection committed (the file read 0, then 7)."""
from __future__ import annotations

import sqlite3
import uuid

import psycopg
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import sessionmaker

from ormcache.registry import Registry
from ormcache.signaling import PostgresSignaling
from ormcache.sqlalchemy import OrmCache
from support.sqla_stale18 import Stale18App
from support.sqla import Base, User

ROUNDS = 5


def _open(engine, signaling):
    registry = Registry(f"commit18-{uuid.uuid4().hex[:8]}")
    registry.signaling = signaling
    factory = sessionmaker(engine)
    cache = OrmCache(registry, Base.metadata)
    cache.watch(factory)
    cache.register(Stale18App)
    return registry, factory, cache


def _close(engine, registry, cache):
    cache.close()
    registry.signaling.close()
    engine.dispose()
    Registry.delete(registry.db_name)


def _rename(factory, name):
    """Rename user 1 in one session transaction; whether its commit() raised."""
    with factory() as session:
        session.get(User, 1).name = name
        try:
            session.commit()
        except Exception:  # noqa: BLE001 - what the test looks at is what it leaves behind
            return True
    return False


@pytest.fixture
def restricted(pg_dsn):
    """(owner DSN, DSN of a role that may write the app's tables but not record signals)."""
    role = f"app_{uuid.uuid4().hex[:8]}"
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(pg_dsn))
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(User.__table__.insert().values(id=1, name="0"))
    engine.dispose()
    signaling = PostgresSignaling(pg_dsn)
    signaling.record_statement("any", ["default"])  # creates the signaling tables
    signaling.close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        conn.execute(f"GRANT INSERT, UPDATE, DELETE ON users, countries TO {role}")
    yield pg_dsn, pg_dsn.replace("user=postgres", f"user={role}")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")


def test_failed_recording_leaves_no_failed_transaction_in_the_pool(restricted):
    owner, app = restricted
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(app), pool_size=1)
    registry, factory, cache = _open(engine, PostgresSignaling(owner))
    broken = []
    try:
        for i in range(1, ROUNDS + 1):
            assert _rename(factory, str(i)), "recording the signal was expected to fail"
            try:
                with factory() as session:  # the next request, on the same pooled connection
                    assert session.scalar(select(User.name).where(User.id == 1)) == "0"
                    session.commit()
            except Exception as exc:  # noqa: BLE001 - counted
                broken.append((i, type(exc).__name__))
    finally:
        _close(engine, registry, cache)
    print(f"failed recording, next request on the connection broken: {len(broken)} of {ROUNDS}")
    assert broken == []


def _file_name(path):
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT name FROM users WHERE id = 1").fetchone()[0]


@pytest.mark.parametrize("recipe", ["pysqlite", "manual BEGIN"])
def test_sqlite_commit_that_raised_never_becomes_durable(pg_dsn, tmp_path, recipe):
    """SQLite app, PostgreSQL signaling: a commit() that raised is never made durable by a
    later transaction on its connection; one that returned is durable."""
    from sqlalchemy import event

    path = str(tmp_path / "app.sqlite")
    engine = create_engine(f"sqlite:///{path}", pool_size=1)
    if recipe == "manual BEGIN":
        event.listen(engine, "connect", lambda dbapi_connection, record: setattr(dbapi_connection, "isolation_level", None))
        event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN"))
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(User.__table__.insert().values(id=1, name="0"))
    registry, factory, cache = _open(engine, PostgresSignaling(pg_dsn))
    try:
        raised = _rename(factory, "7")
        right_after = _file_name(path)
        with engine.connect() as connection:  # an unrelated read-only transaction
            connection.execute(text("SELECT 1"))
            connection.commit()
        later = _file_name(path)
        with factory() as session:
            now = Stale18App(cache, session).users
    finally:
        _close(engine, registry, cache)
    print(f"{recipe}: commit raised {raised}; the file read {right_after!r}, then {later!r}")
    if raised:
        assert (right_after, later, now) == ("0", "0", ((1, "0"),))
    else:
        assert (right_after, later, now) == ("7", "7", ((1, "7"),))
