"""Deadlines of the signaling backends (issue #9 item 2) and the eviction check (item 3).

Real servers only (tests/support/servers.py): a black hole (a 127.0.0.1 socket that accepts and never answers)
and a silent proxy (an established path that stops forwarding, connections left open) in front
of each backend. A check_signaling() costs at most one deadline (plus a margin), for one thread
and for 4 threads at once; after a failure the registry rests for signaling_retry_interval and
the checks of that interval touch no network (the backend is not called: counted, not timed).
"""
import threading
import time
import uuid

import pytest

from ormcache.registry import Registry
from ormcache.signaling import (
    PostgresSignaling,
    RedisSignaling,
    SignalingConfigurationError,
)
from support.servers import BlackHole, RedisServer, TcpProxy

TIMEOUT = 1.0
#: scheduling slack on a loaded 2-core machine (a second deadline would be +1 s; the 0.35 s of a
#: 0.5 s deadline was broken by load, issue #21)
MARGIN = 0.8
#: a check while resting waits no deadline (and calls no backend: counted by _counting_reads)
FAST = TIMEOUT / 2
THREADS = 4


def _timed(func):
    start = time.monotonic()
    func()
    return time.monotonic() - start


def _timed_threads(func, count=THREADS):
    """Run ``func`` in ``count`` threads released together; their latencies."""
    barrier = threading.Barrier(count)
    latencies = [None] * count
    errors = []

    def run(index):
        barrier.wait()
        try:
            latencies[index] = _timed(func)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert None not in latencies, latencies
    return latencies


@pytest.fixture
def make_registry():
    made = []

    def make(backend):
        registry = Registry(f"deadline-{uuid.uuid4().hex[:8]}")
        registry.signaling = backend
        registry.signaling_retry_interval = 30.0  # the whole test runs inside one interval
        registry.signaling_background_retry = False
        made.append((registry, backend))
        return registry

    yield make
    for registry, backend in made:
        Registry.delete(registry.db_name)
        backend.close()


