"""Non-blocking signaling for async apps (issue #13 item 3): ``await registry.acheck_signaling()``
and ``await registry.asignal_changes()``.

Real private servers (tests/support/servers.py). The async protocol is the sync one with other I/O: the same
scenario run through both gives the same trace; a change made by another process is seen; a
hung server (a black hole, a path gone silent) costs one deadline while the event loop keeps
serving other tasks (a heartbeat every 1 ms never waits half that deadline), where the sync call
blocks the loop for the whole deadline; concurrent tasks, and two threads each running a loop, share one
registry; a wrong password is a configuration error that never shows the password.
"""
import asyncio
import logging
import socket
import threading
import time
import uuid

import psycopg
import pytest

from ormcache.registry import Registry
from ormcache.signaling import (
    PostgresSignaling,
    RedisSignaling,
    SignalingConfigurationError,
    SignalingUnavailable,
)
from support.servers import BlackHole, TcpProxy, free_port
from support.signaling_workers import CONFIG_DDL, WriterProcess
from support.signaling import (  # noqa: F401 - fixtures
    HANG,
    MARGIN,
    MAX_GAP,
    PASSWORD,
    TIMEOUT,
    assert_no_password,
    backend_on,
    pg_password_dsn,
    redis_with_password,
    with_heartbeat,
)

KINDS = ["postgres", "redis"]
SLACK = 2.0  # the deadline of the backends on a working server (a loaded machine)


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def make_registry():
    """make_registry(backend) -> a fresh Registry on it (deleted, backend closed, after)."""
    made = []

    def make(backend, *, retry_interval=0.0):
        registry = Registry(f"async-{uuid.uuid4().hex[:10]}")
        registry.signaling = backend
        registry.signaling_retry_interval = retry_interval
        registry.signaling_background_retry = False  # who publishes kept names is under test
        made.append(registry)
        return registry

    yield make
    for registry in made:
        registry._signaling_pending.clear()  # what a test left unpublished is not retried at exit
        registry.signaling.close()
        Registry.delete(registry.db_name)


@pytest.fixture
def server(kind, request):
    """(port, make_backend(port, timeout=SLACK)) of the real server of ``kind``, on counters
    fresh per test."""
    if kind == "postgres":
        server = request.getfixturevalue("postgres_server")
        dbname = request.getfixturevalue("pg_dsn").split("dbname=")[1].split()[0]
        return server.port, lambda port, timeout=SLACK: backend_on(kind, port, dbname=dbname, timeout=timeout)
    server = request.getfixturevalue("redis_server")
    prefix = request.getfixturevalue("redis_prefix")
    return server.port, lambda port, timeout=SLACK: backend_on(kind, port, prefix=prefix, timeout=timeout)


def run(registry, coro_function):
    """Run ``coro_function()`` in a new event loop, then close that loop's connections."""
    async def main():
        try:
            return await coro_function()
        finally:
            await registry.signaling.aclose()

    return asyncio.run(main())


def warm(registry):
    for name, cache in registry.caches.items():
        cache["key"] = name


def caches_of(registry, *names):
    """The caches that invalidating ``names`` clears (a name expands to several caches)."""
    return sorted(registry._expand(names))


def filled(registry):
    return sorted(name for name, cache in registry.caches.items() if "key" in cache)


# -- the same protocol ------------------------------------------------------------------------

async def _scenario(registry, peer, proxy, check, signal):
    """A trace of the protocol: first contact, another registry's signal, our own signal, a
    registry reload, an outage (a check and a failed signal), the return of the backend."""
    trace = []
    reloads = []
    registry.on_reload = reloads.append
    warm(registry)
    trace.append(("first", await check(), filled(registry)))
    warm(registry)
    peer.clear_cache("assets")
    peer.signal_changes()
    trace.append(("peer", await check(), filled(registry)))
    registry.clear_cache("default")
    await signal()
    warm(registry)
    trace.append(("own", await check(), filled(registry)))
    peer.registry_invalidated = True
    peer.signal_changes()
    trace.append(("reload", await check(), filled(registry), len(reloads)))
    proxy.stop()
    warm(registry)
    trace.append(("down", await check(), filled(registry), registry._signaling_outage))
    registry.clear_cache("default")
    with pytest.raises(SignalingUnavailable, match="kept") as info:
        await signal()
    trace.append(("signal down", sorted(registry._signaling_pending), type(info.value).__name__))
    proxy.start()
    warm(registry)
    trace.append(("back", await check(), filled(registry), sorted(registry._signaling_pending),
                  registry._signaling_outage))
    assert peer.check_signaling() != []  # the kept invalidation was published on return
    trace.append(("versions", dict(registry._signaling_versions) == dict(peer._signaling_versions)))
    return trace


