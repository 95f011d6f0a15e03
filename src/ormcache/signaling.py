"""Cross-process cache invalidation: Odoo's registry signaling over a pluggable backend.

Every registry has one version counter per cache name plus one for the registry itself, kept in
a backend all worker processes share. A unit of work (request, job) runs as::

    with registry.cursor_scope():      # check_signaling(): drop what others invalidated
        ...                            # work; registry.clear_cache("default") records the name
                                       # success: signal_changes(); failure: reset_changes()

>>> from ormcache.registry import Registry
>>> registry = Registry("signaling-doc")          # LocalSignaling: this process only
>>> registry.check_signaling()                    # first contact: adopt the counters
[]
>>> with registry.cursor_scope():
...     registry.clear_cache("assets")
>>> registry.check_signaling()                    # our own signal is not an invalidation
[]
>>> Registry.delete("signaling-doc")

Backends: ``LocalSignaling`` (in process, the default), ``PostgresSignaling(dsn)`` and
``RedisSignaling(url, pubsub=False)``; set one with ``registry.signaling = backend``.

The rules are Odoo's (odoo/modules/registry.py): a moved counter clears the caches of that name
without signaling again; after publishing, the local counter is incremented rather than set to the
backend's value, so a process that raced another writer invalidates once more instead of missing a
change. Added here: when the backend is unreachable, ``check_signaling()`` clears every local cache
and keeps serving (a stale answer is worse than a miss), and ``signal_changes()`` raises
``SignalingError`` and keeps the names, which the next ``signal_changes()`` or
``check_signaling()`` of any thread publishes.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import uuid
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

__all__ = [
    "REGISTRY",
    "SignalingError",
    "SignalingUnavailable",
    "ReadOnlyBackendError",
    "SignalingBackend",
    "LocalSignaling",
    "local_signaling",
    "PostgresSignaling",
    "RedisSignaling",
    "RegistrySignaling",
]

_logger = logging.getLogger(__name__)

#: The counter of the registry itself (moves when models change: the registry must reload).
REGISTRY = "registry"

#: What a backend's read_versions() returns: an epoch (changes when the backend lost its
#: counters, e.g. a Redis restarted without persistence) and the versions, in the order of names.
Versions = Tuple[Any, Tuple[int, ...]]


class SignalingError(Exception):
    """The signaling backend failed: nothing was published."""


class SignalingUnavailable(SignalingError):
    """The signaling backend cannot be reached (down, restarting, network)."""


class ReadOnlyBackendError(SignalingError):
    """The signaling backend is read-only (a replica, or a read-only transaction/connection)."""


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------

class SignalingBackend:
    """What a backend provides; each call is one round trip to its server.

    - ``read_versions(db_name, names)`` -> ``(epoch, versions)``, versions in the order of names
      (0 for a name never bumped);
    - ``bump(db_name, names)``: add one to each counter;
    - ``attach(registry)``: a registry starts using the backend (optional);
    - ``close()``.
    """

    def read_versions(self, db_name: str, names: Sequence[str]) -> Versions:
        raise NotImplementedError

    def read(self, db_name: str, names: Sequence[str]) -> Tuple[Any, Dict[str, int]]:
        """``(epoch, {name: version})``: read_versions() as a mapping."""
        epoch, versions = self.read_versions(db_name, names)
        return epoch, dict(zip(names, versions))

    def bump(self, db_name: str, names: Iterable[str]) -> None:
        raise NotImplementedError

    def attach(self, registry: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "SignalingBackend":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LocalSignaling(SignalingBackend):
    """Counters in this process only: the embedded default, when there is one worker process.

    >>> backend = LocalSignaling()
    >>> backend.bump("db", ["default"])
    >>> backend.read("db", ["default", "assets"])
    (None, {'default': 1, 'assets': 0})
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: Dict[str, Dict[str, int]] = {}

    def read_versions(self, db_name: str, names: Sequence[str]) -> Versions:
        counters = self._counters.get(db_name, {})
        return None, tuple(map(counters.get, names, _zeros(len(names))))

    def bump(self, db_name: str, names: Iterable[str]) -> None:
        with self._lock:
            counters = self._counters.setdefault(db_name, {})
            for name in names:
                counters[name] = counters.get(name, 0) + 1

    def __repr__(self) -> str:
        return "LocalSignaling()"


