"""Never stale, at the registry level, with real processes on the private PostgreSQL (issue #8).

A writer process updates a row and records its signal in the same transaction
(``cursor_scope(execute=conn.execute)`` on its own psycopg connection); reader threads in
several processes serve an ``@ormcache`` value inside ``cursor_scope()``. Stale means: a
transaction that began after the writer's COMMIT returned read a value older than that commit.
Required: 0, under READ COMMITTED and REPEATABLE READ.

Lost invalidations: the writer's signaling path cut (TcpProxy), PostgreSQL restarted in the
commit window, then the writer exits: 0 stale reads afterwards.
"""
import multiprocessing
import uuid

import psycopg
import pytest

from support import signaling_workers
from ormcache.registry import Registry
from support.servers import TcpProxy
from support.signaling import worker_reports
from support.signaling_workers import WriterProcess

PROCESSES = 3  # process 0 writes; each has two reader threads


@pytest.fixture
def config_table(pg_dsn):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(signaling_workers.CONFIG_DDL)
    return pg_dsn


@pytest.mark.parametrize("isolation", ["read-committed", "repeatable-read"])
def test_readers_never_serve_a_value_older_than_a_returned_commit(config_table, isolation):
    ctx = multiprocessing.get_context("spawn")
    floor, stop, results = ctx.Value("q", 0), ctx.Event(), ctx.Queue()
    db_name = f"never-stale-{uuid.uuid4().hex[:8]}"
    writes = 80
    stats = worker_reports(ctx, signaling_workers.run_scope_worker, PROCESSES,
                           (writes, isolation, config_table, db_name, floor, stop, results), results, 30, stop=stop)
    assert [s["stale"] for s in stats] == [[]] * PROCESSES  # 0 stale reads
    assert stats[0]["writes"] == writes
    assert all(s["final"] == writes for s in stats)
    reads = sum(s["reads"] for s in stats)
    assert reads >= 100
    assert sum(s["calls"] for s in stats) < reads  # the cache served values (not all misses)


@pytest.fixture
def reader(config_table):
    """The reading 'process': a registry of its own, a warm cache holding the value 0."""
    from ormcache.signaling import PostgresSignaling

    registry = Registry(f"reader-{uuid.uuid4().hex[:8]}")
    registry.signaling = PostgresSignaling(config_table)
    registry.signaling_retry_interval = 0
    conn = signaling_workers._data_connection(config_table, "repeatable-read")
    assert signaling_workers.scope_read(registry, conn) == 0
    calls = signaling_workers.ConfigModel.calls
    assert signaling_workers.scope_read(registry, conn) == 0
    assert signaling_workers.ConfigModel.calls == calls  # served from the cache
    yield registry, conn
    conn.close()
    registry.signaling.close()
    Registry.delete(registry.db_name)


def test_writer_signaling_path_cut_then_exit(reader, config_table, postgres_server):
    registry, conn = reader
    with TcpProxy(postgres_server.port) as proxy:
        signal_dsn = config_table.replace(f"port={postgres_server.port}", f"port={proxy.port}")
        writer = WriterProcess("run_scope_writer_cli", config_table, signal_dsn, registry.db_name, exit_wait=30)
        try:
            assert writer.ask("check") == "checked"
            proxy.stop()  # the writer's signaling connection is cut for good
            assert writer.ask("write") == "1"
            took, stderr = writer.exit()
        finally:
            writer.kill()
    assert writer.proc.returncode == 0, stderr
    assert took < 5, stderr  # nothing was kept to publish: the signal committed with the data
    assert "never published" not in stderr
    assert signaling_workers.scope_read(registry, conn) == 1  # 0 stale reads afterwards
    assert signaling_workers.scope_read(registry, conn) == 1


def test_postgres_restarted_in_the_commit_window_then_writer_exits(reader, config_table, postgres_server):
    registry, conn = reader
    writer = WriterProcess("run_scope_writer_cli", config_table, config_table, registry.db_name, exit_wait=30)
    try:
        assert writer.ask("check") == "checked"
        assert writer.ask("write") == "1"  # COMMIT returned; now the server goes away
        postgres_server.stop()
        postgres_server.start()
        took, stderr = writer.exit()
    finally:
        writer.kill()
    assert writer.proc.returncode == 0, stderr
    assert "never published" not in stderr
    conn.close()
    conn = signaling_workers._data_connection(config_table, "repeatable-read")
    try:
        assert signaling_workers.scope_read(registry, conn) == 1
        assert signaling_workers.scope_read(registry, conn) == 1
    finally:
        conn.close()
