"""Versions read in the reader's snapshot (issue 18, item 3): a value computed from a snapshot
older than a signal this process applied is never stored, whenever the session's transaction
began (the external-transaction recipe with ``join_transaction_mode="create_savepoint"`` under
REPEATABLE READ or SERIALIZABLE: the connection's snapshot predates the session's check).

Before: the writer's process served the old value in 10 of 10 rounds, under both levels."""
from __future__ import annotations

import pytest

from support.capture import CaptureApp, close_caches, open_caches, options, orm_write, read, seed, truth
from support.sqla import pg  # noqa: F401 - fixture

ROUNDS = 10


@pytest.mark.timeout(300)
@pytest.mark.parametrize("isolation", ["REPEATABLE READ", "SERIALIZABLE"])
def test_old_snapshot_joined_by_a_session_stores_nothing(pg, isolation):
    opts = options(pg)
    engine, factory, cache = open_caches(opts)
    seed(pg, factory)
    stale = []
    try:
        for i in range(1, ROUNDS + 1):
            with engine.connect() as connection:
                connection = connection.execution_options(isolation_level=isolation)
                outer = connection.begin()
                connection.exec_driver_sql("SELECT 1")  # the snapshot is taken here
                orm_write(factory, str(i))  # another session commits: this process drops its values
                session = factory(bind=connection, join_transaction_mode="create_savepoint")
                old = CaptureApp(cache, session).users  # computed from the old snapshot
                assert old[0][1] == ("0" if i == 1 else str(i - 1))
                session.close()
                outer.rollback()
            seen = read(factory, cache)  # a transaction that began after the commit returned
            if seen != truth(pg):
                stale.append((i, seen))
    finally:
        close_caches(engine, cache)
    print(f"{isolation}: {len(stale)} of {ROUNDS} rounds stale")
    assert stale == [], f"{len(stale)} of {ROUNDS} rounds stale: {stale[:3]}"


@pytest.mark.timeout(300)
def test_a_fresh_snapshot_still_stores(pg):
    """The check costs no hit: a transaction whose snapshot is up to date stores its values."""
    opts = options(pg)
    engine, factory, cache = open_caches(opts)
    seed(pg, factory)
    try:
        orm_write(factory, "1")
        counter = cache._counters[CaptureApp.__dict__["users"]]
        read(factory, cache)  # computed and stored
        hits = counter.hit
        for _ in range(3):
            read(factory, cache)
        assert counter.hit == hits + 3
    finally:
        close_caches(engine, cache)
