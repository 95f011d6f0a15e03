"""An app, a reader process and the write paths of the capture tests (no tests here).

Stale means: a transaction that began after the writer's commit returned read a cached value
other than what the database holds.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import uuid
from typing import Any, Callable, Dict

import psycopg
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, delete, func, insert, select, update
from sqlalchemy.orm import sessionmaker

from ormcache.sqlalchemy import orm_cached
from support.servers import postgres_bindir
from support.sqla import Base, Country, Setting, User, Worker, serve

#: tables the ORM does not map (no policy names them): writing them is not seen by the ORM hooks
outside = MetaData()
cap_owner = Table("cap_owner", outside, Column("id", Integer, primary_key=True))
cap_log = Table("cap_log", outside, Column("id", Integer, primary_key=True), Column("v", String(50)))

SETUP_SQL = [
    "CREATE TABLE cap_owner (id int PRIMARY KEY)",
    "ALTER TABLE users ADD COLUMN owner_id int REFERENCES cap_owner (id) ON DELETE CASCADE",
    "CREATE TABLE cap_log (id serial PRIMARY KEY, v text)",
    "CREATE FUNCTION cap_log_writes() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN UPDATE users SET name = NEW.v WHERE id = 1; RETURN NULL; END $$",
    "CREATE TRIGGER cap_log_writes AFTER INSERT ON cap_log FOR EACH ROW EXECUTE FUNCTION cap_log_writes()",
    "CREATE FUNCTION cap_rename(i int, n text) RETURNS int LANGUAGE sql AS "
    "$$ UPDATE users SET name = n WHERE id = i RETURNING id $$",
]


class CaptureApp:
    def __init__(self, orm_cache, session):
        self.orm_cache, self.session = orm_cache, session

    @orm_cached(policy="on-table-change:users")
    @property
    def users(self):
        return tuple(tuple(row) for row in self.session.execute(select(User.id, User.name).order_by(User.id)))


def options(dsn: str, **extra: Any) -> Dict[str, Any]:
    opts = {"dsn": dsn, "db_name": f"capture-{uuid.uuid4().hex[:8]}", "install": True}
    opts.update(extra)
    return opts


def open_caches(opts):
    from ormcache.registry import Registry
    from ormcache.signaling import PostgresSignaling, SqliteSignaling
    from ormcache.sqlalchemy import OrmCache

    registry = Registry(opts["db_name"])
    if opts.get("kind") == "sqlite":  # dsn: the file's path
        registry.signaling = SqliteSignaling(opts["dsn"])
        engine = create_engine(f"sqlite:///{opts['dsn']}")
    else:
        registry.signaling = PostgresSignaling(opts["dsn"], connect_timeout=2)
        engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(opts["dsn"]))
    factory = sessionmaker(engine)
    cache = OrmCache(registry, Base.metadata)
    cache.watch(factory)
    cache.register(CaptureApp)
    if opts["install"]:
        cache.install(engine)
    return engine, factory, cache


def close_caches(engine, cache) -> None:
    from ormcache.registry import Registry

    cache.close()
    cache.registry.signaling.close()
    engine.dispose()
    Registry.delete(cache.registry.db_name)


def read(factory, cache):
    """One unit of work: (the orm_cached users, the full-table cache's CH name)."""
    with factory() as session:
        users = CaptureApp(cache, session).users
        country = Country.by_key(session, "CH").name
        session.commit()
    return users, country


def truth(dsn: str):
    """What the database holds, read without any cache (``dsn``: a path for SQLite)."""
    if dsn.endswith(".sqlite"):
        conn = sqlite3.connect(dsn)
        try:
            users = tuple(tuple(row) for row in conn.execute("SELECT id, name FROM users ORDER BY id"))
            return users, conn.execute("SELECT name FROM countries WHERE code = 'CH'").fetchone()[0]
        finally:
            conn.close()
    with psycopg.connect(dsn) as conn:
        users = tuple(tuple(row) for row in conn.execute("SELECT id, name FROM users ORDER BY id"))
        country = conn.execute("SELECT name FROM countries WHERE code = 'CH'").fetchone()[0]
    return users, country


def reader(conn, opts) -> None:
    """Child process: answers ("read",) until None."""
    engine, factory, cache = open_caches(opts)
    serve(conn, lambda command: read(factory, cache), lambda: close_caches(engine, cache))


def seed(dsn: str, factory) -> None:
    with psycopg.connect(dsn) as conn:
        for statement in SETUP_SQL:
            conn.execute(statement)
    with factory() as session:
        session.add(User(id=1, name="0"))
        session.add(Country(id=1, code="CH", name="0"))
        session.commit()


def orm_write(factory, value: str) -> None:
    """A write the ORM hooks see (users and countries): every process drops its values."""
    with factory() as session:
        session.get(User, 1).name = value
        Country.by_key(session, "CH").name = value
        session.commit()


# -- the write paths: path(engine, factory, dsn, value, round) ----------------------------------

users = User.__table__


def stale_reads(opts, dsn: str, seed_with, write, rounds: int, setup=None, label: str = ""):
    """``rounds`` times: an ORM write (every process starts fresh), both processes read what the
    database holds, then ``write(engine, factory, dsn, value, k)`` (``setup(dsn, k)`` first, if
    given) and both read again. Returns ``(stale, examples)``: the reads after the write that
    differ from the database, per process ("writer", "other"), and what they saw."""
    engine, factory, cache = open_caches(opts)
    seed_with(dsn, factory)
    other = Worker(opts, target=reader)
    stale = {"writer": 0, "other": 0}
    examples = []
    try:
        for k in range(1, rounds + 1):
            if setup is not None:
                setup(dsn, k)
            orm_write(factory, f"base{k}")
            expected = truth(dsn)
            assert read(factory, cache) == expected
            assert other("read") == expected
            write(engine, factory, dsn, f"new{k}", k)
            expected = truth(dsn)
            for where, seen in (("writer", read(factory, cache)), ("other", other("read"))):
                if seen != expected:
                    stale[where] += 1
                    examples.append((where, seen, expected))
    finally:
        other.stop()
        close_caches(engine, cache)
    print(f"{label}: stale writer {stale['writer']}/{rounds}, other process {stale['other']}/{rounds}")
    return stale, examples


def cte_in_select(engine, factory, dsn, value, k):
    changed = update(users).where(users.c.id == 1).values(name=value).returning(users.c.id).cte("changed")
    with factory() as session:
        session.execute(select(changed.c.id)).all()
        session.commit()


def function_in_select(engine, factory, dsn, value, k):
    with factory() as session:
        session.execute(select(func.cap_rename(1, value))).all()
        session.commit()


def bulk_update_mappings(engine, factory, dsn, value, k):
    with factory() as session:
        session.bulk_update_mappings(User, [{"id": 1, "name": value}])
        session.commit()


def cascade_setup(dsn, k):
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO cap_owner (id) VALUES (%s)", [100 + k])
        conn.execute("INSERT INTO users (id, name, email, role, karma, owner_id) "
                      "VALUES (%s, 'child', '', 'member', 0, %s)", [100 + k, 100 + k])


def on_delete_cascade(engine, factory, dsn, value, k):
    with factory() as session:
        session.execute(delete(cap_owner).where(cap_owner.c.id == 100 + k))
        session.commit()


def trigger_writing_cached_table(engine, factory, dsn, value, k):
    with factory() as session:
        session.execute(insert(cap_log).values(v=value))
        session.commit()


def raw_dbapi_cursor(engine, factory, dsn, value, k):
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("UPDATE users SET name = %s WHERE id = 1", (value,))
        cursor.close()
        raw.commit()
    finally:
        raw.close()


def exec_driver_sql(engine, factory, dsn, value, k):
    with engine.begin() as connection:
        connection.exec_driver_sql(f"UPDATE users SET name = '{value}' WHERE id = 1")


def core_on_session_connection(engine, factory, dsn, value, k):
    with factory() as session:
        session.connection().execute(update(users).where(users.c.id == 1).values(name=value))
        session.commit()


def copy(engine, factory, dsn, value, k):
    with psycopg.connect(dsn) as conn:
        with conn.cursor().copy("COPY users (id, name, email, role, karma) FROM STDIN") as stream:
            stream.write_row((1000 + k, value, "", "member", 0))


def psql(engine, factory, dsn, value, k):
    binary = shutil.which("psql", path=postgres_bindir()) or shutil.which("psql")
    assert binary, "psql is not installed"
    subprocess.run([binary, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn,
                    "-c", f"UPDATE users SET name = '{value}' WHERE id = 1"],
                   check=True, timeout=60, env={**os.environ, "PGCONNECT_TIMEOUT": "10"})


def plain_psycopg(engine, factory, dsn, value, k):
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE users SET name = %s WHERE id = 1", [value])


def full_table_by_psycopg(engine, factory, dsn, value, k):
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE countries SET name = %s WHERE code = 'CH'", [value])


def truncate(engine, factory, dsn, value, k):
    with psycopg.connect(dsn) as conn:
        conn.execute("TRUNCATE countries")
        conn.execute("INSERT INTO countries (id, code, name) VALUES (1, 'CH', %s)", [value])


PATHS: Dict[str, Callable[..., None]] = {
    "cte_in_select": cte_in_select,
    "function_in_select": function_in_select,
    "bulk_update_mappings": bulk_update_mappings,
    "on_delete_cascade": on_delete_cascade,
    "trigger_writing_cached_table": trigger_writing_cached_table,
    "raw_dbapi_cursor": raw_dbapi_cursor,
    "exec_driver_sql": exec_driver_sql,
    "core_on_session_connection": core_on_session_connection,
    "copy": copy,
    "psql": psql,
    "plain_psycopg": plain_psycopg,
    "full_table_by_psycopg": full_table_by_psycopg,
    "truncate": truncate,
}
SETUPS = {"on_delete_cascade": cascade_setup}


# -- SQLite: the same app on a file shared by the processes -----------------------------------

SQLITE_SETUP = [
    "CREATE TABLE cap_log (id INTEGER PRIMARY KEY, v text)",
    "CREATE TRIGGER cap_log_writes AFTER INSERT ON cap_log BEGIN "
    "UPDATE users SET name = NEW.v WHERE id = 1; END",
]


def sqlite_seed(path: str, factory) -> None:
    conn = sqlite3.connect(path)
    try:
        for statement in SQLITE_SETUP:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()
    with factory() as session:
        session.add(User(id=1, name="0"))
        session.add(Country(id=1, code="CH", name="0"))
        session.commit()


def _sqlite_program(path: str, sql: str, params=()) -> None:
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute(sql, params)
        conn.commit()
    finally:
        conn.close()


def sqlite_other_program(engine, factory, path, value, k):
    _sqlite_program(path, "UPDATE users SET name = ? WHERE id = 1", (value,))


def sqlite_full_table(engine, factory, path, value, k):
    _sqlite_program(path, "UPDATE countries SET name = ? WHERE code = 'CH'", (value,))


def sqlite_raw_dbapi_cursor(engine, factory, path, value, k):
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("UPDATE users SET name = ? WHERE id = 1", (value,))
        cursor.close()
        raw.commit()
    finally:
        raw.close()


SQLITE_PATHS: Dict[str, Callable[..., None]] = {
    "other_program": sqlite_other_program,
    "full_table_by_other_program": sqlite_full_table,
    "raw_dbapi_cursor": sqlite_raw_dbapi_cursor,
    "exec_driver_sql": exec_driver_sql,
    "core_on_session_connection": core_on_session_connection,
    "bulk_update_mappings": bulk_update_mappings,
    "trigger_writing_cached_table": trigger_writing_cached_table,
}


# -- invalidation per table: two members on two tables -----------------------------------------

class TwoTables:
    def __init__(self, orm_cache, session):
        self.orm_cache, self.session = orm_cache, session

    @orm_cached(policy="on-table-change:users")
    def user_name(self, i):
        return self.session.scalar(select(User.name).where(User.id == i))

    @orm_cached(policy="on-table-change:settings")
    def setting(self, i):
        return self.session.scalar(select(Setting.value).where(Setting.id == i))


def open_two_tables(opts):
    from ormcache.registry import Registry
    from ormcache.signaling import PostgresSignaling
    from ormcache.sqlalchemy import OrmCache

    registry = Registry(opts["db_name"])
    registry.signaling = PostgresSignaling(opts["dsn"], connect_timeout=2)
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(opts["dsn"]))
    factory = sessionmaker(engine)
    cache = OrmCache(registry, Base.metadata)
    cache.watch(factory)
    cache.register(TwoTables)
    cache.install(engine)
    return engine, factory, cache


def read_two_tables(factory, cache, count: int):
    """Every value of both members in one transaction: (users, settings, setting hits, user hits)."""
    setting = cache._counters[TwoTables.__dict__["setting"]]
    user = cache._counters[TwoTables.__dict__["user_name"]]
    setting_hits, user_hits = setting.hit, user.hit
    with factory() as session:
        app = TwoTables(cache, session)
        users = [app.user_name(i) for i in range(count)]
        settings = [app.setting(i) for i in range(count)]
        session.commit()
    return users, settings, setting.hit - setting_hits, user.hit - user_hits


def two_tables_reader(conn, opts) -> None:
    engine, factory, cache = open_two_tables(opts)
    serve(conn, lambda command: read_two_tables(factory, cache, command[1]), lambda: close_caches(engine, cache))
