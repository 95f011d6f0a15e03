"""Registry signaling in one process: two registries on one backend see each other's signals.

The two registries are real ``Registry`` objects under two database names ("aliases") whose
backends point at the same counters: the same PostgreSQL database, or one Redis key prefix
without ``{db_name}``.
"""
import contextlib
import logging
import threading
import time

import pytest

from ormcache.registry import CACHES_BY_KEY
from ormcache.signaling import (
    LocalSignaling,
    PostgresSignaling,
    RedisSignaling,
    SignalingError,
    SignalingUnavailable,
    local_signaling,
)
from support.registries import signaling_registries, synced

# pub/sub registries catch up on their own (their check_signaling() then returns []): they
# have their own tests below
BACKENDS = ["postgres", "redis"]


@pytest.fixture
def make_registry():
    """make_registry(backend or None) -> a fresh Registry (deleted, backend closed, after)."""
    # retry at once after a restart (tested apart); these tests follow who publishes kept
    # invalidations, and when: no background thread (it has tests of its own: test_signaling_retry.py)
    with signaling_registries("signaling", retry_interval=0, background_retry=False) as make:
        yield make


@pytest.fixture(params=BACKENDS)
def kind(request):
    return request.param


@pytest.fixture
def make_backend(kind, request):
    """make_backend() -> a new backend on the counters shared by the whole test."""
    if kind == "postgres":
        dsn = request.getfixturevalue("pg_dsn")
        return lambda: PostgresSignaling(dsn)
    url = request.getfixturevalue("redis_server").url
    prefix = request.getfixturevalue("redis_prefix")
    return lambda: RedisSignaling(url, key_prefix=prefix)


@pytest.fixture
def pair(make_registry, make_backend):
    """Two registries sharing the counters, both past their first check."""
    return synced(make_registry(make_backend()), make_registry(make_backend()))


def warm(registry, *names):
    for name in names or registry.caches:
        registry.caches[name]["key"] = name
    return registry


def warm_names(registry):
    return sorted(name for name, cache in registry.caches.items() if len(cache))


# -- the protocol ----------------------------------------------------------------------------

def test_signal_reaches_the_other_registry(pair):
    first, second = pair
    warm(second)
    with first.cursor_scope():
        first.clear_cache("default")
    assert second.check_signaling() == list(CACHES_BY_KEY["default"])
    assert "default" not in warm_names(second)
    assert second.check_signaling() == []  # once only
    assert first.check_signaling() == []   # its own signal is not an invalidation


@pytest.mark.parametrize("name", ["assets", "stable"])
def test_a_name_clears_its_expansion_and_only_it(pair, name):
    """Clearing 'assets' in one registry leaves 'default' warm in the other; 'stable' clears
    every cache it expands to, and only those."""
    first, second = pair
    warm(second)
    with first.cursor_scope():
        first.clear_cache(name)
    assert second.check_signaling() == list(CACHES_BY_KEY[name])
    assert warm_names(second) == sorted(set(second.caches) - set(CACHES_BY_KEY[name]))


def test_invalidation_by_signaling_is_not_signaled_back(pair):
    first, second = pair
    with first.cursor_scope():
        first.clear_cache("default", "routing")
    with second.cursor_scope():
        pass
    assert second.cache_invalidated == set()
    warm(first)
    assert first.check_signaling() == []
    assert warm_names(first) == sorted(first.caches)


def test_signal_changes_bumps_once_per_name_and_resets(pair):
    first, second = pair
    first.clear_cache("default")
    first.clear_cache("default", "assets")
    first.signal_changes()
    assert first.cache_invalidated == set()
    epoch, versions = first.signaling.read(first.db_name, ["default", "assets", "groups"])
    assert versions == {"default": 1, "assets": 1, "groups": 0}
    first.signal_changes()  # nothing recorded: nothing published
    assert first.signaling.read(first.db_name, ["default"])[1] == {"default": 1}


def test_racing_writers_invalidate_once_more(pair):
    """Odoo's rule: after signaling, the local counter is incremented, not set to the backend's
    value, so two processes that both signaled 'default' each invalidate once more."""
    first, second = pair
    first.clear_cache("default")
    second.clear_cache("default")
    first.signal_changes()   # backend 1, first's local 1
    second.signal_changes()  # backend 2, second's local 1
    warm(first), warm(second)
    assert first.check_signaling() == list(CACHES_BY_KEY["default"])
    assert second.check_signaling() == list(CACHES_BY_KEY["default"])
    assert first.check_signaling() == second.check_signaling() == []


