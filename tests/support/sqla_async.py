"""Models, async engines and the owner class shared by the AsyncSession tests (no tests here).

Each test runs on SQLite through aiosqlite (a file, so other connections and processes share it)
and on the private PostgreSQL of ``tests/support/servers.py`` through psycopg's AsyncConnection. A test
body is a coroutine run by ``run(adb, body)`` in a fresh event loop with a fresh async engine,
under a deadline (``run_cached``: with the ``OrmCache`` of ``make_cache`` as well).
"""
from __future__ import annotations

import asyncio
import uuid
from typing import Any, Awaitable, Callable, List, Optional, TypeVar

import pytest
from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ormcache import Registry
from ormcache.sqlalchemy import FullTableCache, OrmCache, orm_cached, request_cached
from support.servers import fresh_database
from support.sqla import QueryCounter, make_engine

T = TypeVar("T")

#: the deadline of one test body (a hang fails one test)
DEADLINE = 60.0


class AsyncBase(DeclarativeBase):
    pass


class Customer(AsyncBase):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    email: Mapped[str] = mapped_column(String(100), default="")
    status: Mapped[str] = mapped_column(String(20), default="new")


class Currency(FullTableCache, AsyncBase):
    __tablename__ = "currencies"
    __cache_key__ = "code"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(3), unique=True)
    name: Mapped[str] = mapped_column(String(50))

    @classmethod
    def cache_create(cls, session, key):
        return cls(code=key, name=f"created {key}")


class Shop:
    """The owner of the cached members: ``orm_cache``, ``session`` (an AsyncSession) and ``role``."""

    computed: List[str] = []
    #: set by a test to hold the computation of ``slow`` (an asyncio.Event of the running loop)
    gate: Optional[asyncio.Event] = None

    def __init__(self, orm_cache: OrmCache, session: Any, role: Any = None) -> None:
        self.orm_cache, self.session, self.role = orm_cache, session, role

    @orm_cached(policy="on-table-change:customers")
    @property
    def customer_names(self):
        Shop.computed.append("customer_names")
        return select(Customer.name).order_by(Customer.id)  # a Select: executed for us

    @orm_cached(policy=lambda obj: isinstance(obj, Customer) and obj.status == "vip", by_role=True)
    async def vips(self, prefix: str = "") -> tuple:
        Shop.computed.append("vips")
        names = await self.session.scalars(select(Customer.name).where(Customer.status == "vip")
                                           .order_by(Customer.id))
        return tuple(prefix + name for name in names)

    @orm_cached(policy="on-table-change:customers")
    async def slow(self, n: int) -> int:
        Shop.computed.append("slow")
        count = len((await self.session.scalars(select(Customer.id))).all())
        if Shop.gate is not None:
            await Shop.gate.wait()
        if n < 0:
            raise ValueError("negative")
        return count + n

    @request_cached
    async def first_customer(self) -> Any:
        return (await self.session.scalars(select(Customer).order_by(Customer.id))).first()


def make_async_engine(kind: str, where: str) -> AsyncEngine:
    """An async engine: aiosqlite on a SQLite file, psycopg's AsyncConnection on PostgreSQL."""
    if kind == "sqlite":
        return create_async_engine(f"sqlite+aiosqlite:///{where}")
    import psycopg

    return create_async_engine("postgresql+psycopg://", async_creator=lambda: psycopg.AsyncConnection.connect(where))


@pytest.fixture(scope="module")
def async_pg(postgres_server):
    """A PostgreSQL database for the tests of one module (each test recreates the tables)."""
    yield from fresh_database(postgres_server, "test_async_")


@pytest.fixture
def aregistry(LRU):
    """A fresh Registry on one fastlru implementation (the AsyncSession code has no hit path of
    its own: the ``hit_path`` variants of ``registry`` would run the same code twice)."""
    name = f"test-async-{uuid.uuid4().hex[:8]}"
    registry = Registry(name, lru_factory=LRU)
    yield registry
    Registry.delete(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def adb(request, tmp_path):
    """``(kind, where)`` of a database with fresh tables of these tests."""
    kind = request.param
    where = str(tmp_path / "test.sqlite") if kind == "sqlite" else request.getfixturevalue("async_pg")
    engine = make_engine(kind, where)
    AsyncBase.metadata.drop_all(engine)
    AsyncBase.metadata.create_all(engine)
    engine.dispose()
    Shop.computed.clear()
    Shop.gate = None
    yield kind, where


def run(adb: Any, body: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """``body(engine)`` in a new event loop, with a new async engine (disposed after), under
    ``DEADLINE``."""

    async def main() -> T:
        engine = make_async_engine(*adb)
        try:
            return await asyncio.wait_for(body(engine), DEADLINE)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def counter(engine: AsyncEngine) -> QueryCounter:
    """Counts the SQL the async engine sends (an event on its sync_engine)."""
    return QueryCounter(engine.sync_engine)


def make_cache(registry: Any, engine: AsyncEngine, **kw: Any) -> "tuple[OrmCache, async_sessionmaker]":
    """An OrmCache watching a new async_sessionmaker of ``engine``, with Shop registered."""
    cache = OrmCache(registry, AsyncBase.metadata, **kw)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    cache.watch(maker)
    cache.register(Shop)
    return cache, maker


def run_cached(adb: Any, registry: Any, body: Callable[[OrmCache, async_sessionmaker, AsyncEngine], Awaitable[T]]) -> T:
    """``body(cache, maker, engine)`` run by ``run``, with the cache and sessionmaker of
    ``make_cache`` (the cache closed after)."""

    async def main(engine: AsyncEngine) -> T:
        cache, maker = make_cache(registry, engine)
        try:
            return await body(cache, maker, engine)
        finally:
            cache.close()

    return run(adb, main)


async def add_customers(maker: async_sessionmaker, n: int) -> List[int]:
    ids = list(range(1, n + 1))
    async with maker() as session:
        session.add_all(Customer(id=i, name=f"customer{i}", email=f"c{i}@example.org",
                                 status="vip" if i % 10 == 0 else "new") for i in ids)
        session.add_all([Currency(code="CHF", name="Swiss franc"), Currency(code="EUR", name="Euro")])
        await session.commit()
    return ids
