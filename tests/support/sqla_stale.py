"""Processes, a TCP proxy and counters for the stale-read tests (no tests here).

Stale means: a transaction that began after the writer's ``commit()`` returned read a value older
than that commit. The writer publishes the last value whose ``commit()`` returned in a shared
integer (``floor``); a reader reads the floor before it begins its transaction, so any value below
it is stale.
"""
from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from typing import Any, Dict, Optional

from sqlalchemy import create_engine, event, select
from sqlalchemy.orm import sessionmaker

from ormcache.sqlalchemy import orm_cached
from support.sqla import Base, Country, User, Worker, make_engine, serve

TIMEOUT = 60


class StaleApp:
    def __init__(self, orm_cache, session):
        self.orm_cache, self.session = orm_cache, session

    @orm_cached(policy="on-table-change:users")
    @property
    def version(self):
        return int(self.session.scalar(select(User.name).where(User.id == 1)))


def options(kind: str, where: str, **extra: Any) -> Dict[str, Any]:
    """What a process needs to open its caches; ``extra``: signaling ("postgres", "redis"),
    signaling_dsn, redis_url, redis_prefix, shared (bool), isolation, shared_timeout."""
    opts = {"kind": kind, "where": where, "db_name": f"stale-{uuid.uuid4().hex[:8]}",
            "signaling": "postgres", "signaling_dsn": None, "redis_url": None, "redis_prefix": None,
            "shared": False, "isolation": None, "shared_timeout": None}
    opts.update(extra)
    return opts


def open_caches(opts: Dict[str, Any]):
    """Engine, sessionmaker and OrmCache of one process."""
    from ormcache.registry import Registry
    from ormcache.signaling import PostgresSignaling, RedisSignaling
    from ormcache.sqlalchemy import OrmCache

    registry = Registry(opts["db_name"])
    if opts["signaling"] == "redis":
        registry.signaling = RedisSignaling(opts["redis_url"], key_prefix=f"{opts['redis_prefix']}{{db_name}}:")
    elif opts["signaling"] == "postgres":
        registry.signaling = PostgresSignaling(opts["signaling_dsn"] or opts["where"], connect_timeout=2)
    else:
        registry.signaling = None  # this process only
    if opts["kind"] == "postgresql":
        import psycopg

        # pre-ping: the tests restart the server under a process that keeps running
        engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(opts["where"]),
                               pool_pre_ping=True)
    else:
        engine = make_engine(opts["kind"], opts["where"])
        # SQLAlchemy's recipe for pysqlite: real BEGIN, so that SAVEPOINT/RELEASE nest in it
        event.listen(engine, "connect", _sqlite_manual_transactions)
        event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN"))
    if opts["isolation"]:
        engine = engine.execution_options(isolation_level=opts["isolation"])
    factory = sessionmaker(engine)
    cache = OrmCache(registry, Base.metadata, redis_url=opts["redis_url"] if opts["shared"] else None,
                     secret=b"test secret",
                     redis_prefix=f"{opts['redis_prefix']}{{db_name}}:orm_cached:")
    if cache.shared is not None and opts["shared_timeout"]:
        kwargs = cache.shared.client.connection_pool.connection_kwargs
        kwargs["socket_timeout"] = kwargs["socket_connect_timeout"] = opts["shared_timeout"]
    if opts.get("after_commit_delay"):
        # an application hook, registered before the OrmCache's: it runs first, slowly
        event.listen(factory, "after_commit", lambda session: time.sleep(opts["after_commit_delay"]))
    cache.watch(factory)
    cache.register(StaleApp)
    return engine, factory, cache


def _sqlite_manual_transactions(dbapi_connection, record) -> None:
    dbapi_connection.isolation_level = None


def close_caches(engine, cache) -> None:
    from ormcache.registry import Registry

    cache.close()
    if cache.registry.signaling is not None:
        cache.registry.signaling.close()
    engine.dispose()
    Registry.delete(cache.registry.db_name)


def seed(factory) -> None:
    with factory() as session:
        session.add(User(id=1, name="0"))
        session.add(Country(id=1, code="CH", name="0"))
        session.commit()


def read(factory, cache):
    """One unit of work: (orm_cached value, full-table value)."""
    with factory() as session:
        version = StaleApp(cache, session).version
        country = int(Country.by_key(session, "CH").name)
        session.commit()
    return version, country


def write(factory, value: int) -> None:
    with factory() as session:
        session.get(User, 1).name = str(value)
        Country.by_key(session, "CH").name = str(value)
        session.commit()


