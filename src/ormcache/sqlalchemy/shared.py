"""The optional shared tier of ``orm_cached``: values computed once, reused by every process.

The tier follows the signals: every value is stored under the *signaling version* of the
registry cache holding it (``Registry.signaling_version()`` of each name that clears that cache,
as the reading transaction saw them when it began), so an invalidation that reached the
signaling backend makes every shared copy unreachable, whatever happened to the tier itself
(stalled, restarted, its own invalidation lost). Without a version (signaling never synced, or
failing) the tier is not used.

Per cached value, Redis keys ``<prefix><name>:ver`` (a counter) and ``<prefix><name>:val:<signals>``
(a hash of role -> tier version + serialised value, expiring after ``ttl`` seconds, so hashes of
old signaling versions go away). Invalidation increments the counter: a value stored under an
older counter is not served; a value is stored only if the counter did not move while it was
computed (WATCH). The local fastlru tier in front keeps ``(version, signals, value)`` and is
trusted only while the counter still reads ``version``.

Each call's protocol is written once, as generator steps (``signaling.base.Steps``): driven with
the blocking client, or, inside SQLAlchemy's greenlet bridge (an AsyncSession's unit of work),
awaited with the ``redis.asyncio`` client of the running event loop.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import pickle
import time
import warnings
from typing import Any, Callable, Iterable, Optional, Set, Tuple, TypeVar, Union
from urllib.parse import urlsplit, urlunsplit

from ..signaling import SignalingConfigurationError
from ..signaling.base import PerLoop, Step, Steps, arun_steps, run_steps
from ._bridge import await_, in_greenlet

__all__ = ["SharedTier", "SharedCacheWarning", "NOT_FOUND", "FORGED", "STORED", "MOVED", "LOCAL_ONLY",
           "stable_key", "redact_url"]

_logger = logging.getLogger(__name__)
_T = TypeVar("_T")

#: ``SharedTier.get`` found nothing usable.
NOT_FOUND: Any = object()
#: ``SharedTier.get`` found a value whose authentication tag does not verify (never deserialised),
#: or a version counter that ``INCR`` did not write (nothing is stored under it).
FORGED: Any = object()

#: results of ``SharedTier.store``
STORED, MOVED, LOCAL_ONLY = "stored", "moved", "local-only"


class SharedCacheWarning(UserWarning):
    """A value could not be serialised for the shared tier; it stays in the local tier only."""


def _serializer(name: str) -> Tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    if name == "pickle":
        return (lambda value: pickle.dumps(value, pickle.HIGHEST_PROTOCOL)), pickle.loads
    if name == "msgpack":
        import msgpack

        # tuples come back as tuples (cached values are read-only anyway)
        return msgpack.packb, (lambda data: msgpack.unpackb(data, use_list=False, strict_map_key=False))
    raise ValueError(f"unknown serializer {name!r}; use 'pickle' or 'msgpack'")


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: for reprs, logs and errors."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparsable url>"


_STABLE_SCALARS = (type(None), bool, int, float, str, bytes)


def stable_key(value: Any) -> str:
    """A text that names ``value`` the same way in every process (None, bool, int, float, str,
    bytes, and tuples, lists and frozensets of them); TypeError for anything else, whose repr()
    may embed an address or differ between equal objects."""
    kind = type(value)
    if kind in _STABLE_SCALARS:
        return repr(value)
    if kind is tuple or kind is list:
        inner = ",".join(stable_key(item) for item in value)
        return f"({inner})" if kind is tuple else f"[{inner}]"
    if kind is frozenset:
        return "frozenset(" + ",".join(sorted(stable_key(item) for item in value)) + ")"
    raise TypeError(f"no stable key for a {kind.__name__}")


def _is_counter(version: bytes) -> bool:
    """Whether ``version`` is what ``INCR`` writes (digits only, so ``version:`` parses back)."""
    return version.isdigit()


def _one(step: Step) -> Steps[Any]:
    """A protocol of one round trip."""
    return (yield step)


def _pipeline(client: Any) -> Any:
    return client.pipeline(transaction=True)  # no I/O (blocking and async clients alike)


class SharedTier:
    """Redis storage for cached values, validated by a version counter per value.

    Example::

        tier = SharedTier("redis://127.0.0.1:6379/0", prefix="ormcache:shop:", secret=b"...")

    ``secret`` (bytes or str): every value carries an HMAC-SHA256 tag over its key, version and
    bytes; a value whose tag does not verify is never deserialised (``FORGED``). pickle without a
    secret is refused: whoever can write to the Redis server would run code in every worker.
    ``timeout``: the deadline of each call (connect and round trip); after a failure the tier
    rests ``retry_interval`` seconds for every thread (calls fail at once), so a server that
    hangs costs one deadline per interval, not one per request.

    Called inside SQLAlchemy's greenlet bridge (an AsyncSession's unit of work), each method
    sends the same commands through a ``redis.asyncio`` client of the running event loop (one per
    loop, same deadlines, closed when the loop shuts down or by ``await aclose()``) and awaits
    them: the loop serves its other tasks meanwhile. Results, errors and the rest after a
    failure are the same.
    """

    def __init__(self, url: str, *, prefix: str = "ormcache:", serializer: str = "pickle",
                 secret: Union[bytes, str, None] = None, timeout: float = 0.5,
                 retry_interval: float = 1.0, ttl: int = 86400,
                 socket_timeout: Optional[float] = None) -> None:
        import redis

        from ..signaling.redis import aclose_client, make_aclient, make_client

        self._dumps, self._loads = _serializer(serializer)
        if isinstance(secret, str):
            secret = secret.encode()
        if secret is not None and (not isinstance(secret, bytes) or not secret):
            raise TypeError("secret must be non-empty bytes or str")
        if serializer == "pickle" and secret is None:
            raise ValueError(
                "serializer='pickle' needs a secret: values are unpickled from Redis, so anyone "
                "who can write to it could run code in every worker. Pass secret=... (values are "
                "then authenticated with HMAC-SHA256) or serializer='msgpack'")
        self._redis = redis
        self._secret = secret
        self.url = url
        self.prefix = prefix
        self.serializer = serializer
        self.ttl = ttl
        self.timeout = timeout if socket_timeout is None else socket_timeout
        self.retry_interval = retry_interval
        # no client-side retries: one deadline per call, then the tier rests
        self.client = make_client(url, self.timeout)
        #: event loop -> its redis.asyncio client (the calls made in the greenlet bridge)
        self._aclients: PerLoop[Any] = PerLoop(lambda: make_aclient(url, self.timeout), aclose_client)
        self._warned: Set[Any] = set()
        #: names whose invalidation could not be sent; sent again before any other command
        self._backlog: Set[Any] = set()
        self._signals_backlog = False  # the move of signals() waits with the backlog
        self._failed_at: Optional[float] = None  # time.monotonic() of the last failure

    def __repr__(self) -> str:
        return (f"SharedTier({redact_url(self.url)!r}, prefix={self.prefix!r}, serializer={self.serializer!r}, "
                f"signed={self._secret is not None})")

    def _run(self, steps: Steps[_T]) -> _T:
        """Drive ``steps``: awaited with the running loop's async client inside the greenlet
        bridge (an AsyncSession's unit of work), else with the blocking client."""
        if in_greenlet():
            return await_(self._arun(steps))
        return run_steps(steps, self.client)

    async def _arun(self, steps: Steps[_T]) -> _T:
        return await arun_steps(steps, await self._aclients.get())

    def _calling(self, steps: Steps[_T]) -> Steps[_T]:
        """Run one network call (``steps``: one round trip, or the few of a WATCH); after a
        failure, fail at once for ``retry_interval`` seconds."""
        failed_at = self._failed_at
        if failed_at is not None and time.monotonic() < failed_at + self.retry_interval:
            raise self._redis.ConnectionError(
                f"shared tier {redact_url(self.url)} failed less than {self.retry_interval}s ago; "
                "not tried again yet")
        try:
            result = yield from steps
        except self._redis.AuthenticationError as exc:  # a configuration error, not an outage
            raise SignalingConfigurationError(
                f"shared tier at {redact_url(self.url)}: authentication failed (check the user and "
                f"password of the URL): {exc}") from exc
        except self._redis.RedisError:
            self._failed_at = time.monotonic()
            raise
        self._failed_at = None
        return result

    def _tag(self, key: str, field: str, version: bytes, data: bytes) -> bytes:
        message = b"\0".join((key.encode(), field.encode(), version)) + b"\0" + data
        return hmac.new(self._secret, message, hashlib.sha256).digest()  # type: ignore[arg-type]  # with a secret

    def close(self) -> None:
        """Close the blocking client (an event loop's async client is closed with the loop)."""
        self.client.close()

    async def aclose(self) -> None:
        """Close the running event loop's async client (a later call makes a new one)."""
        await self._aclients.aclose()

    def _keys(self, name: str, signals: str = "") -> Tuple[str, str]:
        return f"{self.prefix}{name}:ver", f"{self.prefix}{name}:val:{signals}"

    @staticmethod
    def token(version: Any) -> str:
        """The part of the keys naming a signaling version (a tuple of ints, strings, bytes)."""
        return hashlib.sha256(repr(version).encode()).hexdigest()[:24]

    @staticmethod
    def _field(role: Any) -> str:
        return stable_key(role)  # TypeError: not for the shared tier

    # -- reading and storing -----------------------------------------------------------------

    def version(self, name: str) -> bytes:
        """The current version of ``name`` (one round trip)."""
        return self._run(self._versioning(name))

    def _versioning(self, name: str) -> Steps[bytes]:
        yield from self._sending_backlog()
        key = self._keys(name)[0]
        return (yield from self._calling(_one(lambda client: client.get(key)))) or b"0"  # bytes: no decode_responses

    def get(self, name: str, role: Any, signals: str = "") -> Tuple[bytes, Any]:
        """``(version, value)``, value ``NOT_FOUND`` when no process stored one for this version
        of the tier and the signaling version ``signals`` (a ``token()``), ``FORGED`` when what
        is stored does not carry a valid tag (it is not deserialised). TypeError when ``role``
        has no stable key."""
        return self._run(self._getting(name, role, signals))

    def _getting(self, name: str, role: Any, signals: str) -> Steps[Tuple[bytes, Any]]:
        yield from self._sending_backlog()
        ver_key, val_key = self._keys(name, signals)
        field = self._field(role)

        def run(client: Any) -> Any:
            pipe = _pipeline(client)
            pipe.get(ver_key)
            pipe.hget(val_key, field)
            return pipe.execute()

        version, data = yield from self._calling(_one(run))
        version = version or b"0"
        if not _is_counter(version):  # not written by INCR: someone else wrote it
            return version, FORGED
        if data is None:
            return version, NOT_FOUND
        stored, _, data = data.partition(b":")
        if self._secret is not None:
            tag, data = data[:32], data[32:]
            if not hmac.compare_digest(tag, self._tag(val_key, field, stored, data)):
                return version, FORGED
        if stored != version:  # stored before an invalidation of the tier
            return version, NOT_FOUND
        try:
            return version, self._loads(data)
        except Exception:  # noqa: BLE001 - a value written by another version of the code
            _logger.warning("Undecodable shared value %s for role %r: recomputing", name, role)
            return version, NOT_FOUND

    def store(self, name: str, role: Any, version: bytes, value: Any, signals: str = "") -> str:
        """Store ``value`` computed under ``version`` and ``signals``: ``STORED``; ``MOVED`` when the version
        moved meanwhile (the value may be stale: drop it); ``LOCAL_ONLY`` when the value cannot be
        serialised (a ``SharedCacheWarning`` is emitted once per name)."""
        try:
            data = self._dumps(value)
        except Exception as exc:  # noqa: BLE001 - whatever the serialiser raises
            if name not in self._warned:
                self._warned.add(name)
                warnings.warn(
                    f"orm_cached {name}: value of type {type(value).__name__} cannot be serialised "
                    f"with {self.serializer} ({exc}); it is cached in this process only",
                    SharedCacheWarning, stacklevel=5,
                )
            return LOCAL_ONLY
        if not _is_counter(version):
            return MOVED  # never store under a counter someone else wrote
        return self._run(self._storing(name, role, version, data, signals))

    def _storing(self, name: str, role: Any, version: bytes, data: bytes, signals: str) -> Steps[str]:
        ver_key, val_key = self._keys(name, signals)
        field = self._field(role)
        if self._secret is not None:
            data = self._tag(val_key, field, version, data) + data
        return (yield from self._calling(self._setting(ver_key, version, val_key, field, version + b":" + data)))

    def _setting(self, ver_key: str, version: bytes, val_key: str, field: str, data: bytes) -> Steps[str]:
        """``HSET`` (and ``EXPIRE``) in a MULTI/EXEC under ``WATCH ver_key``, if the counter still
        reads ``version``: STORED, or MOVED."""
        pipe = yield _pipeline
        closing = False
        try:
            yield lambda _: pipe.watch(ver_key)
            if ((yield lambda _: pipe.get(ver_key)) or b"0") != version:
                return MOVED
            pipe.multi()
            pipe.hset(val_key, field, data)
            pipe.expire(val_key, self.ttl)
            yield lambda _: pipe.execute()
        except self._redis.WatchError:
            return MOVED
        except GeneratorExit:  # abandoned: nothing more may be yielded
            closing = True
            raise
        finally:
            if not closing:  # UNWATCH, the connection back to its pool: as leaving `(async) with pipe`
                yield lambda _: pipe.reset()
        return STORED

    # -- invalidation ------------------------------------------------------------------------

    def invalidate(self, names: Iterable[str], *, signals: bool = False) -> None:
        """Move the version of each name, so its stored values are not served (one round trip);
        with ``signals``, also the tier's own signaling version (``signals()``). If Redis is
        unreachable the names are kept and sent before the next command; the signaling versions
        in the keys make those values unreachable meanwhile anyway."""
        if signals:
            self._signals_backlog = True
        self._run(self._invalidating(names))

    def signals(self) -> bytes:
        """The tier's own signaling version: a counter that every invalidation moves (one
        round trip). Without a signaling backend, transactions begin under it."""
        return self._run(self._signalling())

    def _signalling(self) -> Steps[bytes]:
        yield from self._sending_backlog()
        key = self._signals_key()
        return (yield from self._calling(_one(lambda client: client.get(key)))) or b"0"

    def _signals_key(self) -> str:
        return f"{self.prefix}#signals"  # no member's name holds a "#"

    def _invalidating(self, names: Iterable[str]) -> Steps[None]:
        names = set(names) | self._backlog
        if not names:
            return
        keys = [self._keys(name)[0] for name in sorted(names)]
        if self._signals_backlog:
            keys.append(self._signals_key())

        def run(client: Any) -> Any:
            pipe = _pipeline(client)
            for key in keys:
                pipe.incr(key)
            return pipe.execute()

        try:
            yield from self._calling(_one(run))
        except BaseException:  # unreachable, a cancelled task...: the names wait for the next command
            self._backlog = names
            raise
        self._backlog = set()
        self._signals_backlog = False

    def _sending_backlog(self) -> Steps[None]:
        if self._backlog:
            yield from self._invalidating(())
