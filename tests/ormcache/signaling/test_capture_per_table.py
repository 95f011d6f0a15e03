"""Invalidation per table (issue 18, item 2): with ``OrmCache.install()``, a committed write to
one table drops, in every process, only the entries depending on that table; the entries of
another table stay hits. ``check_signaling()`` stays one round trip (one SELECT) whatever the
number of tables.

Before (one signal per cache name), a write to ``users`` made both processes drop the
``settings`` entries too: 0 of 100 stayed hits in the other process, 0 of 100 in the writer's."""
from __future__ import annotations

import psycopg
import pytest

from ormcache.registry import Registry
from support.capture import (TwoTables, close_caches, open_two_tables, options, read_two_tables,
                                  two_tables_reader)
from support.sqla import Base, Setting, User, Worker, make_engine

COUNT = 100
ROUNDS = 3


@pytest.fixture
def pg(pg_dsn):
    engine = make_engine("postgresql", pg_dsn)
    Base.metadata.create_all(engine)
    engine.dispose()
    with psycopg.connect(pg_dsn) as conn:
        for i in range(COUNT):
            conn.execute("INSERT INTO users (id, name, email, role, karma) VALUES (%s, '0', '', 'm', 0)", [i])
            conn.execute("INSERT INTO settings (id, key, value) VALUES (%s, %s, '0')", [i, f"k{i}"])
    return pg_dsn


def _truth(dsn):
    with psycopg.connect(dsn) as conn:
        users = [row[0] for row in conn.execute("SELECT name FROM users ORDER BY id")]
        settings = [row[0] for row in conn.execute("SELECT value FROM settings ORDER BY id")]
    return users, settings


def _orm_write(factory, value):
    with factory() as session:
        session.get(User, 5).name = value
        session.commit()


def _program_write(dsn, value):
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE users SET name = %s WHERE id = 7", [value])


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["orm", "other_program"])
def test_a_write_to_one_table_keeps_the_other_tables_entries(pg, how):
    opts = options(pg)
    engine, factory, cache = open_two_tables(opts)
    other = Worker(opts, target=two_tables_reader)
    kept = {"writer": 0, "other": 0}
    stale = []
    try:
        for where, read in (("writer", lambda: read_two_tables(factory, cache, COUNT)),
                            ("other", lambda: other("read", COUNT))):
            read()  # filled
            assert read()[2:] == (COUNT, COUNT)  # all hits
        for k in range(1, ROUNDS + 1):
            if how == "orm":
                _orm_write(factory, f"v{k}")
            else:
                _program_write(pg, f"v{k}")
            expected = _truth(pg)
            for where, read in (("writer", lambda: read_two_tables(factory, cache, COUNT)),
                                ("other", lambda: other("read", COUNT))):
                users, settings, setting_hits, _ = read()
                kept[where] += setting_hits
                if (users, settings) != expected:
                    stale.append((where, k))
    finally:
        other.stop()
        close_caches(engine, cache)
    total = COUNT * ROUNDS
    print(f"{how}: settings entries kept as hits after users writes: writer {kept['writer']}/{total}, "
          f"other process {kept['other']}/{total}; stale {len(stale)}")
    assert stale == []
    assert kept["writer"] >= 0.99 * total and kept["other"] >= 0.99 * total, kept


def test_check_stays_one_statement_whatever_the_tables(pg):
    opts = options(pg)
    engine, factory, cache = open_two_tables(opts)
    backend = cache.registry.signaling
    try:
        cache.registry.check_signaling()
        statements = []
        original = backend._working

        def counting(kind, names, write, read_only):
            statements.append((kind, names))
            return original(kind, names, write, read_only)

        backend._working = counting
        cache.registry.check_signaling()
        assert len(statements) == 1 and statements[0][0] == "read"
        assert {"t.users", "t.settings"} <= set(statements[0][1])
    finally:
        close_caches(engine, cache)


def test_members_registered_after_install_are_signalled_by_name(pg, caplog):
    """A member registered after install() depends on a table without trigger: its commits are
    signalled by cache name (as without capture), and one warning says to install again."""
    import logging

    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    from ormcache.signaling import PostgresSignaling
    from ormcache.sqlalchemy import OrmCache
    from support.capture import CaptureApp

    registry = Registry("capture-late")
    registry.signaling = backend = PostgresSignaling(pg)
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(pg))
    factory = sessionmaker(engine)
    cache = OrmCache(registry, Base.metadata)
    cache.watch(factory)
    cache.register(CaptureApp)  # users (and the full-table countries)
    try:
        cache.install(engine)
        cache.register(TwoTables)  # settings: no trigger
        with factory() as session:
            TwoTables(cache, session).setting(1)
        before = backend.read("capture-late", ["default"])[1]["default"]
        with caplog.at_level(logging.WARNING, logger="ormcache.sqlalchemy"):
            with factory() as session:
                session.get(Setting, 1).value = "late"
                session.commit()
        assert backend.read("capture-late", ["default"])[1]["default"] == before + 1  # by name
        assert any("registered after install()" in r.getMessage() and "settings" in r.getMessage()
                   for r in caplog.records)
        cache.install(engine)  # again: settings captured, by table from now on
        assert cache._captured is True
        with factory() as session:
            session.get(Setting, 1).value = "later"
            session.commit()
        assert backend.read("capture-late", ["default"])[1]["default"] == before + 1
    finally:
        cache.close()
        backend.close()
        engine.dispose()
        Registry.delete("capture-late")


@pytest.mark.timeout(300)
def test_invalidating_one_member_drops_only_its_values_everywhere(pg):
    """``OrmCache.invalidate(member)`` once installed publishes that member's own signal: every
    process drops its values and keeps the other members' (issue 19, item 4, for orm_cached).
    Before (the cache name signalled), the other process kept 0 of 100 values of the other
    member."""
    opts = options(pg)
    engine, factory, cache = open_two_tables(opts)
    other = Worker(opts, target=two_tables_reader)
    try:
        other("read", COUNT)
        assert other("read", COUNT)[2:] == (COUNT, COUNT)  # all hits
        read_two_tables(factory, cache, COUNT)
        cache.invalidate(TwoTables.__dict__["user_name"])
        _, _, setting_hits, user_hits = other("read", COUNT)
        _, _, local_setting_hits, local_user_hits = read_two_tables(factory, cache, COUNT)
    finally:
        other.stop()
        close_caches(engine, cache)
    print(f"after invalidate(user_name): other process kept {setting_hits}/{COUNT} settings values, "
          f"{user_hits}/{COUNT} user_name values; writer {local_setting_hits}/{COUNT}, {local_user_hits}/{COUNT}")
    assert user_hits == 0 and local_user_hits == 0  # dropped everywhere
    assert setting_hits == COUNT and local_setting_hits == COUNT  # the other member kept
