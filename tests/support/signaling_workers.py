"""Worker processes of the signaling tests (a module of its own: 'spawn' children import it).

Each worker owns a registry on the shared signaling backend and reads a "config parameter" row
of PostgreSQL through the registry's ``default`` cache, the way Odoo's ``get_param`` does.
"""
import logging
import os
import random
import subprocess
import sys
import time

import psycopg

from ormcache.registry import Registry
from ormcache.signaling import PostgresSignaling, RedisSignaling, SignalingError

CONFIG_DDL = """
CREATE TABLE IF NOT EXISTS config (key text PRIMARY KEY, value bigint NOT NULL);
INSERT INTO config VALUES ('counter', 0) ON CONFLICT DO NOTHING;
"""


def make_backend(kind, target, key_prefix=None):
    """``kind`` is 'postgres', 'redis' or 'redis-pubsub'; ``target`` a dsn or url."""
    if kind == "postgres":
        return PostgresSignaling(target)
    return RedisSignaling(target, key_prefix=key_prefix, pubsub=kind == "redis-pubsub")


def get_param(registry, conn, key):
    """The cached read under test: the 'default' cache in front of a SELECT."""
    cache = registry.caches["default"]
    try:
        return cache[("config", key)]
    except KeyError:
        value = conn.execute("SELECT value FROM config WHERE key = %s", (key,)).fetchone()[0]
        cache[("config", key)] = value
        return value


def _connect(dsn, stop):
    while True:
        try:
            return psycopg.connect(dsn, autocommit=True, connect_timeout=2)
        except psycopg.OperationalError:
            if stop.is_set():
                raise
            time.sleep(0.05)


def run_worker(index, kind, target, key_prefix, data_dsn, db_name, published, progress, stop,
               barrier, results, min_iterations, write_ratio):
    """Loop units of work until ``stop`` is set (and at least ``min_iterations`` are done).

    A writer unit increments the counter row and clears 'default'; once signal_changes()
    returned it raises the shared ``published`` floor. A reader unit notes the floor, then
    checks signaling and reads the parameter three times: every read must be >= the floor.
    At the end: publish what is pending, wait for the others, check once more, and compare
    with the database (all signals must have been delivered).
    """
    logging.basicConfig(level=logging.ERROR)
    registry = Registry(db_name)
    registry.signaling = make_backend(kind, target, key_prefix)
    stats = dict(index=index, reads=0, writes=0, stale=[], signal_errors=0, db_errors=0,
                 invalidations=0, iterations=0)
    rng = random.Random(index)
    conn = _connect(data_dsn, stop)
    try:
        # start together: on a loaded machine a worker spawned late could otherwise find the
        # others done, and no signal would ever reach a warm cache
        registry.check_signaling()
        barrier.wait(timeout=60)
        while stats["iterations"] < min_iterations or not stop.is_set():
            stats["iterations"] += 1
            with progress.get_lock():
                progress.value += 1
            try:
                if rng.random() < write_ratio:
                    with registry.cursor_scope():
                        value = conn.execute(
                            "UPDATE config SET value = value + 1 WHERE key = 'counter' RETURNING value"
                        ).fetchone()[0]
                        registry.clear_cache("default")
                    with published.get_lock():
                        published.value = max(published.value, value)
                    stats["writes"] += 1
                else:
                    floor = published.value
                    if registry.check_signaling():
                        stats["invalidations"] += 1
                    for _ in range(3):
                        value = get_param(registry, conn, "counter")
                        stats["reads"] += 1
                        if value < floor:
                            stats["stale"].append((floor, value))
                    registry.signal_changes()  # nothing to publish, unless kept from an outage
            except SignalingError:
                stats["signal_errors"] += 1
            except psycopg.OperationalError:
                stats["db_errors"] += 1
                conn.close()
                conn = _connect(data_dsn, stop)
        # publish anything kept during an outage, then all must agree with the database
        deadline = time.monotonic() + 30
        while True:
            try:
                registry.signal_changes()
                break
            except SignalingError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        barrier.wait(timeout=60)
        registry.check_signaling()
        stats["final_cached"] = get_param(registry, conn, "counter")
        stats["final_db"] = conn.execute("SELECT value FROM config WHERE key = 'counter'").fetchone()[0]
        barrier.wait(timeout=60)
    finally:
        conn.close()
        registry.signaling.close()
    results.put(stats)


def run_names_worker(index, kind, target, key_prefix, db_name, barrier, results):
    """Warm 'default' and 'assets'; worker 0 clears 'assets' and signals; the others check and
    report what they cleared and whether 'default' is still warm."""
    registry = Registry(db_name)
    registry.signaling = make_backend(kind, target, key_prefix)
    try:
        registry.check_signaling()
        registry.caches["default"]["param"] = "warm"
        registry.caches["assets"]["bundle"] = "warm"
        barrier.wait(timeout=60)
        if index == 0:
            with registry.cursor_scope():
                registry.clear_cache("assets")
        barrier.wait(timeout=60)
        cleared = registry.check_signaling()
        results.put(dict(index=index, cleared=cleared,
                         default=registry.caches["default"].get("param"),
                         assets=registry.caches["assets"].get("bundle")))
    finally:
        registry.signaling.close()