def test_async_protocol_gives_the_sync_trace(server, make_registry):
    port, make_backend = server
    traces = []
    for mode in ("sync", "async"):
        with TcpProxy(port) as proxy:
            registry = make_registry(make_backend(proxy.port))
            peer = make_registry(make_backend(port))
            assert peer.check_signaling() == []
            if mode == "sync":
                async def check():
                    return registry.check_signaling()

                async def signal():
                    registry.signal_changes()
            else:
                check, signal = registry.acheck_signaling, registry.asignal_changes
            traces.append(run(registry, lambda: _scenario(registry, peer, proxy, check, signal)))
    sync, asynchronous = traces
    assert asynchronous == sync
    everything = sorted(registry.caches)
    assert sync[0] == ("first", [], [])  # first contact clears what predates it
    assert sync[1][1] == caches_of(registry, "assets")
    assert sync[2][1] == []  # our own signal is not an invalidation
    assert sync[3] == ("reload", everything, [], 1)
    assert sync[4] == ("down", everything, [], True)
    assert sync[5] == ("signal down", ["default"], "SignalingUnavailable")
    assert sync[6] == ("back", everything, [], [], False)
    assert sync[7] == ("versions", True)


def test_async_check_sees_a_change_made_by_another_process(kind, server, make_registry, request):
    port, make_backend = server
    registry = make_registry(make_backend(port))
    if kind == "postgres":
        dsn = request.getfixturevalue("pg_dsn")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(CONFIG_DDL)
        writer = WriterProcess("run_scope_writer_cli", dsn, dsn, registry.db_name, exit_wait=30)
        command, answer, name = "write", "1", "default"
    else:
        writer = WriterProcess("run_exit_writer", f"redis://127.0.0.1:{port}/0", registry.signaling.key_prefix,
                               registry.db_name, 1.0, exit_wait=30)
        command, answer, name = "signal", "published", "assets"

    async def main():
        assert await registry.acheck_signaling() == []
        warm(registry)
        assert writer.ask("check") == "checked"
        assert await registry.acheck_signaling() == []  # nothing moved yet
        assert writer.ask(command) == answer
        cleared = caches_of(registry, name)
        assert await registry.acheck_signaling() == cleared
        assert filled(registry) == sorted(set(registry.caches) - set(cleared))
        assert await registry.acheck_signaling() == []

    try:
        run(registry, main)
        took, stderr = writer.exit()
    finally:
        writer.kill()
    assert writer.proc.returncode == 0, stderr


def test_async_signal_is_seen_by_a_sync_peer(server, make_registry):
    port, make_backend = server
    registry, peer = make_registry(make_backend(port)), make_registry(make_backend(port))
    assert peer.check_signaling() == []

    async def main():
        assert await registry.acheck_signaling() == []
        registry.clear_cache("assets")
        await registry.asignal_changes()
        assert registry.cache_invalidated == set()
        assert await registry.acheck_signaling() == []  # our own signal

    run(registry, main)
    assert peer.check_signaling() == caches_of(peer, "assets")


