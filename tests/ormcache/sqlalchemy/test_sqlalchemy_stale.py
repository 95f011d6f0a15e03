"""Never stale: multi-process hammers counting stale reads (a transaction that began after the
writer's commit() returned and read an older value), SQLAlchemy's external-transaction recipe,
and invalidations that must survive a cut signaling path, a server restart in the commit window
and a stalled shared tier, the writer exiting right after."""
from __future__ import annotations

import os
import signal

import pytest
import redis

from support.servers import TcpProxy
from support.sqla_stale import (
    Process,
    close_caches,
    dsn_port,
    hammer,
    open_caches,
    options,
    read,
    seed,
    with_port,
    write,
)
from support.sqla import Base, Country, User, make_engine
from support.sqla import pg  # noqa: F401 - fixture

ROUNDS = 20


# -- hammers -------------------------------------------------------------------------------------

@pytest.mark.timeout(120)
@pytest.mark.parametrize("isolation, signaling, shared, delay", [
    ("READ COMMITTED", "postgres", False, 0),
    ("REPEATABLE READ", "postgres", False, 0),
    ("READ COMMITTED", "postgres", True, 0),
    ("REPEATABLE READ", "postgres", True, 0),
    ("REPEATABLE READ", "redis", True, 0),
    ("READ COMMITTED", "postgres", False, 0.005),  # a 5 ms after_commit hook of the application
    ("REPEATABLE READ", "redis", False, 0.005),
])
def test_hammer_counts_no_stale_read(pg, redis_server, redis_prefix, isolation, signaling, shared, delay):
    opts = options("postgresql", pg, signaling=signaling, shared=shared, isolation=isolation,
                   redis_url=redis_server.url, redis_prefix=redis_prefix, after_commit_delay=delay)
    writes, reads, stale, examples = hammer(opts, duration=4.0)
    print(f"{isolation}, {signaling} signaling, shared tier {shared}, hook {delay}s: {writes} commits, {reads} reads, {stale} stale")
    assert writes >= 10 and reads >= 50, (writes, reads)
    assert stale == 0, f"{stale} of {reads} reads stale (floor, orm_cached, full-table): {examples}"


# -- the external-transaction recipe -------------------------------------------------------------

def _external_rounds(factory, engine, reader, rounds):
    """Write through a session joined to an external transaction; ``reader()`` reads between
    the session's commit and the real COMMIT, and after it. Returns the stale rounds."""
    stale = []
    for i in range(1, rounds + 1):
        with engine.connect() as connection:
            outer = connection.begin()
            session = factory(bind=connection, join_transaction_mode="create_savepoint")
            session.get(User, 1).name = str(i)
            Country.by_key(session, "CH").name = str(i)
            session.commit()  # not the real COMMIT
            session.close()
            assert reader() == (i - 1, i - 1)  # others still see the last committed value
            outer.commit()  # the real COMMIT
        seen = reader()  # began after the real commit returned
        if seen != (i, i):
            stale.append((i, seen))
    return stale


@pytest.mark.timeout(120)
def test_external_transaction_recipe_across_processes(pg):
    opts = options("postgresql", pg)
    engine, factory, cache = open_caches(opts)
    seed(factory)
    reader = Process(opts)
    try:
        stale = _external_rounds(factory, engine, lambda: reader("read"), ROUNDS)
    finally:
        reader.stop()
        close_caches(engine, cache)
    assert stale == [], f"{len(stale)} of {ROUNDS} rounds stale"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_external_transaction_recipe_in_one_process(kind, tmp_path, request):
    where = str(tmp_path / "test.sqlite") if kind == "sqlite" else request.getfixturevalue("pg")
    if kind == "sqlite":
        engine = make_engine(kind, where)
        Base.metadata.create_all(engine)
        engine.dispose()
    opts = options(kind, where, signaling="local")
    engine, factory, cache = open_caches(opts)
    seed(factory)
    try:
        stale = _external_rounds(factory, engine, lambda: read(factory, cache), ROUNDS)
    finally:
        close_caches(engine, cache)
    assert stale == [], f"{len(stale)} of {ROUNDS} rounds stale"


