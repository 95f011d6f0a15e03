"""AsyncSession across processes: what an AsyncSession commits invalidates the other processes
(through the registry's signaling, today's synchronous one), and what they commit invalidates
this process's async unit of work. The other process is the sync worker of
test_sqlalchemy_support (one database name, one signaling)."""
from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from ormcache.registry import Registry
from ormcache.signaling import PostgresSignaling, RedisSignaling
from ormcache.sqlalchemy import OrmCache, orm_cached
from test_sqlalchemy_async_support import make_async_engine, run
from test_sqlalchemy_support import Base, Country, QueryCounter, User, Worker, db  # noqa: F401


class AsyncApp:
    computed = 0

    def __init__(self, orm_cache, session):
        self.orm_cache, self.session = orm_cache, session

    @orm_cached(policy="on-table-change:users")
    @property
    def user_names(self):
        AsyncApp.computed += 1
        return select(User.name).order_by(User.id)


def test_async_commits_invalidate_other_processes_and_back(db, request):
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
        other = Worker(kind, where, db_name, redis_url, signaling, False, "pickle", prefix)
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

    try:
        run((kind, where), body)
    finally:
        registry.signaling.close()
        Registry.delete(db_name)