def test_an_async_on_reload_is_awaited_by_the_async_check(server, make_registry, caplog):
    """``on_reload`` may be an ``async def``: ``acheck_signaling()`` awaits it (the event loop runs
    other tasks meanwhile; what it raises is raised by the check). The blocking
    ``check_signaling()`` cannot await it: the coroutine is closed unrun (no "never awaited"
    warning) and an error says so."""
    port, make_backend = server
    registry, peer = make_registry(make_backend(port)), make_registry(make_backend(port))
    assert peer.check_signaling() == []
    reloads, others = [], []

    async def on_reload(reloaded):
        assert filled(reloaded) == []  # every cache cleared first
        await asyncio.sleep(0.01)  # another task runs meanwhile
        reloads.append(reloaded)

    def reload_registry():
        peer.registry_invalidated = True
        peer.signal_changes()

    async def main():
        assert await registry.acheck_signaling() == []
        registry.on_reload = on_reload
        warm(registry)
        reload_registry()
        other = asyncio.ensure_future(asyncio.sleep(0.005, result="ran"))
        assert await registry.acheck_signaling() == sorted(registry.caches)
        others.append(other.result() if other.done() else None)
        assert reloads == [registry]  # awaited to its end before the check returned

        async def failing(reloaded):
            raise LookupError("reload failed")

        registry.on_reload = failing
        reload_registry()
        with pytest.raises(LookupError, match="reload failed"):
            await registry.acheck_signaling()

    run(registry, main)
    assert others == ["ran"]
    # blocking: not awaited, said loudly, nothing left behind
    registry.on_reload = on_reload
    reload_registry()
    with caplog.at_level(logging.ERROR, logger="ormcache.signaling"):
        assert registry.check_signaling() == sorted(registry.caches)
    assert reloads == [registry]  # not run
    assert any("coroutine function" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("resolver", ["slow", "hung"])
def test_a_host_name_is_resolved_without_blocking_the_loop(postgres_server, pg_dsn, make_registry, monkeypatch,
                                                           resolver):
    """A DSN naming its host ("localhost"): the async connection resolves it in the event loop's
    executor, within the deadline, where libpq would resolve it while connecting, blocking the
    loop. A slow resolver costs its time while the heartbeat goes on; a hung one costs one
    deadline (an outage, as a hung server)."""
    dbname = pg_dsn.split("dbname=")[1].split()[0]
    resolving = 0.1 if resolver == "slow" else HANG + 0.6
    timeout = SLACK if resolver == "slow" else HANG
    registry = make_registry(PostgresSignaling(
        f"host=localhost port={postgres_server.port} user=postgres dbname={dbname}", timeout=timeout))
    asked = []
    getaddrinfo = socket.getaddrinfo

    def slow_getaddrinfo(host, *args, **kwargs):
        asked.append(host)
        time.sleep(resolving)
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow_getaddrinfo)
    warm(registry)
    cleared, took, gap = run(registry, lambda: with_heartbeat(registry.acheck_signaling))
    assert asked == ["localhost"]  # resolved by the loop's executor, not by libpq
    assert gap < MAX_GAP, gap  # the loop kept serving meanwhile
    if resolver == "slow":
        assert cleared == [] and not registry._signaling_outage  # connected: first contact
        assert resolving * 0.8 <= took, took
    else:
        assert cleared == sorted(registry.caches) and registry._signaling_outage  # an outage
        assert HANG * 0.8 <= took <= HANG + MARGIN, took  # one deadline


# -- hung servers: the loop keeps serving ------------------------------------------------------

@pytest.fixture(params=["black-hole", "silent"])
def hung(kind, make_registry, request):
    """(registry, hang): a registry whose backend will hang once ``hang()`` was called: a black
    hole (accepts, never answers), or a path that worked going silent (connections left open,
    nothing forwarded)."""
    if request.param == "black-hole":
        with BlackHole() as hole:
            yield make_registry(backend_on(kind, hole.port, timeout=HANG)), lambda: None
        return
    port, make_backend = request.getfixturevalue("server")
    assert make_registry(make_backend(port)).check_signaling() == []  # the tables exist
    with TcpProxy(port) as proxy:
        registry = make_registry(make_backend(proxy.port, timeout=HANG))

        def hang():
            proxy.silent = True

        yield registry, hang


def test_hung_server_the_loop_keeps_serving(hung):
    registry, hang = hung

    async def main():
        await registry.acheck_signaling()  # connected (a black hole: already failed)
        hang()
        warm(registry)
        check = await with_heartbeat(registry.acheck_signaling)
        registry.clear_cache("default")
        signal = await with_heartbeat(registry.asignal_changes)
        return check, signal

    (cleared, took, gap), (failure, signal_took, signal_gap) = run(registry, main)
    assert cleared == sorted(registry.caches)  # an outage: every cache cleared, as in sync
    assert filled(registry) == []
    assert HANG * 0.8 <= took <= HANG + MARGIN, took  # one deadline...
    assert gap < MAX_GAP, gap  # ...during which the loop ran the heartbeat
    assert isinstance(failure, SignalingUnavailable), failure
    assert registry._signaling_pending == {"default"}  # kept for the next publish
    assert HANG * 0.8 <= signal_took <= HANG + MARGIN, signal_took
    assert signal_gap < MAX_GAP, signal_gap


def test_sync_check_in_a_coroutine_blocks_the_loop(kind, make_registry):
    """The baseline the test above is measured against: the sync call stalls the heartbeat
    for the whole deadline."""
    with BlackHole() as hole:
        registry = make_registry(backend_on(kind, hole.port, timeout=HANG))

        async def blocking():
            return registry.check_signaling()

        cleared, took, gap = run(registry, lambda: with_heartbeat(blocking))
    assert cleared == sorted(registry.caches)
    assert gap >= HANG * 0.8, gap
    assert gap > MAX_GAP