def _zeros(count: int) -> Tuple[int, ...]:
    return (0,) * count


_local_signaling = LocalSignaling()


def local_signaling() -> LocalSignaling:
    """The process-wide ``LocalSignaling`` used by registries whose ``signaling`` is None."""
    return _local_signaling


class PostgresSignaling(SignalingBackend):
    """Counters as PostgreSQL sequences ``ormcache_signaling_<name>`` in the database of ``dsn``.

    Sequences are created on first use; all versions are read in one SELECT and bumped with one
    SELECT of ``nextval()`` (outside any transaction, so a bump is visible at once). The dsn
    names the database of the registry, so ``db_name`` is not part of the sequence names. The
    connection must be read-write: a hot standby or a read-only default transaction is refused
    with ``ReadOnlyBackendError``. After a lost connection the next call reconnects.

    One connection is shared by the threads of the process (calls are serialised). A forked
    child opens its own connection (the parent's socket is never written to from the child).
    """

    SEQUENCE_PREFIX = "ormcache_signaling_"

    def __init__(self, dsn: str, *, connect_timeout: int = 5) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        self._psycopg = psycopg
        self.dsn = dsn
        params = conninfo_to_dict(dsn)
        self._connect_kwargs: Dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in params:
            self._connect_kwargs["connect_timeout"] = connect_timeout
        self._where = "{}:{}/{}".format(
            params.get("host", "localhost"), params.get("port", 5432), params.get("dbname", "")
        )
        self._lock = threading.Lock()
        self._conn: Any = None
        self._pid = os.getpid()
        self._ensured: set = set()
        self._queries: Dict[Tuple[str, Tuple[str, ...]], str] = {}

    def __repr__(self) -> str:
        return f"PostgresSignaling({self._where!r})"

    def _sequence(self, name: str) -> Any:
        return self._psycopg.sql.Identifier(self.SEQUENCE_PREFIX + name)

    def _connect(self) -> Any:
        psycopg = self._psycopg
        try:
            conn = psycopg.connect(self.dsn, **self._connect_kwargs)
        except psycopg.OperationalError as exc:
            raise SignalingUnavailable(f"PostgreSQL signaling at {self._where} is unreachable: {exc}") from exc
        try:
            in_recovery, read_only = conn.execute(
                "SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'"
            ).fetchone()
        except psycopg.OperationalError as exc:
            conn.close()
            raise SignalingUnavailable(f"PostgreSQL signaling at {self._where} is unreachable: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        if in_recovery or read_only:
            conn.close()
            what = "a read-only replica (in recovery)" if in_recovery else "read-only (default_transaction_read_only)"
            raise ReadOnlyBackendError(
                f"PostgreSQL signaling at {self._where} is {what}; signaling needs the read-write primary"
            )
        return conn

    def _ensure(self, conn: Any, names: Iterable[str]) -> None:
        missing = [name for name in names if name not in self._ensured]
        if not missing:
            return
        sql = self._psycopg.sql
        # concurrent CREATE ... IF NOT EXISTS can still collide in the catalogs: serialise them
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('ormcache_signaling'))")
            for name in missing:
                conn.execute(sql.SQL("CREATE SEQUENCE IF NOT EXISTS {}").format(self._sequence(name)))
        self._ensured.update(missing)

    def _query(self, conn: Any, kind: str, names: Tuple[str, ...]) -> str:
        try:
            return self._queries[kind, names]
        except KeyError:
            pass
        sql = self._psycopg.sql
        if kind == "read":
            # one scalar subquery per sequence: no join to plan, one row back
            parts = [
                sql.SQL("(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {})").format(
                    self._sequence(name))
                for name in names
            ]
        else:
            parts = [
                sql.SQL("nextval({})").format(sql.Literal(self._sequence(name).as_string(conn)))
                for name in names
            ]
        query = self._queries[kind, names] = sql.SQL("SELECT {}").format(sql.SQL(", ").join(parts)).as_string(conn)
        return query

    def _run(self, kind: str, names: Tuple[str, ...]) -> Any:
        psycopg = self._psycopg
        if self._pid != os.getpid():
            self._after_fork()
        with self._lock:
            for attempt in (1, 2):
                fresh = self._conn is None or self._conn.closed
                if fresh:
                    self._conn = None
                    self._conn = self._connect()
                conn = self._conn
                try:
                    self._ensure(conn, names)
                    return conn.execute(self._query(conn, kind, names)).fetchone()
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    self._drop()
                    if fresh or attempt == 2:
                        raise SignalingUnavailable(
                            f"PostgreSQL signaling at {self._where} is unreachable: {exc}") from exc
                    # an old connection died (server restarted): one retry on a new one
                except psycopg.errors.ReadOnlySqlTransaction as exc:
                    self._drop()
                    raise ReadOnlyBackendError(
                        f"PostgreSQL signaling at {self._where} became read-only: {exc}") from exc
                except psycopg.errors.UndefinedTable as exc:
                    self._ensured.clear()  # someone dropped our sequences: create them again
                    if attempt == 2:
                        raise SignalingError(f"PostgreSQL signaling at {self._where}: {exc}") from exc
                except psycopg.Error as exc:
                    self._drop()
                    raise SignalingError(f"PostgreSQL signaling at {self._where}: {exc}") from exc
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _after_fork(self) -> None:
        # The parent's connection belongs to the parent: closing it here would end its session.
        # Keep it referenced (never closed, never collected) and connect anew.
        self._lock = threading.Lock()
        if self._conn is not None:
            _inherited_connections.append(self._conn)
            self._conn = None
        self._pid = os.getpid()

    def read_versions(self, db_name: str, names: Sequence[str]) -> Versions:
        return None, self._run("read", tuple(names))

    def bump(self, db_name: str, names: Iterable[str]) -> None:
        self._run("bump", tuple(names))

    def close(self) -> None:
        with self._lock:
            self._drop()


