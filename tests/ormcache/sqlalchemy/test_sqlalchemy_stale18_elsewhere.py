"""Issue 18, item 8: an application database that is not the signaling database (SQLite with
``PostgresSignaling``, or another PostgreSQL database) is detected: the signal is published after
the commit, with one warning naming the window; never an SQL error at commit.

Before the fix: every commit raised (SQLite: ``near "INSERT": syntax error``; another PostgreSQL
database: ``relation "orm_signaling.epoch" does not exist``), 5 of 5 rounds, and the other
process read the old value 5 of 5. After: 0 errors, 0 stale."""
from __future__ import annotations

import logging

import pytest

from support.servers import fresh_database
from support.sqla_stale18 import Process18, cached_users, open18, true_users
from support.sqla_stale import close_caches, options
from support.sqla import Base, User, make_engine

ROUNDS = 5


@pytest.fixture(params=["sqlite", "postgresql"])
def app_database(request, tmp_path, postgres_server):
    """(kind, where) of an application database that is not the signaling one."""
    if request.param == "sqlite":
        where = str(tmp_path / "app.sqlite")
        yield "sqlite", where, make_engine("sqlite", where)
        return
    databases = fresh_database(postgres_server, prefix="app_")
    where = next(databases)
    yield "postgresql", where, make_engine("postgresql", where)
    next(databases, None)


def _rename(factory, i):
    with factory() as session:
        session.get(User, 1).name = str(i)
        session.commit()


def test_app_database_not_the_signaling_one(app_database, pg_dsn, caplog):
    kind, where, engine = app_database
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(User.__table__.insert().values(id=1, name="0"))
    engine.dispose()
    opts = options(kind, where, signaling="postgres", signaling_dsn=pg_dsn)
    caplog.set_level(logging.WARNING, logger="ormcache")
    engine, factory, cache = open18(opts)
    reader = Process18(opts)
    errors, stale = [], []
    try:
        for i in range(1, ROUNDS + 1):
            assert reader("read") == true_users(engine)
            try:
                _rename(factory, i)
            except Exception as exc:  # noqa: BLE001 - counted
                errors.append((i, repr(exc)[:200]))
            seen = reader("read")
            if seen != true_users(engine):
                stale.append((i, seen))
        assert cached_users(factory, cache) == true_users(engine)
    finally:
        reader.stop()
        close_caches(engine, cache)
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "not the signaling database" in r.getMessage()]
    print(f"{kind} app, PostgreSQL signaling elsewhere: {len(errors)} of {ROUNDS} commits raised, "
          f"{len(stale)} stale; warnings: {warnings}")
    assert errors == [] and stale == []
    assert len(warnings) == 1, warnings
    assert "after the COMMIT" in warnings[0]


@pytest.mark.parametrize("signaling", ["postgres", "redis"])
def test_the_same_database_probe_runs_once_per_pool_and_only_when_recording(pg_dsn, redis_server, redis_prefix,
                                                                              signaling):
    """The SAVEPOINT around the first recording of a pool is sent once (PostgreSQL signaling on
    the app database), never with a backend that does not record (Redis)."""
    import psycopg

    engine = make_engine("postgresql", pg_dsn)
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(User.__table__.insert().values(id=1, name="0"))
    engine.dispose()
    sent = []

    class Counting(psycopg.Cursor):
        def execute(self, query, *args, **kwargs):
            sent.append(str(query))
            return super().execute(query, *args, **kwargs)

    opts = options("postgresql", pg_dsn, signaling=signaling, redis_url=redis_server.url,
                   redis_prefix=redis_prefix)
    engine, factory, cache = open18(opts)
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    counted = create_engine("postgresql+psycopg://",
                            creator=lambda: psycopg.connect(pg_dsn, cursor_factory=Counting))
    factory_counted = sessionmaker(counted)
    cache.watch(factory_counted)
    try:
        for i in range(1, 4):
            _rename(factory_counted, i)
        assert cached_users(factory, cache) == ((1, "3"),)
    finally:
        counted.dispose()
        close_caches(engine, cache)
    savepoints = [q for q in sent if "ormcache_record" in q]
    print(f"{signaling} signaling, 3 commits: {savepoints}")
    assert len(savepoints) == (2 if signaling == "postgres" else 0)  # SAVEPOINT and RELEASE, once
