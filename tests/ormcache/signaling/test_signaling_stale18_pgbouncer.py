"""Issue 18, item 9: PostgreSQL signaling through a real PgBouncer in transaction pooling mode
(started here, 127.0.0.1, a free port, ``max_prepared_statements = 0`` as most deployments run
it, server connections handed out round robin). psycopg prepares a statement server-side after
5 executions by default; behind transaction pooling the next transaction may run on another
server connection, where that statement does not exist.

Before the fix: 10 of 200 signaling reads failed (each taken for an outage: the process then
serves no cached value until the retry interval passes); after: 0 of 200."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import psycopg
import pytest

from ormcache.signaling import PostgresSignaling, SignalingError
from support.servers import _wait_for_port, free_port

PGBOUNCER = "/usr/sbin/pgbouncer"
READS = 200


@pytest.fixture
def pgbouncer(postgres_server, pg_dsn):
    """DSN of ``pg_dsn``'s database through a PgBouncer in transaction pooling mode."""
    if not os.path.exists(PGBOUNCER):
        pytest.fail(f"{PGBOUNCER} is missing (Debian package pgbouncer)")
    dbname = dict(part.split("=", 1) for part in pg_dsn.split())["dbname"]
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="ormcache-pgbouncer-")
    with open(os.path.join(workdir, "users.txt"), "w") as f:
        f.write('"postgres" ""\n')
    with open(os.path.join(workdir, "pgbouncer.ini"), "w") as f:
        f.write(f"""[databases]
{dbname} = host=127.0.0.1 port={postgres_server.port} dbname={dbname} user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir}/users.txt
pool_mode = transaction
default_pool_size = 4
min_pool_size = 4
server_round_robin = 1
ignore_startup_parameters = extra_float_digits,options
logfile = {workdir}/pgbouncer.log
""")
    command = [PGBOUNCER, os.path.join(workdir, "pgbouncer.ini")]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        import pwd

        pw = pwd.getpwnam("postgres")
        for name in (workdir, *(os.path.join(workdir, n) for n in os.listdir(workdir))):
            os.chown(name, pw.pw_uid, pw.pw_gid)
        command = ["runuser", "-u", "postgres", "--", *command]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, proc)
        yield f"host=127.0.0.1 port={port} user=postgres dbname={dbname} connect_timeout=5"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def test_signaling_reads_through_pgbouncer_transaction_pooling(pgbouncer, pg_dsn):
    with PostgresSignaling(pg_dsn) as direct:
        direct.bump("x", ["default"])  # the tables, created directly
    backend = PostgresSignaling(pgbouncer, timeout=5)
    failures = []
    # another client through the same PgBouncer holds a server connection in one read of three:
    # the signaling connection's transactions then run on another server connection
    with psycopg.connect(pgbouncer, prepare_threshold=None) as other:
        try:
            for i in range(READS):
                if i % 3 == 0:
                    other.execute("SELECT 1")  # a transaction holding a server connection
                try:
                    backend.read_versions("x", ["registry", "default"])
                except SignalingError as exc:
                    failures.append((i, str(exc)[:120]))
                if i % 3 == 0:
                    other.commit()
        finally:
            backend.close()
    print(f"PgBouncer transaction pooling: {len(failures)} of {READS} signaling reads failed {failures[:2]}")
    assert failures == []


def test_async_signaling_reads_through_pgbouncer_transaction_pooling(pgbouncer, pg_dsn):
    import asyncio

    with PostgresSignaling(pg_dsn) as direct:
        direct.bump("x", ["default"])
    backend = PostgresSignaling(pgbouncer, timeout=5)
    failures = []

    async def reads(other):
        try:
            for i in range(READS):
                if i % 3 == 0:
                    other.execute("SELECT 1")
                try:
                    await backend.aread_versions("x", ["registry", "default"])
                except SignalingError as exc:
                    failures.append((i, str(exc)[:120]))
                if i % 3 == 0:
                    other.commit()
        finally:
            await backend.aclose()

    with psycopg.connect(pgbouncer, prepare_threshold=None) as other:
        try:
            asyncio.run(reads(other))
        finally:
            backend.close()
    print(f"PgBouncer transaction pooling, async: {len(failures)} of {READS} signaling reads failed")
    assert failures == []
