"""Models, engines and SQL counting shared by the SQLAlchemy tests (no tests here).

The engine fixture runs each test on SQLite (a file, so several connections and processes share
it) and on the private PostgreSQL server of ``tests/support/servers.py``.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator, List

import pytest
from sqlalchemy import ForeignKey, String, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ormcache.sqlalchemy import FullTableCache, OrmCache, orm_cached


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    email: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[str] = mapped_column(String(20), default="member")
    karma: Mapped[int] = mapped_column(default=0)


class Setting(Base):
    __tablename__ = "settings"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(50), unique=True)
    value: Mapped[str] = mapped_column(String(100))


class Post(Base):
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(100))


class Country(FullTableCache, Base):
    __tablename__ = "countries"
    __cache_key__ = "code"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(2), unique=True)
    name: Mapped[str] = mapped_column(String(50))

    @classmethod
    def cache_create(cls, session, key):
        return cls(code=key, name=f"created {key}")


def make_engine(kind: str, where: str):
    """An engine on SQLite (``where`` is a file path) or PostgreSQL (``where`` is a DSN)."""
    if kind == "sqlite":
        return create_engine(f"sqlite:///{where}")
    import psycopg

    return create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(where))


def engine_url(request, tmp_path, kind: str) -> str:
    if kind == "sqlite":
        return str(tmp_path / "test.sqlite")
    return request.getfixturevalue("pg_dsn")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """``(kind, where)`` of a fresh database with the test tables."""
    kind = request.param
    where = engine_url(request, tmp_path, kind)
    engine = make_engine(kind, where)
    Base.metadata.create_all(engine)
    engine.dispose()
    yield kind, where


@pytest.fixture
def engine(db):
    engine = make_engine(*db)
    yield engine
    engine.dispose()


class QueryCounter:
    """Counts the SQL statements an engine sends (an engine event, so nothing is missed)."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.statements: List[str] = []
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)

    @property
    def selects(self) -> List[str]:
        return [s for s in self.statements if s.lstrip().upper().startswith("SELECT")]

    @contextlib.contextmanager
    def counting(self) -> Iterator["QueryCounter"]:
        self.statements.clear()
        yield self

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)


@pytest.fixture
def queries(engine):
    counter = QueryCounter(engine)
    yield counter
    counter.close()


def add_users(session, n: int, start: int = 1) -> List[int]:
    ids = list(range(start, start + n))
    session.add_all(User(id=i, name=f"user{i}", email=f"u{i}@example.org", karma=i) for i in ids)
    session.commit()
    return ids


# -- another process: a worker answering commands over a pipe (multiprocessing, spawn) -----------

class SharedApp:
    """The application object of the cross-process tests."""

    computed = 0

    def __init__(self, orm_cache, session):
        self.orm_cache, self.session = orm_cache, session

    @orm_cached(policy="on-table-change:users")
    @property
    def user_names(self):
        import os

        from sqlalchemy import select

        SharedApp.computed += 1
        names = tuple(self.session.scalars(select(User.name).order_by(User.id)))
        return {"pid": os.getpid(), "names": names}


def open_cache(kind, where, db_name, redis_url, signaling, shared, serializer="pickle", redis_prefix=None):
    """Engine, sessionmaker and OrmCache of one process, as an application would set them up."""
    from ormcache.registry import Registry
    from ormcache.signaling import PostgresSignaling, RedisSignaling

    registry = Registry(db_name)
    if signaling == "redis":
        registry.signaling = RedisSignaling(redis_url, key_prefix=f"{redis_prefix}{{db_name}}:")
    else:
        registry.signaling = PostgresSignaling(where)
    engine = make_engine(kind, where)
    cache = OrmCache(registry, Base.metadata, redis_url=redis_url if shared else None, serializer=serializer,
                     secret=b"test secret",
                     redis_prefix=f"{redis_prefix}{{db_name}}:orm_cached:")
    return engine, watched(cache, engine, SharedApp), cache