def test_registry_change_reloads_the_others(pair):
    first, second = pair
    reloads = []
    second.on_reload = reloads.append
    first.clear_cache("assets")
    first.registry_invalidated = True
    warm(second)
    first.signal_changes()
    assert first.registry_invalidated is False and first.cache_invalidated == set()
    # only the registry counter moved: reloading implies empty caches
    assert first.signaling.read(first.db_name, ["registry", "assets"])[1] == {"registry": 1, "assets": 0}
    assert second.check_signaling() == sorted(second.caches)
    assert reloads == [second]
    assert warm_names(second) == []
    assert second.check_signaling() == [] and reloads == [second]


def test_failed_unit_of_work_resets_and_publishes_nothing(pair):
    first, second = pair
    warm(second)
    with pytest.raises(ZeroDivisionError):
        with first.cursor_scope():
            first.clear_cache("default")
            warm(first, "default")  # computed from the work being rolled back
            1 / 0
    assert first.cache_invalidated == set()
    assert warm_names(first) == []  # cleared again by reset_changes()
    assert second.check_signaling() == []
    assert warm_names(second) == sorted(second.caches)


def test_reset_changes_reloads_an_invalidated_registry(make_registry):
    registry = make_registry()
    reloads = []
    registry.on_reload = reloads.append
    registry.check_signaling()
    registry.registry_invalidated = True
    registry.reset_changes()
    assert reloads == [registry] and registry.registry_invalidated is False


def test_invalidations_are_per_thread(pair):
    first, second = pair
    seen = []

    def other_thread():
        first.clear_cache("groups")
        seen.append(set(first.cache_invalidated))
        first.signal_changes()

    first.clear_cache("assets")
    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert seen == [{"groups"}]
    assert first.cache_invalidated == {"assets"}
    assert second.check_signaling() == list(CACHES_BY_KEY["groups"])


def test_first_check_adopts_the_counters(make_registry, make_backend):
    first = make_registry(make_backend())
    first.check_signaling()
    for _ in range(3):
        with first.cursor_scope():
            first.clear_cache("default")
    late = warm(make_registry(make_backend()))
    assert late.check_signaling() == []  # adopts; what it held predates the first contact
    assert warm_names(late) == []
    warm(late)
    assert late.check_signaling() == []
    assert warm_names(late) == sorted(late.caches)


@pytest.fixture
def make_pubsub_backend(redis_server, redis_prefix):
    return lambda: RedisSignaling(redis_server.url, key_prefix=redis_prefix, pubsub=True)


def test_pubsub_clears_idle_registries(make_registry, make_pubsub_backend):
    """With pub/sub, a registry that never calls check_signaling() still drops the cache."""
    first, idle = make_registry(make_pubsub_backend()), make_registry(make_pubsub_backend())
    first.check_signaling()
    idle.check_signaling()
    assert idle.signaling._listener.ready.wait(10)
    warm(idle)
    with first.cursor_scope():
        first.clear_cache("assets")
    deadline = time.monotonic() + 10
    expected = sorted(set(idle.caches) - set(CACHES_BY_KEY["assets"]))
    while warm_names(idle) != expected and time.monotonic() < deadline:
        time.sleep(0.005)
    assert warm_names(idle) == expected
    # the counters are the check's business: it clears 'assets' once more (an entry computed
    # before the change could have been stored after the listener's clear)
    assert idle.check_signaling() == list(CACHES_BY_KEY["assets"])
    assert first.check_signaling() == []  # a process ignores its own messages


def test_pubsub_listener_leaves_the_reload_to_check_signaling(make_registry, make_pubsub_backend):
    first, idle = make_registry(make_pubsub_backend()), make_registry(make_pubsub_backend())
    reloads = []
    idle.on_reload = lambda registry: reloads.append(threading.current_thread())
    first.check_signaling()
    idle.check_signaling()
    assert idle.signaling._listener.ready.wait(10)
    warm(idle)
    first.registry_invalidated = True
    first.signal_changes()
    deadline = time.monotonic() + 10
    while warm_names(idle) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert warm_names(idle) == [] and reloads == []
    assert idle.check_signaling() == sorted(idle.caches)
    assert reloads == [threading.current_thread()]


# -- the embedded default ----------------------------------------------------------------------

