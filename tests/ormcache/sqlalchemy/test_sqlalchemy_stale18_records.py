"""Issue 18 for ``RecordCache``: a write by another program (raw DBAPI, psql-style, in this
process or in another one) is seen by the next transaction of a session whose record cache
read the old value, counted over rounds, on PostgreSQL and on an SQLite file.

The record cache lives with one session transaction. ``Session.close()`` (``with Session() as
s:`` ends with it) ends the transaction without ``after_commit``/``after_rollback``: before
the fix the cache outlived it, and the session used again served the old value: stale 10 of
10 rounds, a write from another process and from the writer's process, SQLite and PostgreSQL.
After: 0."""
from __future__ import annotations

import sqlite3
import subprocess
import sys

import psycopg
import pytest
from sqlalchemy import String, create_engine, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, Session

from ormcache.sqlalchemy import RecordCache

ROUNDS = 10


class Base(DeclarativeBase):
    pass


class Rec(Base):
    __tablename__ = "recs_r18"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """(kind, where, engine) with one row (1, "0")."""
    if request.param == "sqlite":
        where = str(tmp_path / "records.sqlite")
        engine = create_engine(f"sqlite:///{where}")
    else:
        where = request.getfixturevalue("pg_dsn")
        engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(where))
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(Rec.__table__.insert().values(id=1, name="0"))
    yield request.param, where, engine
    engine.dispose()


_WRITE = {
    "sqlite": "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\n"
              "c.execute('UPDATE recs_r18 SET name = ? WHERE id = 1', (sys.argv[2],))\nc.commit()\n",
    "postgresql": "import psycopg, sys\nwith psycopg.connect(sys.argv[1]) as c:\n"
                  "    c.execute('UPDATE recs_r18 SET name = %s WHERE id = 1', (sys.argv[2],))\n",
}


def _write(kind, where, value, elsewhere):
    """A raw DBAPI write, committed: in another process, or on a connection of this one."""
    if elsewhere:
        subprocess.run([sys.executable, "-c", _WRITE[kind], where, value], check=True, timeout=60)
    elif kind == "sqlite":
        connection = sqlite3.connect(where)
        connection.execute("UPDATE recs_r18 SET name = ? WHERE id = 1", (value,))
        connection.commit()
        connection.close()
    else:
        with psycopg.connect(where) as connection:
            connection.execute("UPDATE recs_r18 SET name = %s WHERE id = 1", (value,))


@pytest.mark.parametrize("elsewhere", [True, False], ids=["another process", "writer's process"])
def test_a_record_cache_ends_with_its_transaction(database, elsewhere):
    kind, where, engine = database
    stale = []
    with Session(engine) as session:
        for i in range(1, ROUNDS + 1):
            RecordCache.of(session).get(Rec, 1, "name")  # read (and cached) in a transaction
            session.close()  # ends the transaction: no after_commit, no after_rollback
            _write(kind, where, str(i), elsewhere)
            seen = RecordCache.of(session).get(Rec, 1, "name")  # the next transaction
            if seen != str(i):
                stale.append((i, seen))
            session.commit()
    print(f"{kind}, close, {'another process' if elsewhere else 'this process'}: "
          f"stale {len(stale)} of {ROUNDS}")
    assert stale == []



#: a write in the session's own transaction by a path that bypasses the session's ORM events
_OWN_WRITES = {
    "core_on_session_connection": lambda s, v: s.connection().execute(
        Rec.__table__.update().where(Rec.__table__.c.id == 1).values(name=v)),
    "text_on_session_connection": lambda s, v: s.connection().execute(
        text("UPDATE recs_r18 SET name = :v WHERE id = 1"), {"v": v}),
    "exec_driver_sql": lambda s, v: s.connection().exec_driver_sql(
        "UPDATE recs_r18 SET name = '" + v + "' WHERE id = 1"),
}


@pytest.mark.parametrize("path", sorted(_OWN_WRITES))
def test_a_record_cache_reads_its_transactions_own_writes(database, path):
    """Item 4 for RecordCache: a transaction that wrote by a connection-level path reads its
    own write. Before the fix: the old value 5 of 5 rounds (each path, both databases)."""
    kind, where, engine = database
    stale = []
    with Session(engine) as session:
        for i in range(1, 6):
            records = RecordCache.of(session)
            records.get(Rec, 1, "name")
            _OWN_WRITES[path](session, str(i))
            seen = records.get(Rec, 1, "name")
            if seen != str(i):
                stale.append((i, seen))
            session.commit()
    print(f"{kind}, {path}: own write not read {len(stale)} of 5")
    assert stale == []


def test_flushes_and_reads_keep_the_other_records(database):
    """The connection-level watch does not widen what a flush or a read drops: a flushed
    change drops its record only, a SELECT or a savepoint drops nothing."""
    kind, where, engine = database
    with Session(engine) as session:
        session.add(Rec(id=2, name="two"))
        session.commit()
        records = RecordCache.of(session)
        records.prefetch(Rec, [1, 2], ["name"])
        queries = records.queries
        session.connection().exec_driver_sql("SELECT name FROM recs_r18").fetchall()
        session.connection().execute(text("SELECT 1")).fetchall()
        session.get(Rec, 1).name = "flushed"
        session.flush()
        assert records.get(Rec, 2, "name") == "two" and records.queries == queries
        assert records.get(Rec, 1, "name") == "flushed" and records.queries == queries + 1
        session.commit()