def watched(cache, engine, *apps):
    """A new sessionmaker of ``engine``, watched by ``cache``, which caches the members of
    ``apps``."""
    from sqlalchemy.orm import sessionmaker

    factory = sessionmaker(engine)
    cache.watch(factory)
    for app in apps:
        cache.register(app)
    return factory


@contextlib.contextmanager
def cache_watching(engine, metadata, *apps):
    """``(cache, factory)``: an ``OrmCache`` of ``metadata`` on a fresh registry, caching the
    members of ``apps``, and the new sessionmaker of ``engine`` it watches (``watched``); the
    cache closed and the registry deleted after."""
    import uuid

    from ormcache.registry import Registry

    registry = Registry(f"test-{uuid.uuid4().hex[:8]}")
    cache = OrmCache(registry, metadata)
    try:
        yield cache, watched(cache, engine, *apps)
    finally:
        cache.close()
        Registry.delete(registry.db_name)


def close_cache(engine, cache):
    cache.close()
    cache.registry.signaling.close()
    engine.dispose()
    from ormcache.registry import Registry

    Registry.delete(cache.registry.db_name)


def run_command(factory, cache, counter, command):
    """One unit of work; returns what it saw and how many SQL statements it sent."""
    name, *args = command
    counter.statements.clear()
    with factory() as session:
        if name == "user_names":
            before = SharedApp.computed
            value = SharedApp(cache, session).user_names
            result = (value, SharedApp.computed - before)
        elif name == "country":
            result = Country.by_key(session, args[0]).name
        elif name == "rename_user":
            session.get(User, args[0]).name = args[1]
            session.commit()
            result = None
        elif name == "rename_country":
            Country.by_key(session, args[0]).name = args[1]
            session.commit()
            result = None
        else:
            raise ValueError(name)
    return result, counter.count


def serve(conn, answer, close=None) -> None:
    """A worker's loop: says it is ready, then sends ``answer(command)`` for each command until
    ``None`` (an exception is reported to the parent, which fails the test). With ``close``,
    whatever happens: ``close()`` (the worker's caches), then the end of the pipe."""
    try:
        conn.send("ready")
        while True:
            command = conn.recv()
            if command is None:
                return
            try:
                conn.send(("ok", answer(command)))
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
                conn.send(("error", repr(exc)))
    finally:
        if close is not None:
            try:
                close()
            finally:
                conn.close()


def worker(conn, *args):
    """Child process main: answer commands until ``None``."""
    engine, factory, cache = open_cache(*args)
    counter = QueryCounter(engine)

    def close():
        counter.close()
        close_cache(engine, cache)

    serve(conn, lambda command: run_command(factory, cache, counter, command), close)


class Worker:
    """The parent's handle on a worker process; every wait is bounded."""

    TIMEOUT = 60

    def __init__(self, *args, target=worker):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=target, args=(child, *args), daemon=True)
        self.process.start()
        child.close()
        assert self._recv() == "ready"

    def _recv(self):
        if not self.conn.poll(self.TIMEOUT):
            raise TimeoutError("worker process did not answer")
        return self.conn.recv()

    def __call__(self, *command):
        self.conn.send(command)
        status, result = self._recv()
        if status != "ok":
            raise AssertionError(f"worker failed on {command}: {result}")
        return result

    def stop(self) -> int:
        """Ask it to exit (at-exit handlers run) and wait; returns its exit code."""
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(self.TIMEOUT)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()
        return self.process.exitcode


class Exploit:
    """Unpickling it runs ``touch marker``: what a shared tier must never unpickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def pg(pg_dsn):
    """The private PostgreSQL's DSN, its database holding the tables of ``Base``."""
    engine = make_engine("postgresql", pg_dsn)
    Base.metadata.create_all(engine)
    engine.dispose()
    return pg_dsn
