"""Issue 18, item 6: a configuration that cannot work raises at construction (``watch()``,
``install()``, ``register()``), with a clear message and nothing changed; nothing is silently
unused.

- Sessions watched on a database other than the one ``install()`` put the capture triggers in:
  their writes are never signalled (the triggers are elsewhere, and an installed OrmCache no
  longer publishes by name), so every other process would stay stale. Before the fix: accepted
  in silence, either order (watch then install, install then watch), PostgreSQL and SQLite.
- A callable policy (it may depend on any table) with an OrmCache that has no metadata:
  ``install()`` put no trigger for it, and its commits were taken for captured. Before: accepted.
"""
from __future__ import annotations

import uuid

import psycopg
import pytest
from sqlalchemy import String, create_engine, event, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from ormcache.registry import Registry
from ormcache.signaling import SignalingConfigurationError
from ormcache.sqlalchemy import OrmCache, orm_cached


class Base(DeclarativeBase):
    pass


class Thing(Base):
    __tablename__ = "things_c18"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class App:
    def __init__(self, orm_cache, session):
        self.orm_cache, self.session = orm_cache, session

    @orm_cached(policy="on-table-change:things_c18")
    @property
    def names(self):
        return tuple(self.session.scalars(select(Thing.name).order_by(Thing.id)))


def _is_thing(obj):
    return isinstance(obj, Thing)


class CallableApp:
    def __init__(self, orm_cache, session):
        self.orm_cache, self.session = orm_cache, session

    @orm_cached(policy=_is_thing)
    @property
    def count(self):
        return len(self.session.scalars(select(Thing.id)).all())


@pytest.fixture
def databases(request, postgres_server, tmp_path):
    """(signaling backend factory, engine factory, where A, where B): two databases of one kind."""
    from ormcache.signaling import PostgresSignaling, SqliteSignaling

    if request.param == "sqlite":
        yield (SqliteSignaling, lambda path: create_engine(f"sqlite:///{path}"),
               str(tmp_path / "a.sqlite"), str(tmp_path / "b.sqlite"))
        return
    if not postgres_server.running:
        postgres_server.start()
    names = [f"c18_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    dsns = [postgres_server.create_database(name) for name in names]
    yield (PostgresSignaling,
           lambda dsn: create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn)),
           *dsns)
    if not postgres_server.running:
        postgres_server.start()
    for name in names:
        postgres_server.drop_database(name)


def _open(signaling, where, metadata=Base.metadata):
    registry = Registry(f"c18-{uuid.uuid4().hex[:8]}")
    registry.signaling = signaling(where)
    return OrmCache(registry, metadata)


def _close(cache, *engines):
    cache.close()
    cache.registry.signaling.close()
    Registry.delete(cache.registry.db_name)
    for engine in engines:
        engine.dispose()


def _listening(factory, cache):
    return event.contains(factory, "after_commit", cache._on_after_commit)


@pytest.fixture
def two_apps(databases):
    """``(cache, make_engine, engine A, engine B)``: the tables in both databases of
    ``databases``, and a cache signaling through A with ``App`` registered (closed after)."""
    signaling, make_engine, a, b = databases
    engine_a, engine_b = make_engine(a), make_engine(b)
    for engine in (engine_a, engine_b):
        Base.metadata.create_all(engine)
    cache = _open(signaling, a)
    cache.register(App)
    try:
        yield cache, lambda: make_engine(a), engine_a, engine_b
    finally:
        _close(cache, engine_a, engine_b)


@pytest.mark.parametrize("databases", ["postgresql", "sqlite"], indirect=True)
def test_watching_another_database_than_the_installed_one_raises(two_apps):
    cache, engine_of_a, engine_a, engine_b = two_apps
    cache.install(engine_a)
    factory = sessionmaker(engine_b)
    with pytest.raises(SignalingConfigurationError, match="does not hold the capture triggers") as info:
        cache.watch(factory)
    print(info.value)
    assert not _listening(factory, cache)  # nothing changed
    same = sessionmaker(engine_of_a())  # another Engine on the installed database: fine
    cache.watch(same)
    assert _listening(same, cache)
    same.kw["bind"].dispose()


@pytest.mark.parametrize("databases", ["postgresql", "sqlite"], indirect=True)
def test_installing_elsewhere_than_the_watched_database_raises(two_apps):
    cache, _, engine_a, engine_b = two_apps
    cache.watch(sessionmaker(engine_b))
    with pytest.raises(SignalingConfigurationError, match="does not hold the capture triggers"):
        cache.install(engine_a)
    assert cache._captured is not True  # commits still publish by name, as without install()


@pytest.fixture
def without_metadata(tmp_path):
    """``(engine, cache)``: an SQLite file with the tables, an OrmCache given no metadata.
    Without metadata, install() covers every FullTableCache of the process (those of the other
    test modules too): none during these tests."""
    from ormcache.signaling import SqliteSignaling
    from ormcache.sqlalchemy._changes import FULL_TABLE_MODELS

    saved = dict(FULL_TABLE_MODELS)
    FULL_TABLE_MODELS.clear()
    path = str(tmp_path / "app.sqlite")
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    cache = _open(SqliteSignaling, path, metadata=None)
    try:
        yield engine, cache
    finally:
        _close(cache, engine)
        FULL_TABLE_MODELS.update(saved)


def test_a_callable_policy_without_metadata_cannot_be_captured(without_metadata):
    engine, cache = without_metadata
    cache.register(CallableApp)
    with pytest.raises(ValueError, match="callable policy of .*give OrmCache the metadata"):
        cache.install(engine)
    with pytest.raises(ValueError, match="callable policy"):
        cache.ddl("sqlite")
    assert cache._captured is not True


def test_a_callable_policy_registered_after_install_without_metadata_raises(without_metadata):
    engine, cache = without_metadata
    cache.register(App)
    cache.install(engine)
    counters = dict(cache._counters)
    with pytest.raises(ValueError, match="callable policy"):
        cache.register(CallableApp)
    assert cache._counters == counters and cache._callables == []  # nothing changed


def test_the_shared_tier_prefix_formats_with_db_name_only():
    """Before the fix: a KeyError ('other') with no word of the argument."""
    registry = Registry(f"s18-prefix-{uuid.uuid4().hex[:8]}")
    try:
        with pytest.raises(ValueError, match="redis_prefix 'x:{other}:'") as info:
            OrmCache(registry, redis_url="redis://:s3cret-pw@127.0.0.1:1/0", secret=b"k", redis_prefix="x:{other}:")
        assert "s3cret" not in str(info.value)
    finally:
        Registry.delete(registry.db_name)