def _pg_backend(port, **kwargs):
    return PostgresSignaling(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", **kwargs)


def _counting_reads(registry):
    """A list that gets an item per round trip the registry's backend makes from now on."""
    backend, calls = registry.signaling, []
    read_versions, bump = backend.read_versions, backend.bump

    def counted(method):
        def call(*args, **kwargs):
            calls.append(method.__name__)
            return method(*args, **kwargs)
        return call

    backend.read_versions, backend.bump = counted(read_versions), counted(bump)
    return calls


def _assert_one_deadline_then_rest(registry, clears):
    latency = _timed(registry.check_signaling)
    assert latency <= TIMEOUT + MARGIN, latency
    assert registry._signaling_outage
    calls = _counting_reads(registry)
    later = [_timed(registry.check_signaling) for _ in range(5)]
    assert calls == [], calls  # resting: the network is not touched...
    assert max(later) <= FAST, later  # ...nor a deadline waited
    # the checks of the interval still clear every cache (an outage is never a stale read)
    assert registry.check_signaling() == clears


def _assert_threads_one_deadline_then_rest(registry):
    latencies = _timed_threads(registry.check_signaling)
    assert max(latencies) <= TIMEOUT + MARGIN, latencies
    calls = _counting_reads(registry)
    later = _timed_threads(registry.check_signaling)
    assert calls == [], calls
    assert max(later) <= FAST, later


def test_default_timeouts_suit_a_web_request():
    import inspect

    for cls in (PostgresSignaling, RedisSignaling):
        default = inspect.signature(cls).parameters["timeout"].default
        assert 0 < default <= 0.5, (cls, default)


# -- black holes -------------------------------------------------------------------------

def test_postgres_black_hole_costs_one_deadline(make_registry):
    with BlackHole() as hole:
        registry = make_registry(_pg_backend(hole.port, timeout=TIMEOUT))
        _assert_one_deadline_then_rest(registry, sorted(registry._clear_all_local()))


def test_postgres_black_hole_four_threads_one_deadline_each(make_registry):
    with BlackHole() as hole:
        registry = make_registry(_pg_backend(hole.port, timeout=TIMEOUT))
        _assert_threads_one_deadline_then_rest(registry)


def test_redis_black_hole_costs_one_deadline(make_registry):
    with BlackHole() as hole:
        registry = make_registry(RedisSignaling(f"redis://127.0.0.1:{hole.port}/0", timeout=TIMEOUT))
        _assert_one_deadline_then_rest(registry, sorted(registry._clear_all_local()))


def test_redis_black_hole_four_threads_one_deadline_each(make_registry):
    with BlackHole() as hole:
        registry = make_registry(RedisSignaling(f"redis://127.0.0.1:{hole.port}/0", timeout=TIMEOUT))
        _assert_threads_one_deadline_then_rest(registry)


# -- silent paths (an established connection whose path goes silent) -----------------------

def _pg_through(proxy, postgres_server, pg_dsn):
    dsn = pg_dsn.replace(f"port={postgres_server.port}", f"port={proxy.port}")
    assert dsn != pg_dsn
    return PostgresSignaling(dsn, timeout=TIMEOUT)


def test_postgres_silent_path_costs_one_deadline(make_registry, postgres_server, pg_dsn):
    with TcpProxy(postgres_server.port) as proxy:
        registry = make_registry(_pg_through(proxy, postgres_server, pg_dsn))
        registry.check_signaling()  # connected, tables created
        assert registry.check_signaling() == []
        proxy.silent = True
        _assert_one_deadline_then_rest(registry, sorted(registry._clear_all_local()))


def test_postgres_silent_path_four_threads_one_deadline_each(make_registry, postgres_server, pg_dsn):
    with TcpProxy(postgres_server.port) as proxy:
        registry = make_registry(_pg_through(proxy, postgres_server, pg_dsn))
        registry.check_signaling()
        assert registry.check_signaling() == []
        proxy.silent = True
        _assert_threads_one_deadline_then_rest(registry)


def test_redis_silent_path_costs_one_deadline(make_registry, redis_server):
    with TcpProxy(redis_server.port) as proxy:
        registry = make_registry(RedisSignaling(f"redis://127.0.0.1:{proxy.port}/0",
                                                key_prefix=f"dl-{uuid.uuid4().hex[:8]}:", timeout=TIMEOUT))
        registry.check_signaling()
        assert registry.check_signaling() == []
        proxy.silent = True
        _assert_one_deadline_then_rest(registry, sorted(registry._clear_all_local()))


def test_redis_silent_path_four_threads_one_deadline_each(make_registry, redis_server):
    with TcpProxy(redis_server.port) as proxy:
        registry = make_registry(RedisSignaling(f"redis://127.0.0.1:{proxy.port}/0",
                                                key_prefix=f"dl-{uuid.uuid4().hex[:8]}:", timeout=TIMEOUT))
        # every thread has its pooled connection established before the path goes silent
        _timed_threads(registry.check_signaling)
        assert registry.check_signaling() == []
        proxy.silent = True
        _assert_threads_one_deadline_then_rest(registry)


def test_postgres_back_after_the_interval(make_registry, postgres_server, pg_dsn):
    # the deadline does not break a healthy path: after the silence and the rest, it works again
    with TcpProxy(postgres_server.port) as proxy:
        registry = make_registry(_pg_through(proxy, postgres_server, pg_dsn))
        registry.signaling_retry_interval = 0.2
        registry.check_signaling()
        proxy.silent = True
        registry.check_signaling()
        assert registry._signaling_outage
        proxy.silent = False
        time.sleep(0.3)
        registry.check_signaling()
        assert not registry._signaling_outage
        assert registry.check_signaling() == []


def test_connect_timeout_keyword_still_works():
    # the keyword of ormcache < 0.9 (whole seconds of libpq) is an alias of timeout
    backend = _pg_backend(1, connect_timeout=2)
    try:
        assert backend.timeout == 2
    finally:
        backend.close()
    backend = RedisSignaling("redis://127.0.0.1:1/0", socket_timeout=1.5)
    try:
        assert backend.timeout == 1.5
    finally:
        backend.close()


# -- item 3: a Redis that may evict keys ------------------------------------------------------

def test_redis_started_with_allkeys_lru_is_refused(make_registry):
    server = RedisServer(extra_args=("--maxmemory", "3mb", "--maxmemory-policy", "allkeys-lru"))
    server.setup()
    try:
        backend = RedisSignaling(server.url, timeout=TIMEOUT)
        registry = make_registry(backend)
        with pytest.raises(SignalingConfigurationError, match="maxmemory-policy allkeys-lru"):
            registry.check_signaling()
        with pytest.raises(SignalingConfigurationError, match="maxmemory-policy allkeys-lru"):
            backend.bump(registry.db_name, ["default"])
    finally:
        server.teardown()
