"""Issue 18, item 5: publishing that the writer cannot lose. An ambiguous COMMIT (the server
committed, its answer was lost) publishes anyway; a manual two-phase commit publishes at
COMMIT PREPARED, not at the connection's next BEGIN, and is not lost after ``engine.dispose()``.

Before the fix: an ambiguous COMMIT with Redis signaling or ``record_in_transaction=False``,
other process stale 5 of 5 rounds (and still after 2.5 s); two-phase commit with Redis
signaling, other process stale 5 of 5. After: 0."""
from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import create_engine

from support.sqla_stale18 import Process18, commit_cutter, open18, true_users
from support.sqla_stale import close_caches, dsn_port, options, seed, with_port
from support.sqla import Base, Country, User, make_engine
from support.sqla import pg  # noqa: F401 - fixture

ROUNDS = 5


@pytest.mark.timeout(120)
@pytest.mark.parametrize("signaling", ["redis", "postgres-after-commit"])
def test_an_ambiguous_commit_publishes_anyway(pg, redis_server, redis_prefix, signaling):
    opts = options("postgresql", pg, signaling="redis" if signaling == "redis" else "postgres",
                   redis_url=redis_server.url, redis_prefix=redis_prefix)
    proxy = commit_cutter(dsn_port(pg)).start()
    engine, factory, cache = open18(opts)
    if signaling == "postgres-after-commit":
        cache.registry.signaling.record_in_transaction = False
    through = with_port(pg, proxy.port)
    writer = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(through), pool_pre_ping=True)
    from sqlalchemy.orm import sessionmaker

    factory_through = sessionmaker(writer)
    cache.watch(factory_through)
    seed(factory)
    reader = Process18(opts)
    raised, stale = 0, []
    try:
        for i in range(1, ROUNDS + 1):
            reader("read")  # cached there
            proxy.armed = True
            proxy.cut.clear()
            with factory_through() as session:
                session.get(User, 1).name = str(i)
                try:
                    session.commit()
                except Exception:  # noqa: BLE001 - the answer was lost
                    raised += 1
            assert proxy.cut.wait(10)
            proxy.start()
            assert true_users(engine)[0] == (1, str(i))  # the server did commit
            seen = reader("read")
            if seen != true_users(engine):
                stale.append((i, seen))
        time.sleep(2.5)
        later = reader("read") == true_users(engine)
    finally:
        reader.stop()
        proxy.stop()
        writer.dispose()
        close_caches(engine, cache)
    print(f"ambiguous COMMIT, {signaling}: {raised} of {ROUNDS} commits raised, {len(stale)} stale; "
          f"fresh 2.5 s later: {later}")
    assert raised == ROUNDS
    assert stale == [] and later


@pytest.fixture(scope="module")
def pg_2pc():
    """A database of a private PostgreSQL of its own that allows prepared transactions."""
    from support.servers import TwoPhasePostgresServer

    with TwoPhasePostgresServer() as server:
        dsn = server.create_database("app")
        engine = make_engine("postgresql", dsn)
        Base.metadata.create_all(engine)
        engine.dispose()
        yield dsn


@pytest.mark.timeout(120)
@pytest.mark.parametrize("shared", [False, True])
def test_a_manual_two_phase_commit_publishes_at_commit_prepared(pg_2pc, redis_server, redis_prefix, shared):
    opts = options("postgresql", pg_2pc, signaling="redis", shared=shared, redis_url=redis_server.url,
                   redis_prefix=redis_prefix)
    engine, factory, cache = open18(opts)
    with engine.begin() as connection:
        connection.execute(User.__table__.delete())
        connection.execute(Country.__table__.delete())
    seed(factory)
    reader = Process18(opts)
    stale = []
    try:
        for i in range(1, ROUNDS + 1):
            reader("read")
            with engine.connect() as connection:
                outer = connection.begin_twophase()
                session = factory(bind=connection, join_transaction_mode="create_savepoint")
                session.get(User, 1).name = str(i)
                session.commit()
                session.close()
                outer.prepare()
                outer.commit()
            if i % 2:
                engine.dispose()  # no next BEGIN on that connection, ever
            seen = reader("read")
            if seen != true_users(engine):
                stale.append((i, seen))
    finally:
        reader.stop()
        close_caches(engine, cache)
    print(f"two-phase commit by hand, Redis signaling, shared tier {shared}: {len(stale)} of {ROUNDS} stale")
    assert stale == []
