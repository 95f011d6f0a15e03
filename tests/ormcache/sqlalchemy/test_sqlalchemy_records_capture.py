"""Issue 18, item 1 for ``RecordCache``: ``OrmCache.install()`` / ``ddl()`` / ``ddl_statements()``
put the capture triggers on the tables record caches read too (declared with
``RecordCache.register(*models)``), so a write to such a table by any path or program records
that table's signal inside the writer's transaction. A model declared, or read undeclared, after
``install()`` is warned about once and covered by the next ``install()`` once declared, as a
member registered late is.

Before: ``ddl()`` named no record-cache table, and a psql-style write to one moved no version.
"""
from __future__ import annotations

import logging
import subprocess
import sys
import uuid

import psycopg
import pytest
from sqlalchemy import ForeignKey, Integer, String, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker, with_loader_criteria

from ormcache.registry import Registry
from ormcache.signaling import PostgresSignaling, SqliteSignaling
from ormcache.signaling.capture import table_signal
from ormcache.sqlalchemy import MissingRecord, OrmCache, RecordCache
from ormcache.sqlalchemy import _changes


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "rec18cap_notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[str] = mapped_column(String(50))


class Later(Base):
    __tablename__ = "rec18cap_later"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[str] = mapped_column(String(50))


class Animal(Base):
    __tablename__ = "rec18cap_animals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(50))
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "animal"}


class Dog(Animal):
    __tablename__ = "rec18cap_dogs"
    id: Mapped[int] = mapped_column(ForeignKey("rec18cap_animals.id"), primary_key=True)
    bark: Mapped[str] = mapped_column(String(50))
    __mapper_args__ = {"polymorphic_identity": "dog"}


NOTES = table_signal((None, "rec18cap_notes"))
LATER = table_signal((None, "rec18cap_later"))


@pytest.fixture(autouse=True)
def forget_record_tables():
    """The record-cache tables are known process-wide: forget this module's after each test."""
    yield
    for name in ("rec18cap_notes", "rec18cap_later", "rec18cap_animals", "rec18cap_dogs"):
        getattr(_changes, "RECORD_MODELS", {}).pop(name, None)


def _orm_cache(signaling=None):
    registry = Registry(f"rec18cap-{uuid.uuid4().hex[:8]}")
    registry.signaling = signaling
    return OrmCache(registry, Base.metadata)


def _close(cache, engine=None):
    cache.close()
    if cache.registry.signaling is not None:
        cache.registry.signaling.close()
    if engine is not None:
        engine.dispose()
    Registry.delete(cache.registry.db_name)


def _seed(engine):
    Base.metadata.create_all(engine)
    with sessionmaker(engine)() as session:
        session.add_all([Note(id=1, body="one"), Note(id=2, body="two"), Later(id=1, body="one"),
                         Later(id=2, body="two"), Dog(id=1, name="rex", bark="woof")])
        session.commit()


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_ddl_covers_the_tables_of_registered_record_models(dialect):
    cache = _orm_cache()
    try:
        assert "rec18cap_notes" not in cache.ddl(dialect)
        RecordCache.register(Note)
        text = cache.ddl(dialect)
        assert '"rec18cap_notes"' in text and '"orm_signaling_' + NOTES + '"' in text
        assert "rec18cap_later" not in text
        assert cache.ddl_statements(dialect) == [s for s in text.split(";\n") if s]
    finally:
        _close(cache)


def test_register_refuses_what_is_not_a_mapped_class_and_changes_nothing():
    before = {name: set(models) for name, models in _changes.RECORD_MODELS.items()}
    with pytest.raises(TypeError, match="not a mapped class"):
        RecordCache.register(Note, object)
    with pytest.raises(TypeError, match="at least one"):
        RecordCache.register()
    assert {name: set(models) for name, models in _changes.RECORD_MODELS.items()} == before


def test_a_model_declared_after_install_is_warned_about_then_covered(tmp_path, caplog):
    path = str(tmp_path / "app.sqlite")
    engine = create_engine(f"sqlite:///{path}")
    _seed(engine)
    cache = _orm_cache(SqliteSignaling(path))
    try:
        assert cache.install(engine) == []
        with caplog.at_level(logging.WARNING, logger="ormcache.sqlalchemy"):
            RecordCache.register(Note)
            RecordCache.register(Note)
        warned = [r.getMessage() for r in caplog.records if "rec18cap_notes" in r.getMessage()]
        assert len(warned) == 1 and "declared" in warned[0], warned
        assert cache.install(engine) == [(None, "rec18cap_notes")]
    finally:
        _close(cache, engine)


