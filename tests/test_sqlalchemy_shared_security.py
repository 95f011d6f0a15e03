"""The shared tier under attack and outage (issue 9): authenticated values, pickle refused without
a secret, stable keys, a deadline with a rest after a failure, no password printed."""
from __future__ import annotations

import os
import pickle
import socket
import threading
import time
import uuid

import pytest
import redis

from ormcache.registry import Registry
from ormcache.sqlalchemy import OrmCache, orm_cached
from ormcache.sqlalchemy import shared as shared_module
from ormcache.sqlalchemy.shared import SharedTier
from test_sqlalchemy_support import (  # noqa: F401
    Base,
    QueryCounter,
    SharedApp,
    User,
    Worker,
    close_cache,
    db,
    make_engine,
    open_cache,
    run_command,
)


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_without_a_secret_is_refused(redis_server):
    registry = Registry(f"test-{uuid.uuid4().hex[:8]}")
    try:
        with pytest.raises(ValueError, match="pickle.*needs a secret.*run code"):
            OrmCache(registry, Base.metadata, redis_url=redis_server.url)
        with pytest.raises(ValueError, match="needs a secret"):
            SharedTier(redis_server.url)
        with pytest.raises(TypeError, match="secret must be non-empty"):
            SharedTier(redis_server.url, secret=b"")
        SharedTier(redis_server.url, serializer="msgpack").close()  # allowed (README: tamperable)
    finally:
        Registry.delete(registry.db_name)


@pytest.fixture
def pg_pair(pg_dsn, redis_server, redis_prefix):
    engine = make_engine("postgresql", pg_dsn)
    Base.metadata.create_all(engine)
    engine.dispose()
    args = ("postgresql", pg_dsn, f"test-{uuid.uuid4().hex[:8]}", redis_server.url, "postgres", True,
            "pickle", redis_prefix)
    engine, factory, cache = open_cache(*args)
    counter = QueryCounter(engine)
    with factory() as session:
        session.add_all([User(id=1, name="user1"), User(id=2, name="user2")])
        session.commit()
    yield args, factory, cache, counter
    counter.close()
    close_cache(engine, cache)


def test_attacker_overwriting_every_key_runs_no_code_and_serves_nothing_wrong(pg_pair, redis_server,
                                                                              redis_prefix, tmp_path):
    args, factory, cache, counter = pg_pair
    other = Worker(*args)
    marker = tmp_path / "pwned"
    try:
        (value, computed), _ = other("user_names")  # stored in Redis, signed
        assert computed == 1
        client = redis.Redis.from_url(redis_server.url)
        evil = pickle.dumps(Exploit(marker))
        wrong = pickle.dumps({"pid": 0, "names": ("attacker",)})
        forger = SharedTier(redis_server.url, prefix=cache.shared.prefix, secret=b"not the secret")
        keys = list(client.scan_iter(match=redis_prefix + "*"))
        assert any(key.endswith(b":ver") for key in keys) and any(b":val:" in key for key in keys)
        for payload in (evil, wrong):
            for key in keys:
                if client.type(key) == b"hash":
                    for field in client.hkeys(key):
                        version = client.get(key.split(b":val:")[0] + b":ver") or b"0"
                        signed_wrongly = forger._tag(key.decode(), field.decode(), version, payload) + payload
                        for data in (payload, version + b":" + payload, version + b":" + b"\0" * 32 + payload,
                                     version + b":" + signed_wrongly):
                            client.hset(key, field, data)
                            for reader in (lambda: run_command(factory, cache, counter, ("user_names",))[0],
                                           lambda: other("user_names")[0]):
                                seen, _ = reader()
                                assert seen["names"] == ("user1", "user2")
                                assert not marker.exists()
                                client.hset(key, field, data)  # again, for the next reader
        stats = [c for c in cache.registry.counters.values() if getattr(c, "err", 0)]
        assert stats and stats[0].err > 0  # forged values count as errors
        client.close()
        forger.close()
    finally:
        other.stop()
    assert not marker.exists()


def test_signed_and_unsigned_tiers(redis_server, redis_prefix):
    signed = SharedTier(redis_server.url, prefix=redis_prefix, secret=b"k")
    unsigned = SharedTier(redis_server.url, prefix=redis_prefix, serializer="msgpack")
    other_secret = SharedTier(redis_server.url, prefix=redis_prefix, secret=b"other")
    try:
        version, _ = signed.get("m", "r", "sig")
        assert signed.store("m", "r", version, (1, 2), "sig") == "stored"
        assert signed.get("m", "r", "sig") == (version, (1, 2))
        from ormcache.sqlalchemy.shared import FORGED

        assert other_secret.get("m", "r", "sig")[1] is FORGED
        assert unsigned.store("m", "u", version, [1, 2], "sig") == "stored"
        assert unsigned.get("m", "u", "sig") == (version, (1, 2))
        assert signed.get("m", "u", "sig")[1] is FORGED  # an unsigned value is never read
    finally:
        signed.close()
        unsigned.close()
        other_secret.close()


