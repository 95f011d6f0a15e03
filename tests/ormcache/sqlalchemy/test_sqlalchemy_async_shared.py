"""The shared Redis tier under an AsyncSession (issue #13): inside SQLAlchemy's greenlet bridge
the tier's calls (``version``, ``get``, ``store``, ``invalidate``) await a ``redis.asyncio``
client of the running event loop, with the deadlines, the authentication of what is read, the
outage and configuration errors and the WATCH/MULTI store rule of the blocking calls.

Each test checks that the tier's blocking client never opened a connection. A hung Redis (a
black hole: it accepts and never answers) costs each call one deadline while a heartbeat task
ticking every 1 ms keeps ticking (no gap of half a deadline), where a blocking call stalls the
loop for the whole deadline. The other process of the cross-process test runs AsyncSessions too (spawned).
"""
from __future__ import annotations

import asyncio
import pickle
import time
import uuid

import pytest
import redis
from sqlalchemy import select

from ormcache.registry import Registry
from ormcache.signaling import PostgresSignaling, RedisSignaling, SignalingConfigurationError
from ormcache.sqlalchemy import shared as shared_module
from ormcache.sqlalchemy._bridge import run as bridged
from ormcache.sqlalchemy.shared import SharedTier
from support.servers import BlackHole, free_port
from support.signaling import HANG, MARGIN, MAX_GAP, PASSWORD, TIMEOUT, assert_no_password, redis_with_password, with_heartbeat  # noqa: F401
from support.sqla_async import (  # noqa: F401 - fixtures
    Customer,
    Shop,
    adb,
    aregistry,
    async_pg,
    counter,
    make_async_engine,
    make_cache,
    run,
)
from support.sqla import Exploit, Worker, serve

SECRET = b"test secret"
MEMBER = "support.sqla_async.Shop.customer_names"


def blocking_connections(tier: SharedTier) -> int:
    """How many connections the tier's blocking client ever opened."""
    return tier.client.connection_pool._created_connections


def shared_cache(registry, engine, url, prefix, **kw):
    """make_cache() with the shared tier on ``url`` (keys under ``prefix``)."""
    return make_cache(registry, engine, redis_url=url, secret=SECRET,
                      redis_prefix=f"{prefix}{{db_name}}:orm_cached:", **kw)


# -- two processes, each with AsyncSessions -------------------------------------------------------

def _signaling(kind, where, redis_url, prefix):
    if kind == "postgresql":
        return PostgresSignaling(where)
    return RedisSignaling(redis_url, key_prefix=f"{prefix}{{db_name}}:")


def async_worker(conn, kind, where, db_name, redis_url, prefix):
    """Child process main: AsyncSessions on the same database, signaling and shared tier;
    answers ("names",) with (names, computed, SQL statements, blocking connections) and
    ("rename", id, name) by committing the change."""
    registry = Registry(db_name)
    registry.signaling = _signaling(kind, where, redis_url, prefix)
    loop = asyncio.new_event_loop()  # one loop for the worker's life
    engine = make_async_engine(kind, where)
    cache, maker = shared_cache(registry, engine, redis_url, prefix)
    queries = counter(engine)
    try:
        serve(conn, lambda command: loop.run_until_complete(_answer(cache, maker, queries, command)))
    finally:
        queries.close()
        cache.close()
        loop.run_until_complete(engine.dispose())
        loop.run_until_complete(loop.shutdown_asyncgens())  # closes the tier's async client
        loop.close()
        registry.signaling.close()
        Registry.delete(db_name)
        conn.close()


async def _answer(cache, maker, queries, command):
    name, *args = command
    queries.statements.clear()
    async with maker() as session:
        if name == "names":
            before = len(Shop.computed)
            names = await Shop(cache, session).customer_names
            return names, len(Shop.computed) - before, queries.count, blocking_connections(cache.shared)
        assert name == "rename"
        (await session.get(Customer, args[0])).name = args[1]
        await session.commit()
        return None