def _psql_write(dsn, sql):
    """Another program writes (a child process with its own connection, autocommit)."""
    code = ("import sys, psycopg\n"
            "with psycopg.connect(sys.argv[1], autocommit=True) as c:\n"
            "    c.execute(sys.argv[2])\n")
    subprocess.run([sys.executable, "-c", code, dsn, sql], check=True, timeout=60)


def _sqlite_write(path, sql):
    code = ("import sys, sqlite3\n"
            "c = sqlite3.connect(sys.argv[1])\nc.execute(sys.argv[2])\nc.commit()\nc.close()\n")
    subprocess.run([sys.executable, "-c", code, path, sql], check=True, timeout=60)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_an_outside_write_to_a_record_table_moves_its_version(kind, request, tmp_path):
    if kind == "postgresql":
        dsn = request.getfixturevalue("pg_dsn")
        engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn))
        signaling = PostgresSignaling(dsn, connect_timeout=2)
        write = lambda sql: _psql_write(dsn, sql)  # noqa: E731
    else:
        path = str(tmp_path / "app.sqlite")
        engine = create_engine(f"sqlite:///{path}")
        signaling = SqliteSignaling(path)
        write = lambda sql: _sqlite_write(path, sql)  # noqa: E731
    _seed(engine)
    cache = _orm_cache(signaling)
    try:
        RecordCache.register(Note)
        assert (None, "rec18cap_notes") in cache.install(engine)
        assert cache.install(engine) == []  # idempotent
        db = cache.registry.db_name
        _, before = signaling.read_versions(db, [NOTES])
        write("UPDATE rec18cap_notes SET body = 'psql' WHERE id = 1")
        _, after = signaling.read_versions(db, [NOTES])
        assert after[0] > before[0]
        # a transaction that rolls back records nothing (the signal is in the writer's transaction)
        with engine.connect() as connection:
            connection.exec_driver_sql("UPDATE rec18cap_notes SET body = 'rolled back' WHERE id = 1")
            connection.rollback()
        assert signaling.read_versions(db, [NOTES])[1] == after
    finally:
        _close(cache, engine)


@pytest.mark.timeout(120)
def test_a_model_read_after_install_is_warned_about_then_covered(tmp_path, caplog):
    path = str(tmp_path / "app.sqlite")
    engine = create_engine(f"sqlite:///{path}")
    _seed(engine)
    signaling = SqliteSignaling(path)
    cache = _orm_cache(signaling)
    try:
        RecordCache.register(Note)
        cache.install(engine)
        with caplog.at_level(logging.WARNING, logger="ormcache.sqlalchemy"):
            with sessionmaker(engine)() as session:
                records = RecordCache.of(session)
                assert records.get(Later, 1, "body") == "one"
                assert records.get(Note, 1, "body") == "one"
            with sessionmaker(engine)() as session:
                RecordCache.of(session).get(Later, 1, "body")
        warned = [r.getMessage() for r in caplog.records if "rec18cap_later" in r.getMessage()]
        assert len(warned) == 1 and "install()" in warned[0], warned
        assert not [r for r in caplog.records if "rec18cap_notes" in r.getMessage()]
        assert cache.install(engine) == []  # read is not declared
        RecordCache.register(Later)
        assert cache.install(engine) == [(None, "rec18cap_later")]
        db = cache.registry.db_name
        _, before = signaling.read_versions(db, [LATER])
        _sqlite_write(path, "DELETE FROM rec18cap_later")
        assert signaling.read_versions(db, [LATER])[1][0] > before[0]
    finally:
        _close(cache, engine)


