"""Redis signaling (imported only when used: it imports redis)."""
from __future__ import annotations

import logging
import os
import threading
import uuid
import weakref
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .base import (
    ReadOnlyBackendError,
    SignalingBackend,
    SignalingConfigurationError,
    SignalingError,
    SignalingUnavailable,
    Versions,
)

__all__ = ["RedisSignaling"]

_logger = logging.getLogger("ormcache.signaling")


class RedisSignaling(SignalingBackend):
    """Counters as Redis keys ``<key_prefix><name>``; ``key_prefix`` is formatted with the
    registry's ``db_name`` (default ``"ormcache:{db_name}:"``).

    Versions are read with one ``MGET`` and bumped with ``INCR``s in one MULTI/EXEC pipeline.
    The key ``<key_prefix>epoch`` holds a random token: when Redis loses its data (restart
    without persistence, FLUSHALL) the token changes and every registry resynchronises, so a
    counter that went back to an old value can never hide a change. The keys have no expiry:
    a Redis whose ``maxmemory-policy`` is ``allkeys-*`` is refused (``SignalingConfigurationError``,
    checked at first use and after each reconnect): use ``noeviction`` or ``volatile-*``.
    A replica is refused (``ReadOnlyBackendError``): its counters may lag behind the primary's.

    With ``pubsub=True`` each bump is also published on ``<key_prefix>signal`` and a listener
    thread clears the named caches of every attached registry at once, so idle workers drop
    invalidated entries without waiting for their next unit of work. ``check_signaling()`` still
    reads the counters: a message in flight never decides whether a cache is fresh.

    Deadline: connecting and each round trip wait at most ``timeout`` seconds (default 0.5:
    ``socket_connect_timeout`` and ``socket_timeout`` of the client), redis-py's own retries are
    off, and a call retries once on a new connection only when a pooled connection was found
    closed (never after a timeout): a server that hangs costs one deadline. Each thread uses its
    own pooled connection, so threads never wait for another's connect. ``socket_timeout=``
    (older versions) is an alias of ``timeout``.
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "ormcache:{db_name}:",
        pubsub: bool = False,
        timeout: float = 0.5,
        socket_timeout: Optional[float] = None,
    ) -> None:
        self.timeout = float(timeout if socket_timeout is None else socket_timeout)
        if not self.timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {self.timeout!r}")
        self._redis = redis
        self.url = url
        self.key_prefix = key_prefix
        self._role_checked = False
        # no retries of redis-py (a timeout retried is a second deadline): _call retries once
        # when a pooled connection died with the server
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
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
            try:
                if not self._role_checked:
                    self._check_role()
                return func()
            except exceptions.TimeoutError:
                raise
            except exceptions.ConnectionError:
                # a pooled connection closed by a restarted server: once more, on a new one
                # (a refused connect fails at once; a timeout is never retried)
                self._role_checked = False
                self._check_role()
                return func()
        except (exceptions.AuthenticationError, exceptions.AuthenticationWrongNumberOfArgsError) as exc:
            self._role_checked = False
            raise SignalingConfigurationError(
                f"Redis signaling at {self._where}: authentication failed (check the user and "
                f"password of the URL): {exc}") from exc
        except (exceptions.ConnectionError, exceptions.TimeoutError) as exc:
            self._role_checked = False  # it may come back as another server (a failover)
            raise SignalingUnavailable(f"Redis signaling at {self._where} is unreachable: {exc}") from exc
        except exceptions.ReadOnlyError as exc:
            self._role_checked = False
            raise ReadOnlyBackendError(f"Redis signaling at {self._where} is a read-only replica: {exc}") from exc
        except exceptions.RedisError as exc:
            raise SignalingError(f"Redis signaling at {self._where}: {exc}") from exc

    def _check_role(self) -> None:
        # at first use and after each reconnect (the server may have changed), one round trip
        pipe = self.client.pipeline(transaction=False)
        pipe.execute_command("ROLE")  # type: ignore[no-untyped-call]  # untyped in redis-py
        pipe.info("memory")
        role, memory = pipe.execute()
        role = role[0].decode() if isinstance(role[0], bytes) else str(role[0])
        if role != "master":
            raise ReadOnlyBackendError(
                f"Redis signaling at {self._where} is a {role} (a replica may lag behind); "
                "signaling needs the primary")
        policy = str(memory.get("maxmemory_policy", ""))
        if policy.startswith("allkeys-"):
            # an evicted counter comes back at an old value while its epoch survives
            raise SignalingConfigurationError(
                f"Redis signaling at {self._where} has maxmemory-policy {policy}: it may evict the "
                "signaling counters and hide changes; use noeviction or a volatile-* policy")
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
        return pipe.execute()[1]  # type: ignore[no-any-return]  # GET's bytes (redis-py: Any)

    def bump(self, db_name: str, names: Iterable[str]) -> None:
        names = list(names)
        prefix = self.prefix(db_name)

        def run() -> Any:
            pipe = self.client.pipeline(transaction=True)
            for name in names:
                pipe.execute_command("INCR", prefix + name)  # type: ignore[no-untyped-call]
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
        self._registries: Dict[str, weakref.WeakSet[Any]] = {}
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
        subscribed: Set[str] = set()
        delay = 0.05
        try:
            while not self._stop.is_set():
                try:
                    if pubsub is None:
                        pubsub = self.backend.client.pubsub()  # type: ignore[no-untyped-call]
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
