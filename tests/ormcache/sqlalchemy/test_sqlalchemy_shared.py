"""Across processes: a Redis tier shared by two processes, a full-table cache invalidated by
signaling, and the shared tier's rules (versions, serialisation) on a real Redis."""
from __future__ import annotations

import threading
import uuid

import pytest

from ormcache.sqlalchemy import SharedCacheWarning, orm_cached
from ormcache.sqlalchemy.shared import MOVED, NOT_FOUND, STORED, SharedTier
from support.sqla import (  # noqa: F401
    Country,
    QueryCounter,
    SharedApp,
    User,
    Worker,
    close_cache,
    db,
    open_cache,
    run_command,
)


class Unpicklable(SharedApp):
    @orm_cached(policy="on-table-change:users")
    @property
    def with_lock(self):
        SharedApp.computed += 1
        return {"lock": threading.Lock(), "users": self.session.query(User).count()}


@pytest.fixture
def parent(request, db):
    """This process's engine, sessionmaker, OrmCache and SQL counter; seeded tables."""
    created = []

    def make(signaling, shared, serializer="pickle"):
        kind, where = db
        url = request.getfixturevalue("redis_server").url if "redis" in (signaling, shared) else None
        prefix = request.getfixturevalue("redis_prefix") if url else None
        db_name = f"test-{uuid.uuid4().hex[:8]}"
        args = (kind, where, db_name, url, signaling, shared == "redis", serializer, prefix)
        engine, factory, cache = open_cache(*args)
        counter = QueryCounter(engine)
        created.append((engine, cache, counter))
        with factory() as session:
            session.add_all([User(id=1, name="user1"), User(id=2, name="user2")])
            session.add(Country(code="CH", name="Switzerland"))
            session.commit()
        return factory, cache, counter, args

    yield make
    for engine, cache, counter in created:
        counter.close()
        close_cache(engine, cache)


@pytest.mark.parametrize("serializer", ["pickle", "msgpack"])
def test_two_processes_share_the_redis_tier(parent, serializer):
    factory, cache, counter, args = parent("redis", "redis", serializer)
    other = Worker(*args)
    try:
        (value, computed), _ = other("user_names")
        assert computed == 1 and value == {"pid": other.process.pid, "names": ("user1", "user2")}
        # computed by the other process, read here from Redis: no SQL at all
        (mine, computed), sql = run_command(factory, cache, counter, ("user_names",))
        assert (mine, computed, sql) == (value, 0, 0)
        (mine, computed), sql = run_command(factory, cache, counter, ("user_names",))
        assert (mine, computed, sql) == (value, 0, 0)  # the local tier, validated by the version
        # a change committed here: the other process computes again, we reuse its value
        run_command(factory, cache, counter, ("rename_user", 1, "renamed"))
        (value, computed), _ = other("user_names")
        assert computed == 1 and value["names"] == ("renamed", "user2")
        (mine, computed), _ = run_command(factory, cache, counter, ("user_names",))
        assert (mine, computed) == (value, 0)
        # and the other way round
        other("rename_user", 2, "changed there")
        (mine, computed), _ = run_command(factory, cache, counter, ("user_names",))
        assert computed == 1 and mine["names"] == ("renamed", "changed there")
        (value, computed), _ = other("user_names")
        assert (value, computed) == (mine, 0)
    finally:
        other.stop()


def test_full_table_cache_across_processes(parent, db):
    signaling = "redis" if db[0] == "sqlite" else "postgres"
    factory, cache, counter, args = parent(signaling, None)
    other = Worker(*args)
    try:
        name, sql = other("country", "CH")
        assert name == "Switzerland" and sql == 1
        assert other("country", "CH") == ("Switzerland", 0)  # from memory
        run_command(factory, cache, counter, ("rename_country", "CH", "Schweiz"))
        # the other process's next unit of work starts with check_signaling(): table reloaded
        assert other("country", "CH") == ("Schweiz", 1)
        assert other("country", "CH") == ("Schweiz", 0)
    finally:
        other.stop()


def test_unserialisable_value_stays_local_with_a_warning(parent):
    factory, cache, counter, args = parent("redis", "redis")
    cache.register(Unpicklable)
    with factory() as session:
        app = Unpicklable(cache, session)
        before = SharedApp.computed
        with pytest.warns(SharedCacheWarning, match="with_lock: value of type dict cannot be serialised with pickle"):
            value = app.with_lock
        assert app.with_lock is value  # kept locally, no second warning
        assert SharedApp.computed == before + 1
        session.get(User, 1).name = "x"
        session.commit()
        assert app.with_lock is not value  # still invalidated (the version moved)


def test_shared_tier_versions(redis_server, redis_prefix):
    tier = SharedTier(redis_server.url, prefix=redis_prefix, secret=b"test secret")
    try:
        version, value = tier.get("v", None)
        assert value is NOT_FOUND
        assert tier.store("v", None, version, (1, 2)) == STORED
        assert tier.get("v", None) == (version, (1, 2))
        assert tier.get("v", "admin")[1] is NOT_FOUND  # one value per role
        # a writer invalidates while a reader computes: the reader's value is not stored
        version, _ = tier.get("v", "admin")
        tier.invalidate(["v"])
        assert tier.store("v", "admin", version, "old rows") == MOVED
        new_version, value = tier.get("v", "admin")
        assert value is NOT_FOUND and new_version != version
        assert tier.get("v", None)[1] is NOT_FOUND  # every role dropped
    finally:
        tier.close()


def test_shared_tier_keeps_invalidations_while_redis_is_down(redis_server, redis_prefix):
    tier = SharedTier(redis_server.url, prefix=redis_prefix, secret=b"test secret")
    # (issue 9: a failed tier rests retry_interval seconds; 0 here, as the server is back at once)
    down = SharedTier("redis://127.0.0.1:1/0", prefix=redis_prefix, socket_timeout=0.5,
                      secret=b"test secret", retry_interval=0)
    try:
        version, _ = tier.get("k", None)
        tier.store("k", None, version, "cached")
        import redis

        with pytest.raises(redis.RedisError):
            down.invalidate(["k"])
        assert down._backlog == {"k"}
        down.client = tier.client  # the server is back
        assert down.version("k") != version  # the backlog went first
        assert tier.get("k", None)[1] is NOT_FOUND
    finally:
        tier.close()


def test_unknown_serializer(redis_server):
    with pytest.raises(ValueError, match="unknown serializer 'json'"):
        SharedTier(redis_server.url, serializer="json")


def test_orm_cached_local_tiers_across_processes(parent, db):
    """No shared tier: each process computes its own value, and drops it when another process
    commits a change its policy matches (published through the registry's signaling)."""
    signaling = "postgres" if db[0] == "postgresql" else "redis"
    factory, cache, counter, args = parent(signaling, None)
    other = Worker(*args)
    try:
        (value, computed), _ = other("user_names")
        assert computed == 1 and value["names"] == ("user1", "user2")
        (value, computed), sql = other("user_names")
        assert computed == 0 and sql == 0
        (mine, computed), _ = run_command(factory, cache, counter, ("user_names",))
        assert computed == 1 and mine["pid"] != value["pid"]  # no shared tier: computed here
        run_command(factory, cache, counter, ("rename_user", 2, "renamed"))
        (value, computed), _ = other("user_names")
        assert computed == 1 and value["names"] == ("user1", "renamed")
        other("rename_user", 1, "first")
        (mine, computed), _ = run_command(factory, cache, counter, ("user_names",))
        assert computed == 1 and mine["names"] == ("first", "renamed")
    finally:
        other.stop()
