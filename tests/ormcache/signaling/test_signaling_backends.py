"""The signaling backends on their own, against real servers (see tests/support/servers.py)."""
import tempfile
import threading
import uuid

import psycopg
from psycopg import pq
import pytest
import redis

from ormcache.signaling import (
    LocalSignaling,
    PostgresSignaling,
    ReadOnlyBackendError,
    RedisSignaling,
    SignalingError,
    SignalingUnavailable,
)

NAMES = ("registry", "default", "assets", "routing.rewrites")


@pytest.fixture
def pg_backend(pg_dsn):
    # a working server: a deadline a loaded machine keeps (the default 0.5 s expired under load
    # in test_postgres_read_and_bump_are_one_round_trip[50], issue #21); deadlines are tested
    # in test_signaling_deadlines.py
    backend = PostgresSignaling(pg_dsn, timeout=5.0)
    yield backend
    backend.close()


@pytest.fixture
def redis_backend(redis_server, redis_prefix):
    backend = RedisSignaling(redis_server.url, key_prefix=redis_prefix + "{db_name}:")
    yield backend
    backend.close()


@pytest.fixture
def redis_client(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


# -- LocalSignaling --------------------------------------------------------------------------

def test_local_counts_per_database_and_name():
    backend = LocalSignaling()
    assert backend.read("db", NAMES) == (None, dict.fromkeys(NAMES, 0))
    backend.bump("db", ["default", "assets"])
    backend.bump("db", ["default"])
    backend.bump("other", ["default"])
    assert backend.read("db", NAMES)[1] == {"registry": 0, "default": 2, "assets": 1, "routing.rewrites": 0}
    assert backend.read("other", ["default"])[1] == {"default": 1}


def test_local_bumps_from_threads_are_not_lost():
    backend = LocalSignaling()

    def bump():
        for _ in range(1000):
            backend.bump("db", ["default"])

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert backend.read("db", ["default"])[1] == {"default": 8000}


# -- PostgreSQL ------------------------------------------------------------------------------

def test_postgres_creates_tables_on_first_use(pg_backend, pg_dsn):
    """Odoo 18.1's insert-only tables, one per name (issue #8: they replace the sequences)."""
    assert pg_backend.read("ignored", NAMES)[1] == dict.fromkeys(NAMES, 0)
    with psycopg.connect(pg_dsn) as conn:
        tables = {row[0] for row in conn.execute("SELECT relname FROM pg_class WHERE relkind = 'r'")}
        sequences = {row[0] for row in conn.execute("SELECT relname FROM pg_class WHERE relkind = 'S'")}
    assert tables >= {f"orm_signaling_{name}" for name in NAMES}
    assert not {name for name in sequences if name.startswith("ormcache_signaling_")}


def test_postgres_bump_and_read(pg_backend, pg_dsn):
    pg_backend.bump("ignored", ["default", "routing.rewrites"])
    pg_backend.bump("ignored", ["default"])
    other = PostgresSignaling(pg_dsn)
    try:
        assert other.read("ignored", NAMES)[1] == {
            "registry": 0, "default": 2, "assets": 0, "routing.rewrites": 1}
    finally:
        other.close()


def test_postgres_concurrent_first_use(pg_dsn):
    """Several connections creating the same sequences at once: no catalog collision."""
    backends = [PostgresSignaling(pg_dsn) for _ in range(6)]
    errors = []
    barrier = threading.Barrier(len(backends))

    def first_use(backend):
        try:
            barrier.wait()
            backend.bump("db", NAMES)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(b,)) for b in backends]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert backends[0].read("db", NAMES)[1] == dict.fromkeys(NAMES, 6)
    finally:
        for backend in backends:
            backend.close()


def _round_trips(backend, func, times):
    """Run ``func`` ``times`` times under libpq's protocol trace; count the server's
    ReadyForQuery messages (one per round trip)."""
    with tempfile.TemporaryFile() as trace:
        pgconn = backend._conn.pgconn
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            for _ in range(times):
                func()
        finally:
            pgconn.untrace()
        trace.seek(0)
        return sum(line.split(b"\t")[2:3] == [b"ReadyForQuery"] for line in trace)


@pytest.mark.parametrize("count", [1, 50])
def test_postgres_read_and_bump_are_one_round_trip(pg_backend, count):
    names = tuple(f"name{i}" for i in range(count))
    for _ in range(10):  # create the sequences, let psycopg prepare the statements
        pg_backend.read("db", names)
        pg_backend.bump("db", names)
    assert _round_trips(pg_backend, lambda: pg_backend.read("db", names), 10) == 10
    assert _round_trips(pg_backend, lambda: pg_backend.bump("db", names), 10) == 10
    assert pg_backend.read("db", names)[1] == dict.fromkeys(names, 20)


