"""Issue 18, item 3 on SQLite: the versions a value is stored under are read in the reader's
snapshot (inside its transaction, on its own connection, from the capture's tables in the
application's file), so a value computed from an old snapshot is never stored for the
transactions that follow.

Two processes share one SQLite file in WAL mode (readers keep their snapshot while another
process commits). This process opens a transaction and reads (its snapshot), another process
writes with plain ``sqlite3`` (the capture triggers of ``install()`` record it), then a session
joins the open transaction (SQLAlchemy's external-transaction recipe) and computes the cached
value from the old snapshot. The next transaction must read the new value. Before the fix:
stale 5 of 5 rounds; after: 0. (In the default rollback-journal mode a reader's open
transaction holds the file's SHARED lock, so the other process cannot commit before it ends:
no old snapshot can meet a newer version there; the plain rounds below count that mode too.)"""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import String, create_engine, event, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from ormcache.registry import Registry
from ormcache.sqlalchemy import OrmCache, orm_cached

ROUNDS = 5


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes_s18"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class App:
    def __init__(self, orm_cache, session):
        self.orm_cache, self.session = orm_cache, session

    @orm_cached(policy="on-table-change:notes_s18")
    @property
    def names(self):
        return tuple(self.session.scalars(select(Note.name).order_by(Note.id)))


_WRITE = ("import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], timeout=30)\n"
          "c.execute('UPDATE notes_s18 SET name = ? WHERE id = 1', (sys.argv[2],))\nc.commit()\nc.close()\n")


def _write_elsewhere(path, value):
    """A committed write by another process (plain sqlite3, no ormcache)."""
    subprocess.run([sys.executable, "-c", _WRITE, path, value], check=True, timeout=60)


def _truth(path):
    connection = sqlite3.connect(path)
    try:
        return tuple(row[0] for row in connection.execute("SELECT name FROM notes_s18 ORDER BY id"))
    finally:
        connection.close()


@pytest.fixture(params=["wal", "delete"])
def app(request, tmp_path):
    """(path, engine, sessionmaker, OrmCache), installed, on a file in journal mode ``param``.
    The engine follows SQLAlchemy's pysqlite recipe (a real BEGIN), so a transaction has a
    snapshot from its first read."""
    from ormcache.signaling import SqliteSignaling

    path = str(tmp_path / "app.sqlite")
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA journal_mode={request.param}")
    connection.close()
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _manual(dbapi_connection, record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN")

    Base.metadata.create_all(engine)
    with engine.begin() as c:
        c.execute(Note.__table__.insert().values(id=1, name="0"))
    registry = Registry(f"s18-{uuid.uuid4().hex[:8]}")
    registry.signaling = SqliteSignaling(path)
    cache = OrmCache(registry, Base.metadata)
    cache.register(App)
    cache.install(engine)
    factory = cache.watch(sessionmaker(engine))
    yield request.param, path, engine, factory, cache
    cache.close()
    registry.signaling.close()
    Registry.delete(registry.db_name)
    engine.dispose()


def _cached(factory, cache):
    with factory() as session:
        value = App(cache, session).names
        session.commit()
    return value


@pytest.mark.parametrize("app", ["wal"], indirect=True)  # (rollback journal: see the docstring)
def test_a_value_from_an_older_snapshot_is_not_stored(app):
    mode, path, engine, factory, cache = app
    stale = []
    for i in range(1, ROUNDS + 1):
        _cached(factory, cache)  # cached (stale ones counted below, at the end of each round)
        with engine.connect() as connection:
            connection.begin()
            connection.exec_driver_sql("SELECT name FROM notes_s18").fetchall()  # the snapshot
            _write_elsewhere(path, str(i))
            session = factory(bind=connection, join_transaction_mode="create_savepoint")
            old = App(cache, session).names  # computed from the old snapshot: right for it
            session.close()
            connection.rollback()
        seen = _cached(factory, cache)
        if seen != _truth(path):
            stale.append((i, old, seen))
    print(f"SQLite WAL, external transaction, write by another process: stale {len(stale)} of {ROUNDS}")
    assert stale == []


def test_plain_rounds_across_processes(app):
    mode, path, engine, factory, cache = app
    stale = []
    for i in range(1, ROUNDS + 1):
        _cached(factory, cache)
        _write_elsewhere(path, str(i))
        seen = _cached(factory, cache)
        if seen != _truth(path):
            stale.append((i, seen))
    print(f"SQLite {mode}, write by another process: stale {len(stale)} of {ROUNDS}")
    assert stale == []