def test_external_transaction_rolled_back_publishes_nothing(pg):
    opts = options("postgresql", pg)
    engine, factory, cache = open_caches(opts)
    seed(factory)
    try:
        assert read(factory, cache) == (0, 0)
        with engine.connect() as connection:
            outer = connection.begin()
            session = factory(bind=connection, join_transaction_mode="create_savepoint")
            session.get(User, 1).name = "5"
            session.commit()
            # the same external transaction, a new session transaction: sees its own write
            again = factory(bind=connection, join_transaction_mode="create_savepoint")
            from support.sqla_stale import StaleApp

            assert StaleApp(cache, again).version == 5
            again.close()
            session.close()
            outer.rollback()
        assert read(factory, cache) == (0, 0)
    finally:
        close_caches(engine, cache)


# -- the shared tier follows the signals ---------------------------------------------------------

def _cut_shared_tier(cache):
    cache.shared.client = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.5,
                                               socket_connect_timeout=0.5)


def test_shared_values_are_unreachable_once_the_signal_is_in(pg, redis_server, redis_prefix):
    opts = options("postgresql", pg, shared=True, redis_url=redis_server.url, redis_prefix=redis_prefix)
    engine, factory, cache = open_caches(opts)
    seed(factory)
    reader = Process(opts)
    try:
        assert reader("read") == (0, 0)  # stored in Redis
        assert read(factory, cache) == (0, 0)  # found there
        _cut_shared_tier(cache)  # the writer's invalidation of the tier is lost
        write(factory, 1)
        assert [reader("read") for _ in range(3)] == [(1, 1)] * 3
    finally:
        reader.stop()
        close_caches(engine, cache)


# -- lost invalidations: the writer exits right after ----------------------------------------------

def test_signaling_path_cut_then_the_writer_exits(pg):
    proxy = TcpProxy(dsn_port(pg)).start()
    opts = options("postgresql", pg)
    writer = Process(dict(opts, signaling_dsn=with_port(pg, proxy.port)))
    engine, factory, cache = open_caches(opts)
    try:
        seed(factory)
        assert writer("read") == (0, 0)
        assert read(factory, cache) == (0, 0)
        proxy.stop()  # the writer's signaling connection is gone
        writer("write", 1)
        writer.stop()
        assert [read(factory, cache) for _ in range(9)] == [(1, 1)] * 9
    finally:
        proxy.stop()
        writer.stop()
        close_caches(engine, cache)


def test_server_restart_in_the_commit_window_then_the_writer_exits(pg, postgres_server):
    from sqlalchemy import event

    opts = options("postgresql", pg)
    reader = Process(opts)
    engine, factory, cache = open_caches(opts)
    try:
        seed(factory)
        assert reader("read") == (0, 0)

        def restart_after_commit(session):
            postgres_server.stop()  # right after the COMMIT, before anything else

        # an application hook, registered before the OrmCache's own: it runs first
        event.remove(factory, "after_commit", cache._on_after_commit)
        event.listen(factory, "after_commit", restart_after_commit)
        event.listen(factory, "after_commit", cache._on_after_commit)
        try:
            write(factory, 1)
        except Exception:  # noqa: BLE001 - whatever the writer's publishing makes of it
            pass
        finally:
            event.remove(factory, "after_commit", restart_after_commit)
            if not postgres_server.running:
                postgres_server.start()
        close_caches(engine, cache)  # the writer exits
        engine = None
        assert [reader("read") for _ in range(9)] == [(1, 1)] * 9
    finally:
        if not postgres_server.running:
            postgres_server.start()
        reader.stop()
        if engine is not None:
            close_caches(engine, cache)


def test_shared_tier_stalled_then_the_writer_exits(pg, redis_server, redis_prefix):
    opts = options("postgresql", pg, shared=True, redis_url=redis_server.url, redis_prefix=redis_prefix)
    writer = Process(dict(opts, shared_timeout=0.5, fresh_shared_connection=True))
    engine, factory, cache = open_caches(opts)
    try:
        seed(factory)
        assert writer("read") == (0, 0)
        assert read(factory, cache) == (0, 0)  # from Redis
        os.kill(redis_server.proc.pid, signal.SIGSTOP)
        try:
            writer("write", 1)  # its invalidation of the tier times out
            writer.stop()
        finally:
            os.kill(redis_server.proc.pid, signal.SIGCONT)
        assert [read(factory, cache) for _ in range(9)] == [(1, 1)] * 9
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
        writer.stop()
        close_caches(engine, cache)
