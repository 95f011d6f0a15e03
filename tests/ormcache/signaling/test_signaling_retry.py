"""Redis signaling cannot share the database transaction (issue #8, item 2): a publish that
fails is kept, retried in the background as soon as Redis answers, and at interpreter exit.

"Redis down" here is the writer's path to Redis cut by a TCP proxy (servers.TcpProxy): Redis
keeps its counters, so a reader can only learn of the change from the writer's publish (a Redis
that lost its data changes the epoch, and every reader resynchronises anyway).
"""
import logging
import threading
import time

import pytest

from ormcache.registry import CACHES_BY_KEY
from ormcache.signaling import RedisSignaling, SignalingUnavailable
from ormcache.signaling.base import SignalingBackend
from support.servers import TcpProxy
from support.signaling_workers import WriterProcess
from support.registries import signaling_registries



@pytest.fixture
def make_registry():
    with signaling_registries("retry") as make:
        yield make


@pytest.fixture
def proxy(redis_server):
    with TcpProxy(redis_server.port) as proxy:
        yield proxy


def wait_until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def warm(registry):
    for name, lru in registry.caches.items():
        lru["k"] = name


def published(reader, count=1):
    return reader.signaling.read(reader.db_name, ["assets"])[1]["assets"] >= count


def test_a_failed_publish_is_retried_in_the_background(make_registry, proxy, redis_server, redis_prefix):
    writer = make_registry(RedisSignaling(f"redis://127.0.0.1:{proxy.port}/0", key_prefix=redis_prefix,
                                          socket_timeout=1.0))
    reader = make_registry(RedisSignaling(redis_server.url, key_prefix=redis_prefix))
    writer.signaling_retry_interval = 0.2
    assert writer.check_signaling() == [] and reader.check_signaling() == []
    proxy.stop()
    writer.clear_cache("assets")
    with pytest.raises(SignalingUnavailable, match="kept and will be published"):
        writer.signal_changes()
    time.sleep(0.5)
    warm(reader)
    assert reader.check_signaling() == []  # Redis never heard of it yet
    proxy.start()
    back = time.monotonic()
    # the writer does nothing more: its background thread publishes
    assert wait_until(lambda: published(reader), timeout=10)
    delay = time.monotonic() - back
    assert reader.check_signaling() == list(CACHES_BY_KEY["assets"])
    assert delay < writer.signaling_retry_interval + 1.0
    # the writer's next check resynchronises after its outage (clears everything once)
    warm(writer)
    assert writer.check_signaling() == sorted(writer.caches)
    assert writer.check_signaling() == []


def test_a_writer_exiting_while_redis_is_down_publishes_when_it_comes_back(
        make_registry, proxy, redis_server, redis_prefix):
    reader = make_registry(RedisSignaling(redis_server.url, key_prefix=redis_prefix))
    writer = WriterProcess("run_exit_writer", f"redis://127.0.0.1:{proxy.port}/0", redis_prefix, "exit-writer", 20)
    try:
        assert writer.ask("check") == "checked"
        reader.check_signaling()
        proxy.stop()
        assert writer.ask("signal") == "failed"
        # the writer exits while Redis is unreachable; Redis answers again 1 s later
        import threading

        timer = threading.Timer(1.0, proxy.start)
        timer.start()
        try:
            took, stderr = writer.exit()
        finally:
            timer.join()
    finally:
        writer.kill()
    assert writer.proc.returncode == 0, stderr
    assert "Published invalidations of 'exit-writer' kept during the signaling outage" in stderr
    assert 0.9 < took < 10, stderr  # it waited for Redis, and no longer than needed
    # published once (the background thread and the exit handler never both publish it)
    assert reader.signaling.read(reader.db_name, ["assets"])[1] == {"assets": 1}
    warm(reader)
    assert reader.check_signaling() == list(CACHES_BY_KEY["assets"])