def run_exit_writer(url, key_prefix, db_name, exit_timeout):
    """A writer process driven line by line on stdin: 'check', 'signal' (clear 'assets' and
    publish, reporting 'published' or 'failed'), 'exit' (return: the interpreter then exits and
    retries what was kept for up to ``exit_timeout`` seconds)."""
    import sys

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    registry = Registry(db_name)
    registry.signaling = RedisSignaling(url, key_prefix=key_prefix, socket_timeout=1.0)
    registry.signaling_exit_timeout = exit_timeout
    for line in sys.stdin:
        command = line.strip()
        if command == "check":
            registry.check_signaling()
            print("checked", flush=True)
        elif command == "signal":
            registry.clear_cache("assets")
            try:
                registry.signal_changes()
            except SignalingError:
                print("failed", flush=True)
            else:
                print("published", flush=True)
        elif command == "exit":
            print("exiting", flush=True)
            return


# -- never stale at the registry level: @ormcache inside cursor_scope(), signals in the
# -- writer's transaction (issue #8) ---------------------------------------------------------

ISOLATION = {"read-committed": psycopg.IsolationLevel.READ_COMMITTED,
             "repeatable-read": psycopg.IsolationLevel.REPEATABLE_READ}


def _scope_registry(db_name, signal_dsn):
    registry = Registry(db_name)
    registry.signaling = PostgresSignaling(signal_dsn)
    return registry


def _data_connection(dsn, isolation):
    conn = psycopg.connect(dsn, connect_timeout=5)
    conn.isolation_level = ISOLATION[isolation]
    return conn


class ConfigModel:
    """A model in Odoo's owner protocol: ``value()`` is cached in 'default' for everyone and
    reads the row through the caller's connection (its transaction, its snapshot)."""

    _name = "config.model"
    calls = 0

    def __init__(self, registry, conn):
        self.pool = registry
        self.conn = conn

    @classmethod
    def define(cls):
        from ormcache import ormcache

        def value(self):
            type(self).calls += 1
            return self.conn.execute("SELECT value FROM config WHERE key = 'counter'").fetchone()[0]

        cls.value = ormcache()(value)


ConfigModel.define()


def scope_write(registry, conn):
    """One writer unit: the change and its signal in one transaction; returns the value once
    COMMIT returned."""
    with registry.cursor_scope(execute=conn.execute):
        value = conn.execute(
            "UPDATE config SET value = value + 1 WHERE key = 'counter' RETURNING value").fetchone()[0]
        registry.clear_cache("default")
    conn.commit()
    return value


def scope_read(registry, conn):
    with registry.cursor_scope():
        try:
            return ConfigModel(registry, conn).value()
        finally:
            conn.commit()


def _reader_loop(registry, dsn, isolation, floor, stop, stats, lock):
    conn = _data_connection(dsn, isolation)
    reads, stale = 0, []
    try:
        while not stop.is_set():
            before = floor.value  # commits that returned before this transaction began
            value = scope_read(registry, conn)
            reads += 1
            if value < before:
                stale.append((before, value))
            time.sleep(0.001)  # let the writer thread of this process have the GIL
    finally:
        conn.close()
    with lock:
        stats["reads"] += reads
        stats["stale"] += stale


def run_scope_worker(index, writes, isolation, dsn, db_name, floor, stop, results):
    """Process ``index``: two reader threads; process 0 also writes ``writes`` times (then sets
    ``stop``). Reports reads, stale reads (value older than a commit that returned before the
    read's transaction began), computations, and the value read after everything."""
    import threading

    logging.basicConfig(level=logging.ERROR)
    registry = _scope_registry(db_name, dsn)
    registry.check_signaling()
    stats = dict(index=index, reads=0, stale=[], writes=0)
    lock = threading.Lock()
    threads = [threading.Thread(target=_reader_loop, args=(registry, dsn, isolation, floor, stop, stats, lock))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        if index == 0:
            rng = random.Random(index)
            conn = _data_connection(dsn, isolation)
            try:
                for _ in range(writes):
                    value = scope_write(registry, conn)
                    with floor.get_lock():
                        floor.value = max(floor.value, value)
                    stats["writes"] += 1
                    time.sleep(rng.random() * 0.004)
            finally:
                conn.close()
                stop.set()
        stop.wait(120)
    finally:
        for thread in threads:
            thread.join(60)
    conn = _data_connection(dsn, isolation)
    try:
        stats["final"] = scope_read(registry, conn)
    finally:
        conn.close()
    stats["calls"] = ConfigModel.calls
    registry.signaling.close()
    results.put(stats)


def run_scope_writer_cli(data_dsn, signal_dsn, db_name):
    """A writer process driven on stdin: 'check', 'write' (prints the committed value), 'exit'.
    Its signaling connection uses ``signal_dsn`` (a test may cut it), its data ``data_dsn``."""
    import sys

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    registry = _scope_registry(db_name, signal_dsn)
    conn = _data_connection(data_dsn, "repeatable-read")
    for line in sys.stdin:
        command = line.strip()
        if command == "check":
            registry.check_signaling()
            print("checked", flush=True)
        elif command == "write":
            print(scope_write(registry, conn), flush=True)
        elif command == "exit":
            print("exiting", flush=True)
            return


class WriterProcess:
    """The parent's handle on ``python -c "support.signaling_workers.<entry>(*args)"`` (run from
    ``tests/``), a writer that answers one line per command on its stdin; every wait is bounded."""

    def __init__(self, entry, *args, exit_wait=60):
        code = f"from support import signaling_workers; signaling_workers.{entry}(*{args!r})"
        self.exit_wait = exit_wait
        self.proc = subprocess.Popen([sys.executable, "-c", code], cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                     text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def exit(self):
        """Send 'exit', close stdin; returns (seconds until the process ended, stderr)."""
        assert self.ask("exit") == "exiting"
        self.proc.stdin.close()
        start = time.monotonic()
        stderr = self.proc.stderr.read()
        self.proc.wait(self.exit_wait)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return time.monotonic() - start, stderr

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
