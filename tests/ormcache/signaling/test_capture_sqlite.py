"""Capture in an SQLite file (issue 18, item 1): the triggers and the counters live in the
application's file, and ``SqliteSignaling`` reads them there, so processes sharing the file see
every write, whatever wrote it. Run with ``CAPTURE_TEST_NO_INSTALL=1`` for the counts without it."""
from __future__ import annotations

import os
import sqlite3

import pytest
from sqlalchemy import create_engine

from ormcache.registry import Registry
from ormcache.signaling import SignalingError, SqliteSignaling
from ormcache.sqlalchemy import OrmCache
from support.capture import SQLITE_PATHS, CaptureApp, options, sqlite_seed, stale_reads
from support.sqla import Base, make_engine

ROUNDS = 2
INSTALL = os.environ.get("CAPTURE_TEST_NO_INSTALL") != "1"


@pytest.fixture
def path(tmp_path):
    where = str(tmp_path / "app.sqlite")
    engine = make_engine("sqlite", where)
    Base.metadata.create_all(engine)
    engine.dispose()
    return where


@pytest.mark.timeout(300)
@pytest.mark.parametrize("write", sorted(SQLITE_PATHS))
def test_every_write_path_invalidates_in_every_process(path, write):
    opts = options(path, kind="sqlite", install=INSTALL)
    stale, examples = stale_reads(opts, path, sqlite_seed, SQLITE_PATHS[write], ROUNDS, label=f"sqlite {write}")
    assert stale == {"writer": 0, "other": 0}, examples


def test_backend_counts_in_the_file(tmp_path):
    where = str(tmp_path / "signals.sqlite")
    first, second = SqliteSignaling(where), SqliteSignaling(where)
    try:
        epoch, versions = first.read_versions("db", ["a", "b"])
        assert versions == (0, 0) and epoch
        first.bump("db", ["a"])
        second.bump("db", ["a", "b"])
        assert second.read_versions("db", ["a", "b"]) == (epoch, (2, 1))
        assert first.read("db", ["b"]) == (epoch, {"b": 1})
    finally:
        first.close()
        second.close()


def test_backend_refuses_bad_input(tmp_path):
    with pytest.raises(ValueError, match="path of a database file"):
        SqliteSignaling(":memory:")
    with pytest.raises(ValueError, match="timeout"):
        SqliteSignaling(str(tmp_path / "x.sqlite"), timeout=0)
    backend = SqliteSignaling(str(tmp_path / "missing-dir" / "x.sqlite"))
    with pytest.raises(SignalingError):
        backend.read_versions("db", ["a"])
    backend.close()


def test_sqlite_triggers_count_rows_in_the_file(path):
    engine = create_engine(f"sqlite:///{path}")
    registry = Registry("capture-sqlite-rows")
    registry.signaling = backend = SqliteSignaling(path)
    cache = OrmCache(registry, Base.metadata)
    cache.register(CaptureApp)
    try:
        assert sorted(name for _, name in cache.install(engine)) == ["countries", "users"]
        assert cache.install(engine) == []
        epoch, (before,) = backend.read_versions(registry.db_name, ["t.users"])
        conn = sqlite3.connect(path)
        conn.execute("INSERT INTO users (id, name, email, role, karma) VALUES (7, 'x', '', 'm', 0)")
        conn.rollback()  # rolled back: no signal
        assert backend.read_versions(registry.db_name, ["t.users"]) == (epoch, (before,))
        conn.execute("INSERT INTO users (id, name, email, role, karma) VALUES (7, 'x', '', 'm', 0)")
        conn.commit()
        conn.close()
        assert backend.read_versions(registry.db_name, ["t.users"])[1][0] > before
    finally:
        backend.close()
        engine.dispose()
        Registry.delete("capture-sqlite-rows")