# -- hammer readers --------------------------------------------------------------------------

def read_loop(factory, cache, floor, stop, threads: int):
    """``threads`` readers until ``stop``: (reads, stale, examples, errors)."""
    counts = {"reads": 0, "stale": 0}
    examples: list = []
    errors: list = []

    def run() -> None:
        try:
            while not stop.is_set():
                low = floor.value  # every commit up to this one returned before we begin
                version, country = read(factory, cache)
                counts["reads"] += 1
                if version < low or country < low:
                    counts["stale"] += 1
                    if len(examples) < 5:
                        examples.append((low, version, country))
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            errors.append(repr(exc))

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    return workers, counts, examples, errors


def hammer_reader(opts, floor, stop, results, ready, threads: int = 2) -> None:
    """Child process: ``threads`` readers until ``stop``; puts (reads, stale, examples, errors)."""
    engine, factory, cache = open_caches(opts)
    read(factory, cache)
    with ready.get_lock():
        ready.value += 1
    workers, counts, examples, errors = read_loop(factory, cache, floor, stop, threads)
    for worker in workers:
        worker.join(TIMEOUT)
    results.put((counts["reads"], counts["stale"], examples, errors))
    close_caches(engine, cache)


def write_and_read(factory, cache, floor, stop, duration: float, local_readers: int = 2):
    """What the writing process of ``hammer()`` does by default: write for ``duration`` seconds
    while ``local_readers`` threads read; returns (writes, (reads, stale, examples, errors))."""
    local = read_loop(factory, cache, floor, stop, local_readers)
    writes = 0
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        writes += 1
        write(factory, writes)
        floor.value = writes  # commit() returned
    stop.set()
    for worker in local[0]:
        worker.join(TIMEOUT)
    return writes, (local[1]["reads"], local[1]["stale"], local[2], local[3])


def hammer(opts, duration: float, readers: int = 2, local_readers: int = 2, here=write_and_read):
    """Write in this process for ``duration`` seconds while ``readers`` processes (two threads
    each) and ``local_readers`` threads of this process read; returns (writes, reads, stale,
    examples). ``here(factory, cache, floor, stop, duration, local_readers)``: what this process
    does (by default ``write_and_read``), on the seeded database."""
    ctx = multiprocessing.get_context("spawn")
    floor, stop, results = ctx.Value("q", 0, lock=False), ctx.Event(), ctx.Queue()
    ready = ctx.Value("i", 0)
    engine, factory, cache = open_caches(opts)
    seed(factory)
    processes = [ctx.Process(target=hammer_reader, args=(opts, floor, stop, results, ready), daemon=True)
                 for _ in range(readers)]
    try:
        for process in processes:
            process.start()
        assert wait_until(lambda: ready.value == readers, timeout=TIMEOUT), "readers did not start"
        writes, local = here(factory, cache, floor, stop, duration, local_readers)
        stop.set()
        outcomes = [results.get(timeout=TIMEOUT) for _ in processes]
        outcomes.append(local)
    finally:
        stop.set()
        for process in processes:
            process.join(TIMEOUT)
            if process.is_alive():
                process.kill()
        close_caches(engine, cache)
    errors = [error for outcome in outcomes for error in outcome[3]]
    assert errors == []
    return (writes, sum(o[0] for o in outcomes), sum(o[1] for o in outcomes),
            [e for o in outcomes for e in o[2]])


# -- a process answering commands --------------------------------------------------------------

def command_worker(conn, opts) -> None:
    engine, factory, cache = open_caches(opts)

    def answer(command):
        name, *args = command
        if name == "read":
            return read(factory, cache)
        if name == "write":
            if cache.shared is not None and opts.get("fresh_shared_connection"):
                cache.shared.client.connection_pool.disconnect()  # it connects anew
            write(factory, args[0])
            return None
        raise ValueError(name)

    serve(conn, answer, lambda: close_caches(engine, cache))


class Process(Worker):
    """A process running ``command_worker``; every wait is bounded."""

    def __init__(self, opts) -> None:
        super().__init__(opts, target=command_worker)


def dsn_port(dsn: str) -> int:
    return int(dict(part.split("=", 1) for part in dsn.split())["port"])


def with_port(dsn: str, port: int) -> str:
    parts = dict(part.split("=", 1) for part in dsn.split())
    parts["port"] = str(port)
    return " ".join(f"{k}={v}" for k, v in parts.items())


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> Optional[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None
