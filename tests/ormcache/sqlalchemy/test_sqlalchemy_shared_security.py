"""The shared tier under attack and outage (issue 9): authenticated values, pickle refused without
a secret, stable keys, a deadline with a rest after a failure, no password printed."""
from __future__ import annotations

import functools
import pickle
import socket
import threading
import time
import uuid

import pytest
import redis

from ormcache.registry import Registry
from ormcache.signaling import SignalingConfigurationError
from ormcache.sqlalchemy import OrmCache, orm_cached
from ormcache.sqlalchemy import shared as shared_module
from ormcache.sqlalchemy.shared import SharedTier
from support.sqla import (  # noqa: F401
    Base,
    Exploit,
    QueryCounter,
    SharedApp,
    User,
    Worker,
    close_cache,
    db,
    make_engine,
    open_cache,
    run_command,
    watched,
)


def timed_request(cache, factory, times):
    """One request reading a shared-tier member; appends its duration to ``times``."""
    with factory() as session:
        start = time.perf_counter()
        assert SharedApp(cache, session).user_names["names"] == ()
        times.append(time.perf_counter() - start)


def four_requests_at_once(cache, factory):
    """Four threads each making one request at once; returns their durations."""
    times = []
    threads = [threading.Thread(target=timed_request, args=(cache, factory, times)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(times) == 4, times
    return times


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


@pytest.fixture(params=["pickle", "msgpack"])
def pg_pair(request, pg_dsn, redis_server, redis_prefix):
    engine = make_engine("postgresql", pg_dsn)
    Base.metadata.create_all(engine)
    engine.dispose()
    args = ("postgresql", pg_dsn, f"test-{uuid.uuid4().hex[:8]}", redis_server.url, "postgres", True,
            request.param, redis_prefix)
    engine, factory, cache = open_cache(*args)
    counter = QueryCounter(engine)
    with factory() as session:
        session.add_all([User(id=1, name="user1"), User(id=2, name="user2")])
        session.commit()
    yield args, factory, cache, counter
    counter.close()
    close_cache(engine, cache)


def _dumps(serializer, value):
    import msgpack

    return pickle.dumps(value) if serializer == "pickle" else msgpack.packb(value)


def test_attacker_overwriting_every_key_runs_no_code_and_serves_nothing_wrong(pg_pair, redis_server,
                                                                              redis_prefix, tmp_path, caplog):
    """Every key under the tier's prefix (value hashes and version counters) overwritten with a
    crafted pickle (unpickling it would create ``marker``) and with well-formed wrong values: no
    code runs, no wrong value is served, each forged value read counts as an error of the member,
    logged once."""
    args, factory, cache, counter = pg_pair
    serializer = args[6]
    member = SharedApp.__dict__["user_names"]
    stats = cache._counters[member]
    other = Worker(*args)
    marker = tmp_path / "pwned"
    client = redis.Redis.from_url(redis_server.url)
    forger = SharedTier(redis_server.url, prefix=cache.shared.prefix, secret=b"not the secret", serializer=serializer)
    right = ("user1", "user2")

    def read_both():
        cache.lru.clear()  # no local copy: this process reads what is in Redis
        seen, _ = run_command(factory, cache, counter, ("user_names",))[0]
        assert seen["names"] == right
        (seen, _), _ = other("user_names")
        assert seen["names"] == right
        assert not marker.exists()

    try:
        (value, computed), _ = other("user_names")  # stored in Redis, signed
        assert computed == 1 and value["names"] == right
        read_both()
        keys = sorted(client.scan_iter(match=redis_prefix + "*"))
        hashes = [key for key in keys if client.type(key) == b"hash"]
        counters = [key for key in keys if client.type(key) == b"string"]
        assert hashes and counters and len(hashes) + len(counters) == len(keys)
        assert all(key.endswith(b":ver") for key in counters)
        evil = pickle.dumps(Exploit(marker))
        wrong = _dumps(serializer, {"pid": 0, "names": ["attacker"]})
        caplog.clear()
        errors = stats.err
        forged_reads = 0
        for payload in (evil, wrong):
            for key in hashes:
                for field in client.hkeys(key):
                    version = client.get(key.split(b":val:")[0] + b":ver") or b"0"
                    signed_wrongly = forger._tag(key.decode(), field.decode(), version, payload) + payload
                    for data in (payload, version + b":" + payload, version + b":" + b"\0" * 32 + payload,
                                 version + b":" + signed_wrongly):
                        client.hset(key, field, data)
                        read_both()
                        forged_reads += 1
        assert forged_reads >= 8
        assert stats.err - errors == forged_reads  # every forged value this process read
        logged = [r for r in caplog.records if "does not carry a valid tag" in r.getMessage()]
        assert len(logged) == 1  # once per member
        errors = stats.err
        for payload in (b"999", b"0", b"12"):  # well-formed: as if invalidated, not a forgery
            for key in counters:
                client.set(key, payload)
                read_both()
                read_both()
        assert stats.err == errors
        tampered_reads = 0
        for payload in (evil, wrong, b"7:x", b"-1", b"1 "):  # no counter INCR writes: tampered with
            for key in counters:
                client.set(key, payload)
                read_both()
                tampered_reads += 1
        assert stats.err - errors == tampered_reads  # never stored under, every read counted
        assert len([r for r in caplog.records if "does not carry a valid tag" in r.getMessage()]) == 1
    finally:
        client.close()
        forger.close()
        other.stop()
    assert not marker.exists()


def test_the_payload_of_the_attacker_test_runs_code(tmp_path):
    """The crafted pickle is live: loading it creates the marker (so its absence above means
    no code ran)."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(Exploit(marker)))
    assert marker.exists()


@pytest.mark.parametrize("serializer", ["pickle", "msgpack"])
def test_a_value_moved_to_another_key_or_version_is_refused(redis_server, redis_prefix, serializer):
    from ormcache.sqlalchemy.shared import FORGED

    tier = SharedTier(redis_server.url, prefix=redis_prefix, secret=b"k", serializer=serializer)
    client = redis.Redis.from_url(redis_server.url)
    try:
        version, _ = tier.get("m", "a", "sig")
        assert tier.store("m", "a", version, "value of a", "sig") == "stored"
        assert tier.store("m", "b", version, "value of b", "sig") == "stored"
        assert tier.store("n", "a", version, "value of n", "sig") == "stored"
        val_key = redis_prefix + "m:val:sig"
        of_b = client.hget(val_key, "'b'")
        assert of_b is not None and tier.get("m", "b", "sig") == (version, "value of b")
        # another role of the same member
        client.hset(val_key, "'a'", of_b)
        assert tier.get("m", "a", "sig")[1] is FORGED
        # another member
        client.hset(redis_prefix + "n:val:sig", "'a'", of_b)
        assert tier.get("n", "a", "sig")[1] is FORGED
        # another signaling version
        client.hset(redis_prefix + "m:val:other", "'b'", of_b)
        assert tier.get("m", "b", "other")[1] is FORGED
        # another tier version: an invalidated value relabelled with the new counter
        tier.invalidate(["m"])
        new_version = client.get(redis_prefix + "m:ver")
        assert new_version != version
        client.hset(val_key, "'b'", new_version + of_b[len(version):])
        assert tier.get("m", "b", "sig")[1] is FORGED
        # unchanged, the invalidated value is not served either (an older version)
        client.hset(val_key, "'b'", of_b)
        assert tier.get("m", "b", "sig")[1] is shared_module.NOT_FOUND
    finally:
        client.close()
        tier.close()


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


class ArgApp:
    def __init__(self, orm_cache, session):
        self.orm_cache, self.session = orm_cache, session

    @orm_cached(policy="on-table-change:users")
    def named(self, who):
        return f"{getattr(who, 'name', who)}:{self.session.query(User).count()}"


def test_arguments_without_a_stable_key_skip_the_shared_tier(pg_pair, caplog, redis_server, redis_prefix):
    args, factory, cache, counter = pg_pair
    cache.register(ArgApp)
    client = redis.Redis.from_url(redis_server.url)
    try:
        with factory() as session:
            assert ArgApp(cache, session).named(Role("admin")) == "admin:2"
            assert ArgApp(cache, session).named(Role("user")) == "user:2"  # equal reprs, not admin's value
            assert ArgApp(cache, session).named(object()).startswith("<object object at ")
        warnings = [r for r in caplog.records if "computed without the shared tier" in r.getMessage()]
        assert len(warnings) == 1  # once per member
        assert not [key for key in client.scan_iter(match=redis_prefix + "*") if b"named" in key]
        with factory() as session:
            assert ArgApp(cache, session).named("plain") == "plain:2"  # a stable argument: shared
        assert [key for key in client.scan_iter(match=redis_prefix + "*") if b"named" in key]
    finally:
        client.close()


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
    """A Redis that accepts and never answers: a request (alone, or 4 threads at once) costs at
    most one deadline, and requests within the retry interval that follows cost no network."""
    hole = BlackHole()
    engine = make_engine("sqlite", str(tmp_path / "db.sqlite"))
    Base.metadata.create_all(engine)
    registry = Registry(f"test-{uuid.uuid4().hex[:8]}")
    deadline, interval, margin = 0.2, 2.0, 0.3
    registry.signaling_retry_interval = interval
    warm = OrmCache(registry, Base.metadata)  # the same work without the tier, compiled once
    factory = watched(warm, engine, SharedApp)
    with factory() as session:
        SharedApp(warm, session).user_names
    warm.close()
    cache = OrmCache(registry, Base.metadata, redis_url=f"redis://127.0.0.1:{hole.port}/0",
                     secret=b"s", redis_timeout=deadline)
    factory = watched(cache, engine, SharedApp)

    request = functools.partial(timed_request, cache, factory)
    four_at_once = functools.partial(four_requests_at_once, cache, factory)

    try:
        alone = []
        request(alone)
        assert alone[0] < deadline * 2 + margin, alone  # one deadline (connect or read), plus a margin
        resting = four_at_once()
        assert max(resting) < 0.15, resting  # resting: no network at all
        time.sleep(interval + 0.1)  # the rest is over: the tier is tried again, by 4 threads at once
        started = time.perf_counter()
        together = four_at_once()
        assert max(together) < deadline + margin, together  # not serialised: one deadline each
        assert time.perf_counter() - started < deadline + margin + 0.2
        assert len(hole.accepted) >= 2  # the tier really went to the network again
        resting = four_at_once()
        assert max(resting) < 0.15, resting
    finally:
        cache.close()
        Registry.delete(registry.db_name)
        engine.dispose()
        hole.close()


class SilentProxy:
    """Forwards to 127.0.0.1:``target``; after ``silence()`` the established connections stay
    open but nothing goes through any more (a dead path, no RST)."""

    def __init__(self, target):
        import select

        self.select = select.select
        self.target = target
        self.silent = threading.Event()
        self.closed = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a, b):
        try:
            while not self.closed.is_set():
                ready, _, _ = self.select([a, b], [], [], 0.05)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if not self.silent.is_set():
                        (b if sock is a else a).sendall(data)
        except OSError:
            return

    def silence(self):
        self.silent.set()

    def close(self):
        self.closed.set()
        self.listener.close()
        for sock in self.sockets:
            sock.close()


@pytest.mark.timeout(60)
def test_silent_path_to_the_shared_tier_costs_one_deadline_per_interval(tmp_path, redis_server, redis_prefix):
    """An established connection to the tier whose path goes silent is abandoned at the
    deadline; 4 threads at once each wait one deadline at most; then the tier rests."""
    proxy = SilentProxy(redis_server.port)
    engine = make_engine("sqlite", str(tmp_path / "db.sqlite"))
    Base.metadata.create_all(engine)
    registry = Registry(f"test-{uuid.uuid4().hex[:8]}")
    deadline, interval, margin = 0.2, 2.0, 0.3
    registry.signaling_retry_interval = interval
    cache = OrmCache(registry, Base.metadata, redis_url=f"redis://127.0.0.1:{proxy.port}/0",
                     redis_prefix=redis_prefix + "{db_name}:", secret=b"s", redis_timeout=deadline)
    factory = watched(cache, engine, SharedApp)

    request = functools.partial(timed_request, cache, factory)
    four_at_once = functools.partial(four_requests_at_once, cache, factory)

    try:
        four_at_once()  # 4 connections established through the proxy, the value stored
        with factory() as session:  # served by the tier: the connections work
            assert SharedApp(cache, session).user_names["names"] == ()
        assert cache._counters[SharedApp.__dict__["user_names"]].hit >= 1
        proxy.silence()
        alone = []
        request(alone)
        assert deadline * 0.9 <= alone[0] < deadline + margin, alone  # waited for the deadline, then gave up
        assert max(four_at_once()) < 0.15  # resting
        time.sleep(interval + 0.1)
        together = four_at_once()
        assert max(together) < deadline + margin, together
        assert max(four_at_once()) < 0.15
    finally:
        cache.close()
        Registry.delete(registry.db_name)
        engine.dispose()
        proxy.close()


# -- secrets never printed -----------------------------------------------------------------------

def test_no_password_in_reprs_and_errors(tmp_path, caplog):
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
        # an outage: logged with the URL's host, never its password
        engine = make_engine("sqlite", str(tmp_path / "db.sqlite"))
        Base.metadata.create_all(engine)
        factory = watched(cache, engine, SharedApp)
        with caplog.at_level("DEBUG"):
            for _ in range(2):  # the failure, then the rest
                with factory() as session:
                    assert SharedApp(cache, session).user_names["names"] == ()
        assert "shared tier unreachable" in caplog.text and "s3cret-pw" not in caplog.text
        engine.dispose()
    finally:
        cache.close()
        Registry.delete(registry.db_name)


def test_wrong_redis_password_is_a_configuration_error(tmp_path):
    from support.servers import RedisServer

    with RedisServer() as server:
        admin = redis.Redis.from_url(server.url)
        admin.config_set("requirepass", "right-password")
        admin.close()
        engine = make_engine("sqlite", str(tmp_path / "db.sqlite"))
        Base.metadata.create_all(engine)
        registry = Registry(f"test-{uuid.uuid4().hex[:8]}")
        cache = OrmCache(registry, Base.metadata, redis_url=f"redis://:wrong-password@127.0.0.1:{server.port}/0",
                         secret=b"k")
        factory = watched(cache, engine, SharedApp)
        try:
            with factory() as session:
                with pytest.raises(SignalingConfigurationError, match="authentication failed") as error:
                    SharedApp(cache, session).user_names
            assert "wrong-password" not in str(error.value) and "wrong-password" not in repr(cache)
        finally:
            cache.close()
            Registry.delete(registry.db_name)
            engine.dispose()