def test_a_writer_exiting_while_redis_stays_down_gives_up_after_its_exit_timeout(
        make_registry, proxy, redis_server, redis_prefix):
    """The documented limit: what is kept in a process's memory cannot outlive the process.
    After ``signaling_exit_timeout`` it logs an ERROR naming what was never published; readers
    keep those caches until their next resync (outage, new epoch, or a later signal)."""
    reader = make_registry(RedisSignaling(redis_server.url, key_prefix=redis_prefix))
    writer = WriterProcess("run_exit_writer", f"redis://127.0.0.1:{proxy.port}/0", redis_prefix, "exit-writer", 1.0)
    try:
        assert writer.ask("check") == "checked"
        reader.check_signaling()
        proxy.stop()
        assert writer.ask("signal") == "failed"
        took, stderr = writer.exit()
    finally:
        writer.kill()
    assert writer.proc.returncode == 0, stderr
    assert "never published" in stderr and "['assets']" in stderr
    assert 0.9 < took < 5, stderr
    proxy.start()
    warm(reader)
    assert reader.check_signaling() == []  # lost: the reader was not told


def test_retries_keep_working_over_repeated_outages(make_registry, proxy, redis_server, redis_prefix):
    """A publish that fails right after the background thread published the previous one is
    retried too (the thread must not forget the registry in between)."""
    writer = make_registry(RedisSignaling(f"redis://127.0.0.1:{proxy.port}/0", key_prefix=redis_prefix,
                                          socket_timeout=1.0))
    reader = make_registry(RedisSignaling(redis_server.url, key_prefix=redis_prefix))
    writer.signaling_retry_interval = 0.05
    writer.check_signaling()

    class Slow(logging.Handler):
        """Widens the window between a background publish and the thread's bookkeeping."""

        def emit(self, record):
            if "Published invalidations" in record.getMessage():
                time.sleep(0.3)

    handler = Slow()
    logger = logging.getLogger("ormcache.signaling")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    try:
        outages(writer, reader, proxy)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def outages(writer, reader, proxy):
    for count in range(1, 6):
        proxy.stop()
        writer.clear_cache("assets")
        with pytest.raises(SignalingUnavailable):
            writer.signal_changes()
        proxy.start()
        assert wait_until(lambda: published(reader, count), timeout=10), f"outage {count} never published"


class GatedBackend(SignalingBackend):
    """In-memory counters whose next bump can be held (``hold``) or refused (``refuse``)."""

    def __init__(self):
        self.counters = {}
        self.hold = self.refuse = False
        self.held = threading.Event()
        self.go = threading.Event()

    def read_versions(self, db_name, names):
        return "epoch", tuple(self.counters.get(name, 0) for name in names)

    def bump(self, db_name, names):
        if self.refuse:
            self.refuse = False
            raise SignalingUnavailable("refused")
        if self.hold:
            self.hold = False
            self.held.set()
            assert self.go.wait(10)
        for name in names:
            self.counters[name] = self.counters.get(name, 0) + 1


def test_an_invalidation_kept_while_a_retry_is_in_flight_is_not_dropped_by_it(make_registry):
    """A retry sends the kept names; meanwhile a newer commit's publish of the same name fails.
    The retry's bump may have landed before that commit: the newer invalidation must stay kept
    and be published (an extra invalidation at worst, never a lost one)."""
    backend = GatedBackend()
    registry = make_registry(backend)
    registry.signaling_background_retry = False
    registry.check_signaling()
    registry.clear_cache("assets")
    backend.refuse = True
    with pytest.raises(SignalingUnavailable):
        registry.signal_changes()  # first commit: kept
    backend.hold = True
    retry = threading.Thread(target=registry._signaling_retry, args=(True,))
    retry.start()
    assert backend.held.wait(10)  # the retry's bump of 'assets' is in flight
    registry.clear_cache("assets")
    with pytest.raises(SignalingUnavailable):
        registry.signal_changes()  # second commit: refused (resting), kept
    backend.go.set()
    retry.join(10)
    assert backend.counters == {"assets": 1}
    assert registry._signaling_retry(force=True) is True  # the second commit is still kept...
    assert backend.counters == {"assets": 2}  # ...and published