def test_server_down_clears_everything_and_keeps_signals(server, make_registry):
    """A refused connection (nothing listens): the outage handling of the sync protocol."""
    kind_backend = server[1]
    registry = make_registry(kind_backend(free_port()))

    async def main():
        warm(registry)
        start = time.monotonic()
        cleared = await registry.acheck_signaling()
        took = time.monotonic() - start
        registry.clear_cache("assets")
        with pytest.raises(SignalingUnavailable, match="kept"):
            await registry.asignal_changes()
        return cleared, took

    cleared, took = run(registry, main)
    assert cleared == sorted(registry.caches) and filled(registry) == []
    assert took < TIMEOUT + MARGIN
    assert registry._signaling_outage and registry._signaling_pending == {"assets"}
    assert registry.cache_invalidated == {"assets"}  # as signal_changes(): kept on failure


# -- configuration errors ---------------------------------------------------------------------

def test_wrong_password_is_a_configuration_error_without_the_password(kind, make_registry, caplog, request):
    caplog.set_level(logging.DEBUG)
    if kind == "postgres":
        dsn, role = request.getfixturevalue("pg_password_dsn")
        backend = PostgresSignaling(f"{dsn} password=wrong-{PASSWORD}", timeout=1.0)
    else:
        server = request.getfixturevalue("redis_with_password")
        backend = RedisSignaling(f"redis://:wrong-{PASSWORD}@127.0.0.1:{server.port}/0", timeout=1.0)
    registry = make_registry(backend)

    async def main():
        with pytest.raises(SignalingConfigurationError, match="authentication") as checked:
            await registry.acheck_signaling()  # raised, not handled as an outage
        registry.clear_cache("default")
        with pytest.raises(SignalingConfigurationError, match="authentication") as signalled:
            await registry.asignal_changes()
        return checked.value, signalled.value

    errors = run(registry, main)
    assert not registry._signaling_outage
    for error in errors:
        assert not isinstance(error, SignalingUnavailable)
        assert_no_password(str(error), repr(error), str(error.__cause__ or ""))
    assert_no_password(repr(backend), str(backend), caplog.text)


# -- concurrency ------------------------------------------------------------------------------

def test_concurrent_tasks_share_one_registry(server, make_registry):
    port, make_backend = server
    registry, peer = make_registry(make_backend(port)), make_registry(make_backend(port))
    assert peer.check_signaling() == []
    tasks = 30

    async def main():
        # first contact of 30 tasks at once (the PostgreSQL tables are created meanwhile)
        first = await asyncio.gather(*(registry.acheck_signaling() for _ in range(tasks)))
        warm(registry)
        peer.clear_cache("assets")
        peer.signal_changes()
        seen = await asyncio.gather(*(registry.acheck_signaling() for _ in range(tasks)))
        # checks and signals mixed
        registry.clear_cache("default")
        mixed = await asyncio.gather(*(
            registry.asignal_changes() if index % 3 == 0 else registry.acheck_signaling()
            for index in range(tasks)))
        return first, seen, mixed, await registry.acheck_signaling()

    first, seen, mixed, last = run(registry, main)
    assert first == [[]] * tasks
    assert sorted(seen, key=len) == [[]] * (tasks - 1) + [caches_of(registry, "assets")]  # cleared once
    assert all(result in (None, []) for result in mixed), mixed  # our own signals only
    assert last == [] and filled(registry) == sorted(set(registry.caches) - set(caches_of(registry, "assets", "default")))
    assert peer.check_signaling() == caches_of(peer, "default")


def test_two_threads_each_with_its_loop(server, make_registry):
    port, make_backend = server
    registry, peer = make_registry(make_backend(port)), make_registry(make_backend(port))
    assert peer.check_signaling() == []
    assert registry.check_signaling() == []
    rounds = 5
    barrier = threading.Barrier(3, timeout=30)
    results = {0: [], 1: []}
    errors = []

    def thread_main(index):
        async def main():
            for _ in range(rounds):
                barrier.wait()  # the peer signalled
                results[index].append(await registry.acheck_signaling())
                registry.clear_cache("default")  # this thread's invalidation
                await registry.asignal_changes()
                barrier.wait()

        try:
            run(registry, main)
        except BaseException as exc:  # reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=thread_main, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(rounds):
            warm(registry)
            peer.clear_cache("assets")
            peer.signal_changes()
            barrier.wait()
            barrier.wait()
            assert peer.check_signaling() == caches_of(peer, "default")  # both threads' signals arrived
    finally:
        for thread in threads:
            thread.join(30)
    assert errors == []
    for round_results in zip(results[0], results[1]):
        # one of the two threads applied the peer's signal; the other read it after
        assert sorted(round_results, key=len) == [[], caches_of(registry, "assets")], round_results
    assert registry.check_signaling() == []