def test_postgres_read_only_transactions_read_but_never_write(pg_dsn, pg_backend):
    """Issue #8: a read-only connection may READ signals (only writing them is refused; until
    then, reading was refused too)."""
    pg_backend.bump("db", ["default"])
    backend = PostgresSignaling(pg_dsn + " options='-c default_transaction_read_only=on'")
    try:
        assert backend.read("db", NAMES)[1] == {"registry": 0, "default": 1, "assets": 0, "routing.rewrites": 0}
        with pytest.raises(ReadOnlyBackendError, match="read-write primary"):
            backend.bump("db", ["default"])
        pg_backend.bump("db", ["default"])
        assert backend.read("db", NAMES)[1]["default"] == 2
    finally:
        backend.close()


def test_postgres_read_only_reads_tables_created_after_it_connected(pg_dsn, pg_backend):
    """A replica cannot create the tables: until a writer does, nothing was signaled (epoch
    None, versions 0); once they exist the same connection reads them, in one round trip."""
    backend = PostgresSignaling(pg_dsn + " options='-c default_transaction_read_only=on'")
    try:
        assert backend.read("db", NAMES) == (None, dict.fromkeys(NAMES, 0))
        for _ in range(10):  # let psycopg prepare the statement
            backend.read("db", NAMES)
        assert _round_trips(backend, lambda: backend.read("db", NAMES), 5) == 5  # no table yet
        pg_backend.bump("db", ["default"])
        epoch, versions = backend.read("db", NAMES)
        assert epoch is not None and versions == {"registry": 0, "default": 1, "assets": 0,
                                                  "routing.rewrites": 0}
        for _ in range(10):  # let psycopg prepare the statement
            backend.read("db", NAMES)
        assert _round_trips(backend, lambda: backend.read("db", NAMES), 5) == 5
    finally:
        backend.close()


def test_postgres_hot_standby_reads_but_never_writes(postgres_server, pg_dsn, pg_backend):
    from support.servers import PostgresServer

    pg_backend.bump("db", ["assets"])  # the primary creates the tables
    dbname = psycopg.conninfo.conninfo_to_dict(pg_dsn)["dbname"]
    standby = PostgresServer()
    try:
        standby.setup(standby_of=postgres_server)
        backend = PostgresSignaling(standby.dsn_for(dbname))
        try:
            assert backend.read("db", NAMES)[1]["assets"] == 1
            with pytest.raises(ReadOnlyBackendError, match=r"read-only replica \(in recovery\)"):
                backend.bump("db", NAMES)
        finally:
            backend.close()
    finally:
        standby.teardown()


def test_postgres_unreachable_then_reconnects(postgres_server, pg_dsn, pg_backend):
    pg_backend.bump("db", ["default"])
    postgres_server.stop()
    try:
        with pytest.raises(SignalingUnavailable, match="unreachable"):
            pg_backend.read("db", NAMES)
        with pytest.raises(SignalingError):
            pg_backend.bump("db", ["default"])
    finally:
        postgres_server.start()
    # the first call after the restart succeeds: a dead connection is replaced once
    assert pg_backend.read("db", NAMES)[1]["default"] == 1
    pg_backend.bump("db", ["default"])
    assert pg_backend.read("db", NAMES)[1]["default"] == 2


def test_postgres_survives_a_restart_under_an_open_connection(postgres_server, pg_backend):
    pg_backend.bump("db", ["assets"])
    postgres_server.stop()
    postgres_server.start()
    assert pg_backend.read("db", NAMES)[1]["assets"] == 1


# -- Redis -----------------------------------------------------------------------------------

def test_redis_keys_under_the_prefix_with_the_database_name(redis_backend, redis_client, redis_prefix):
    epoch, versions = redis_backend.read("db1", NAMES)
    assert versions == dict.fromkeys(NAMES, 0)
    redis_backend.bump("db1", ["default", "routing.rewrites"])
    redis_backend.bump("db2", ["default"])
    assert redis_client.get(redis_prefix + "db1:default") == b"1"
    assert redis_client.get(redis_prefix + "db1:routing.rewrites") == b"1"
    assert redis_client.get(redis_prefix + "db2:default") == b"1"
    assert redis_client.get(redis_prefix + "db1:epoch") == epoch
    assert redis_backend.read("db1", NAMES) == (epoch, {**dict.fromkeys(NAMES, 0), "default": 1, "routing.rewrites": 1})


