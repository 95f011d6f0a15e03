"""A request loop on SQLAlchemy, with and without the ormcache.sqlalchemy caches.

Each request is one unit of work (a new session, committed at the end): it reads one
configuration value and three fields of 100 records. SQL statements are counted with an engine
event; the time is the mean wall time per request after a warm-up, in the best of 5 rounds.

    python bench/bench_sqlalchemy.py                  # SQLite file + a private PostgreSQL
    python bench/bench_sqlalchemy.py --postgres DSN   # an existing PostgreSQL database
    python bench/bench_sqlalchemy.py --no-postgres --requests 500
    python bench/bench_sqlalchemy.py --redis          # adds the Redis shared tier (private server)
    python bench/bench_sqlalchemy.py --signing        # only: the cost of HMAC tags on the shared tier
    python bench/bench_sqlalchemy.py --no-async       # without the AsyncSession request loop

Variants:
  no cache, N+1      session.get() per record (what a naive loop does), config by query
  no cache, batched  one SELECT for the 100 records, config by query
  orm_cached+record  config from @orm_cached, fields through RecordCache.prefetch()
  full-table+record  config from FullTableCache.by_key(), fields through RecordCache
  redis-tier+record  as orm_cached+record, with the Redis shared tier (--redis): each read of the
                     config checks its version in Redis (one round trip, no SQL)

Each variant also runs as an async request loop (backend "<name> async": an AsyncSession on
aiosqlite or psycopg's AsyncConnection, one event loop, requests awaited one after the other):
the same reads, awaited (``await AsyncApp(...).config(key)``, ``await records.get(...)``).

--signing: one @orm_cached read through the shared tier (SQLite file, a private Redis unless
--redis URL), ns per read, for msgpack without a secret (the unsigned path), msgpack with a
secret and pickle with a secret, interleaved in the same run (min and median of the rounds):
  shared hit   the value is in Redis, not in this process (local tier emptied before each read):
               GET counter + HGET, tag verified, value deserialised
  miss         no value for this argument yet: computed (one SELECT), serialised, tagged, stored
               (WATCH, GET, HSET, EXPIRE)
  tag only     the HMAC-SHA256 of one value, without Redis (signed variants)
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import uuid
from typing import Callable, Dict, Iterator, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
try:
    import ormcache  # noqa: F401  (installed, or src already on the path)
except ImportError:  # a plain checkout
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

from sqlalchemy import String, create_engine, event, select  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker  # noqa: E402

from ormcache.registry import Registry  # noqa: E402
from ormcache.sqlalchemy import FullTableCache, OrmCache, RecordCache, orm_cached  # noqa: E402

RECORDS = 1000
PER_REQUEST = 100
ROUNDS = 5
FIELDS = ("name", "email", "city")


class Base(DeclarativeBase):
    pass


class Setting(FullTableCache, Base):
    __tablename__ = "bench_settings"
    __cache_key__ = "key"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(50), unique=True)
    value: Mapped[str] = mapped_column(String(100))


class Partner(Base):
    __tablename__ = "bench_partners"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    email: Mapped[str] = mapped_column(String(100))
    city: Mapped[str] = mapped_column(String(50))
    notes: Mapped[str] = mapped_column(String(500), default="")


class App:
    """The application object: config values cached until the settings table changes."""

    def __init__(self, orm_cache: OrmCache, session) -> None:
        self.orm_cache, self.session = orm_cache, session

    @orm_cached(policy="on-table-change:bench_settings")
    def config(self, key: str) -> Optional[str]:
        return self.session.scalar(select(Setting.value).where(Setting.key == key))


# -- the requests ---------------------------------------------------------------------------------

def page(n: int) -> List[int]:
    start = (n * 37) % (RECORDS - PER_REQUEST)
    return list(range(start + 1, start + 1 + PER_REQUEST))


def request_nplus1(factory, cache, n: int) -> int:
    with factory() as session:
        title = session.scalar(select(Setting.value).where(Setting.key == "site.title"))
        total = len(title)
        for id_ in page(n):
            partner = session.get(Partner, id_)
            total += len(partner.name) + len(partner.email) + len(partner.city)
        session.commit()
    return total


def request_batched(factory, cache, n: int) -> int:
    with factory() as session:
        title = session.scalar(select(Setting.value).where(Setting.key == "site.title"))
        total = len(title)
        for partner in session.scalars(select(Partner).where(Partner.id.in_(page(n)))):
            total += len(partner.name) + len(partner.email) + len(partner.city)
        session.commit()
    return total


def request_orm_cached(factory, cache, n: int) -> int:
    with factory() as session:
        total = len(App(cache, session).config("site.title"))
        records = RecordCache.of(session)
        ids = page(n)
        records.prefetch(Partner, ids, FIELDS)
        get = records.get
        for id_ in ids:
            total += len(get(Partner, id_, "name")) + len(get(Partner, id_, "email")) + len(get(Partner, id_, "city"))
        session.commit()
    return total


def request_full_table(factory, cache, n: int) -> int:
    with factory() as session:
        total = len(Setting.by_key(session, "site.title").value)
        records = RecordCache.of(session)
        ids = page(n)
        records.prefetch(Partner, ids, FIELDS)
        get = records.get
        for id_ in ids:
            total += len(get(Partner, id_, "name")) + len(get(Partner, id_, "email")) + len(get(Partner, id_, "city"))
        session.commit()
    return total


VARIANTS: List[Tuple[str, Callable]] = [
    ("no cache, N+1", request_nplus1),
    ("no cache, batched", request_batched),
    ("orm_cached+record", request_orm_cached),
    ("full-table+record", request_full_table),
]


# -- the same requests with an AsyncSession (--no-async: without them) ------------------------------

class AsyncApp(App):
    @orm_cached(policy="on-table-change:bench_settings")
    async def config(self, key: str) -> Optional[str]:
        return await self.session.scalar(select(Setting.value).where(Setting.key == key))


def fields_length(partner: Partner) -> int:
    return len(partner.name) + len(partner.email) + len(partner.city)


async def arequest_nplus1(maker, cache, n: int) -> int:
    async with maker() as session:
        total = len(await session.scalar(select(Setting.value).where(Setting.key == "site.title")))
        for id_ in page(n):
            total += fields_length(await session.get(Partner, id_))
        await session.commit()
    return total


async def arequest_batched(maker, cache, n: int) -> int:
    async with maker() as session:
        total = len(await session.scalar(select(Setting.value).where(Setting.key == "site.title")))
        total += sum(map(fields_length, await session.scalars(select(Partner).where(Partner.id.in_(page(n))))))
        await session.commit()
    return total


async def _aread_records(session, total: int, n: int) -> int:
    records = RecordCache.of(session)
    ids = page(n)
    await records.prefetch(Partner, ids, FIELDS)
    get = records.get
    for id_ in ids:
        total += len(await get(Partner, id_, "name")) + len(await get(Partner, id_, "email")) \
            + len(await get(Partner, id_, "city"))
    await session.commit()
    return total


async def arequest_orm_cached(maker, cache, n: int) -> int:
    async with maker() as session:
        return await _aread_records(session, len(await AsyncApp(cache, session).config("site.title")), n)


async def arequest_full_table(maker, cache, n: int) -> int:
    async with maker() as session:
        return await _aread_records(session, len((await Setting.by_key(session, "site.title")).value), n)


ASYNC_VARIANTS: List[Tuple[str, Callable]] = [
    ("no cache, N+1", arequest_nplus1),
    ("no cache, batched", arequest_batched),
    ("orm_cached+record", arequest_orm_cached),
    ("full-table+record", arequest_full_table),
]


# -- the cost of signing (--signing) ---------------------------------------------------------------

class SignedApp:
    """A value of a realistic size (every setting) per argument."""

    computed = 0

    def __init__(self, orm_cache: OrmCache, session) -> None:
        self.orm_cache, self.session = orm_cache, session

    @orm_cached(policy="on-table-change:bench_settings")
    def settings(self, n: int) -> Dict[str, str]:
        SignedApp.computed += 1
        return {key: value for key, value in self.session.execute(select(Setting.key, Setting.value))}


SIGNING_VARIANTS = [("msgpack, no secret", "msgpack", False), ("msgpack, secret", "msgpack", True),
                    ("pickle, secret", "pickle", True)]


def run_signing(redis_url: str, ops: int, rounds: int) -> List[Dict[str, object]]:
    import statistics

    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{os.path.join(tmp, 'bench.sqlite')}")
        seed(engine)
        caches, samples = [], {}
        try:
            for label, serializer, signed in SIGNING_VARIANTS:
                registry = Registry(f"bench-{uuid.uuid4().hex[:8]}")
                cache = OrmCache(registry, Base.metadata, redis_url=redis_url, serializer=serializer,
                                 secret=os.urandom(32) if signed else None)
                factory = sessionmaker(engine)
                cache.watch(factory)
                cache.register(SignedApp)
                caches.append((label, signed, cache, factory))
            next_arg = [0]

            def miss(cache, factory) -> int:
                with factory() as session:
                    app = SignedApp(cache, session)
                    start = next_arg[0]
                    next_arg[0] += ops
                    computed = SignedApp.computed
                    began = time.perf_counter_ns()
                    for n in range(start, start + ops):
                        app.settings(n)
                    took = time.perf_counter_ns() - began
                    assert SignedApp.computed == computed + ops, "a miss did not compute"
                    session.commit()
                return took

            def hit(cache, factory) -> int:
                with factory() as session:
                    app = SignedApp(cache, session)
                    app.settings(-1)  # in Redis (stored by an earlier round or now)
                    clear = cache.lru.clear
                    computed = SignedApp.computed
                    took = 0
                    for _ in range(ops):
                        clear()
                        began = time.perf_counter_ns()
                        app.settings(-1)
                        took += time.perf_counter_ns() - began
                    assert SignedApp.computed == computed, "a shared hit computed the value"
                    session.commit()
                return took

            def tag_only(cache, factory) -> float:
                shared = cache.shared
                data = shared._dumps({f"setting.{i}": f"value {i}" for i in range(21)})
                began = time.perf_counter_ns()
                for _ in range(ops * 10):
                    shared._tag("ormcache:bench:orm_cached:x:val:token", "(None,(1,))", b"12", data)
                return (time.perf_counter_ns() - began) / 10

            operations = [("shared hit", hit), ("miss", miss), ("tag only", tag_only)]
            for round_ in range(rounds + 1):  # round 0 warms up
                order = caches[round_ % len(caches):] + caches[:round_ % len(caches)]
                for op_name, op in operations:
                    for label, signed, cache, factory in order:
                        if op_name == "tag only" and not signed:
                            continue
                        took = op(cache, factory)
                        if round_:
                            samples.setdefault((op_name, label), []).append(took / ops)
        finally:
            for label, signed, cache, factory in caches:
                cache.close()
                Registry.delete(cache.registry.db_name)
            engine.dispose()
    rows = []
    labels = [label for label, _, _ in SIGNING_VARIANTS]
    for (op_name, label), values in sorted(samples.items(), key=lambda item: (
            [name for name, _ in operations].index(item[0][0]), labels.index(item[0][1]))):
        rows.append({"op": op_name, "variant": label, "min": min(values), "median": statistics.median(values)})
    return rows


def print_signing(rows: List[Dict[str, object]], ops: int, rounds: int) -> None:
    print(f"@orm_cached through the shared tier: ns per read, {rounds} interleaved rounds of {ops} reads")
    print(f"{'operation':<11} {'variant':<19} {'min ns':>9} {'median ns':>10} {'vs unsigned (min)':>18} "
          f"{'(median)':>9}")
    base = {row["op"]: row for row in rows if row["variant"] == SIGNING_VARIANTS[0][0]}
    for row in rows:
        ref = base.get(row["op"])
        vs_min = f"{row['min'] / ref['min']:.3f}x" if ref else "-"
        vs_med = f"{row['median'] / ref['median']:.3f}x" if ref else "-"
        print(f"{row['op']:<11} {row['variant']:<19} {row['min']:>9.0f} {row['median']:>10.0f} {vs_min:>18} "
              f"{vs_med:>9}")


# -- running ----------------------------------------------------------------------------------------

def seed(engine) -> None:
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with sessionmaker(engine)() as session:
        session.add_all(Setting(key=f"setting.{i}", value=f"value {i}") for i in range(20))
        session.add(Setting(key="site.title", value="The benchmark shop"))
        session.add_all(
            Partner(id=i, name=f"partner {i}", email=f"p{i}@example.org", city=f"city {i % 50}")
            for i in range(1, RECORDS + 1)
        )
        session.commit()


def run_backend(label: str, url: str, requests: int, creator=None,
                redis_url: Optional[str] = None, async_engine: Optional[Callable] = None) -> List[Dict[str, object]]:
    engine = create_engine(url, creator=creator) if creator else create_engine(url)
    statements = [0]

    @event.listens_for(engine, "before_cursor_execute")
    def count(*args) -> None:
        statements[0] += 1

    registry = Registry(f"bench-{uuid.uuid4().hex[:8]}")
    orm_cache = OrmCache(registry, Base.metadata)
    factory = sessionmaker(engine)
    orm_cache.watch(factory)
    orm_cache.register(App)
    setups = [(name, run, factory, orm_cache) for name, run in VARIANTS]
    caches = [orm_cache]
    if redis_url:
        shared_registry = Registry(f"bench-{uuid.uuid4().hex[:8]}")
        shared_cache = OrmCache(shared_registry, Base.metadata, redis_url=redis_url,
                               secret=os.urandom(32))  # pickle values are authenticated
        shared_factory = sessionmaker(engine)
        shared_cache.watch(shared_factory)
        shared_cache.register(App)
        caches.append(shared_cache)
        setups.append(("redis-tier+record", request_orm_cached, shared_factory, shared_cache))
    rows = []
    try:
        seed(engine)
        for name, run, factory, orm_cache in setups:
            expected = run(factory, orm_cache, 0)

            def run_round(ns: range) -> None:
                for n in ns:
                    run(factory, orm_cache, n)

            queries, us = measure(run_round, requests, statements)
            assert run(factory, orm_cache, 0) == expected
            rows.append({"backend": label, "variant": name, "queries": queries, "us": us})
        if async_engine is not None:
            rows += run_async(f"{label} async", async_engine(), requests)
    finally:
        for cache in caches:
            cache.close()
            Registry.delete(cache.registry.db_name)
        Base.metadata.drop_all(engine)
        engine.dispose()
    return rows


def measure(run_round: Callable[[range], None], requests: int, statements: List[int]) -> Tuple[float, float]:
    """Statements and microseconds per request: ``run_round(ns)`` runs requests ``ns``; the
    best of ``ROUNDS`` rounds after a warm-up."""
    run_round(range(min(20, requests)))  # warm-up: pool, caches, statement cache
    statements[0] = 0
    best = float("inf")
    per_round = max(1, requests // ROUNDS)
    for round_ in range(ROUNDS):  # the best round: the machine may be busy with others
        start = time.perf_counter()
        run_round(range(round_ * per_round, (round_ + 1) * per_round))
        best = min(best, (time.perf_counter() - start) / per_round)
    return statements[0] / (per_round * ROUNDS), best * 1e6


def run_async(label: str, engine, requests: int) -> List[Dict[str, object]]:
    """The async variants on ``engine`` (an AsyncEngine on the seeded database), in one event loop."""
    import asyncio

    from sqlalchemy.ext.asyncio import async_sessionmaker

    statements = [0]

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def count(*args) -> None:
        statements[0] += 1

    registry = Registry(f"bench-{uuid.uuid4().hex[:8]}")
    orm_cache = OrmCache(registry, Base.metadata)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    orm_cache.watch(maker)
    orm_cache.register(AsyncApp)
    loop = asyncio.new_event_loop()
    rows = []
    try:
        for name, request in ASYNC_VARIANTS:
            expected = loop.run_until_complete(request(maker, orm_cache, 0))

            async def requests_of(ns: range) -> None:
                for n in ns:
                    await request(maker, orm_cache, n)

            queries, us = measure(lambda ns: loop.run_until_complete(requests_of(ns)), requests, statements)
            assert loop.run_until_complete(request(maker, orm_cache, 0)) == expected
            rows.append({"backend": label, "variant": name, "queries": queries, "us": us})
    finally:
        orm_cache.close()
        Registry.delete(registry.db_name)
        loop.run_until_complete(engine.dispose())
        loop.close()
    return rows


@contextlib.contextmanager
def private_server(kind: str) -> Iterator[str]:
    """A throw-away PostgreSQL (its DSN) or Redis (its URL) from tests/support/servers.py."""
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
    from support import servers

    server = servers.PostgresServer() if kind == "postgres" else servers.RedisServer()
    server.setup()
    try:
        yield server.dsn if kind == "postgres" else server.url
    finally:
        server.teardown()


def print_table(rows: List[Dict[str, object]]) -> None:
    print(f"{'backend':<16} {'variant':<19} {'queries/request':>16} {'us/request':>11} {'vs N+1':>7}")
    base: Dict[str, float] = {}
    for row in rows:
        if row["variant"] == VARIANTS[0][0]:
            base[row["backend"]] = row["us"]
        speedup = base[row["backend"]] / row["us"]
        print(f"{row['backend']:<16} {row['variant']:<19} {row['queries']:>16.1f} {row['us']:>11.0f} {speedup:>6.1f}x")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per variant")
    parser.add_argument("--postgres", metavar="DSN", help="use this PostgreSQL instead of a private one")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--no-async", action="store_true", help="without the AsyncSession variants")
    parser.add_argument("--redis", nargs="?", const="private", metavar="URL",
                        help="add the Redis shared tier (a private server unless URL is given)")
    parser.add_argument("--signing", action="store_true",
                        help="only the cost of signing on the shared tier (private Redis unless --redis URL)")
    parser.add_argument("--rounds", type=int, default=15, help="--signing: interleaved rounds")
    parser.add_argument("--ops", type=int, default=200, help="--signing: reads per round")
    args = parser.parse_args(argv)

    if args.signing:
        with contextlib.ExitStack() as stack:
            redis_url = args.redis if args.redis not in (None, "private") else \
                stack.enter_context(private_server("redis"))
            print_signing(run_signing(redis_url, args.ops, args.rounds), args.ops, args.rounds)
        return 0
    rows = []
    with contextlib.ExitStack() as stack:
        redis_url = None
        if args.redis:
            redis_url = args.redis if args.redis != "private" else stack.enter_context(private_server("redis"))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'bench.sqlite')
            rows += run_backend("sqlite", f"sqlite:///{path}", args.requests, redis_url=redis_url,
                                async_engine=None if args.no_async else lambda: create_async_engine(
                                    f"sqlite+aiosqlite:///{path}"))
        if not args.no_postgres:
            import psycopg

            dsn = args.postgres or stack.enter_context(private_server("postgres"))
            rows += run_backend("postgresql", "postgresql+psycopg://", args.requests,
                                creator=lambda: psycopg.connect(dsn), redis_url=redis_url,
                                async_engine=None if args.no_async else lambda: create_async_engine(
                                    "postgresql+psycopg://", async_creator=lambda: psycopg.AsyncConnection.connect(dsn)))
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
