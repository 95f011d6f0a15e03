"""Capture in the database (issue 18, item 1): every way of writing a cached table invalidates,
in the writer's process and in another one, once ``OrmCache.install(engine)`` put the triggers in.

Before the capture, 12 of these 13 paths (all but TRUNCATE of a table the ORM's own text() hook
happened to see) served stale values: run with ``CAPTURE_TEST_NO_INSTALL=1`` to count them.
"""
from __future__ import annotations

import logging
import os

import psycopg
import pytest
from sqlalchemy import String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ormcache.registry import Registry
from ormcache.signaling import LocalSignaling, PostgresSignaling, SignalingConfigurationError
from ormcache.sqlalchemy import FullTableCache, OrmCache
from support.capture import PATHS, SETUPS, CaptureApp, options, seed, stale_reads
from support.sqla import Base
from support.sqla import pg  # noqa: F401 - fixture

ROUNDS = 2
INSTALL = os.environ.get("CAPTURE_TEST_NO_INSTALL") != "1"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", sorted(PATHS))
def test_every_write_path_invalidates_in_every_process(pg, path):
    opts = options(pg, install=INSTALL)
    stale, examples = stale_reads(opts, pg, seed, PATHS[path], ROUNDS, setup=SETUPS.get(path), label=path)
    assert stale == {"writer": 0, "other": 0}, examples


def _cache(db_name, signaling):
    registry = Registry(db_name)
    registry.signaling = signaling
    cache = OrmCache(registry, Base.metadata)
    cache.register(CaptureApp)
    return cache


def test_install_is_idempotent_and_creates_statement_triggers(pg):
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(pg))
    cache = _cache("capture-install", PostgresSignaling(pg))
    try:
        first = cache.install(engine)
        assert sorted(name for _, name in first) == ["countries", "users"]
        assert cache.install(engine) == []  # nothing missing: no DDL the second time
        with psycopg.connect(pg) as conn:
            rows = conn.execute(
                "SELECT c.relname, t.tgtype FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE starts_with(t.tgname, 'orm_signaling_capture_') ORDER BY 1").fetchall()
        # tgtype bits: 1 row-level (absent: statement), 2 before, 4 insert, 8 delete, 16 update,
        # 32 truncate
        assert [(name, tgtype & 63) for name, tgtype in rows] == [
            ("countries", 2 | 4 | 8 | 16 | 32), ("users", 2 | 4 | 8 | 16 | 32)]
    finally:
        cache.registry.signaling.close()
        engine.dispose()
        Registry.delete("capture-install")


def test_one_row_per_transaction_whatever_the_statements(pg):
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(pg))
    cache = _cache("capture-once", PostgresSignaling(pg))
    try:
        cache.install(engine)
        with psycopg.connect(pg) as conn:
            count = ('SELECT (SELECT count(*) FROM "orm_signaling_t.users"), '
                     '(SELECT count(*) FROM "orm_signaling_t.countries")')
            users, countries = conn.execute(count).fetchone()
            conn.commit()
            for i in range(50):
                conn.execute("INSERT INTO users (id, name, email, role, karma) VALUES (%s, 'x', '', 'm', 0)", [i])
                conn.execute("UPDATE countries SET name = 'x'")
            conn.commit()
            assert conn.execute(count).fetchone() == (users + 1, countries + 1)  # one row per table
            conn.commit()
            with conn.transaction():  # a savepoint rolled back takes its row and its marker back
                with pytest.raises(psycopg.errors.DivisionByZero):
                    with conn.transaction():
                        conn.execute("UPDATE users SET name = 'y'")
                        conn.execute("SELECT 1/0")
                conn.execute("UPDATE users SET name = 'z'")
            assert conn.execute(count).fetchone() == (users + 2, countries + 1)
            conn.commit()
            conn.execute("UPDATE users SET name = 'w'")
            conn.rollback()  # a rolled back write records nothing
            assert conn.execute(count).fetchone() == (users + 2, countries + 1)
    finally:
        cache.registry.signaling.close()
        engine.dispose()
        Registry.delete("capture-once")


