"""Private PostgreSQL and Redis servers for tests and benchmarks, on free loopback ports.

Load as a pytest plugin (``-p servers`` or ``pytest_plugins = ("servers",)``) to get the fixtures
``postgres_server``/``redis_server`` (one per session) and ``pg_dsn``/``redis_prefix`` (fresh per
test). The classes work outside pytest too::

    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)

The servers run with throw-away settings (no fsync, no snapshots): they hold test data only.
"""
import atexit
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest

__all__ = [
    "PostgresServer",
    "RedisServer",
    "TcpProxy",
    "free_port",
    "postgres_server",
    "redis_server",
    "pg_dsn",
    "redis_prefix",
]

STARTUP_TIMEOUT = 30.0


def free_port():
    """A TCP port free on 127.0.0.1 right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port, proc=None, timeout=STARTUP_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} while starting")
        with contextlib.suppress(OSError):
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _tail(path, lines=30):
    with contextlib.suppress(OSError), open(path, errors="replace") as file:
        return "".join(file.readlines()[-lines:])
    return ""


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------

def postgres_bindir():
    """Directory of initdb/pg_ctl: ``$PG_BINDIR``, the newest /usr/lib/postgresql/*/bin, or
    ``pg_config --bindir``."""
    candidates = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda path: [int(part) for part in path.split("/")[-2].split(".") if part.isdigit()],
        reverse=True,
    )
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            candidates.append(
                subprocess.run([pg_config, "--bindir"], check=True, capture_output=True, text=True)
                .stdout.strip()
            )
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(os.path.dirname(initdb))
    for path in candidates:
        if os.path.exists(os.path.join(path, "initdb")) and os.path.exists(os.path.join(path, "pg_ctl")):
            return path
    raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found; set PG_BINDIR")


class _PrivateServer:
    """A server in a directory of its own under the system temp dir: ``setup()`` makes it (and
    registers ``teardown`` at exit, for a caller that forgets), ``teardown()`` removes it;
    ``with Server() as server`` is the two."""

    basedir = None

    def _make_basedir(self, prefix):
        self.basedir = tempfile.mkdtemp(prefix=prefix)
        atexit.register(self.teardown)

    def _remove_basedir(self):
        if self.basedir:
            shutil.rmtree(self.basedir, ignore_errors=True)
            self.basedir = None

    def __enter__(self):
        return self.setup()

    def __exit__(self, *exc):
        self.teardown()


class PostgresServer(_PrivateServer):
    """A private PostgreSQL cluster in a temporary directory, listening on 127.0.0.1 only.

    initdb and pg_ctl refuse to run as root, so as root they run as the ``postgres`` user (the
    directory is chowned to it). ``stop()``/``start()`` restart it on the same port and data.
    """

    def __init__(self, *, user="postgres"):
        self.bindir = postgres_bindir()
        self.port = None
        self.user = user
        self.basedir = None
        self.running = False

    @property
    def datadir(self):
        return os.path.join(self.basedir, "data")

    @property
    def logfile(self):
        return os.path.join(self.basedir, "postgres.log")

    @property
    def dsn(self):
        """DSN of the maintenance database ``postgres``."""
        return self.dsn_for("postgres")

    def dsn_for(self, dbname):
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={dbname} connect_timeout=5"

    def _run(self, *args, check=True):
        cmd = [os.path.join(self.bindir, args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=self.basedir)
        if check and result.returncode:
            raise RuntimeError(
                f"{args[0]} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
                f"\n--- server log ---\n{_tail(self.logfile)}"
            )
        return result

    def setup(self, *, standby_of=None):
        """initdb then start; or, with ``standby_of`` (a running PostgresServer), a hot standby
        streaming from it (pg_basebackup -R). The directory is created under the system temp
        dir, because pytest's own tmp dirs are private to root."""
        self._make_basedir("ormcache-pg-")
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(self.basedir, pw.pw_uid, pw.pw_gid)
        if standby_of is None:
            self._run("initdb", "-D", self.datadir, "-U", self.user, "--auth=trust",
                      "--no-sync", "-E", "UTF8", "--locale=C")
        else:
            self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(standby_of.port), "-U", self.user,
                      "-D", self.datadir, "-R", "-X", "stream", "-c", "fast", "--no-sync")
        self.port = free_port()
        self.start()
        return self

    def start(self):
        """Start (or restart after stop()) on the same port and data directory."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.basedir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=100 -c shared_buffers=32MB"
        )
        self._run("pg_ctl", "start", "-D", self.datadir, "-l", self.logfile, "-w",
                  "-t", str(int(STARTUP_TIMEOUT)), "-o", options)
        self.running = True

    def stop(self, mode="fast"):
        """Stop the server; its clients see their connections dropped."""
        if self.running:
            self._run("pg_ctl", "stop", "-D", self.datadir, "-m", mode, "-w")
            self.running = False

    def create_database(self, name):
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn_for(name)

    def drop_database(self, name):
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def teardown(self):
        atexit.unregister(self.teardown)
        try:
            if self.basedir and os.path.exists(self.datadir):
                self._run("pg_ctl", "stop", "-D", self.datadir, "-m", "immediate", "-w", check=False)
        finally:
            self.running = False
            self._remove_basedir()


class TwoPhasePostgresServer(PostgresServer):
    """A private PostgreSQL that allows prepared transactions (``max_prepared_transactions``)."""

    def _run(self, *args, check=True):
        if args[:2] == ("pg_ctl", "start"):
            args = (*args[:-1], args[-1] + " -c max_prepared_transactions=10")
        return super()._run(*args, check=check)


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------

class RedisServer(_PrivateServer):
    """A private redis-server on 127.0.0.1, without persistence (a restart loses every key, as a
    production Redis without snapshots does). ``kill()`` is SIGKILL, ``stop()`` a clean shutdown,
    ``start()`` restarts on the same port."""

    def __init__(self, *, binary=None, replica_of=None, extra_args=()):
        self.binary = binary or shutil.which("redis-server") or "/usr/bin/redis-server"
        self.replica_of = replica_of
        self.extra_args = tuple(extra_args)  # more redis-server options, e.g. ("--maxmemory", "3mb")
        if not os.path.exists(self.binary):
            raise RuntimeError("redis-server not found; install it (apt-get install redis-server)")
        self.port = None
        self.basedir = None
        self.proc = None
        self._log = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def setup(self):
        self._make_basedir("ormcache-redis-")
        self.port = free_port()
        self.start()
        return self

    def start(self):
        if self.running:
            return
        self._close_log()
        self._log = open(os.path.join(self.basedir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.basedir, "--daemonize", "no",
             "--protected-mode", "yes",
             *(["--replicaof", "127.0.0.1", str(self.replica_of.port)] if self.replica_of else []),
             *self.extra_args],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        try:
            _wait_for_port(self.port, self.proc)
        except Exception as exc:
            self._reap(signal.SIGKILL)
            raise RuntimeError(f"{exc}\n{_tail(os.path.join(self.basedir, 'redis.log'))}") from exc

    def kill(self):
        """SIGKILL: the abrupt crash of a fault test."""
        self._reap(signal.SIGKILL)

    def stop(self):
        self._reap(signal.SIGTERM)

    def _reap(self, sig):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
            self.proc.wait(timeout=STARTUP_TIMEOUT)
            self.proc = None

    def _close_log(self):
        if self._log is not None:
            self._log.close()
            self._log = None

    def teardown(self):
        atexit.unregister(self.teardown)
        try:
            self._reap(signal.SIGKILL)
        finally:
            self._close_log()
            self._remove_basedir()


# --------------------------------------------------------------------------------------------
# A TCP proxy that a test can cut
# --------------------------------------------------------------------------------------------

class TcpProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target_port`` in a thread. ``stop()`` closes
    the listener and every forwarded connection (the clients see the path cut); ``start()``
    listens again on the same port. Usable as a context manager.

    ``silent = True`` makes the path go silent: nothing is forwarded any more (what arrives is
    dropped), new connections are accepted and never answered, every connection stays open (a
    dead network path, not a closed one). ``silent = False`` forwards again.
    """

    silent = False

    def __init__(self, target_port):
        import threading

        self.target_port = target_port
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets = set()
        self._listener = None
        self._thread = None

    def start(self):
        import threading

        if self._listener is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()
        return self

    def stop(self):
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _accept(self, listener):
        import threading

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self._forward(data, dst)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def _forward(self, data, dst):
        """Passes one chunk on (a subclass may look at it first); nothing while ``silent``."""
        if not self.silent:
            dst.sendall(data)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class BlackHole:
    """A 127.0.0.1 socket that accepts connections and never answers nor closes them (until
    ``stop()``): a server that hangs. Usable as a context manager."""

    def __init__(self):
        import threading

        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self._accepted = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._accepted.append(client)  # kept open, never read nor written

    def stop(self):
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(5)
        for sock in self._accepted:
            sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------------------------
# pytest fixtures
# --------------------------------------------------------------------------------------------

class StartedPostgres(PostgresServer):
    """A private PostgreSQL that the caller started on 127.0.0.1 at ``port`` (trust
    authentication), for environments that cannot run the server binaries themselves:
    scripts/newpythons' CPython 3.14 root shares the host's network, so the host starts one.
    It cannot be stopped or restarted from here."""

    def __init__(self, port):  # no binaries to find: not PostgresServer.__init__
        self.bindir = None
        self.port = port
        self.user = "postgres"
        self.basedir = None
        self.running = True

    def setup(self, *, standby_of=None):
        return self

    def start(self):
        raise RuntimeError("this PostgreSQL was started by the caller (FASTLRU_POSTGRES_PORT)")

    stop = start

    def teardown(self):
        pass


@pytest.fixture(scope="session")
def postgres_server():
    """One private PostgreSQL for the session. A test that stops it must start it again.
    ``FASTLRU_POSTGRES_PORT=port``: use the private server the caller started there instead
    (``StartedPostgres``)."""
    if os.environ.get("FASTLRU_POSTGRES_PORT"):
        yield StartedPostgres(int(os.environ["FASTLRU_POSTGRES_PORT"]))
        return
    server = PostgresServer()
    server.setup()
    try:
        yield server
    finally:
        server.teardown()


@pytest.fixture(scope="session")
def redis_server():
    """One private redis-server for the session. A test that kills it must start it again."""
    server = RedisServer()
    server.setup()
    try:
        yield server
    finally:
        server.teardown()


def fresh_database(postgres_server, prefix="test_"):
    """Yields the DSN of a fresh, empty database, dropped after (a fixture's body)."""
    if not postgres_server.running:
        postgres_server.start()
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    dsn = postgres_server.create_database(name)
    yield dsn
    if not postgres_server.running:
        postgres_server.start()
    postgres_server.drop_database(name)


@pytest.fixture
def pg_dsn(postgres_server):
    """DSN of a fresh, empty database, dropped after the test."""
    yield from fresh_database(postgres_server)


@pytest.fixture
def redis_prefix(redis_server):
    """A fresh key prefix on the session's Redis; its keys are deleted after the test."""
    if not redis_server.running:
        redis_server.start()
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    if not redis_server.running:
        redis_server.start()
    import redis

    client = redis.Redis.from_url(redis_server.url)
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