def test_redis_default_prefix_includes_the_database_name(redis_server):
    backend = RedisSignaling(redis_server.url)
    try:
        assert backend.prefix("shop") == "ormcache:shop:"
        assert backend.channel("shop") == "ormcache:shop:signal"
    finally:
        backend.close()


def test_redis_read_is_one_mget_and_bump_one_transaction(redis_backend, redis_client):
    names = tuple(f"name{i}" for i in range(50))
    redis_backend.read("db", names)
    redis_client.config_resetstat()
    redis_backend.read("db", names)
    redis_backend.bump("db", names)
    stats = redis_client.info("commandstats")
    assert stats["cmdstat_mget"]["calls"] == 1
    assert stats["cmdstat_incr"]["calls"] == 50
    assert stats["cmdstat_exec"]["calls"] == 1  # the INCRs went in one MULTI/EXEC pipeline
    assert "cmdstat_get" not in stats


def test_redis_epoch_changes_when_the_data_is_lost(redis_backend, redis_server):
    epoch, _ = redis_backend.read("db", NAMES)
    redis_backend.bump("db", ["default"])
    redis_server.kill()
    try:
        with pytest.raises(SignalingUnavailable, match="unreachable"):
            redis_backend.read("db", NAMES)
        with pytest.raises(SignalingUnavailable):
            redis_backend.bump("db", ["default"])
    finally:
        redis_server.start()
    new_epoch, versions = redis_backend.read("db", NAMES)
    assert new_epoch != epoch
    assert versions == dict.fromkeys(NAMES, 0)
    assert redis_backend.read("db", NAMES)[0] == new_epoch


def test_redis_unreachable_url_is_a_clear_error():
    from support.servers import free_port

    backend = RedisSignaling(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=1)
    try:
        with pytest.raises(SignalingUnavailable, match=r"Redis signaling at redis://127\.0\.0\.1:\d+/0 is unreachable"):
            backend.read("db", NAMES)
    finally:
        backend.close()


def test_redis_refuses_a_replica(redis_server, redis_prefix):
    from support.servers import RedisServer

    with RedisServer(replica_of=redis_server) as replica:
        backend = RedisSignaling(replica.url, key_prefix=redis_prefix)
        try:
            with pytest.raises(ReadOnlyBackendError, match="is a slave .*needs the primary"):
                backend.read("db", NAMES)
            with pytest.raises(ReadOnlyBackendError):
                backend.bump("db", ["default"])
        finally:
            backend.close()


# -- check_signaling() with nothing changed: one round trip ------------------------------------

@pytest.fixture
def registry():
    from ormcache.registry import Registry

    registry = Registry(f"roundtrip-{uuid.uuid4().hex[:8]}")
    yield registry
    if registry.signaling is not None:
        registry.signaling.close()
    Registry.delete(registry.db_name)


def test_postgres_check_is_one_round_trip(registry, pg_dsn):
    registry.signaling = PostgresSignaling(pg_dsn)
    for _ in range(10):
        registry.check_signaling()
    assert _round_trips(registry.signaling, registry.check_signaling, 10) == 10


def test_redis_check_is_one_mget(registry, redis_server, redis_prefix, redis_client):
    registry.signaling = RedisSignaling(redis_server.url, key_prefix=redis_prefix)
    registry.check_signaling()
    redis_client.config_resetstat()
    for _ in range(10):
        assert registry.check_signaling() == []
    stats = redis_client.info("commandstats")
    assert {name: stat["calls"] for name, stat in stats.items() if not name.startswith("cmdstat_config")} == {
        "cmdstat_mget": 10}


# -- the package -----------------------------------------------------------------------------

def test_each_backend_module_imports_its_driver_only_when_used():
    """``ormcache.signaling`` is a package: importing it (or the registry) imports no driver;
    naming a backend imports its module, and that module's driver only."""
    import subprocess
    import sys

    code = (
        "import sys, ormcache, ormcache.signaling as s\n"
        "assert 'psycopg' not in sys.modules and 'redis' not in sys.modules, sorted(sys.modules)\n"
        "from ormcache.signaling import PostgresSignaling\n"
        "assert 'psycopg' in sys.modules and 'redis' not in sys.modules\n"
        "from ormcache.signaling import RedisSignaling\n"
        "assert 'redis' in sys.modules\n"
        "assert PostgresSignaling.__module__ == 'ormcache.signaling.postgres'\n"
        "assert RedisSignaling.__module__ == 'ormcache.signaling.redis'\n"
        "for name in s.__all__: getattr(s, name)\n"
        "try:\n    s.Bogus\nexcept AttributeError:\n    pass\nelse:\n    raise SystemExit('no AttributeError')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
