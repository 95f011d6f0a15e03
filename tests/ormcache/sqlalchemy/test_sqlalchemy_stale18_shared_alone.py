"""Issue 18, item 6: the shared Redis tier without a signaling backend. Its own Redis counters
are the version source (read when a transaction begins): values are computed once for every
process, and a committed write is seen by every process once ``commit()`` returned.

Before the fix: the tier was silently unused (a process that wrote moved its own local
signaling version, so it shared nothing with the others: 21 computations for 10 rounds); after:
at most one per round for all processes."""
from __future__ import annotations

import pytest

from support.sqla_stale18 import Process18, Stale18App, cached_users, open18, true_users
from support.sqla_stale import close_caches, options, seed
from support.sqla import Base, User
from support.sqla import pg  # noqa: F401 - fixture

ROUNDS = 10


@pytest.mark.timeout(120)
@pytest.mark.parametrize("isolation", ["READ COMMITTED", "REPEATABLE READ"])
def test_the_shared_tier_alone_shares_and_invalidates(pg, redis_server, redis_prefix, isolation):
    opts = options("postgresql", pg, signaling="local", shared=True, isolation=isolation,
                   redis_url=redis_server.url, redis_prefix=redis_prefix)
    engine, factory, cache = open18(opts)
    seed(factory)
    before = Stale18App.computed
    others = [Process18(opts), Process18(opts)]
    stale = []
    try:
        for i in range(1, ROUNDS + 1):
            for other in others:
                other("read")
            with factory() as session:
                session.get(User, 1).name = str(i)
                session.commit()
            truth = true_users(engine)
            for other in others:
                for _ in range(2):
                    seen = other("read")
                    if seen != truth:
                        stale.append((i, seen))
            if cached_users(factory, cache) != truth:
                stale.append((i, "writer"))
        computed = [other("computed") for other in others] + [Stale18App.computed - before]
    finally:
        for other in others:
            other.stop()
        close_caches(engine, cache)
    print(f"shared tier alone, {isolation}: {len(stale)} stale reads; computed {computed} times "
          f"(two readers, the writer) for {ROUNDS} rounds (+1 cold)")
    assert stale == []
    # each committed value is computed once for all three processes
    assert sum(computed) <= ROUNDS + 1, computed


@pytest.mark.timeout(120)
def test_the_shared_tier_alone_never_stores_an_old_snapshot_for_others(pg, redis_server, redis_prefix):
    """REPEATABLE READ: a transaction of process B takes its snapshot, the writer commits, B
    computes the value from its old snapshot; process C, beginning after the commit, must not
    be served B's value. Before the fix: 10 of 10 rounds stale; after: 0."""
    opts = options("postgresql", pg, signaling="local", shared=True, isolation="REPEATABLE READ",
                   redis_url=redis_server.url, redis_prefix=redis_prefix)
    engine, factory, cache = open18(opts)
    seed(factory)
    b, c = Process18(opts), Process18(opts)
    stale = []
    try:
        for i in range(1, ROUNDS + 1):
            b("begin")
            with factory() as session:
                session.get(User, 1).name = str(i)
                session.commit()
            b("read_held")  # its old snapshot
            seen = c("read")
            if seen != true_users(engine):
                stale.append((i, seen))
    finally:
        b.stop()
        c.stop()
        close_caches(engine, cache)
    print(f"shared tier alone, REPEATABLE READ, old snapshot stored for others: {len(stale)} of {ROUNDS} stale")
    assert stale == []


def test_a_shared_tier_signaling_cannot_vouch_for_says_so_once(pg, redis_server, redis_prefix, caplog):
    """``check_signaling=False`` and nobody checks: the tier cannot be used (no signaling version);
    before, nothing said so (every value computed in every process, silently); now one warning."""
    import logging

    from ormcache.sqlalchemy import OrmCache

    opts = options("postgresql", pg, shared=True, redis_url=redis_server.url, redis_prefix=redis_prefix)
    engine, factory, cache = open18(opts)
    cache.close()
    cache = OrmCache(cache.registry, Base.metadata, redis_url=redis_server.url, secret=b"test secret",
                     redis_prefix=f"{redis_prefix}unchecked:", check_signaling=False)
    cache.watch(factory)
    cache.register(Stale18App)
    seed(factory)
    caplog.set_level(logging.WARNING, logger="ormcache")
    try:
        for _ in range(3):
            cached_users(factory, cache)
    finally:
        close_caches(engine, cache)
    said = [r.getMessage() for r in caplog.records if "shared tier" in r.getMessage() and "vouch" in r.getMessage()]
    assert len(said) == 1, said
    assert "check_signaling=False" in said[0]
