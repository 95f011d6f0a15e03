"""Models, engines and SQL counting shared by the SQLAlchemy tests (no tests here).

The engine fixture runs each test on SQLite (a file, so several connections and processes share
it) and on the private PostgreSQL server of ``tests/servers.py``.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, List

import pytest
from sqlalchemy import ForeignKey, String, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ormcache.sqlalchemy import FullTableCache


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
