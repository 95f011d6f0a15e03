"""What the two pure-Python engines, ``_lru_py.LRU`` and ``_policy_py.Cache``, share word for
word: the key test and constants of their hash tables, the report of an ``on_evict`` error, and
``_Engine``, a mixin of the methods whose bodies are the same in both (the read-only
properties, statistics, expiry before the lock, the ``on_evict`` calls after it, the mapping
methods that only forward). Each twin keeps what differs: its index, its policy, its recency.

Imported only by the twins (which ``import fastlru`` loads lazily), so it may import typing.
"""
from __future__ import annotations

import threading
from array import array
from typing import (TYPE_CHECKING, Any, Callable, Generic, Hashable, List, Optional, SupportsIndex,
                    TypeVar, Union, overload)

from ._common import CacheInfo, check_maxweight, check_time, check_weight

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")
_T = TypeVar("_T")

_EMPTY = -1
_M64 = (1 << 64) - 1
_FIB = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: spreads sequential hashes over the table
_MIN_TABLE = 8
_EMPTY_ROW = array("q", [_EMPTY])
# Exact types whose __eq__ runs no Python code: comparing them under the lock is safe.
_PLAIN = frozenset({int, str, bytes, float, bool, type(None)})
_MISSING: Any = object()


def _is_plain(key: Any) -> bool:
    t = type(key)
    if t in _PLAIN:
        return True
    if t is tuple:
        for item in key:
            if type(item) not in _PLAIN:
                return False
        return True
    return False


class _Unraisable:
    """Hands an exception to ``sys.unraisablehook`` the only way pure Python can: from __del__."""

    __slots__ = ("exc",)
    exc: Any  # the exception to report, None once reported

    def __del__(self) -> None:
        exc, self.exc = self.exc, None
        try:
            raise exc
        finally:
            del exc  # else the traceback's frames and the exception form a cycle


def _report(exc: BaseException) -> None:
    reporter = _Unraisable()
    reporter.exc = exc
    del exc
    del reporter


def _check_callbacks(on_evict: Optional[Callable[[Any, Any], object]],
                     maxweight: Optional[SupportsIndex],
                     getsizeof: Optional[Callable[[Any], SupportsIndex]]) -> Optional[int]:
    """``__init__``'s checks of ``on_evict``, ``getsizeof`` and ``maxweight``, in that order;
    returns ``maxweight`` as an int (or None)."""
    if on_evict is not None and not callable(on_evict):
        raise TypeError("on_evict must be callable")
    if getsizeof is not None and not callable(getsizeof):
        raise TypeError("getsizeof must be callable")
    if maxweight is not None:
        return check_maxweight(maxweight)
    if getsizeof is not None:
        raise TypeError("getsizeof needs maxweight")
    return None


class _Engine(Generic[_K, _V]):
    """The methods ``LRU`` and ``Cache`` (pure Python) share; the slots are the twins'."""

    if not TYPE_CHECKING:  # no __dict__ on the twins; mypy would check the twins' slots here
        __slots__ = ()
    _size: int
    _count: int
    _hits: int
    _misses: int
    _evictions: int
    _weight: int
    _weights: Optional[List[int]]
    _maxweight: Optional[int]
    _getsizeof: Optional[Callable[[Any], SupportsIndex]]
    _on_evict: Optional[Callable[[Any, Any], object]]
    _lock: threading.Lock
    _table: array[int]
    _mask: int
    _shift: int
    _ttl: Optional[float]
    _timer: Callable[[], float]

    if TYPE_CHECKING:
        def _expire(self, now: float, dropped: List[Any]) -> None: ...
        def _lookup(self, key: _K, default: Any) -> Any: ...
        def _store(self, key: _K, value: _V, keep: bool) -> Any: ...
        def _pop(self, key: _K, default: object) -> Any: ...

    # -- hash table (lock held, no user code) ---------------------------------------------

    def _table_insert(self, n: int, h: int) -> None:
        """Records entry number ``n``, of hash ``h``, in the first free slot from its home."""
        table = self._table
        mask = self._mask
        i = ((h & _M64) * _FIB & _M64) >> self._shift
        while table[i] != _EMPTY:
            i = (i + 1) & mask
        table[i] = n

    # -- user callbacks (lock released) ---------------------------------------------------

    def _now(self) -> Optional[float]:
        """The timer's time (user code: called before the lock), or None without a ttl."""
        return None if self._ttl is None else check_time(self._timer())

    def _expire_now(self) -> None:
        """Reclaims the expired entries (reported to on_evict), if the cache has a ttl."""
        if self._ttl is not None:
            now = self._now()
            evicted: List[Any] = []
            with self._lock:
                self._expire(now, evicted)  # type: ignore[arg-type]  # a float: there is a ttl
            self._release_evicted(evicted)

    def _weigh(self, value: _V) -> int:
        if self._getsizeof is None:
            return check_weight(1, self._maxweight)  # type: ignore[arg-type]  # weighed only with a maxweight
        return check_weight(self._getsizeof(value), self._maxweight)  # type: ignore[arg-type]

    def _release_evicted(self, evicted: List[Any]) -> None:
        on_evict = self._on_evict
        if on_evict is not None:
            for i in range(0, len(evicted), 2):
                try:
                    on_evict(evicted[i], evicted[i + 1])
                except BaseException as exc:  # noqa: BLE001 - reported, never raised mid-call
                    _report(exc)
        evicted.clear()

    # -- mapping --------------------------------------------------------------------------

    def __getitem__(self, key: _K) -> _V:
        value = self._lookup(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value  # type: ignore[no-any-return]

    @overload
    def get(self, key: _K) -> Optional[_V]: ...
    @overload
    def get(self, key: _K, default: Union[_V, _T]) -> Union[_V, _T]: ...
    def get(self, key: _K, default: object = None) -> object:
        return self._lookup(key, default)

    def __setitem__(self, key: _K, value: _V) -> None:
        self._store(key, value, False)

    def __delitem__(self, key: _K) -> None:
        self._pop(key, _MISSING)

    def _popped(self, key: _K, default: object, dropped: List[Any], expired: bool) -> Any:
        """The end of ``_pop``, the lock released: ``dropped`` holds the removed key and value
        (if any), which an ``expired`` entry hands to on_evict instead of returning."""
        if expired:
            self._release_evicted(dropped)  # reclaimed and reported, not popped
        if not dropped:
            if default is _MISSING:
                raise KeyError(key)
            return default
        return dropped[1]

    def __len__(self) -> int:
        self._expire_now()
        return self._size

    # -- options and statistics -----------------------------------------------------------

    @property
    def maxweight(self) -> Optional[int]:
        return self._maxweight

    @property
    def weight(self) -> int:
        """The total weight of the entries (their number without a maxweight)."""
        self._expire_now()
        return self._weight if self._weights is not None else self._size

    @property
    def ttl(self) -> Optional[float]:
        return self._ttl

    @property
    def timer(self) -> Callable[[], float]:
        return self._timer

    def info(self) -> CacheInfo:
        self._expire_now()
        with self._lock:
            return CacheInfo(self._hits, self._misses, self._evictions, self._size, self._count)

    def clear_stats(self) -> None:
        """Resets the hits, misses and evictions counters to zero."""
        with self._lock:
            self._hits = self._misses = self._evictions = 0