def test_without_a_backend_the_process_wide_local_signaling_is_used(make_registry):
    registry = make_registry()
    assert registry.signaling is None
    registry.check_signaling()
    with registry.cursor_scope():
        registry.clear_cache("assets")
    assert local_signaling().read(registry.db_name, ["assets"])[1] == {"assets": 1}
    # another writer of the same database in this process (e.g. a registry rebuilt after
    # Registry.delete) is seen like any other
    local_signaling().bump(registry.db_name, ["default"])
    assert registry.check_signaling() == list(CACHES_BY_KEY["default"])


def test_changing_the_backend_resynchronises(make_registry):
    registry = warm(make_registry())
    registry.check_signaling()
    warm(registry)
    registry.signaling = LocalSignaling()
    assert registry.check_signaling() == []
    assert warm_names(registry) == []


# -- an unreachable backend ------------------------------------------------------------------

@pytest.fixture
def server(kind, request):
    return request.getfixturevalue("postgres_server" if kind == "postgres" else "redis_server")


def _down(server):
    if hasattr(server, "kill"):
        server.kill()
    else:
        server.stop()


def test_outage_clears_everything_keeps_serving_and_loses_nothing(pair, server, caplog):
    first, second = pair
    warm(first), warm(second)
    caplog.set_level(logging.INFO, logger="ormcache.signaling")
    _down(server)
    try:
        first.clear_cache("default")
        with pytest.raises(SignalingError, match="kept and will be published"):
            first.signal_changes()
        assert first.cache_invalidated == {"default"}  # kept for a retry
        # the other keeps serving: each check clears everything, one warning for the outage
        assert second.check_signaling() == sorted(second.caches)
        warm(second)
        assert second.check_signaling() == sorted(second.caches)
        warnings = [r for r in caplog.records
                    if r.name == "ormcache.signaling" and r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "Signaling unavailable" in warnings[0].getMessage()
        assert second.db_name in warnings[0].getMessage()
    finally:
        server.start()
    warm(second)
    # back: the first check after an outage clears everything once more (changes may have
    # been missed meanwhile), then signaling is normal again
    assert second.check_signaling() == sorted(second.caches)
    warm(second)
    assert second.check_signaling() == []
    first.signal_changes()  # the retry publishes what was kept
    assert first.cache_invalidated == set()
    assert second.check_signaling() == list(CACHES_BY_KEY["default"])
    assert first.check_signaling() == sorted(first.caches)  # its own resync after the outage
    assert first.check_signaling() == []


def test_kept_invalidations_are_published_by_the_next_check(pair, server):
    first, second = pair
    _down(server)
    try:
        first.clear_cache("assets")
        with pytest.raises(SignalingUnavailable):
            first.signal_changes()
        first.reset_changes()  # a later unit of work of that thread failed: still not lost
        assert first.cache_invalidated == set()
    finally:
        server.start()
    second.check_signaling()  # resync after the restart
    warm(second)
    first.check_signaling()   # publishes what was kept, before reading
    assert second.check_signaling() == list(CACHES_BY_KEY["assets"])


def test_after_a_failure_the_backend_rests_for_the_retry_interval(pair, server):
    """Within signaling_retry_interval of a failure nothing waits for the network: checks
    clear everything, signals are kept; afterwards the backend is tried again."""
    first, second = pair
    second.signaling_retry_interval = 3600
    _down(server)
    try:
        assert second.check_signaling() == sorted(second.caches)
    finally:
        server.start()
    first.check_signaling()  # a restarted Redis lost its counters: first resyncs too
    warm(second)
    assert second.check_signaling() == sorted(second.caches)  # not tried: still resting
    second.clear_cache("assets")
    with pytest.raises(SignalingUnavailable, match="not tried again yet"):
        second.signal_changes()
    assert second.cache_invalidated == {"assets"}
    second.signaling_retry_interval = 0
    warm(second)
    assert second.check_signaling() == sorted(second.caches)  # tried: back, resync
    assert second.cache_invalidated == set()  # that check published what was kept
    warm(first)
    assert first.check_signaling() == list(CACHES_BY_KEY["assets"])
    second.signal_changes()  # nothing left to publish
    assert first.check_signaling() == []


def test_pending_registry_change_survives_an_outage(pair, server):
    first, second = pair
    reloads = []
    second.on_reload = reloads.append
    second.check_signaling()
    _down(server)
    try:
        first.registry_invalidated = True
        with pytest.raises(SignalingError, match="registry change"):
            first.signal_changes()
    finally:
        server.start()
    second.check_signaling()
    reloads.clear()
    first.signal_changes()
    second.check_signaling()
    assert reloads == [second]


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_pubsub_listener_survives_a_redis_restart(make_registry, make_pubsub_backend, redis_server):
    first, idle = make_registry(make_pubsub_backend()), make_registry(make_pubsub_backend())
    first.check_signaling()
    idle.check_signaling()
    listener = idle.signaling._listener
    assert listener.ready.wait(10)
    redis_server.kill()
    try:
        assert wait_until(lambda: not listener.ready.is_set())
    finally:
        redis_server.start()
    # resubscribed: it checked at once (new epoch, everything cleared) and listens again
    assert listener.ready.wait(10)
    first.check_signaling()
    warm(idle)
    with first.cursor_scope():
        first.clear_cache("routing")
    assert wait_until(lambda: "routing" not in warm_names(idle))
    assert "default" in warm_names(idle)


# -- fork ----------------------------------------------------------------------------------------

def _backend_pid(registry):
    """The server process of a PostgresSignaling's connection (None for other backends)."""
    connection = getattr(registry.signaling, "_conn", None)
    return connection.info.backend_pid if connection is not None else None


def _in_child(body, registry, conn):
    """A forked child's main: ``body(registry, conn)``, its error sent to the parent; the
    inherited registry's backend and the pipe closed after."""
    try:
        body(registry, conn)
    except BaseException as exc:  # reported to the parent
        conn.send(repr(exc))
    finally:
        registry.signaling.close()
        conn.close()


@contextlib.contextmanager
def forked(body, registry):
    """A child forked to run ``body(registry, its end of a pipe)``; yields the parent's end.
    After the block the child must exit with 0 within 30 s; it is killed if still alive."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=_in_child, args=(body, registry, theirs))
    child.start()
    try:
        yield ours
        child.join(30)
        assert child.exitcode == 0
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        child.close()
        ours.close()
        theirs.close()


def _signals_then_waits(registry, conn):
    """In a forked child: the inherited registry signals, then waits for the parent's signal."""
    registry.check_signaling()
    with registry.cursor_scope():
        registry.clear_cache("assets")
    warm(registry)
    conn.send(_backend_pid(registry))
    conn.recv()  # the parent signaled 'groups'
    cleared = registry.check_signaling()
    conn.send(cleared)


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@pytest.mark.parametrize("kind", ["postgres", "redis"], indirect=True)
def test_a_forked_child_gets_its_own_connection(make_registry, make_backend, kind):
    """A registry inherited through fork() signals over its own connection; the parent's
    connection keeps working (a shared libpq socket would mix the two protocol streams)."""
    registry = make_registry(make_backend())
    other = make_registry(make_backend())
    registry.check_signaling()
    other.check_signaling()
    parent_pid = _backend_pid(registry)
    with forked(_signals_then_waits, registry) as ours:
        child_pid = ours.recv()
        assert child_pid is None or child_pid != parent_pid
        warm(registry)
        assert registry.check_signaling() == list(CACHES_BY_KEY["assets"])
        assert _backend_pid(registry) == parent_pid  # the parent's connection was left alone
        assert other.check_signaling() == list(CACHES_BY_KEY["assets"])
        with other.cursor_scope():
            other.clear_cache("groups")
        ours.send("go")
        assert ours.recv() == list(CACHES_BY_KEY["groups"])


def _listens_then_signals(registry, conn):
    registry.check_signaling()  # attaches again: a listener thread of the child's own
    assert registry.signaling._listener.ready.wait(10)
    warm(registry)
    conn.send("ready")
    cleared = wait_until(lambda: "assets" not in warm_names(registry))
    with registry.cursor_scope():
        registry.clear_cache("groups")
    conn.send(cleared)


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_listens_and_is_heard(make_registry, make_pubsub_backend):
    registry = make_registry(make_pubsub_backend())
    registry.check_signaling()
    assert registry.signaling._listener.ready.wait(10)
    with forked(_listens_then_signals, registry) as ours:
        assert ours.recv() == "ready"
        warm(registry)
        with registry.cursor_scope():
            registry.clear_cache("assets")
        assert ours.recv() is True  # the child's listener cleared 'assets'
        # the child's message carries its own token: the parent's listener does not ignore it
        assert wait_until(lambda: "groups" not in warm_names(registry))
