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
"""
from __future__ import annotations

import hashlib
import logging
import pickle
import warnings
from typing import Any, Callable, Iterable, Tuple

__all__ = ["SharedTier", "SharedCacheWarning", "NOT_FOUND", "STORED", "MOVED", "LOCAL_ONLY"]

_logger = logging.getLogger(__name__)

#: ``SharedTier.get`` found nothing usable.
NOT_FOUND: Any = object()

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


class SharedTier:
    """Redis storage for cached values, validated by a version counter per value.

    Example::

        tier = SharedTier("redis://127.0.0.1:6379/0", prefix="ormcache:shop:")
    """

    def __init__(self, url: str, *, prefix: str = "ormcache:", serializer: str = "pickle",
                 socket_timeout: float = 5.0, ttl: int = 86400) -> None:
        import redis

        self._redis = redis
        self.url = url
        self.prefix = prefix
        self.serializer = serializer
        self._dumps, self._loads = _serializer(serializer)
        self.ttl = ttl
        self.client = redis.Redis.from_url(url, socket_timeout=socket_timeout,
                                           socket_connect_timeout=socket_timeout)
        self._warned: set = set()
        #: names whose invalidation could not be sent; sent again before any other command
        self._backlog: set = set()

    def __repr__(self) -> str:
        return f"SharedTier({self.url!r}, prefix={self.prefix!r}, serializer={self.serializer!r})"

    def close(self) -> None:
        self.client.close()

    def _keys(self, name: str, signals: str = "") -> Tuple[str, str]:
        return f"{self.prefix}{name}:ver", f"{self.prefix}{name}:val:{signals}"

    @staticmethod
    def token(version: Any) -> str:
        """The part of the keys naming a signaling version (a tuple of ints, strings, bytes)."""
        return hashlib.sha256(repr(version).encode()).hexdigest()[:24]

    @staticmethod
    def _field(role: Any) -> str:
        return repr(role)

    # -- reading and storing -----------------------------------------------------------------

    def version(self, name: str) -> bytes:
        """The current version of ``name`` (one round trip)."""
        self._send_backlog()
        return self.client.get(self._keys(name)[0]) or b"0"

    def get(self, name: str, role: Any, signals: str = "") -> Tuple[bytes, Any]:
        """``(version, value)``, value ``NOT_FOUND`` when no process stored one for this version
        of the tier and the signaling version ``signals`` (a ``token()``)."""
        self._send_backlog()
        ver_key, val_key = self._keys(name, signals)
        pipe = self.client.pipeline(transaction=True)
        pipe.get(ver_key)
        pipe.hget(val_key, self._field(role))
        version, data = pipe.execute()
        version = version or b"0"
        if data is None:
            return version, NOT_FOUND
        stored, _, data = data.partition(b":")
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
        ver_key, val_key = self._keys(name, signals)
        with self.client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(ver_key)
                if (pipe.get(ver_key) or b"0") != version:
                    return MOVED
                pipe.multi()
                pipe.hset(val_key, self._field(role), version + b":" + data)
                pipe.expire(val_key, self.ttl)
                pipe.execute()
            except self._redis.WatchError:
                return MOVED
        return STORED

    # -- invalidation ------------------------------------------------------------------------

    def invalidate(self, names: Iterable[str]) -> None:
        """Move the version of each name, so its stored values are not served (one round trip).
        If Redis is unreachable the names are kept and sent before the next command; the
        signaling versions in the keys make those values unreachable meanwhile anyway."""
        names = set(names) | self._backlog
        if not names:
            return
        pipe = self.client.pipeline(transaction=True)
        for name in sorted(names):
            pipe.incr(self._keys(name)[0])
        try:
            pipe.execute()
        except self._redis.RedisError:
            self._backlog = names
            raise
        self._backlog = set()

    def _send_backlog(self) -> None:
        if self._backlog:
            self.invalidate(())