@pytest.mark.timeout(120)
def test_async_units_of_work_share_the_tier_across_processes(adb, redis_server, redis_prefix):
    kind, where = adb
    db_name = f"test-{uuid.uuid4().hex[:8]}"
    registry = Registry(db_name)
    registry.signaling = _signaling(kind, where, redis_server.url, redis_prefix)

    async def body(engine):
        cache, maker = shared_cache(registry, engine, redis_server.url, redis_prefix)
        queries = counter(engine)
        async with maker() as session:
            session.add_all([Customer(id=1, name="ann"), Customer(id=2, name="bob")])
            await session.commit()

        async def here():
            """What this process reads: (names, computed here, SQL statements)."""
            before = len(Shop.computed)
            queries.statements.clear()
            async with maker() as session:
                names = await Shop(cache, session).customer_names
            return names, len(Shop.computed) - before, queries.count

        other = Worker(kind, where, db_name, redis_server.url, redis_prefix, target=async_worker)
        try:
            # computed there, stored through its async client; served here from Redis, no SQL
            names, computed, _, blocking = other("names")
            assert (names, computed, blocking) == (("ann", "bob"), 1, 0)
            assert await here() == (("ann", "bob"), 0, 0)
            assert await here() == (("ann", "bob"), 0, 0)  # the local copy, validated by the counter
            # committed here: the counter moved (awaited), the other process computes again...
            async with maker() as session:
                (await session.get(Customer, 1)).name = "renamed"
                await session.commit()
            names, computed, _, _ = other("names")
            assert (names, computed) == (("renamed", "bob"), 1)
            # ...and this one reuses its value
            assert await here() == (("renamed", "bob"), 0, 0)
            # committed there: computed here, then served there
            other("rename", 2, "changed there")
            names, computed, _ = await here()
            assert (names, computed) == (("renamed", "changed there"), 1)
            names, computed, sql, blocking = other("names")
            assert (names, computed, sql, blocking) == (("renamed", "changed there"), 0, 0, 0)
            assert blocking_connections(cache.shared) == 0  # every call here was awaited
        finally:
            assert other.stop() == 0
            queries.close()
            clients = cache.shared._aclients
            await cache.aclose()
            assert clients.clear() == []  # this loop's client was closed, none left

    try:
        run(adb, body)
    finally:
        registry.signaling.close()
        Registry.delete(db_name)


# -- a hung tier: the loop keeps serving --------------------------------------------------------

def test_a_hung_tier_keeps_the_loop_serving_during_a_unit_of_work(adb, aregistry, caplog):
    """A read (``get``: one deadline, computed without caching) and a commit (``invalidate``:
    one deadline, kept for later) of an AsyncSession whose tier hangs."""
    aregistry.signaling_retry_interval = 0.0  # the commit's invalidation tries (and waits) too
    with BlackHole() as hole:

        async def unit(cache, maker, id):
            async with maker() as session:
                names = await Shop(cache, session).customer_names  # the tier's get hangs
                session.add(Customer(id=id, name=f"new{id}"))
                await session.commit()  # the tier's invalidate hangs
            return names

        async def body(engine):
            # the same work without the tier first: its SQL compiled, its mappers configured
            warm, maker = make_cache(aregistry, engine)
            await unit(warm, maker, 1)
            warm.close()
            cache, maker = shared_cache(aregistry, engine, f"redis://127.0.0.1:{hole.port}/0", "hung:",
                                        redis_timeout=HANG)
            try:
                measured = await with_heartbeat(lambda: unit(cache, maker, 2))
                return measured, cache.shared._backlog, blocking_connections(cache.shared)
            finally:
                cache.close()

        (names, took, gap), backlog, blocking = run(adb, body)
    assert names == ("new1",) and Shop.computed == ["customer_names"] * 2  # computed without the tier
    assert 2 * HANG * 0.8 <= took, took  # the read and the commit each waited a deadline...
    assert gap < MAX_GAP, gap  # ...while the loop kept serving the heartbeat
    # the invalidations (every member on the customers table) go before the tier's next command
    assert backlog == {MEMBER, "support.sqla_async.Shop.slow"}
    assert blocking == 0
    assert "shared tier unreachable" in caplog.text


