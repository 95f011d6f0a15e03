"""Issue 18, item 8: an application database that is not the signaling database is detected
when its engine is watched (one probe connection), not at the first commit: the one warning
naming the window is logged by ``watch()``, and commits then publish after the COMMIT without
sending any recording SQL (no savepoint probe, never an SQL error).

Two databases on one private PostgreSQL server: the signaling tables in one, the application's
tables in the other. Before the fix: no warning at ``watch()`` (it came with the first commit,
after a SAVEPOINT and a failed recording statement on the application's connection)."""
from __future__ import annotations

import logging
import uuid

import psycopg
import pytest
from sqlalchemy import String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from ormcache.registry import Registry
from ormcache.sqlalchemy import OrmCache, orm_cached

ROUNDS = 3


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items_w18"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class App:
    def __init__(self, orm_cache, session):
        self.orm_cache, self.session = orm_cache, session

    @orm_cached(policy="on-table-change:items_w18")
    @property
    def names(self):
        return tuple(self.session.scalars(select(Item.name).order_by(Item.id)))


@pytest.fixture
def two_databases(postgres_server):
    """DSNs of two fresh databases of the private server (dropped after)."""
    if not postgres_server.running:
        postgres_server.start()
    names = [f"w18_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    dsns = [postgres_server.create_database(name) for name in names]
    yield dsns
    if not postgres_server.running:
        postgres_server.start()
    for name in names:
        postgres_server.drop_database(name)


def _counting_engine(dsn, sent):
    """A PostgreSQL engine whose every DBAPI statement (the recording's raw cursors included)
    is appended to ``sent``."""

    class Counting(psycopg.Cursor):
        def execute(self, query, *args, **kwargs):
            sent.append(str(query))
            return super().execute(query, *args, **kwargs)

    return create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn, cursor_factory=Counting))


def _elsewhere_warnings(caplog):
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "not the signaling database" in r.getMessage()]


def _setup(signaling_dsn, engine):
    from ormcache.signaling.postgres import PostgresSignaling

    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(Item.__table__.insert().values(id=1, name="0"))
    registry = Registry(f"w18-watch-{uuid.uuid4().hex[:8]}")
    registry.signaling = PostgresSignaling(signaling_dsn)
    cache = OrmCache(registry, Base.metadata)
    cache.register(App)
    return registry, cache


def _teardown(registry, cache, engine):
    cache.close()
    registry.signaling.close()
    Registry.delete(registry.db_name)
    engine.dispose()


def _rounds(factory, cache):
    """Read, write, read again: the value read after each commit is the committed one."""
    seen = []
    for i in range(1, ROUNDS + 1):
        with factory() as session:
            App(cache, session).names
            session.get(Item, 1).name = str(i)
            session.commit()
        with factory() as session:
            seen.append(App(cache, session).names)
            session.commit()
    return seen


def test_another_postgresql_database_is_detected_at_watch(two_databases, caplog):
    signaling_dsn, app_dsn = two_databases
    sent = []
    engine = _counting_engine(app_dsn, sent)
    registry, cache = _setup(signaling_dsn, engine)
    caplog.set_level(logging.WARNING, logger="ormcache")
    try:
        factory = cache.watch(sessionmaker(engine))
        at_watch = _elsewhere_warnings(caplog)
        print(f"warnings at watch(): {at_watch}")
        assert len(at_watch) == 1, at_watch
        assert "another database" in at_watch[0] and "after the COMMIT" in at_watch[0]
        cache.watch(sessionmaker(engine))  # the same pool: already known, no second probe
        del sent[:]
        seen = _rounds(factory, cache)
        recording = [q for q in sent if "ormcache_record" in q or "orm_signaling" in q]
        print(f"{ROUNDS} commits: seen {seen}; recording SQL on the app connection: {recording}")
        assert seen == [(str(i),) for i in range(1, ROUNDS + 1)]
        assert recording == []
        assert len(_elsewhere_warnings(caplog)) == 1
    finally:
        _teardown(registry, cache, engine)


def test_the_signaling_database_itself_is_not_warned_about(two_databases, caplog):
    signaling_dsn, _ = two_databases
    sent = []
    engine = _counting_engine(signaling_dsn, sent)
    registry, cache = _setup(signaling_dsn, engine)
    caplog.set_level(logging.WARNING, logger="ormcache")
    try:
        factory = cache.watch(sessionmaker(engine))
        assert _elsewhere_warnings(caplog) == []
        seen = _rounds(factory, cache)
        assert seen == [(str(i),) for i in range(1, ROUNDS + 1)]
        assert _elsewhere_warnings(caplog) == []
        assert any("orm_signaling" in q for q in sent)  # recorded in the writer's transaction
    finally:
        _teardown(registry, cache, engine)


def test_sqlite_app_with_postgresql_signaling_is_detected_at_watch(pg_dsn, tmp_path, caplog):
    engine = create_engine(f"sqlite:///{tmp_path / 'app.sqlite'}")
    registry, cache = _setup(pg_dsn, engine)
    caplog.set_level(logging.WARNING, logger="ormcache")
    try:
        factory = cache.watch(sessionmaker(engine))
        at_watch = _elsewhere_warnings(caplog)
        assert len(at_watch) == 1 and "another dialect" in at_watch[0], at_watch
        assert _rounds(factory, cache) == [(str(i),) for i in range(1, ROUNDS + 1)]
        assert len(_elsewhere_warnings(caplog)) == 1
    finally:
        _teardown(registry, cache, engine)


def test_an_unreachable_app_database_at_watch_is_decided_by_the_first_commit(two_databases, postgres_server):
    """The probe cannot connect: watch() neither raises nor decides (the first commit's
    savepoint still does)."""
    signaling_dsn, app_dsn = two_databases
    app = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(app_dsn))
    registry, cache = _setup(signaling_dsn, app)
    broken = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/nowhere")  # refused at once
    try:
        cache.watch(sessionmaker(broken))  # no exception
        from ormcache.sqlalchemy.orm_cache import _same_database

        assert id(registry.signaling) not in _same_database.get(broken.pool, {})
    finally:
        broken.dispose()
        _teardown(registry, cache, app)
