"""Redis signaling (imported only when used: it imports redis)."""
from __future__ import annotations

import logging
import os
import threading
import uuid
import weakref
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from .base import (
    ReadOnlyBackendError,
    SignalingBackend,
    SignalingConfigurationError,
    SignalingError,
    SignalingUnavailable,
    Step,
    Steps,
    PerLoop,
    Versions,
    arun_steps,
    check_key_prefix,
    run_steps,
)

#: the clients are public: the SQLAlchemy shared tier makes its own with the same deadlines
__all__ = ["RedisSignaling", "make_client", "make_aclient", "aclose_client"]

_logger = logging.getLogger("ormcache.signaling")

try:
    from redis.driver_info import DriverInfo
except ImportError:  # redis < 7 reads its own version once, at import
    _DRIVER: Dict[str, Any] = {}
else:
    # redis >= 7 reads it from the package metadata at every new connection unless given:
    # tens of ms during which an event loop would be blocked at each (re)connect
    _DRIVER = {"driver_info": DriverInfo()}


def make_client(url: str, timeout: float) -> "redis.Redis":
    """A blocking client of ``url`` with ormcache's deadlines: ``timeout`` seconds to connect and
    per round trip, no retries of redis-py (a timeout retried is a second deadline)."""
    return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **_options(timeout))


def make_aclient(url: str, timeout: float) -> "redis.asyncio.Redis":
    """``make_client()``'s redis.asyncio twin (it belongs to the event loop that uses it first)."""
    return redis.asyncio.Redis.from_url(url, retry=AsyncRetry(NoBackoff(), 0), **_options(timeout))


def _options(timeout: float) -> Dict[str, Any]:
    """The options of both clients (blocking and async), but their retries (none)."""
    return dict(socket_timeout=timeout, socket_connect_timeout=timeout, **_DRIVER)


async def aclose_client(client: Any) -> None:
    """Close a client of ``make_aclient()`` (in the event loop that used it)."""
    await client.aclose()


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

    Async: ``aread_versions()``/``abump()`` send the same commands through a ``redis.asyncio``
    client of the running event loop (one per loop, same timeouts; concurrent tasks each take
    a pooled connection); ``await aclose()`` closes the running loop's client.
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
        self.key_prefix = check_key_prefix(key_prefix, "key_prefix")
        self._role_checked = False
        # no retries of redis-py (a timeout retried is a second deadline): _calling retries once
        # when a pooled connection died with the server
        self.client = make_client(url, self.timeout)
        kwargs = self.client.connection_pool.connection_kwargs  # no password in messages
        self._where = "redis://{}:{}/{}".format(
            kwargs.get("host", kwargs.get("path", "?")), kwargs.get("port", ""), kwargs.get("db", 0))
        self._keys: Dict[Tuple[str, Tuple[str, ...]], List[str]] = {}
        self._listener: Optional[_RedisListener] = _RedisListener(self) if pubsub else None
        #: event loop -> its redis.asyncio client (a client belongs to the loop that made it)
        self._aclients: PerLoop[Any] = PerLoop(self._new_aclient, aclose_client)
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

    def _calling(self, step: Step) -> Steps[Any]:
        """One command (``step`` of a client, blocking or async) with the role check, the one
        retry and the errors of this backend."""
        exceptions = self._redis.exceptions
        try:
            try:
                if not self._role_checked:
                    yield from self._checking_role()
                return (yield step)
            except exceptions.TimeoutError:
                raise
            except exceptions.ConnectionError:
                # a pooled connection closed by a restarted server: once more, on a new one
                # (a refused connect fails at once; a timeout is never retried)
                self._role_checked = False
                yield from self._checking_role()
                return (yield step)
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

    def _checking_role(self) -> Steps[None]:
        # at first use and after each reconnect (the server may have changed), one round trip
        role, memory = yield _role_and_memory
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
        return run_steps(self._reading(db_name, names), self.client)

    async def aread_versions(self, db_name: str, names: Sequence[str]) -> Versions:
        return await arun_steps(self._reading(db_name, names), await self._aclients.get())

    def _reading(self, db_name: str, names: Sequence[str]) -> Steps[Versions]:
        names = tuple(names)
        try:
            keys = self._keys[db_name, names]
        except KeyError:
            prefix = self.prefix(db_name)
            keys = self._keys[db_name, names] = [prefix + "epoch"] + [prefix + name for name in names]
        values = list((yield from self._calling(lambda client: client.mget(keys))))
        epoch = values[0]
        if epoch is None:
            # the first process to see the counters missing sets the token; all of them read it
            epoch = (yield from self._calling(lambda client: _new_epoch(client, keys[0])))[1]
        del values[0]
        try:
            return epoch, tuple(map(int, values))
        except TypeError:  # a counter never bumped
            return epoch, tuple(int(value or 0) for value in values)

    def bump(self, db_name: str, names: Iterable[str]) -> None:
        run_steps(self._bumping(db_name, names), self.client)

    async def abump(self, db_name: str, names: Iterable[str]) -> None:
        await arun_steps(self._bumping(db_name, names), await self._aclients.get())

    def _bumping(self, db_name: str, names: Iterable[str]) -> Steps[None]:
        names = list(names)
        prefix = self.prefix(db_name)

        def run(client: Any) -> Any:
            pipe = client.pipeline(transaction=True)
            for name in names:
                pipe.execute_command("INCR", prefix + name)
            if self._listener is not None:
                pipe.publish(prefix + "signal", f"{self.token} {','.join(names)}")
            return pipe.execute()

        yield from self._calling(run)

    def _new_aclient(self) -> Any:
        """A redis.asyncio client (one per event loop: a client belongs to the loop that made it)."""
        return make_aclient(self.url, self.timeout)

    async def aclose(self) -> None:
        await self._aclients.aclose()

    def attach(self, registry: Any) -> None:
        """Called by a registry that uses this backend (pub/sub: listen on its channel)."""
        if self._listener is not None:
            self._listener.attach(self.channel(registry.db_name), registry)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        self.client.close()


def _role_and_memory(client: Any) -> Any:
    pipe = client.pipeline(transaction=False)
    pipe.execute_command("ROLE")
    pipe.info("memory")
    return pipe.execute()


def _new_epoch(client: Any, key: str) -> Any:
    pipe = client.pipeline(transaction=True)
    pipe.set(key, uuid.uuid4().hex, nx=True)
    pipe.get(key)
    return pipe.execute()


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
                registry.signaling_notified(names.split(","))
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
                        # through Any: redis-py < 8 leaves pubsub() unannotated, 8 annotates it,
                        # and a `type: ignore` would be unused under one of them
                        client: Any = self.backend.client
                        pubsub = client.pubsub()
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