class Role:
    """Equal reprs for different roles: a repr() key would mix their values."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "<Role>"

    def __hash__(self):
        return hash(self.name)

    def __eq__(self, other):
        return isinstance(other, Role) and other.name == self.name


class RoleApp:
    def __init__(self, orm_cache, session, role):
        self.orm_cache, self.session, self.role = orm_cache, session, role

    @orm_cached(policy="on-table-change:users", by_role=True)
    @property
    def view(self):
        return f"{self.role.name if isinstance(self.role, Role) else self.role}:{self.session.query(User).count()}"


def test_stable_keys():
    stable_key = shared_module.stable_key
    assert stable_key((None, ("admin", (1, 2.5, b"x", True)))) == "(None,('admin',(1,2.5,b'x',True)))"
    assert stable_key(1) != stable_key(True) != stable_key("1") != stable_key(1.0)
    assert stable_key(frozenset({"b", "a"})) == stable_key(frozenset({"a", "b"}))
    assert stable_key([1]) != stable_key((1,))
    for unstable in (object(), Role("a"), {"a": 1}, {1}, (1, object())):
        with pytest.raises(TypeError, match="no stable key"):
            stable_key(unstable)


def test_roles_without_a_stable_key_skip_the_shared_tier(pg_pair, caplog):
    args, factory, cache, counter = pg_pair
    cache.register(RoleApp)
    with factory() as session:
        assert RoleApp(cache, session, Role("admin")).view == "admin:2"
        assert RoleApp(cache, session, Role("user")).view == "user:2"  # not admin's value
        assert RoleApp(cache, session, "plain").view == "plain:2"
    warnings = [r for r in caplog.records if "computed without the shared tier" in r.getMessage()]
    assert len(warnings) == 1  # once per member


# -- deadlines -----------------------------------------------------------------------------------

class BlackHole:
    """Accepts connections and never answers."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.accepted = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self):
        self.listener.close()
        for conn in self.accepted:
            conn.close()


@pytest.mark.timeout(60)
def test_black_hole_shared_tier_costs_one_deadline_per_interval(tmp_path):
    hole = BlackHole()
    engine = make_engine("sqlite", str(tmp_path / "db.sqlite"))
    Base.metadata.create_all(engine)
    registry = Registry(f"test-{uuid.uuid4().hex[:8]}")
    registry.signaling_retry_interval = 5.0
    from sqlalchemy.orm import sessionmaker

    warm = OrmCache(registry, Base.metadata)  # the same work without the tier, compiled once
    factory = sessionmaker(engine)
    warm.watch(factory)
    warm.register(SharedApp)
    with factory() as session:
        SharedApp(warm, session).user_names
    warm.close()
    cache = OrmCache(registry, Base.metadata, redis_url=f"redis://127.0.0.1:{hole.port}/0",
                     secret=b"s", redis_timeout=0.2)
    factory = sessionmaker(engine)
    cache.watch(factory)
    cache.register(SharedApp)
    try:
        with factory() as session:
            start = time.perf_counter()
            assert SharedApp(cache, session).user_names["names"] == ()
            first = time.perf_counter() - start
        assert first < 0.2 * 2 + 0.3, first  # one deadline (connect or read), plus a margin
        times = []

        def request():
            with factory() as session:
                start = time.perf_counter()
                SharedApp(cache, session).user_names
                times.append(time.perf_counter() - start)

        threads = [threading.Thread(target=request) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(times) == 4 and max(times) < 0.15, times  # resting: no network at all
    finally:
        cache.close()
        Registry.delete(registry.db_name)
        engine.dispose()
        hole.close()


# -- secrets never printed -----------------------------------------------------------------------

def test_no_password_in_reprs_and_errors(tmp_path):
    registry = Registry(f"test-{uuid.uuid4().hex[:8]}")
    cache = OrmCache(registry, Base.metadata, redis_url="redis://admin:s3cret-pw@127.0.0.1:1/0", secret=b"k")
    try:
        assert "s3cret-pw" not in repr(cache) and "s3cret-pw" not in str(cache.shared)
        assert "***" in repr(cache.shared)

        class Owner:
            orm_cache = cache

            def __init__(self, session):
                self.session = session

            @orm_cached(policy="on-table-change:users")
            @property
            def unregistered(self):
                return 1

        with pytest.raises(RuntimeError) as error:
            Owner(None).unregistered
        assert "s3cret-pw" not in str(error.value)
    finally:
        cache.close()
        Registry.delete(registry.db_name)


def test_wrong_redis_password_is_a_configuration_error(tmp_path):
    from servers import RedisServer

    with RedisServer() as server:
        admin = redis.Redis.from_url(server.url)
        admin.config_set("requirepass", "right-password")
        admin.close()
        engine = make_engine("sqlite", str(tmp_path / "db.sqlite"))
        Base.metadata.create_all(engine)
        registry = Registry(f"test-{uuid.uuid4().hex[:8]}")
        cache = OrmCache(registry, Base.metadata, redis_url=f"redis://:wrong-password@127.0.0.1:{server.port}/0",
                         secret=b"k")
        from sqlalchemy.orm import sessionmaker

        factory = sessionmaker(engine)
        cache.watch(factory)
        cache.register(SharedApp)
        try:
            with factory() as session:
                with pytest.raises(redis.AuthenticationError) as error:
                    SharedApp(cache, session).user_names
            assert "wrong-password" not in str(error.value) and "wrong-password" not in repr(cache)
        finally:
            cache.close()
            Registry.delete(registry.db_name)
            engine.dispose()