def _raw(session, sql):
    """A write on the session's own connection through a raw DBAPI cursor: no SQLAlchemy event."""
    cursor = session.connection().connection.driver_connection.cursor()
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("next_load", ["other_model", "same_model"])
@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_a_raw_cursor_write_is_seen_at_the_record_cache_next_load(kind, next_load, request, tmp_path):
    """Item 3: with the triggers installed, the record cache's next SELECT also reads (and on
    PostgreSQL resets) the transaction-local markers (SQLite: the counters in the file) of the
    tables it holds: a raw DBAPI write on the session's connection drops what it held of that
    table. Hits send nothing. Before: the value read before the raw write was served ('one',
    not 'raw')."""
    if kind == "postgresql":
        dsn = request.getfixturevalue("pg_dsn")
        engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn))
        signaling = PostgresSignaling(dsn, connect_timeout=2)
    else:
        path = str(tmp_path / "app.sqlite")
        engine = create_engine(f"sqlite:///{path}")
        signaling = SqliteSignaling(path)
    _seed(engine)
    cache = _orm_cache(signaling)
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        RecordCache.register(Note, Later)
        cache.install(engine)
        with sessionmaker(engine)() as session:
            records = RecordCache.of(session)
            records.prefetch(Note, [1], ["body"])
            with pytest.raises(MissingRecord):
                records.get(Note, 3, "body")
            sent = len(statements)
            assert [records.get(Note, 1, "body") for _ in range(5)] == ["one"] * 5
            assert len(statements) == sent  # hits: no SQL
            _raw(session, "UPDATE rec18cap_notes SET body = 'raw' WHERE id = 1")
            _raw(session, "INSERT INTO rec18cap_notes (id, body) VALUES (3, 'new')")
            if next_load == "other_model":
                assert records.get(Later, 1, "body") == "one"
            else:
                assert records.get(Note, 2, "body") == "two"
            assert records.get(Note, 1, "body") == "raw"
            assert records.get(Note, 3, "body") == "new"
            # a second raw write after that load is seen at the following load too
            _raw(session, "UPDATE rec18cap_notes SET body = 'raw2' WHERE id = 1")
            records.invalidate(Later)
            assert records.get(Later, 2, "body") == "two"
            assert records.get(Note, 1, "body") == "raw2"
            session.rollback()
        with sessionmaker(engine)() as session:
            assert RecordCache.of(session).get(Note, 1, "body") == "one"  # rolled back
    finally:
        _close(cache, engine)


@pytest.mark.timeout(120)
def test_the_probe_keeps_inheritance_and_loader_criteria(pg_dsn):
    """The probed SELECT is an outer join from the probe's row: a joined-inheritance model
    loads through it, the session's do_orm_execute criteria still hide what they hide, and a
    raw write to either table of the model is seen at the next load."""
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(pg_dsn))
    _seed(engine)
    cache = _orm_cache(PostgresSignaling(pg_dsn, connect_timeout=2))
    try:
        RecordCache.register(Note, Dog)
        cache.install(engine)
        with sessionmaker(engine)() as session:
            @event.listens_for(session, "do_orm_execute")
            def hide(state):
                if state.is_select:
                    state.statement = state.statement.options(
                        with_loader_criteria(Note, Note.body != "hidden", include_aliases=True))

            records = RecordCache.of(session)
            assert records.read(Dog, [1], ["name", "bark"]) == [{"name": "rex", "bark": "woof"}]
            _raw(session, "UPDATE rec18cap_dogs SET bark = 'raw'")
            _raw(session, "UPDATE rec18cap_animals SET name = 'raw'")
            _raw(session, "UPDATE rec18cap_notes SET body = 'hidden' WHERE id = 2")
            with pytest.raises(MissingRecord):
                records.get(Note, 2, "body")  # the probed SELECT: the criteria still apply
            assert records.get(Note, 1, "body") == "one"
            assert records.read(Dog, [1], ["name", "bark"]) == [{"name": "raw", "bark": "raw"}]
            session.rollback()
    finally:
        _close(cache, engine)


@pytest.mark.timeout(120)
def test_an_sqlite_file_without_the_triggers_is_not_probed(tmp_path):
    """The counters' tables are in the installed file only: a record cache reading another
    file (same tables, no install()) sends its plain SELECT, no error."""
    installed = create_engine(f"sqlite:///{tmp_path / 'installed.sqlite'}")
    plain = create_engine(f"sqlite:///{tmp_path / 'plain.sqlite'}")
    _seed(installed)
    _seed(plain)
    cache = _orm_cache(SqliteSignaling(str(tmp_path / "installed.sqlite")))
    try:
        RecordCache.register(Note)
        cache.install(installed)
        for engine in (plain, installed):
            with sessionmaker(engine)() as session:
                records = RecordCache.of(session)
                assert records.read(Note, [1, 2], ["body"]) == [{"body": "one"}, {"body": "two"}]
                _raw(session, "UPDATE rec18cap_notes SET body = 'raw' WHERE id = 1")
                assert records.get(Later, 1, "body") == "one"
                seen = records.get(Note, 1, "body")
                assert seen == ("raw" if engine is installed else "one")  # plain: not seen, as before
                session.rollback()
    finally:
        _close(cache, plain)
        installed.dispose()