# -- other backends ---------------------------------------------------------------------------

def test_local_and_custom_backends(make_registry):
    """LocalSignaling answers in memory; a backend of one's own without coroutines has its
    blocking calls run in a worker thread, never on the loop's."""
    from ormcache.signaling import LocalSignaling, SignalingBackend

    threads = []

    class Custom(SignalingBackend):
        def __init__(self):
            self.counters = LocalSignaling()

        def read_versions(self, db_name, names):
            threads.append(threading.get_ident())
            return self.counters.read_versions(db_name, names)

        def bump(self, db_name, names):
            threads.append(threading.get_ident())
            self.counters.bump(db_name, names)

    for backend in (LocalSignaling(), Custom()):
        registry = make_registry(backend)

        async def main():
            assert await registry.acheck_signaling() == []
            warm(registry)
            registry.clear_cache("assets")
            await registry.asignal_changes()
            assert await registry.acheck_signaling() == []  # our own signal
            backend.bump(registry.db_name, ["routing"])  # another process's
            return await registry.acheck_signaling(), threading.get_ident()

        cleared, loop_thread = run(registry, main)
        assert cleared == caches_of(registry, "routing")
    # read, bump, read, (the direct bump, on the loop's thread), read
    assert len(threads) == 5 and threads[3] == loop_thread
    assert loop_thread not in threads[:3] + threads[4:]


def test_cancelled_calls_keep_the_names_and_the_connection_recovers(server, make_registry):
    """A task cancelled while its check or signal waits on a silent path: the signal's names
    are kept (the bump may have landed), the connection in use is abandoned, and the calls
    after the path came back work."""
    port, make_backend = server
    with TcpProxy(port) as proxy:
        registry = make_registry(make_backend(proxy.port, timeout=5.0))

        async def main():
            assert await registry.acheck_signaling() == []
            proxy.silent = True
            for call in (registry.acheck_signaling, registry.asignal_changes):
                registry.clear_cache("assets")
                task = asyncio.ensure_future(call())
                await asyncio.sleep(0.1)  # waiting for the answer
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            pending = set(registry._signaling_pending)
            proxy.stop()  # the silent connections end; new ones go through
            proxy.silent = False
            proxy.start()
            warm(registry)
            return pending, await registry.acheck_signaling()

        pending, cleared = run(registry, main)
    assert pending == {"assets"}
    assert registry._signaling_pending == set()  # published by the check
    assert cleared == [] and registry._signaling_flying == {}


def test_a_forked_child_forgets_the_parents_bumps_in_flight(server, make_registry):
    """A fork while a thread's publish was in flight: the child does not wait for it nor
    discount it at every check (its counters never get that publish's increment)."""
    port, make_backend = server
    registry = make_registry(make_backend(port))
    assert registry.check_signaling() == []
    registry._signaling_flying = {"assets": 1}  # as copied by fork() during a publish
    registry._signaling_pid = -1  # seen as a forked child at its next call
    start = time.monotonic()
    assert registry.check_signaling() == []
    assert time.monotonic() - start < 0.3  # no wait for a publish that is not ours
    assert registry._signaling_flying == {}


def test_a_loop_that_shuts_down_closes_its_connection(kind, server, make_registry):
    """A program running a loop per job (``asyncio.run()`` each time) never calls ``aclose()``:
    the loop's shutdown closes what the backend opened in it (no connection left open, no
    ResourceWarning when it is collected)."""
    port, make_backend = server
    registry = make_registry(make_backend(port))
    per_loop = registry.signaling._loop_connections if kind == "postgres" else registry.signaling._aclients

    async def job():
        await registry.acheck_signaling()
        return await per_loop.get()

    opened = [asyncio.run(job()) for _ in range(2)]
    assert opened[0] is not opened[1]  # one per loop
    assert len(per_loop._entries) == 0  # forgotten with their loops
    for resource in opened:
        if kind == "postgres":
            assert resource.conn is None
        else:
            pool = resource.connection_pool
            connections = pool._available_connections + list(pool._in_use_connections)
            assert connections and not any(c.is_connected for c in connections)
