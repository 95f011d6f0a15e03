"""AsyncSession: the same names, awaited. Prefetch (the seed's flow), orm_cached, FullTableCache,
request_cached, invalidation as on the sync path, one computation per cold key, cancellation,
the watch() targets and bad input; on SQLite (aiosqlite) and PostgreSQL (psycopg async)."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session, async_sessionmaker
from sqlalchemy.orm import Session

from ormcache.sqlalchemy import OrmCache, RecordCache
from support.sqla_async import (  # noqa: F401
    AsyncBase,
    Currency,
    Customer,
    Shop,
    add_customers,
    adb,
    aregistry,
    async_pg,
    counter,
    run,
    run_cached,
)

FIELDS = ["name", "email", "status"]


# -- the seed's flow: N records x M fields in one SELECT, then every read from memory -------------

def test_prefetch_one_select_then_reads_without_sql(adb, aregistry):
    async def body(cache, maker, engine):
        ids = await add_customers(maker, 100)
        queries = counter(engine)
        async with maker() as session:
            records = RecordCache.of(session)
            assert type(records).__name__ == "AsyncRecordCache" and RecordCache.of(session) is records
            with queries.counting():
                await records.prefetch(Customer, ids, FIELDS)
            assert queries.count == 1 and records.queries == 1
            with queries.counting():
                values = [await records.get(Customer, i, field) for i in ids for field in FIELDS]
                rows = await records.read(Customer, ids[:3], FIELDS)
            assert queries.count == 0 and len(values) == 300
            assert values[:3] == ["customer1", "c1@example.org", "new"]
            assert rows[2] == {"name": "customer3", "email": "c3@example.org", "status": "new"}
            assert (Customer, 5, "name") in records and (Customer, 5, "id") not in records
            # a miss loads the field for the whole prefetch group: one SELECT
            with queries.counting():
                assert await records.get(Customer, 7, "id") == 7
                assert [await records.get(Customer, i, "id") for i in ids] == ids
            assert queries.count == 1
            # an update through the AsyncSession, not flushed: flushed before the read
            customer = await session.get(Customer, 3)
            customer.name = "renamed"
            assert await records.get(Customer, 3, "name") == "renamed"
            assert await records.get(Customer, 4, "name") == "customer4"
            await session.commit()  # the end of the unit of work: the record cache is cleared
            assert (Customer, 4, "name") not in records
        queries.close()

    run_cached(adb, aregistry, body)


# -- orm_cached: awaited property and method, invalidated as on the sync path -----------------------

def test_orm_cached_awaited_and_invalidated_by_commits(adb, aregistry):
    async def body(cache, maker, engine):
        await add_customers(maker, 20)
        queries = counter(engine)
        async with maker() as session:
            shop = Shop(cache, session, role="staff")
            assert await shop.customer_names == tuple(f"customer{i}" for i in range(1, 21))
            assert await shop.vips("@") == ("@customer10", "@customer20")
            assert await shop.vips(prefix="@") == ("@customer10", "@customer20")  # one key
            with queries.counting():
                assert len(await shop.customer_names) == 20
                assert await shop.vips("@") == ("@customer10", "@customer20")
            assert queries.count == 0 and Shop.computed == ["customer_names", "vips"]
            await session.commit()
        async with maker() as writer, maker() as reader:
            # a change not yet committed: seen by its own transaction only
            (await writer.get(Customer, 1)).name = "first"
            assert (await Shop(cache, writer).customer_names)[0] == "first"  # flushed, then computed
            assert (await Shop(cache, reader).customer_names)[0] == "customer1"
            await writer.commit()
            await reader.commit()
            assert (await Shop(cache, reader).customer_names)[0] == "first"
            # a callable policy: a "new" customer does not touch vips, a vip does
            computed = len(Shop.computed)
            (await writer.get(Customer, 2)).email = "x"
            await writer.commit()
            assert await Shop(cache, reader, role="staff").vips("@") == ("@customer10", "@customer20")
            assert len(Shop.computed) == computed  # not invalidated: from the cache
            (await writer.get(Customer, 3)).status = "vip"
            await writer.commit()
            await reader.commit()
            assert await Shop(cache, reader, role="staff").vips("@") == ("@customer3", "@customer10", "@customer20")
            # a bulk statement invalidates by table and every callable policy
            await writer.execute(update(Customer).values(status="vip"))
            await writer.commit()
            await reader.commit()
            assert len(await Shop(cache, reader, role="staff").vips()) == 20
        queries.close()

    run_cached(adb, aregistry, body)


def test_rollback_and_savepoint_drop_what_they_computed(adb, aregistry):
    async def body(cache, maker, engine):
        await add_customers(maker, 3)
        async with maker() as session:
            shop = Shop(cache, session)
            savepoint = await session.begin_nested()
            (await session.get(Customer, 1)).name = "in savepoint"
            assert (await shop.customer_names)[0] == "in savepoint"
            await savepoint.rollback()
            assert (await shop.customer_names)[0] == "customer1"
            (await session.get(Customer, 1)).name = "in transaction"
            assert (await shop.customer_names)[0] == "in transaction"
            await session.rollback()
            assert cache.lru.get(Shop.customer_names.key, {}).get(None) != ("in transaction",)
            assert (await shop.customer_names)[0] == "customer1"
            await session.commit()
        async with maker() as other:
            assert (await Shop(cache, other).customer_names)[0] == "customer1"

    run_cached(adb, aregistry, body)


def test_value_from_a_snapshot_older_than_an_invalidation_is_not_stored(adb, aregistry):
    """As on the sync path: a transaction that began before an invalidation was applied keeps
    what it computes for itself (its snapshot may be older); later transactions compute again."""
    async def body(cache, maker, engine):
        await add_customers(maker, 3)
        async with maker() as old, maker() as writer:
            await old.execute(select(Customer.id).limit(1))  # began, snapshot taken (REPEATABLE READ)
            (await writer.get(Customer, 1)).name = "new"
            await writer.commit()
            seen = await Shop(cache, old).customer_names
            assert seen[0] in ("customer1", "new")  # its own snapshot
            assert cache.lru.get(Shop.customer_names.key, {}).get(None) is None  # not stored
            await old.commit()
        async with maker() as fresh:
            assert (await Shop(cache, fresh).customer_names)[0] == "new"

    run_cached(adb, aregistry, body)


# -- FullTableCache and request_cached ---------------------------------------------------------------

def test_full_table_cache_awaited(adb, aregistry):
    async def body(cache, maker, engine):
        await add_customers(maker, 1)
        queries = counter(engine)
        async with maker() as session:
            with queries.counting():
                chf = await Currency.by_key(session, "CHF")
            assert chf.name == "Swiss franc" and len(queries.selects) == 1
            with queries.counting():
                assert await Currency.by_id(session, chf.id) is chf
                assert sorted(c.code for c in await Currency.cached_rows(session)) == ["CHF", "EUR"]
                assert await Currency.by_key(session, "EUR") is not None
            assert queries.count == 0
            usd = await Currency.by_key(session, "USD", create=True)
            assert usd.name == "created USD" and usd.id is not None
            await session.commit()
        async with maker() as session:
            (await Currency.by_key(session, "CHF")).name = "Franc"
            await session.commit()
        async with maker() as session:
            with queries.counting():
                assert (await Currency.by_key(session, "CHF")).name == "Franc"
                assert (await Currency.by_key(session, "USD")).name == "created USD"
            assert len(queries.selects) == 1  # reloaded once
        queries.close()

    run_cached(adb, aregistry, body)


def test_request_cached_awaited(adb, aregistry):
    async def body(cache, maker, engine):
        await add_customers(maker, 2)
        queries = counter(engine)
        async with maker() as session:
            shop = Shop(cache, session)
            first = await shop.first_customer()
            with queries.counting():
                assert await shop.first_customer() is first and first.name == "customer1"
            assert queries.count == 0
        queries.close()

    run_cached(adb, aregistry, body)


# -- concurrency: one computation per cold key, cancellation, failure ---------------------------------

def test_tasks_awaiting_one_cold_key_compute_it_once(adb, aregistry):
    async def body(cache, maker, engine):
        await add_customers(maker, 5)
        queries = counter(engine)
        sessions = [maker() for _ in range(100)]

        async def read(session):
            return await Shop(cache, session).customer_names

        with queries.counting():
            values = await asyncio.gather(*(read(s) for s in sessions))
            methods = await asyncio.gather(*(Shop(cache, s).slow(1) for s in sessions))
        assert len(set(values)) == 1 and len(values[0]) == 5 and methods == [6] * 100
        assert Shop.computed == ["customer_names", "slow"]
        assert len(queries.selects) == 2
        await asyncio.gather(*(s.close() for s in sessions))
        queries.close()

    run_cached(adb, aregistry, body)


async def held_leader(cache, leader_session, waiter_sessions):
    """``slow(1)`` computed by a task on ``leader_session``, held by ``Shop.gate``, and awaited
    by one task per waiter session: (the leader's task, the waiters' tasks)."""
    Shop.gate = asyncio.Event()
    leader = asyncio.ensure_future(Shop(cache, leader_session).slow(1))
    while Shop.computed != ["slow"]:
        await asyncio.sleep(0.001)  # the leader computes, held by the gate
    waiters = [asyncio.ensure_future(Shop(cache, s).slow(1)) for s in waiter_sessions]
    await asyncio.sleep(0.01)
    return leader, waiters


def test_cancelled_computation_is_not_cached_and_waiters_go_on(adb, aregistry):
    async def body(cache, maker, engine):
        await add_customers(maker, 5)
        async with maker() as s1, maker() as s2, maker() as s3:
            leader, waiters = await held_leader(cache, s1, (s2, s3))
            assert Shop.computed == ["slow"]  # the others wait for it
            leader.cancel()
            with pytest.raises(asyncio.CancelledError):
                await leader
            while len(Shop.computed) < 2:
                await asyncio.sleep(0.001)  # a waiter took over
            assert not any(w.done() for w in waiters)
            Shop.gate.set()
            assert await asyncio.gather(*waiters) == [6, 6]
            assert Shop.computed == ["slow", "slow"]  # the cancelled one, then one waiter
            assert cache.lru.get(Shop.slow.key) == {(None, (1,)): 6}

    run_cached(adb, aregistry, body)


def test_failed_computation_is_not_cached(adb, aregistry):
    async def body(cache, maker, engine):
        await add_customers(maker, 5)
        sessions = [maker() for _ in range(3)]
        results = await asyncio.gather(*(Shop(cache, s).slow(-1) for s in sessions), return_exceptions=True)
        assert all(isinstance(r, ValueError) for r in results)
        assert cache.lru.get(Shop.slow.key) in (None, {})
        assert await Shop(cache, sessions[0]).slow(2) == 7
        await asyncio.gather(*(s.close() for s in sessions))

    run_cached(adb, aregistry, body)


def test_waiter_cancelled_leaves_the_others(adb, aregistry):
    async def body(cache, maker, engine):
        await add_customers(maker, 5)
        async with maker() as s1, maker() as s2, maker() as s3:
            leader, (waiter, other) = await held_leader(cache, s1, (s2, s3))
            waiter.cancel()
            Shop.gate.set()
            assert await leader == 6 and await other == 6
            assert waiter.cancelled() and Shop.computed == ["slow"]

    run_cached(adb, aregistry, body)


# -- watch() targets -----------------------------------------------------------------------------

class ShopSession(Session):
    """The sync class of ShopAsyncSession: watching ShopAsyncSession listens to it only."""


class ShopAsyncSession(AsyncSession):
    sync_session_class = ShopSession


@pytest.mark.parametrize("target", ["async_sessionmaker", "AsyncSession class", "async_scoped_session",
                                    "AsyncSession"])
def test_watch_targets(adb, aregistry, target):
    async def body(engine):
        cache = OrmCache(aregistry, AsyncBase.metadata)
        cache.register(Shop)
        maker = async_sessionmaker(engine, class_=ShopAsyncSession, expire_on_commit=False)
        one = None
        if target == "async_sessionmaker":
            assert cache.watch(maker) is maker
        elif target == "AsyncSession class":
            assert cache.watch(ShopAsyncSession) is ShopAsyncSession
        elif target == "async_scoped_session":
            scoped = async_scoped_session(maker, scopefunc=asyncio.current_task)
            assert cache.watch(scoped) is scoped
        else:
            one = cache.watch(maker())
        await add_customers(maker, 2)  # through another session: the cache is cold anyway

        async def names(session):
            return await Shop(cache, session).customer_names

        session = one if one is not None else maker()
        assert (await names(session))[0] == "customer1"
        (await session.get(Customer, 1)).name = "renamed"
        await session.commit()
        async with maker() as other:
            # one session watched: the others are not (a RuntimeError would tell FullTableCache)
            assert (await names(other))[0] == "renamed"
        await session.close()
        cache.close()
        # closed: nothing listens any more, a commit invalidates nothing
        async with maker() as after:
            await after.execute(update(Customer).values(name="again"))
            await after.commit()
            assert (await names(after))[0] == "renamed"
        assert cache._watched == []

    run(adb, body)


def test_watching_an_async_sessionmaker_hears_only_its_sessions(adb, aregistry):
    async def body(engine):
        cache = OrmCache(aregistry, AsyncBase.metadata)
        cache.register(Shop)
        watched = async_sessionmaker(engine)
        unwatched = async_sessionmaker(engine)
        cache.watch(watched)
        cache.watch(watched)  # twice: one class
        assert watched.kw["sync_session_class"] is not Session
        assert issubclass(watched.kw["sync_session_class"], Session)
        assert "sync_session_class" not in unwatched.kw
        async with watched() as session:
            await Currency.by_key(session, "CHF")  # watched: finds its OrmCache
        async with unwatched() as session:
            with pytest.raises(RuntimeError, match="not watched by an OrmCache"):
                await Currency.by_key(session, "CHF")
        cache.close()

    run(adb, body)


# -- bad input: clear errors, the cache left as it was ---------------------------------------------

def test_async_member_read_with_a_sync_session(adb, aregistry):
    from support.sqla import make_engine

    engine = make_engine(*adb)
    cache = OrmCache(aregistry, AsyncBase.metadata)
    cache.register(Shop)
    try:
        with Session(engine) as session:
            with pytest.raises(TypeError, match="Shop.vips is an async def: its owner's session must be an AsyncSession"):
                Shop(cache, session).vips("@")
            with pytest.raises(TypeError, match="Shop.first_customer is an async def"):
                Shop(cache, session).first_customer()
            assert Shop.computed == [] and len(cache.lru) == 0 and session.info.get(cache._pending_key) is None
    finally:
        cache.close()
        engine.dispose()


def test_what_is_not_a_session_is_refused(adb, aregistry):
    async def body(engine):
        cache = OrmCache(aregistry, AsyncBase.metadata)
        cache.register(Shop)
        maker = async_sessionmaker(engine)
        for bad in (engine, engine.sync_engine, object()):
            with pytest.raises(TypeError, match="OrmCache.watch\\(\\): expected a Session or AsyncSession class"):
                cache.watch(bad)
        assert cache._watched == []
        with pytest.raises(TypeError, match="Currency.by_id: expected a Session or an AsyncSession, not AsyncEngine"):
            Currency.by_id(engine, 1)
        with pytest.raises(TypeError, match="Currency.cached_rows: expected a Session or an AsyncSession, not async_sessionmaker"):
            Currency.cached_rows(maker)
        with pytest.raises(TypeError, match="RecordCache.of: expected a Session or an AsyncSession, not async_sessionmaker"):
            RecordCache.of(maker)
        scoped = async_scoped_session(maker, scopefunc=asyncio.current_task)
        with pytest.raises(TypeError, match="RecordCache needs a Session, not async_scoped_session"):
            RecordCache(scoped)
        assert RecordCache.of(scoped) is RecordCache.of(scoped())  # its current session's
        await scoped.remove()
        async with maker() as session:
            with pytest.raises(TypeError, match="RecordCache needs a Session, not AsyncSession: use RecordCache.of"):
                RecordCache(session)
            with pytest.raises(TypeError, match="orm_cached .*Shop.customer_names: expected a Session or an AsyncSession, not AsyncEngine"):
                Shop(cache, engine).customer_names
            assert "ormcache.sqlalchemy.records" not in session.info and len(cache.lru) == 0
        cache.close()

    run(adb, body)