_inherited_connections: List[Any] = []  # a forked child's copies of its parent's connections


class RedisSignaling(SignalingBackend):
    """Counters as Redis keys ``<key_prefix><name>``; ``key_prefix`` is formatted with the
    registry's ``db_name`` (default ``"ormcache:{db_name}:"``).

    Versions are read with one ``MGET`` and bumped with ``INCR``s in one MULTI/EXEC pipeline.
    The key ``<key_prefix>epoch`` holds a random token: when Redis loses its data (restart
    without persistence, FLUSHALL) the token changes and every registry resynchronises, so a
    counter that went back to an old value can never hide a change. The keys have no expiry:
    use a ``noeviction`` or ``volatile-*`` maxmemory policy so that Redis never evicts them.
    A replica is refused (``ReadOnlyBackendError``): its counters may lag behind the primary's.

    With ``pubsub=True`` each bump is also published on ``<key_prefix>signal`` and a listener
    thread clears the named caches of every attached registry at once, so idle workers drop
    invalidated entries without waiting for their next unit of work. ``check_signaling()`` still
    reads the counters: a message in flight never decides whether a cache is fresh.
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "ormcache:{db_name}:",
        pubsub: bool = False,
        socket_timeout: float = 5.0,
    ) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._redis = redis
        self.url = url
        self.key_prefix = key_prefix
        self._role_checked = False
        # one retry: a pooled connection that died with the server is replaced once
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 1),
        )
        kwargs = self.client.connection_pool.connection_kwargs  # no password in messages
        self._where = "redis://{}:{}/{}".format(
            kwargs.get("host", kwargs.get("path", "?")), kwargs.get("port", ""), kwargs.get("db", 0))
        self._keys: Dict[Tuple[str, Tuple[str, ...]], List[str]] = {}
        self._listener: Optional[_RedisListener] = _RedisListener(self) if pubsub else None
        self._token = uuid.uuid4().hex
        self._token_pid = os.getpid()

    def __repr__(self) -> str:
        return f"RedisSignaling({self._where!r}, key_prefix={self.key_prefix!r}, pubsub={self.pubsub})"

    @property
    def token(self) -> str:
        """Identifies this process's messages on the pub/sub channel (a forked child gets its
        own)."""
        if self._token_pid != os.getpid():
            self._token, self._token_pid = uuid.uuid4().hex, os.getpid()
        return self._token

    @property
    def pubsub(self) -> bool:
        return self._listener is not None

    def prefix(self, db_name: str) -> str:
        return self.key_prefix.format(db_name=db_name)

    def channel(self, db_name: str) -> str:
        return self.prefix(db_name) + "signal"

    def _call(self, func: Callable[[], Any]) -> Any:
        exceptions = self._redis.exceptions
        try:
            if not self._role_checked:
                self._check_role()
            return func()
        except (exceptions.ConnectionError, exceptions.TimeoutError) as exc:
            self._role_checked = False  # it may come back as another server (a failover)
            raise SignalingUnavailable(f"Redis signaling at {self._where} is unreachable: {exc}") from exc
        except exceptions.ReadOnlyError as exc:
            self._role_checked = False
            raise ReadOnlyBackendError(f"Redis signaling at {self._where} is a read-only replica: {exc}") from exc
        except exceptions.RedisError as exc:
            raise SignalingError(f"Redis signaling at {self._where}: {exc}") from exc

    def _check_role(self) -> None:
        role = self.client.execute_command("ROLE")[0]
        role = role.decode() if isinstance(role, bytes) else str(role)
        if role != "master":
            raise ReadOnlyBackendError(
                f"Redis signaling at {self._where} is a {role} (a replica may lag behind); "
                "signaling needs the primary")
        self._role_checked = True

    def read_versions(self, db_name: str, names: Sequence[str]) -> Versions:
        names = tuple(names)
        try:
            keys = self._keys[db_name, names]
        except KeyError:
            prefix = self.prefix(db_name)
            keys = self._keys[db_name, names] = [prefix + "epoch"] + [prefix + name for name in names]
        values = self._call(lambda: self.client.mget(keys))
        epoch = values[0]
        if epoch is None:
            epoch = self._call(lambda: self._new_epoch(keys[0]))
        del values[0]
        try:
            return epoch, tuple(map(int, values))
        except TypeError:  # a counter never bumped
            return epoch, tuple(int(value or 0) for value in values)

    def _new_epoch(self, key: str) -> bytes:
        # the first process to see the counters missing sets the token; all of them read it back
        pipe = self.client.pipeline(transaction=True)
        pipe.set(key, uuid.uuid4().hex, nx=True)
        pipe.get(key)
        return pipe.execute()[1]

    def bump(self, db_name: str, names: Iterable[str]) -> None:
        names = list(names)
        prefix = self.prefix(db_name)

        def run() -> Any:
            pipe = self.client.pipeline(transaction=True)
            for name in names:
                pipe.execute_command("INCR", prefix + name)
            if self._listener is not None:
                pipe.publish(prefix + "signal", f"{self.token} {','.join(names)}")
            return pipe.execute()

        self._call(run)

    def attach(self, registry: Any) -> None:
        """Called by a registry that uses this backend (pub/sub: listen on its channel)."""
        if self._listener is not None:
            self._listener.attach(self.channel(registry.db_name), registry)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        self.client.close()


class _RedisListener:
    """The pub/sub thread of a RedisSignaling: a message names the bumped counters, and the
    registries of that channel (in other processes) clear those caches at once.

    It never touches the local counters: a value computed before the change could be stored
    after the listener's clear, and only the foreground check_signaling(), which compares the
    counters, can catch that. So pub/sub makes idle workers drop stale entries early; the next
    check clears those names once more (an extra miss at worst), and correctness never depends
    on a message arriving.
    """

    POLL = 0.2  # seconds between looks at the stop flag and at new channels

    def __init__(self, backend: RedisSignaling) -> None:
        self.backend = backend
        self._lock = threading.Lock()
        self._registries: Dict[str, weakref.WeakSet] = {}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._pid = os.getpid()
        #: set once the listener is subscribed to every attached channel (tests, benchmarks)
        self.ready = threading.Event()

    def attach(self, channel: str, registry: Any) -> None:
        if self._pid != os.getpid():  # a forked child: the parent's thread did not follow
            self._lock = threading.Lock()
            self._thread = None
            self._pid = os.getpid()
        with self._lock:
            self._registries.setdefault(channel, weakref.WeakSet()).add(registry)
            self.ready.clear()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ormcache-signaling-listener", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        sender, _, names = data.decode().partition(" ")
        if sender == self.backend.token:
            return  # our own bump: this process already cleared those caches
        with self._lock:
            registries = list(self._registries.get(channel.decode(), ()))
        for registry in registries:
            try:
                registry._signaling_notified(names.split(","))
            except Exception:
                _logger.exception("Signaling listener: clearing caches of %r failed", registry)

    def _run(self) -> None:
        redis = self.backend._redis
        pubsub = None
        subscribed: set = set()
        delay = 0.05
        try:
            while not self._stop.is_set():
                try:
                    if pubsub is None:
                        pubsub = self.backend.client.pubsub()
                        subscribed = set()
                    with self._lock:
                        wanted = set(self._registries)
                    if wanted - subscribed:
                        pubsub.subscribe(*(wanted - subscribed))
                        subscribed |= wanted
                    message = pubsub.get_message(timeout=self.POLL)
                    delay = 0.05
                    if message is None:
                        if subscribed and pubsub.subscribed and not (wanted - subscribed):
                            self.ready.set()
                        continue
                    if message["type"] == "message":
                        self._dispatch(message["channel"], message["data"])
                    elif message["type"] == "subscribe" and len(subscribed) == message["data"]:
                        self.ready.set()
                except (redis.exceptions.RedisError, OSError, ValueError) as exc:
                    self.ready.clear()
                    _logger.debug("Signaling listener: %s; reconnecting in %.2fs", exc, delay)
                    if pubsub is not None:
                        pubsub.close()
                        pubsub = None
                    self._stop.wait(delay)
                    delay = min(delay * 2, 2.0)
        finally:
            if pubsub is not None:
                pubsub.close()


# --------------------------------------------------------------------------------------------
# The Registry mixin
# --------------------------------------------------------------------------------------------

_UNSYNCED = object()  # epoch of a registry that has not read the backend yet


class RegistrySignaling:
    """Mixin of ``ormcache.registry.Registry``: check_signaling / signal_changes / reset_changes
    / cursor_scope. Uses the Registry's ``db_name``, ``caches``, ``cache_invalidated``,
    ``registry_invalidated``, ``_clear_local()`` and ``signaling`` (a backend, or None for the
    process-wide ``LocalSignaling``).

    ``on_reload`` (None, or a callable taking the registry) is called when another process
    changed the registry itself, after every local cache was cleared; it may be set per instance.

    After the backend failed, the next ``signaling_retry_interval`` seconds do without it: checks
    clear everything at once and signals are kept, instead of each waiting for a network timeout.
    """

    on_reload: Optional[Callable[[Any], None]] = None
    signaling_retry_interval: float = 1.0

    def __init__(self) -> None:
        self._signaling_lock = threading.Lock()
        self._signaling_pid = os.getpid()
        self._signaling_backend_seen: Any = None
        self._signaling_epoch: Any = _UNSYNCED
        #: the names with a counter (the registry's first), read together at every check
        self._signaling_keys: Tuple[str, ...] = self._signaling_names()
        #: per-process local counters: name -> version this process has caught up with
        self._signaling_versions: Dict[str, int] = {}
        #: the same, as a tuple in the order of _signaling_keys (the no-change fast path)
        self._signaling_values: Optional[Tuple[int, ...]] = None
        self._signaling_outage = False
        self._signaling_failed_at = 0.0  # time.monotonic() of the last failure
        #: bumped whenever the local counters change: a read older than that is read again
        self._signaling_generation = 0
        #: names whose publication failed (any thread); published by the next signal or check
        self._signaling_pending: set = set()
        self._signaling_pending_registry = False
        super().__init__()

    # -- helpers ---------------------------------------------------------------------------

    def _signaling_backend(self) -> Any:
        backend = self.signaling
        if backend is None:
            backend = _local_signaling
        if self._signaling_pid != os.getpid():
            # a forked child: fresh lock; the backend attaches again (e.g. to start a listener)
            self._signaling_lock = threading.Lock()
            self._signaling_pid = os.getpid()
            attach = getattr(backend, "attach", None)
            if attach is not None and backend is self._signaling_backend_seen:
                attach(self)
        if backend is not self._signaling_backend_seen:
            with self._signaling_lock:
                if backend is not self._signaling_backend_seen:
                    # new backend: its counters say nothing about ours; resync on next read
                    self._signaling_backend_seen = backend
                    self._signaling_epoch = _UNSYNCED
                    self._signaling_versions = {}
                    self._signaling_values = None
                    attach = getattr(backend, "attach", None)
                    if attach is not None:
                        attach(self)
        return backend

    def _signaling_names(self) -> Tuple[str, ...]:
        return (REGISTRY, *self.caches_by_key)

    def _signaling_failed(self) -> None:
        # under the lock: the backend failed; resync at the first check that succeeds
        self._signaling_outage = True
        self._signaling_failed_at = time.monotonic()

    def _signaling_resting(self) -> bool:
        """Whether the backend failed less than signaling_retry_interval seconds ago."""
        return (self._signaling_outage
                and time.monotonic() < self._signaling_failed_at + self.signaling_retry_interval)

    def _signaling_snapshot(self) -> None:
        # under the lock, after every change of the local counters
        self._signaling_values = tuple(map(self._signaling_versions.get, self._signaling_keys))
        self._signaling_generation += 1

    def _signaling_clear_all(self) -> List[str]:
        # through the Registry, which bumps its generation: a value computed across this clear
        # is then not stored afterwards
        return sorted(self._clear_all_local())

    def _signaling_reload(self) -> None:
        self._signaling_clear_all()
        if self.on_reload is not None:
            self.on_reload(self)

    def _signaling_publish_pending(self, backend: Any) -> None:
        with self._signaling_lock:
            registry_changed = self._signaling_pending_registry
            names = set(self._signaling_pending)
        if not (registry_changed or names):
            return
        try:
            self._signaling_publish(backend, registry_changed, names)
        except SignalingError as exc:
            if isinstance(exc, ReadOnlyBackendError):
                raise
            _logger.debug("Signaling: kept invalidations still not published: %s", exc)
            return  # the read below fails too, or tells the same story
        _logger.info("Published invalidations kept during the signaling outage: %s",
                     ["registry"] if registry_changed else sorted(names))
        # this thread's copy of them is done too (other threads publish theirs once more)
        self.cache_invalidated.difference_update(names)
        if registry_changed:
            self.registry_invalidated = False

    def _signaling_publish(self, backend: Any, registry_changed: bool, names: set) -> None:
        # no need to signal caches with the registry: reloading starts with empty caches
        bumped = [REGISTRY] if registry_changed else sorted(names)
        # The lock is held across the round trip so that no check of another thread (or of the
        # pub/sub listener) applies a read taken between the bump and the local increment.
        with self._signaling_lock:
            resting = self._signaling_resting()
            try:
                if resting:
                    raise SignalingUnavailable(
                        f"signaling of {self.db_name!r} failed less than "
                        f"{self.signaling_retry_interval}s ago; not tried again yet")
                backend.bump(self.db_name, bumped)
            except SignalingError as exc:
                self._signaling_pending |= names
                self._signaling_pending_registry |= registry_changed
                if isinstance(exc, SignalingUnavailable) and not resting:
                    self._signaling_failed()
                failure = exc
            else:
                failure = None
                if self._signaling_epoch is not _UNSYNCED:
                    # Odoo's rule: increment, never set to the backend's value, so that a race
                    # with another writer shows up as one more invalidation at the next check
                    versions = self._signaling_versions
                    for name in bumped:
                        versions[name] = versions.get(name, 0) + 1
                self._signaling_snapshot()
                self._signaling_pending -= names
                if registry_changed:
                    self._signaling_pending_registry = False
        if failure is not None:
            what = "the registry change" if registry_changed else f"the invalidation of {sorted(names)}"
            raise type(failure)(f"{failure}; {what} is kept and will be published by the next "
                                "signal_changes() or check_signaling()") from failure

    # -- the protocol ----------------------------------------------------------------------

    def check_signaling(self) -> List[str]:
        """Catch up with the other processes; call at the start of a unit of work.

        Reads every counter in one round trip; clears (without signaling again) the local caches
        of each name whose counter moved since this process last saw it; if the registry's
        counter moved, clears every cache and calls ``on_reload``. Returns the caches cleared.
        An unreachable backend clears every local cache, logs a warning, and returns them all.
        The first check of a registry adopts the counters: it clears whatever the caches hold
        (filled before any counter was known) and returns ``[]``.
        """
        backend = self._signaling_backend()
        names = self._signaling_keys
        if self._signaling_pending or self._signaling_pending_registry:
            self._signaling_publish_pending(backend)
        for attempt in range(3):
            generation = self._signaling_generation
            try:
                if self._signaling_resting():
                    raise SignalingUnavailable("not tried again yet")
                epoch, values = backend.read_versions(self.db_name, names)
            except SignalingError as exc:
                if isinstance(exc, ReadOnlyBackendError):
                    raise  # a misconfiguration, not an outage: say it loudly
                with self._signaling_lock:
                    first = not self._signaling_outage
                    if not self._signaling_resting():
                        self._signaling_failed()
                    self._signaling_generation += 1
                    cleared = self._signaling_clear_all()
                if first:
                    _logger.warning("Signaling unavailable, clearing all caches of %r at every "
                                    "check until it is back: %s", self.db_name, exc)
                return cleared
            with self._signaling_lock:
                # Another thread moved the local counters while we read (a signal, a check):
                # our read may predate it, and applying it would go backwards. Read again;
                # after three tries apply anyway (the worst is one extra invalidation).
                if self._signaling_generation != generation and attempt < 2:
                    continue
                if (values == self._signaling_values and epoch == self._signaling_epoch
                        and not self._signaling_outage):
                    return []  # nothing moved: the common case, one tuple comparison
                cleared, call_reload = self._signaling_apply(backend, names, epoch, dict(zip(names, values)))
                self._signaling_snapshot()
                break
        if call_reload and self.on_reload is not None:
            self.on_reload(self)
        return cleared

    def _signaling_apply(self, backend: Any, names: Sequence[str], epoch: Any,
                         versions: Dict[str, int]) -> Tuple[List[str], bool]:
        """Compare a read with the local counters (under the lock): clear what moved."""
        local = self._signaling_versions
        if self._signaling_epoch is _UNSYNCED or backend is not self._signaling_backend_seen:
            # first contact: adopt the counters; whatever the caches hold predates it
            self._signaling_clear_all()
            self._signaling_versions = dict(versions)
            self._signaling_epoch = epoch
            self._signaling_outage = False
            return [], False
        if self._signaling_outage or epoch != self._signaling_epoch:
            # changes may have been missed (outage) or the counters were lost (new epoch)
            registry_moved = epoch != self._signaling_epoch or versions[REGISTRY] != local.get(REGISTRY)
            _logger.info("Signaling of %r %s: all caches cleared", self.db_name,
                         "is back" if self._signaling_outage else "lost its counters (new epoch)")
            self._signaling_outage = False
            self._signaling_epoch = epoch
        else:
            registry_moved = versions[REGISTRY] != local.get(REGISTRY)
            if not registry_moved:
                moved = [name for name in names if versions[name] != local.get(name)]
                if not moved:
                    return [], False
                for name in moved:
                    local[name] = versions[name]
                # clear, never clear_cache(): that would record the names and signal them back
                cleared = self._clear_local(moved)
                _logger.info("Invalidating caches of %r after signaling: %s", self.db_name, cleared)
                return cleared, False
            _logger.info("Reloading the registry %r after signaling", self.db_name)
        cleared = self._signaling_clear_all()
        self._signaling_versions = dict(versions)
        return cleared, registry_moved

    def _signaling_notified(self, names: Sequence[str]) -> None:
        """A pub/sub listener heard that ``names`` were bumped: clear their caches now, leave
        the counters (and a registry reload) to the next check_signaling()."""
        if REGISTRY in names:
            self._signaling_clear_all()
        else:
            self._clear_local([name for name in names if name in self.caches_by_key])

    def signal_changes(self) -> None:
        """Publish this thread's invalidations; call at the end of a successful unit of work.

        Bumps the registry's counter if this thread invalidated the registry, else the counter
        of each name in ``cache_invalidated``, in one round trip, then resets both. On failure
        raises ``SignalingError`` and keeps the names: the next signal_changes() or
        check_signaling() (of any thread) publishes them.
        """
        with self._signaling_lock:
            registry_changed = self.registry_invalidated or self._signaling_pending_registry
            names = self.cache_invalidated | self._signaling_pending
        if not (registry_changed or names):
            return
        self._signaling_publish(self._signaling_backend(), registry_changed, names)
        self.registry_invalidated = False
        self.cache_invalidated.clear()

    def reset_changes(self) -> None:
        """Cancel this thread's invalidations; call when a unit of work fails.

        The caches of the invalidated names are cleared again (they may hold values computed
        from the rolled-back work) and nothing is published.
        """
        if self.registry_invalidated:
            self._signaling_reload()
            self.registry_invalidated = False
        names = self.cache_invalidated
        if names:
            self._clear_local(names)
            names.clear()

    @contextmanager
    def cursor_scope(self) -> Iterator[Any]:
        """``check_signaling()``, the work, then ``signal_changes()`` on success or
        ``reset_changes()`` if the work raised."""
        self.check_signaling()
        try:
            yield self
        except BaseException:
            self.reset_changes()
            raise
        self.signal_changes()
