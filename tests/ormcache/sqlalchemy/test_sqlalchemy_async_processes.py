"""AsyncSession across processes: what an AsyncSession commits invalidates the other processes
(through the registry's signaling, today's synchronous one), and what they commit invalidates
this process's async unit of work. The other process is the sync worker of
support.sqla (one database name, one signaling)."""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from ormcache.registry import Registry
from ormcache.signaling import PostgresSignaling, RedisSignaling
from ormcache.sqlalchemy import OrmCache, orm_cached
from support.sqla_async import run
from support.sqla_stale import hammer, options
from support.sqla import Base, Country, QueryCounter, User, Worker, db, make_engine  # noqa: F401


class AsyncApp:
    computed = 0

    def __init__(self, orm_cache, session):
        self.orm_cache, self.session = orm_cache, session

    @orm_cached(policy="on-table-change:users")
    @property
    def user_names(self):
        AsyncApp.computed += 1
        return select(User.name).order_by(User.id)


@pytest.fixture
def peers(db, request):
    """``(registry, other)``: this process's Registry on the signaling of ``db`` (its PostgreSQL,
    or Redis beside SQLite), and ``other()`` starting the sync worker of another process with the
    same database name and signaling."""
    kind, where = db
    signaling = "postgres" if kind == "postgresql" else "redis"
    redis_url = request.getfixturevalue("redis_server").url if signaling == "redis" else None
    prefix = request.getfixturevalue("redis_prefix") if redis_url else None
    db_name = f"test-{uuid.uuid4().hex[:8]}"
    AsyncApp.computed = 0
    registry = Registry(db_name)
    if signaling == "redis":
        registry.signaling = RedisSignaling(redis_url, key_prefix=f"{prefix}{{db_name}}:")
    else:
        registry.signaling = PostgresSignaling(where)
    yield registry, lambda: Worker(kind, where, db_name, redis_url, signaling, False, "pickle", prefix)
    registry.signaling.close()
    Registry.delete(db_name)


def test_async_commits_invalidate_other_processes_and_back(db, peers):
    kind, where = db
    registry, start_other = peers

    async def body(engine):
        maker = async_sessionmaker(engine, expire_on_commit=False)
        cache = OrmCache(registry, Base.metadata)
        cache.watch(maker)
        cache.register(AsyncApp)
        queries = QueryCounter(engine.sync_engine)
        async with maker() as session:
            session.add_all([User(id=1, name="user1"), User(id=2, name="user2"),
                             Country(code="CH", name="Switzerland")])
            await session.commit()
        other = start_other()
        try:
            (value, computed), _ = other("user_names")
            assert computed == 1 and value["names"] == ("user1", "user2")
            assert other("country", "CH") == ("Switzerland", 1)
            async with maker() as session:
                assert await AsyncApp(cache, session).user_names == ("user1", "user2")
                with queries.counting():
                    assert await AsyncApp(cache, session).user_names == ("user1", "user2")
                assert queries.count == 0 and AsyncApp.computed == 1
            # committed through an AsyncSession: this process and the other see it
            async with maker() as session:
                (await session.get(User, 1)).name = "renamed"
                (await Country.by_key(session, "CH")).name = "Schweiz"
                await session.commit()
            (value, computed), _ = other("user_names")
            assert computed == 1 and value["names"] == ("renamed", "user2")
            assert other("country", "CH") == ("Schweiz", 1)
            async with maker() as session:
                assert await AsyncApp(cache, session).user_names == ("renamed", "user2")
                assert AsyncApp.computed == 2
            # committed by the other process: the next async unit of work sees it
            other("rename_user", 2, "other")
            other("rename_country", "CH", "Suisse")
            async with maker() as session:
                assert await AsyncApp(cache, session).user_names == ("renamed", "other")
                assert (await Country.by_key(session, "CH")).name == "Suisse"
                assert AsyncApp.computed == 3
        finally:
            assert other.stop() == 0
            queries.close()
            cache.close()

    run((kind, where), body)