CALLS = {
    "version": lambda tier: tier.version("m"),
    "get": lambda tier: tier.get("m", None, "sig"),
    "store": lambda tier: tier.store("m", None, b"1", ("a", "value"), "sig"),
    "invalidate": lambda tier: tier.invalidate(["m"]),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_each_call_of_a_hung_tier_awaits_its_deadline(call):
    """Each call, run in the bridge, waits one deadline without blocking the loop, fails as the
    blocking call does, and the tier then rests: the next call fails at once."""
    with BlackHole() as hole:
        tier = SharedTier(f"redis://127.0.0.1:{hole.port}/0", secret=SECRET, timeout=HANG, retry_interval=30)

        async def main():
            async def work():
                try:
                    return await bridged(CALLS[call], tier)
                except redis.RedisError as exc:
                    return exc

            hung = await with_heartbeat(work)
            accepted = len(hole._accepted)
            start = time.monotonic()
            resting = await work()
            return hung, resting, time.monotonic() - start, len(hole._accepted) - accepted

        try:
            (failure, took, gap), resting, resting_took, connected = asyncio.run(main())
        finally:
            tier.close()
    assert isinstance(failure, redis.TimeoutError), failure
    assert HANG * 0.8 <= took <= HANG + MARGIN, took  # one deadline...
    assert gap < MAX_GAP, gap  # ...during which the loop ran the heartbeat
    assert isinstance(resting, redis.ConnectionError) and "not tried again yet" in str(resting), resting
    assert connected == 0  # resting: no connection tried...
    assert resting_took < MAX_GAP, resting_took  # ...and no deadline waited
    assert blocking_connections(tier) == 0
    assert tier._backlog == ({"m"} if call == "invalidate" else set())


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_cancelled_call_keeps_its_invalidations_and_does_not_rest_the_tier(call):
    """A task cancelled while its tier call waits (a commit's invalidation, a read...): the names
    of an invalidation are kept for the next command, and a cancellation is no outage (the tier
    does not rest)."""
    with BlackHole() as hole:
        tier = SharedTier(f"redis://127.0.0.1:{hole.port}/0", secret=SECRET, timeout=30, retry_interval=30)

        async def main():
            task = asyncio.ensure_future(bridged(CALLS[call], tier))
            await asyncio.sleep(0.2)  # connected, waiting for an answer
            assert not task.done()
            start = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return time.monotonic() - start

        try:
            took = asyncio.run(main())
        finally:
            tier.close()
    assert took < 1.0, took
    assert tier._failed_at is None
    assert tier._backlog == ({"m"} if call == "invalidate" else set())
    assert blocking_connections(tier) == 0


def test_a_tier_that_is_down_keeps_invalidations_for_later(redis_server, redis_prefix):
    """Nothing listens: the async call fails at once and the names are kept; once the server is
    back they are sent before the next command (the sync test's scenario)."""
    tier = SharedTier(redis_server.url, prefix=redis_prefix, secret=SECRET)
    down = SharedTier(f"redis://127.0.0.1:{free_port()}/0", prefix=redis_prefix, secret=SECRET, retry_interval=0)

    async def main():
        version, _ = await bridged(tier.get, "k", None)
        assert await bridged(tier.store, "k", None, version, "cached") == shared_module.STORED
        start = time.monotonic()
        with pytest.raises(redis.ConnectionError):
            await bridged(down.invalidate, ["k"])
        took = time.monotonic() - start
        assert down._backlog == {"k"}
        down._aclients = tier._aclients  # the server is back
        assert await bridged(down.version, "k") != version  # the backlog went first
        assert (await bridged(tier.get, "k", None))[1] is shared_module.NOT_FOUND
        await tier.aclose()  # the loop's client closed: the next call makes another
        assert await bridged(tier.store, "k", None, await bridged(tier.version, "k"), "again") == "stored"
        return took

    try:
        assert asyncio.run(main()) < TIMEOUT + MARGIN
        assert blocking_connections(tier) == blocking_connections(down) == 0
    finally:
        tier.close()
        down.close()


def test_the_store_rule_is_watch_multi(redis_server, redis_prefix):
    """Awaited: a value computed under a counter that moved meanwhile is not stored (MOVED)."""
    tier = SharedTier(redis_server.url, prefix=redis_prefix, secret=SECRET)

    async def main():
        version, value = await bridged(tier.get, "v", "admin", "sig")
        assert value is shared_module.NOT_FOUND
        await bridged(tier.invalidate, ["v"])  # a writer, while the reader computes
        assert await bridged(tier.store, "v", "admin", version, "old rows", "sig") == shared_module.MOVED
        new_version, value = await bridged(tier.get, "v", "admin", "sig")
        assert value is shared_module.NOT_FOUND and new_version != version
        assert await bridged(tier.store, "v", "admin", new_version, (1, 2), "sig") == shared_module.STORED
        assert await bridged(tier.get, "v", "admin", "sig") == (new_version, (1, 2))

    try:
        asyncio.run(main())
        assert blocking_connections(tier) == 0
    finally:
        tier.close()


# -- what is read is authenticated ----------------------------------------------------------------

def test_a_tampered_entry_is_refused(adb, aregistry, redis_server, redis_prefix, tmp_path, caplog):
    """A value (or a counter) rewritten in Redis by someone without the secret is never
    deserialised nor served: the AsyncSession reads the database, the member counts an error."""
    marker = tmp_path / "pwned"
    raw = redis.Redis.from_url(redis_server.url)

    async def body(engine):
        cache, maker = shared_cache(aregistry, engine, redis_server.url, redis_prefix)
        stats = cache._counters[Shop.__dict__["customer_names"]]
        async with maker() as session:
            session.add_all([Customer(id=1, name="ann"), Customer(id=2, name="bob")])
            await session.commit()

        async def read():
            cache.lru.clear()  # no local copy: what is in Redis is read
            async with maker() as session:
                return await Shop(cache, session).customer_names

        try:
            assert await read() == ("ann", "bob")  # computed, stored (signed)
            [val_key] = [key for key in raw.scan_iter(match=redis_prefix + "*") if b":val:" in key]
            [field] = raw.hkeys(val_key)
            ver_key = val_key.split(b":val:")[0] + b":ver"
            version = raw.get(ver_key) or b"0"
            stored = raw.hget(val_key, field)
            assert stored.startswith(version + b":")
            computed = len(Shop.computed)
            assert await read() == ("ann", "bob") and len(Shop.computed) == computed  # served by the tier
            errors = stats.err
            evil = pickle.dumps(Exploit(marker))
            forger = SharedTier(redis_server.url, prefix=cache.shared.prefix, secret=b"not the secret")
            forged = forger._tag(val_key.decode(), field.decode(), version, evil) + evil
            forger.close()
            for data in (evil, version + b":" + evil, version + b":" + forged):
                raw.hset(val_key, field, data)
                assert await read() == ("ann", "bob")  # from the database
            assert stats.err - errors == 3 and len(Shop.computed) == computed + 3
            kept = raw.hget(val_key, field)
            raw.set(ver_key, evil)  # a counter INCR did not write
            assert await read() == ("ann", "bob")
            assert stats.err - errors == 4
            assert raw.hget(val_key, field) == kept  # nothing stored under it
            return blocking_connections(cache.shared)
        finally:
            cache.close()

    try:
        assert run(adb, body) == 0
    finally:
        raw.close()
    assert not marker.exists()
    assert len([r for r in caplog.records if "does not carry a valid tag" in r.getMessage()]) == 1


# -- configuration errors ---------------------------------------------------------------------------

def test_a_wrong_password_is_a_clear_error_without_the_password(adb, aregistry, redis_with_password, caplog):  # noqa: F811
    caplog.set_level("DEBUG")
    url = f"redis://:wrong-{PASSWORD}@127.0.0.1:{redis_with_password.port}/0"

    async def body(engine):
        cache, maker = shared_cache(aregistry, engine, url, "auth:")
        try:
            async with maker() as session:
                with pytest.raises(SignalingConfigurationError, match="authentication failed") as error:
                    await Shop(cache, session).customer_names
            return error.value, repr(cache), blocking_connections(cache.shared)
        finally:
            cache.close()

    error, cache_repr, blocking = run(adb, body)
    assert "shared tier at redis://:***@127.0.0.1" in str(error)
    assert_no_password(str(error), repr(error), str(error.__cause__), cache_repr, caplog.text)
    assert blocking == 0


def test_async_reads_and_the_sync_path_agree(adb, aregistry, redis_server, redis_prefix):
    """A value stored through the async client is read by a blocking call (and the key layout
    is the sync one): one protocol, two drivers."""

    async def body(engine):
        cache, maker = shared_cache(aregistry, engine, redis_server.url, redis_prefix)
        try:
            async with maker() as session:
                session.add(Customer(id=7, name="cid"))
                await session.commit()
            async with maker() as session:
                assert await Shop(cache, session).customer_names == ("cid",)
                signals = cache.shared.token(cache.pending(session.sync_session).version)
            return cache.shared, signals, blocking_connections(cache.shared)
        finally:
            cache.close()

    tier, signals, blocking = run(adb, body)
    assert blocking == 0
    tier.client = redis.Redis.from_url(redis_server.url)  # (closed with the cache)
    try:
        version, value = tier.get(MEMBER, None, signals)  # blocking, outside any bridge
        assert value == ("cid",) and version == tier.version(MEMBER)
    finally:
        tier.client.close()
