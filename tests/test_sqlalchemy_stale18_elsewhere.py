"""Issue 18, item 8: an application database that is not the signaling database (SQLite with
``PostgresSignaling``, or another PostgreSQL database) is detected: the signal is published after
the commit, with one warning naming the window; never an SQL error at commit.

Before the fix: every commit raised (SQLite: ``near "INSERT": syntax error``; another PostgreSQL
database: ``relation "orm_signaling.epoch" does not exist``), 5 of 5 rounds, and the other
process read the old value 5 of 5. After: 0 errors, 0 stale."""
from __future__ import annotations

import logging

import pytest

from servers import fresh_database
from test_sqlalchemy_stale18_support import Process18, cached_users, open18, true_users
from test_sqlalchemy_stale_support import close_caches, options
from test_sqlalchemy_support import Base, User, make_engine

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
        reader.exit()
        close_caches(engine, cache)
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "not the signaling database" in r.getMessage()]
    print(f"{kind} app, PostgreSQL signaling elsewhere: {len(errors)} of {ROUNDS} commits raised, "
          f"{len(stale)} stale; warnings: {warnings}")
    assert errors == [] and stale == []
    assert len(warnings) == 1, warnings
    assert "after the COMMIT" in warnings[0]
