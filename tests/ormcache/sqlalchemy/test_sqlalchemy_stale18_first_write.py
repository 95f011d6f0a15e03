"""Issue 18: a bulk or ``text()`` write as the first statement of a session transaction (before
the session autobegins) must invalidate like any other write: in other processes (PostgreSQL and
Redis signaling), through the shared tier in the writer's own process, and inside the writing
transaction (a value read there, then rolled back, is never served afterwards).

Before the fix (the layer holding the invalidated keys replaced at ``after_transaction_create``):
other processes stale 20/20 per kind, the writer's process with the shared tier 20/20, read then
roll back 20/20. After: 0 everywhere."""
from __future__ import annotations

import pytest
from sqlalchemy import insert, update

from support.sqla_stale18 import (
    FIRST_WRITES,
    Process18,
    Stale18App,
    cached_users,
    first_write,
    open18,
    true_users,
)
from support.sqla_stale import close_caches, options, seed
from support.sqla import Base, Country, User, make_engine
from support.sqla import pg  # noqa: F401 - fixture

ROUNDS = 20


def _empty(engine):
    with engine.begin() as connection:
        connection.execute(User.__table__.delete())
        connection.execute(Country.__table__.delete())


def _prepare(factory, kind):
    seed(factory)
    if kind == "delete":
        with factory() as session:
            session.add(User(id=1000, name="0"))
            session.commit()


def _rounds(engine, factory, kind, reader, rounds=ROUNDS):
    """Each round: ``reader()`` caches the value, a first-statement write commits, ``reader()``
    again: stale if it differs from the table. Returns the stale rounds."""
    stale = []
    for i in range(1, rounds + 1):
        reader()
        first_write(factory, kind, i)
        seen, truth = reader(), true_users(engine)
        if seen != truth:
            stale.append((i, seen, truth))
    return stale


@pytest.mark.timeout(180)
@pytest.mark.parametrize("signaling", ["postgres", "redis"])
def test_first_statement_writes_reach_other_processes(pg, redis_server, redis_prefix, signaling):
    counts = {}
    for kind in FIRST_WRITES:
        opts = options("postgresql", pg, signaling=signaling, redis_url=redis_server.url,
                       redis_prefix=redis_prefix)
        engine, factory, cache = open18(opts)
        _empty(engine)
        _prepare(factory, kind)
        reader = Process18(opts)
        try:
            stale = _rounds(engine, factory, kind, lambda: reader("read"))
        finally:
            reader.stop()
            close_caches(engine, cache)
        counts[kind] = len(stale)
    print(f"{signaling} signaling, other process, stale per kind of {ROUNDS}: {counts}")
    assert counts == dict.fromkeys(FIRST_WRITES, 0)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("signaling", ["postgres", "redis"])
def test_first_statement_writes_through_the_shared_tier(pg, redis_server, redis_prefix, signaling):
    counts = {}
    for kind in FIRST_WRITES:
        opts = options("postgresql", pg, signaling=signaling, shared=True, redis_url=redis_server.url,
                       redis_prefix=redis_prefix)
        engine, factory, cache = open18(opts)
        _empty(engine)
        _prepare(factory, kind)
        try:
            stale = _rounds(engine, factory, kind, lambda: cached_users(factory, cache))
        finally:
            close_caches(engine, cache)
        counts[kind] = len(stale)
    print(f"{signaling} signaling, shared tier, writer's process, stale per kind of {ROUNDS}: {counts}")
    assert counts == dict.fromkeys(FIRST_WRITES, 0)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("kind", ["update", "insert", "text"])
def test_first_statement_write_read_then_rolled_back_is_never_served(pg, redis_server, redis_prefix, shared, kind):
    opts = options("postgresql", pg, shared=shared, redis_url=redis_server.url, redis_prefix=redis_prefix)
    engine, factory, cache = open18(opts)
    seed(factory)
    stale = []
    try:
        for i in range(1, ROUNDS + 1):
            committed = cached_users(factory, cache)
            with factory() as session:
                FIRST_WRITES[kind](session, i)
                inside = Stale18App(cache, session).users  # must see its own write
                session.rollback()
            seen = cached_users(factory, cache)
            if inside == committed or seen != true_users(engine):
                stale.append((i, inside, seen))
    finally:
        close_caches(engine, cache)
    print(f"{kind}, shared tier {shared}: read inside then rolled back, {len(stale)} of {ROUNDS} stale")
    assert stale == []


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_first_statement_write_is_a_write_of_the_transaction(kind, tmp_path, request):
    """The pending layer seen right after the first statement holds the invalidated key."""
    where = str(tmp_path / "db.sqlite") if kind == "sqlite" else request.getfixturevalue("pg")
    if kind == "sqlite":
        engine = make_engine(kind, where)
        Base.metadata.create_all(engine)
        engine.dispose()
    engine, factory, cache = open18(options(kind, where, signaling="local"))
    seed(factory)
    try:
        with factory() as session:
            session.execute(update(User).where(User.id == 1).values(name="7"))
            assert Stale18App.users.key in cache.pending(session).keys
            session.execute(insert(User).values(id=2, name="2"))
            session.commit()
        assert cached_users(factory, cache) == ((1, "7"), (2, "2"))
    finally:
        close_caches(engine, cache)