def test_a_transaction_begun_by_add_checks_before_it_serves(db, peers):
    """``AsyncSession.add()`` autobegins outside the greenlet bridge, where the check would block
    the event loop: it is deferred to the transaction's first step inside the bridge, never
    skipped. A value this process cached before another process committed a change is not
    served by that transaction, whether the session still has the new object to flush or
    it was expunged (a clean session: a hit would need no I/O, and waits for the check)."""
    kind, where = db
    registry, start_other = peers
    blocking = []
    blocking_check = registry.check_signaling

    def counted_blocking_check():
        blocking.append(True)
        return blocking_check()

    async def body(engine):
        maker = async_sessionmaker(engine, expire_on_commit=False)
        cache = OrmCache(registry, Base.metadata)
        cache.watch(maker)
        cache.register(AsyncApp)
        async with maker() as session:
            session.add_all([User(id=1, name="user1"), User(id=2, name="user2")])
            await session.commit()
        other = start_other()
        try:
            renamed = 0
            for then in ("expunged", "flushed"):
                async with maker() as session:  # cached in this process
                    names = await AsyncApp(cache, session).user_names
                    assert names == ("user1", "user2" if not renamed else f"other{renamed}")
                    await session.commit()
                renamed += 1
                other("rename_user", 2, f"other{renamed}")  # committed and signaled by another process
                registry.check_signaling = counted_blocking_check
                async with maker() as session:
                    country = Country(code=f"C{renamed}", name="new")
                    session.add(country)  # autobegins: the check is deferred
                    if then == "expunged":
                        session.expunge(country)
                    assert await AsyncApp(cache, session).user_names == ("user1", f"other{renamed}"), then
                    await session.commit()
                registry.check_signaling = blocking_check
                assert blocking == [], then  # the check ran, awaited
            assert AsyncApp.computed == 3  # each value stored: the second round's first read hits
        finally:
            registry.check_signaling = blocking_check
            assert other.stop() == 0
            cache.close()

    run((kind, where), body)


# -- never stale: an async writer, async readers in its event loop, sync readers in other processes --

class AsyncStaleApp:
    def __init__(self, orm_cache, session):
        self.orm_cache, self.session = orm_cache, session

    @orm_cached(policy="on-table-change:users")
    @property
    async def version(self):
        return int(await self.session.scalar(select(User.name).where(User.id == 1)))


def async_write_and_read(where, isolation, start="read"):
    """``hammer()``'s part of this process, async: one task writes through AsyncSessions (the
    floor moves when commit() returned) while ``local_readers`` tasks read through others.
    ``start="add"``: each reader's transaction begins with ``session.add()`` (outside the
    greenlet bridge: its check is deferred) of an object expunged at once (a clean session)."""

    def here(factory, sync_cache, floor, stop, duration, local_readers):
        counts = {"reads": 0, "stale": 0}
        examples, errors = [], []

        async def body(engine):
            maker = async_sessionmaker(engine.execution_options(isolation_level=isolation), expire_on_commit=False)
            cache = OrmCache(sync_cache.registry, Base.metadata)
            cache.watch(maker)
            cache.register(AsyncStaleApp)
            done = asyncio.Event()

            async def reader():
                try:
                    while not done.is_set():
                        low = floor.value  # every commit up to this one returned before we begin
                        async with maker() as session:
                            if start == "add":
                                added = Country(code="XX", name="never flushed")
                                session.add(added)
                                session.expunge(added)
                            version = await AsyncStaleApp(cache, session).version
                            country = int((await Country.by_key(session, "CH")).name)
                            await session.commit()
                        counts["reads"] += 1
                        if version < low or country < low:
                            counts["stale"] += 1
                            examples.append((low, version, country))
                except Exception as exc:  # noqa: BLE001 - reported by the test
                    errors.append(repr(exc))

            tasks = [asyncio.ensure_future(reader()) for _ in range(local_readers)]
            writes = 0
            deadline = time.monotonic() + duration
            try:
                while time.monotonic() < deadline:
                    writes += 1
                    async with maker() as session:
                        (await session.get(User, 1)).name = str(writes)
                        (await Country.by_key(session, "CH")).name = str(writes)
                        await session.commit()
                    floor.value = writes  # commit() returned
            finally:
                done.set()
                await asyncio.gather(*tasks)
                cache.close()
            return writes

        writes = run(("postgresql", where), body)
        stop.set()
        return writes, (counts["reads"], counts["stale"], examples[:5], errors)

    return here


@pytest.mark.timeout(120)
@pytest.mark.parametrize("start", ["read", "add"])
@pytest.mark.parametrize("isolation", ["READ COMMITTED", "REPEATABLE READ"])
def test_async_writer_and_readers_count_no_stale_read(pg_dsn, isolation, start):
    engine = make_engine("postgresql", pg_dsn)
    Base.metadata.create_all(engine)
    engine.dispose()
    opts = options("postgresql", pg_dsn, signaling="postgres", isolation=isolation)
    writes, reads, stale, examples = hammer(opts, duration=3.0, readers=1, local_readers=2,
                                            here=async_write_and_read(pg_dsn, isolation, start))
    print(f"{isolation}, async writer, readers start with {start}: {writes} commits, {reads} reads, {stale} stale")
    assert writes >= 5 and reads >= 30, (writes, reads)
    assert stale == 0, f"{stale} of {reads} reads stale (floor, orm_cached, full-table): {examples}"