def test_ddl_is_the_text_install_runs(pg):
    cache = _cache("capture-ddl", PostgresSignaling(pg))
    try:
        text = cache.ddl("postgresql")
        assert text == ";\n".join(cache.ddl_statements("postgresql")) + ";\n"
        assert "%" not in text  # safe for a driver that is given parameters
        with psycopg.connect(pg) as conn:  # what a migration does: op.execute(text)
            conn.execute(text)
        engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(pg))
        try:
            assert cache.install(engine) == []  # the migration did it all
        finally:
            engine.dispose()
        assert "CREATE TRIGGER IF NOT EXISTS" in cache.ddl("sqlite")
        with pytest.raises(ValueError, match="capture supports"):
            cache.ddl("mysql")
    finally:
        cache.registry.signaling.close()
        Registry.delete("capture-ddl")


def test_install_refuses_a_signaling_that_does_not_read_the_database(pg, postgres_server):
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(pg))
    cache = _cache("capture-refused", LocalSignaling())
    try:
        with pytest.raises(SignalingConfigurationError, match="does not read"):
            cache.install(engine)
    finally:
        engine.dispose()
        Registry.delete("capture-refused")


def test_without_install_one_warning_names_the_tables(pg, caplog):
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(pg))
    from sqlalchemy.orm import sessionmaker

    factory = sessionmaker(engine)
    cache = _cache("capture-warned", LocalSignaling())
    cache.watch(factory)
    try:
        with caplog.at_level(logging.WARNING, logger="ormcache.sqlalchemy"):
            for _ in range(3):
                with factory() as session:
                    CaptureApp(cache, session).users
        warnings = [r.getMessage() for r in caplog.records if "install" in r.getMessage()]
        assert len(warnings) == 1, warnings
        assert "countries, users" in warnings[0]
    finally:
        cache.close()
        engine.dispose()
        Registry.delete("capture-warned")


def test_bad_bind_is_refused(pg):
    cache = _cache("capture-bad", LocalSignaling())
    try:
        with pytest.raises(TypeError, match="Engine or a Connection"):
            cache.install("postgresql://")
    finally:
        Registry.delete("capture-bad")


def test_captured_signals_are_pruned_by_the_checks(pg):
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(pg))
    backend = PostgresSignaling(pg, prune_every=8)
    cache = _cache("capture-pruned", backend)
    try:
        cache.install(engine)
        registry = cache.registry
        registry.check_signaling()
        rows = 'SELECT count(*), coalesce(sum(weight), 0) FROM "orm_signaling_t.countries"'
        with psycopg.connect(pg, autocommit=True) as conn:
            before = conn.execute(rows).fetchone()
            for i in range(20):  # 20 transactions of another program: 20 rows no process wrote
                conn.execute("UPDATE countries SET name = %s", [str(i)])
            assert conn.execute(rows).fetchone() == (before[0] + 20, before[1] + 20)
            registry.check_signaling()  # 20 versions past the last prune: prunes
            count, total = conn.execute(rows).fetchone()
        assert total == before[1] + 20  # the version never changes
        assert count == 1
    finally:
        backend.close()
        engine.dispose()
        Registry.delete("capture-pruned")


def test_install_in_the_callers_transaction(pg):
    """install(connection) inside the caller's open transaction (a migration's): the caller
    commits; the next install() finds everything and checks the reader."""
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(pg))
    cache = _cache("capture-in-txn", PostgresSignaling(pg))
    try:
        with engine.begin() as connection:
            assert sorted(name for _, name in cache.install(connection)) == ["countries", "users"]
        assert cache.install(engine) == []
        with engine.connect() as connection:  # a connection not in a transaction: install's own
            assert cache.install(connection) == []
    finally:
        cache.registry.signaling.close()
        engine.dispose()
        Registry.delete("capture-in-txn")


def test_full_table_caches_of_other_metadata_are_left_alone(pg):
    """FullTableCache classes of another MetaData (another database) get no trigger here."""
    class OtherBase(DeclarativeBase):
        pass

    class Elsewhere(FullTableCache, OtherBase):
        __tablename__ = "capture_elsewhere"
        __cache_key__ = "code"
        id: Mapped[int] = mapped_column(primary_key=True)
        code: Mapped[str] = mapped_column(String(2))

    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(pg))
    cache = _cache("capture-elsewhere", PostgresSignaling(pg))
    try:
        assert "capture_elsewhere" not in cache.ddl("postgresql")
        assert sorted(name for _, name in cache.install(engine)) == ["countries", "users"]
    finally:
        from ormcache.sqlalchemy._changes import FULL_TABLE_MODELS

        FULL_TABLE_MODELS.pop("capture_elsewhere", None)
        cache.registry.signaling.close()
        engine.dispose()
        Registry.delete("capture-elsewhere")
