"""Capture with an AsyncSession: install() then writes by another program are seen, and the
versions read in the reader's transaction (inside SQLAlchemy's greenlet bridge) work the same."""
from __future__ import annotations

import asyncio

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from ormcache.registry import Registry
from ormcache.signaling import PostgresSignaling
from ormcache.sqlalchemy import OrmCache, orm_cached
from support.sqla import Base, User, make_engine


class AsyncApp:
    def __init__(self, orm_cache, session):
        self.orm_cache, self.session = orm_cache, session

    @orm_cached(policy="on-table-change:users")
    @property
    def users(self):
        return select(User.id, User.name).order_by(User.id)


@pytest.mark.timeout(120)
def test_async_sessions_see_every_write_once_installed(pg_dsn):
    engine = make_engine("postgresql", pg_dsn)
    Base.metadata.create_all(engine)
    registry = Registry("capture-async")
    registry.signaling = PostgresSignaling(pg_dsn)
    cache = OrmCache(registry, Base.metadata)
    cache.register(AsyncApp)
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("INSERT INTO users (id, name, email, role, karma) VALUES (1, '0', '', 'm', 0)")

    async def body():
        async_engine = create_async_engine(
            "postgresql+psycopg://", async_creator=lambda: psycopg.AsyncConnection.connect(pg_dsn))
        maker = async_sessionmaker(async_engine)
        cache.watch(maker)
        seen = []
        try:
            for value in ("1", "2", "3"):
                async with maker() as session:
                    seen.append(await AsyncApp(cache, session).users)
                    seen.append(await AsyncApp(cache, session).users)  # a hit
                async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:  # another program
                    await conn.execute("UPDATE users SET name = %s WHERE id = 1", [value])
            async with maker() as session:
                seen.append(await AsyncApp(cache, session).users)
        finally:
            await cache.aclose()
            await registry.signaling.aclose()
            await async_engine.dispose()
        return seen

    try:
        cache.install(engine)
        seen = asyncio.run(asyncio.wait_for(body(), 60))
    finally:
        registry.signaling.close()
        engine.dispose()
        Registry.delete("capture-async")
    assert [value[0][1] for value in seen] == ["0", "0", "1", "1", "2", "2", "3"]
