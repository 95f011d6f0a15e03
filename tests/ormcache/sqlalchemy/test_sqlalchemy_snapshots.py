"""Snapshot-safe stores: a value computed in a transaction is stored for others only if nothing it
depends on was invalidated after that transaction began, and only if the transaction did not write
it; a savepoint rolled back takes what was computed inside it; request_cached sees the session's
own writes."""
from __future__ import annotations

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import sessionmaker

from ormcache.sqlalchemy import orm_cached, request_cached
from support.sqla import Base, Country, User, cache_watching, db, engine, make_engine  # noqa: F401


class KarmaApp:
    computed = 0

    def __init__(self, orm_cache, session):
        self.orm_cache, self.session = orm_cache, session

    @orm_cached(policy="on-table-change:users")
    @property
    def karma(self):
        KarmaApp.computed += 1
        return self.session.scalar(select(User.karma).where(User.id == 1))

    @request_cached
    @property
    def request_karma(self):
        return self.session.scalar(select(User.karma).where(User.id == 1))


def _seeded(engine):
    """A registry, an OrmCache watching a session factory of ``engine``, one user and one
    country; yields ``(engine, factory, cache)`` and cleans up."""
    with cache_watching(engine, Base.metadata, KarmaApp) as (cache, factory):
        with factory() as session:
            session.add(User(id=1, name="ann", karma=0))
            session.add(Country(id=1, code="CH", name="0"))
            session.commit()
        yield engine, factory, cache


@pytest.fixture
def setup(engine):
    yield from _seeded(engine)


def _repeatable_read(engine, cache):
    factory = sessionmaker(engine.execution_options(isolation_level="REPEATABLE READ"))
    cache.watch(factory)
    return factory


@pytest.fixture
def pg_setup(pg_dsn):
    engine = make_engine("postgresql", pg_dsn)
    Base.metadata.create_all(engine)
    yield from _seeded(engine)
    engine.dispose()


@pytest.mark.parametrize("isolation", ["REPEATABLE READ", "SERIALIZABLE"])
def test_an_old_snapshot_is_not_stored_for_others_orm_cached(pg_setup, isolation):
    engine, factory, cache = pg_setup
    old_snapshots = sessionmaker(engine.execution_options(isolation_level=isolation))
    cache.watch(old_snapshots)
    with old_snapshots() as s1:
        s1.execute(text("SELECT 1"))  # s1's snapshot is taken here
        with factory() as s2:
            s2.get(User, 1).karma = 5
            s2.commit()  # after s1 began
        assert KarmaApp(cache, s1).karma == 0  # what s1's snapshot holds: right for s1
        assert KarmaApp(cache, s1).karma == 0
        s1.commit()
    with factory() as s3:  # began after s2's commit returned
        assert KarmaApp(cache, s3).karma == 5
    with old_snapshots() as s4:
        assert KarmaApp(cache, s4).karma == 5


@pytest.mark.parametrize("isolation", ["REPEATABLE READ", "SERIALIZABLE"])
def test_an_old_snapshot_is_not_stored_for_others_full_table(pg_setup, isolation):
    engine, factory, cache = pg_setup
    old_snapshots = sessionmaker(engine.execution_options(isolation_level=isolation))
    cache.watch(old_snapshots)
    with old_snapshots() as s1:
        s1.execute(text("SELECT 1"))
        with factory() as s2:
            Country.by_key(s2, "CH").name = "5"
            s2.commit()
        assert Country.by_key(s1, "CH").name == "0"  # s1's snapshot
        assert Country.by_id(s1, 1).name == "0"
        s1.commit()
    with factory() as s3:
        assert Country.by_key(s3, "CH").name == "5"
        assert [c.name for c in Country.cached_rows(s3)] == ["5"]


def test_a_value_computed_before_an_invalidation_is_not_stored_after_it(setup):
    engine, factory, cache = setup
    with factory() as s1:
        s1.connection()  # s1 began
        with factory() as s2:
            s2.get(User, 1).karma = 5
            s2.commit()
        KarmaApp(cache, s1).karma  # computed after an invalidation s1 may not have seen
        s1.commit()
    assert cache.lru.get(KarmaApp.karma.key) in (None, {})
    with factory() as s3:
        assert KarmaApp(cache, s3).karma == 5
        assert cache.lru.get(KarmaApp.karma.key) == {None: 5}  # a transaction after it stores


def test_savepoint_rollback_drops_what_was_computed_inside_it_orm_cached(setup):
    engine, factory, cache = setup
    with factory() as session:
        app = KarmaApp(cache, session)
        assert app.karma == 0
        savepoint = session.begin_nested()
        session.get(User, 1).karma = 999
        session.flush()
        assert app.karma == 999  # the savepoint's own write
        savepoint.rollback()
        assert session.scalar(select(User.karma).where(User.id == 1)) == 0
        assert app.karma == 0
        session.commit()
    with factory() as session:
        assert KarmaApp(cache, session).karma == 0


def test_released_savepoint_keeps_its_values_for_the_transaction(setup):
    engine, factory, cache = setup
    with factory() as session:
        app = KarmaApp(cache, session)
        with session.begin_nested():
            session.get(User, 1).karma = 7
            session.flush()
            assert app.karma == 7
        computed = KarmaApp.computed
        assert app.karma == 7 and KarmaApp.computed == computed
        session.rollback()
        # (pysqlite does not roll a savepoint's released work back: compare with the database)
        assert app.karma == session.scalar(select(User.karma).where(User.id == 1))


def test_savepoint_rollback_drops_what_was_computed_inside_it_request_cached(setup):
    engine, factory, cache = setup
    with factory() as session:
        app = KarmaApp(cache, session)
        assert app.request_karma == 0
        savepoint = session.begin_nested()
        session.get(User, 1).karma = 777
        session.flush()
        assert app.request_karma == 777
        savepoint.rollback()
        assert app.request_karma == 0


def test_request_cached_sees_the_sessions_own_flushed_write(setup):
    engine, factory, cache = setup
    with factory() as session:
        app = KarmaApp(cache, session)
        assert app.request_karma == 0
        session.get(User, 1).karma = 3
        session.flush()
        assert app.request_karma == 3
        session.execute(update(User).where(User.id == 1).values(karma=4))
        assert app.request_karma == 4
        session.execute(text("UPDATE users SET karma = 6"))
        assert app.request_karma == 6
        before = app.request_karma
        assert app.request_karma is before  # still cached while nothing is written


def test_request_cached_with_a_request_cache_sees_writes_and_rollbacks(setup):
    engine, factory, cache = setup

    class RequestApp(KarmaApp):
        def __init__(self, orm_cache, session):
            super().__init__(orm_cache, session)
            self.request_cache = {}

    with factory() as session:
        app = RequestApp(cache, session)
        assert app.request_karma == 0
        session.get(User, 1).karma = 2
        assert app.request_karma == 2  # flushed first, then the value is stale
        session.rollback()
        assert app.request_karma == 0
