"""Pure-Python twin of the compiled engine (``_lru_c.pyx``): the same algorithm and names.

Entries live in parallel lists indexed by an entry number (key, value, hash, prev, next); an
open-addressing table (linear probing, Fibonacci hashing, backward-shift deletion, so no
tombstones) maps hashes to entry numbers; a circular doubly-linked list through ``prev``/``next``
orders them, ``head`` being the most recent.

Rules that make it safe against threads and re-entrant keys (see CPython's lru_cache):
- a key's ``__hash__`` runs once per operation, before any state is touched;
- ``self._lock`` guards pointer updates only: it is released while a key's ``__eq__`` runs, and
  no user code (``on_evict``, ``getsizeof``, a dropped value's ``__del__``, a GC pass triggered
  by allocating a container) ever runs while it is held;
- references that an operation drops are kept in locals until the lock is released;
- after a key's ``__eq__`` ran, the probe restarts if the cache changed meanwhile;
- nothing a user can replace runs under the lock either: no builtin such as ``len()`` is called
  there (CPython's ``test_lru_reentrancy_with_len``), only methods of exact built-in types.
"""
from __future__ import annotations

import reprlib
import threading
import time
from array import array
import collections.abc
from collections.abc import Mapping, MutableMapping
from types import GenericAlias
from typing import (TYPE_CHECKING, Any, Callable, Dict, Hashable, Iterable, Iterator, List,
                    Optional, SupportsIndex, Tuple, TypeVar, Union, cast, overload)

from ._common import (MAX_RESTARTS, LRUType, check_count, check_timer, check_ttl,
                      copy_of, iter_pairs, lru_repr, rebuild, reduce_lru)
from ._engine_py import (_EMPTY, _EMPTY_ROW, _FIB, _M64, _MIN_TABLE, _MISSING, _Engine,
                         _check_callbacks, _is_plain)

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["LRU"]

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")
_T = TypeVar("_T")
# the empty containers _compact fills: keys, values, hashes, plain, prev, next, weights, moved
_Fresh = Tuple[List[Any], List[Any], List[int], List[bool], List[int], List[int], List[int],
               Dict[int, int]]


def _new_table(size: int) -> array[int]:
    return _EMPTY_ROW * size  # an array is not tracked by the GC: safe to allocate under the lock


class LRU(_Engine[_K, _V]):
    """A bounded mapping that forgets its least recently used entries.

    >>> cache = LRU(2)
    >>> cache["a"] = 1; cache["b"] = 2
    >>> cache["a"]
    1
    >>> cache["c"] = 3  # evicts "b", the least recent
    >>> cache.keys()
    ['c', 'a']
    """

    __slots__ = (
        "_keys", "_values", "_hashes", "_plain", "_prev", "_next", "_weights",
        "_table", "_mask", "_shift", "_head", "_size", "_free", "_fill",
        "_count", "_version", "_hits", "_misses", "_evictions", "_ready",
        "_weight", "_maxweight", "_getsizeof", "_on_evict", "_lock", "__weakref__",
        # expiry, only with a ttl: per entry its expiry time and its place in store order
        # (a second circular list, ``_oldest`` first), so expired entries are found in order
        "_ttl", "_timer", "_expires", "_sprev", "_snext", "_oldest",
    )
    _keys: List[Any]  # a key, or None once its entry is free
    _values: List[Any]  # a value, or None once its entry is free
    _hashes: List[int]
    _plain: List[bool]
    _prev: List[int]
    _next: List[int]
    _weights: Optional[List[int]]
    _table: array[int]
    _mask: int
    _shift: int
    _head: int
    _size: int
    _free: int
    _fill: int
    _count: int
    _version: int
    _hits: int
    _misses: int
    _evictions: int
    _ready: bool
    _weight: int
    _maxweight: Optional[int]
    _getsizeof: Optional[Callable[[_V], SupportsIndex]]
    _on_evict: Optional[Callable[[_K, _V], object]]
    _lock: threading.Lock
    _ttl: Optional[float]
    _timer: Callable[[], float]
    # with a ttl: list[float], list[int], list[int]; else None (and then never indexed)
    _expires: Any
    _sprev: Any
    _snext: Any
    _oldest: int

    __class_getitem__: Any = classmethod(GenericAlias)  # LRU[str, int] at run time too
    __hash__ = None  # type: ignore[assignment]  # mutable, as dict

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        # As the compiled engine's __cinit__: before __init__ (LRU.__new__, a crafted pickle)
        # the cache is already a valid LRU(1).
        self = super().__new__(cls)
        self._lock = threading.Lock()
        self._ready = False
        self._count = 1
        self._on_evict = self._getsizeof = self._maxweight = self._ttl = None
        self._timer = time.monotonic
        self._hits = self._misses = self._evictions = 0
        self._version = 0
        self._reset()
        return self

    def __init__(self, count: SupportsIndex, pairs: Iterable[Tuple[_K, _V]] = (), *,
                 on_evict: Optional[Callable[[_K, _V], object]] = None,
                 maxweight: Optional[SupportsIndex] = None,
                 getsizeof: Optional[Callable[[_V], SupportsIndex]] = None,
                 ttl: Optional[float] = None, timer: Callable[[], float] = time.monotonic) -> None:
        count = check_count(count)
        ttl = check_ttl(ttl)
        timer = check_timer(timer)
        maxweight = _check_callbacks(on_evict, maxweight, getsizeof)
        if not self._ready and self._fill and not self._size:
            LRU.clear(self)  # used before __init__, now empty: start from a fresh arena
        weights: Optional[List[int]] = None if maxweight is None else []
        problem = None
        with self._lock:
            if self._ready:
                problem = "LRU.__init__ called twice"
            elif self._size or self._fill:
                problem = "LRU.__init__ on a cache that already holds entries"
            else:
                if weights is not None:
                    self._weights = weights
                    self._weight = 0
                    self._maxweight = maxweight
                if ttl is not None:
                    self._ttl = ttl
                    self._expires, self._sprev, self._snext = [], [], []
                self._timer = timer
                self._ready = True
                self._count = count
                self._on_evict = on_evict
                self._getsizeof = getsizeof
        if problem is not None:
            raise RuntimeError(problem)
        for key, value in iter_pairs(pairs):
            self[key] = value

    def _reset(self) -> None:
        self._keys = []
        self._values = []
        self._hashes = []
        self._plain = []
        self._prev = []
        self._next = []
        self._weights = [] if self._maxweight is not None else None
        if self._ttl is not None:
            self._expires, self._sprev, self._snext = [], [], []
        else:
            self._expires = self._sprev = self._snext = None
        self._oldest = _EMPTY
        self._table = _new_table(_MIN_TABLE)
        self._mask = _MIN_TABLE - 1
        self._shift = 64 - (_MIN_TABLE.bit_length() - 1)
        self._head = _EMPTY
        self._size = 0
        self._free = _EMPTY
        self._fill = 0  # entries ever handed out (live or on the free list)
        self._weight = 0

    # -- hash table (lock held, no user code) ---------------------------------------------

    def _find(self, key: object, h: int, plain: bool) -> int:
        """With the lock held: the entry holding ``key``, or -1.

        The lock is released only while a key's ``__eq__`` runs; it is held again on return,
        also when that ``__eq__`` raised.
        """
        restarts = 0
        while True:
            version = self._version
            table = self._table
            keys = self._keys
            mask = self._mask
            i = ((h & _M64) * _FIB & _M64) >> self._shift
            while True:
                e = table[i]
                if e == _EMPTY:
                    return _EMPTY
                k = keys[e]
                if k is key:
                    return e
                if self._hashes[e] == h:
                    if plain and self._plain[e]:
                        if k == key:
                            return e
                    else:
                        self._lock.release()
                        try:
                            if restarts > MAX_RESTARTS:  # raised unlocked: allocating may run the GC
                                raise RuntimeError("LRU mutated during key comparison")
                            equal = bool(k == key)
                        finally:
                            self._lock.acquire()
                        if self._version != version:
                            # The cache changed while __eq__ ran: trust a match only if the
                            # entry still holds the very key we compared, else probe again.
                            if equal and e < self._fill and self._keys[e] is k:
                                return e
                            restarts += 1
                            break
                        if equal:
                            return e
                i = (i + 1) & mask

    def _table_remove(self, e: int) -> None:
        table = self._table
        mask = self._mask
        shift = self._shift
        hashes = self._hashes
        i = ((hashes[e] & _M64) * _FIB & _M64) >> shift
        while table[i] != e:
            i = (i + 1) & mask
        j = i
        while True:
            j = (j + 1) & mask
            f = table[j]
            if f == _EMPTY:
                break
            home = ((hashes[f] & _M64) * _FIB & _M64) >> shift
            if (j - home) & mask >= (j - i) & mask:
                table[i] = f
                i = j
        table[i] = _EMPTY

    def _resize_table(self, size: int) -> None:
        self._table = _new_table(size)
        self._mask = size - 1
        self._shift = 64 - (size.bit_length() - 1)
        if self._head == _EMPTY:
            return
        e = self._head
        while True:
            self._table_insert(e, self._hashes[e])
            e = self._next[e]
            if e == self._head:
                break

    # -- linked list (lock held, no user code) ---------------------------------------------

    def _link_front(self, e: int) -> None:
        head = self._head
        if head == _EMPTY:
            self._prev[e] = self._next[e] = e
        else:
            prev = self._prev
            tail = prev[head]
            self._next[e] = head
            prev[e] = tail
            self._next[tail] = e
            prev[head] = e
        self._head = e

    def _unlink(self, e: int) -> None:
        nxt = self._next[e]
        if nxt == e:
            self._head = _EMPTY
            return
        prv = self._prev[e]
        self._next[prv] = nxt
        self._prev[nxt] = prv
        if self._head == e:
            self._head = nxt

    def _promote(self, e: int) -> None:
        head = self._head
        if e == head:
            return
        if e == self._prev[head]:
            self._head = e  # the tail of a circular list becomes its head by moving the head
            return
        self._unlink(e)
        self._link_front(e)

    # -- store order, only with a ttl (lock held, no user code) ----------------------------

    def _stamp(self, e: int, now: float) -> None:
        """Gives ``e`` its expiry time and makes it the newest in store order."""
        self._stamp_at(e, now + self._ttl)  # type: ignore[operator]  # called only with a ttl

    def _stamp_at(self, e: int, expires: float) -> None:
        self._expires[e] = expires
        sprev = self._sprev
        oldest = self._oldest
        if oldest == _EMPTY:
            sprev[e] = self._snext[e] = e
            self._oldest = e
        else:
            newest = sprev[oldest]
            self._snext[e] = oldest
            sprev[e] = newest
            self._snext[newest] = e
            sprev[oldest] = e

    def _unstamp(self, e: int) -> None:
        nxt = self._snext[e]
        if nxt == e:
            self._oldest = _EMPTY
            return
        prv = self._sprev[e]
        self._snext[prv] = nxt
        self._sprev[nxt] = prv
        if self._oldest == e:
            self._oldest = nxt

    def _expired(self, e: int, now: Optional[float]) -> bool:
        return self._expires is not None and self._expires[e] <= now

    def _expire(self, now: float, dropped: List[Any]) -> None:
        """Reclaims, oldest stored first, every entry expired at ``now`` (as evictions)."""
        while self._oldest != _EMPTY and self._expires[self._oldest] <= now:
            self._detach(self._oldest, dropped)
            self._evictions += 1

    def _detach(self, e: int, dropped: List[Any]) -> None:
        """Removes entry ``e``; its key and value go to ``dropped`` (released by the caller)."""
        self._unlink(e)
        if self._expires is not None:
            self._unstamp(e)
        self._table_remove(e)
        dropped.append(self._keys[e])
        dropped.append(self._values[e])
        self._keys[e] = self._values[e] = None
        self._next[e] = self._free
        self._free = e
        self._size -= 1
        if self._weights is not None:
            self._weight -= self._weights[e]
        self._version += 1

    def _evict_until(self, count: int, extra: int, dropped: List[Any]) -> None:
        """Evicts least-recent entries until at most ``count`` remain and their weight, plus
        ``extra`` (what the operation adds, maybe negative), is <= maxweight."""
        while self._size > count or (
                self._weights is not None
                and self._weight - self._maxweight > -extra):  # type: ignore[operator]  # set with weights
            self._detach(self._prev[self._head], dropped)
            self._evictions += 1

    # -- mapping --------------------------------------------------------------------------

    def _lookup(self, key: _K, default: _T) -> Union[_V, _T]:
        """``get``: a hit is made most recent; an expired entry is a miss, reclaimed at once."""
        h = hash(key)
        plain = _is_plain(key)
        now = self._now()
        expired: List[Any] = []
        with self._lock:
            e = self._find(key, h, plain)
            if e != _EMPTY and self._expired(e, now):
                self._detach(e, expired)
                self._evictions += 1
                e = _EMPTY
            if e == _EMPTY:
                self._misses += 1
                value = default
            else:
                self._hits += 1
                self._promote(e)
                self._version += 1
                value = self._values[e]
        if expired:
            self._release_evicted(expired)
        return value

    @overload
    def peek(self, key: _K) -> Optional[_V]: ...
    @overload
    def peek(self, key: _K, default: Union[_V, _T]) -> Union[_V, _T]: ...
    def peek(self, key: _K, default: object = None) -> object:
        h = hash(key)
        plain = _is_plain(key)
        now = self._now()
        with self._lock:
            e = self._find(key, h, plain)
            return default if e == _EMPTY or self._expired(e, now) else self._values[e]

    def __contains__(self, key: object) -> bool:
        h = hash(key)
        plain = _is_plain(key)
        now = self._now()
        with self._lock:
            e = self._find(key, h, plain)
            return e != _EMPTY and not self._expired(e, now)

    @overload
    def setdefault(self: LRU[_K, Optional[_T]], key: _K, default: None = None) -> Optional[_T]: ...
    @overload
    def setdefault(self, key: _K, default: _V) -> _V: ...
    def setdefault(self, key: _K, default: Any = None) -> Any:
        return self._store(key, default, True)

    def _store(self, key: _K, value: _V, keep: bool) -> _V:
        """Sets ``key``; with ``keep`` an existing value wins and is returned (setdefault)."""
        h = hash(key)
        plain = _is_plain(key)
        now = self._now()
        w = 1
        if self._weights is not None:
            if keep:
                # setdefault of a present key stores nothing, so weighs nothing
                with self._lock:
                    e = self._find(key, h, plain)
                    if e != _EMPTY and not self._expired(e, now):
                        self._promote(e)
                        self._version += 1
                        return self._values[e]  # type: ignore[no-any-return]  # a live entry: a _V
            w = self._weigh(value)
        # Allocated before the lock (allocating may run the GC, i.e. user code); they keep
        # what the store drops alive until the lock is released.
        evicted: List[Any] = []
        replaced: List[Any] = []
        try:
            with self._lock:
                if now is not None:
                    self._expire(now, evicted)  # expired entries go before any live one
                e = self._find(key, h, plain)
                if e != _EMPTY:
                    self._promote(e)
                    self._version += 1
                    if now is not None and self._expired(e, now):
                        keep = False  # (a timer that went back): its value is gone, store ours
                    if keep:
                        value = self._values[e]
                    else:
                        replaced.append(self._values[e])
                        self._values[e] = value
                        if now is not None:
                            self._unstamp(e)
                            self._stamp(e, now)
                        if self._weights is not None:
                            # as the compiled engine: old weight out, evict, new weight in
                            self._weight -= self._weights[e]
                            self._weights[e] = 0
                            self._evict_until(self._count, w, evicted)
                            self._weights[e] = w
                            self._weight += w
                else:
                    self._evict_until(self._count - 1, w, evicted)
                    self._insert(key, value, h, plain, w, now)
        except BaseException:
            # a key's __eq__ raised: the expired entries reclaimed before it are reported
            self._release_evicted(evicted)
            raise
        self._release_evicted(evicted)
        return value

    def _insert(self, key: _K, value: _V, h: int, plain: bool, w: int,
                now: Optional[float]) -> None:
        if (self._size + 1) * 2 >= self._mask + 1:  # under half full (see _lru_c._reserve)
            self._resize_table((self._mask + 1) * 2)
        e = self._free
        if e != _EMPTY:
            self._free = self._next[e]
            self._keys[e] = key
            self._values[e] = value
            self._hashes[e] = h
            self._plain[e] = plain
            if self._weights is not None:
                self._weights[e] = w
        else:
            e = self._fill
            self._fill += 1
            self._keys.append(key)
            self._values.append(value)
            self._hashes.append(h)
            self._plain.append(plain)
            self._prev.append(e)
            self._next.append(e)
            if self._weights is not None:
                self._weights.append(w)
            if self._expires is not None:
                self._expires.append(0.0)
                self._sprev.append(e)
                self._snext.append(e)
        if now is not None:
            self._stamp(e, now)
        self._table_insert(e, h)
        self._link_front(e)
        self._size += 1
        if self._weights is not None:
            self._weight += w
        self._version += 1

    @overload
    def pop(self, key: _K, /) -> _V: ...
    @overload
    def pop(self, key: _K, default: Union[_V, _T], /) -> Union[_V, _T]: ...
    def pop(self, key: _K, default: object = _MISSING, /) -> object:
        return self._pop(key, default)

    def _pop(self, key: _K, default: object) -> Any:
        h = hash(key)
        plain = _is_plain(key)
        now = self._now()
        dropped: List[Any] = []
        expired = False
        with self._lock:
            e = self._find(key, h, plain)
            if e != _EMPTY:
                expired = self._expired(e, now)
                if expired:
                    self._evictions += 1
                self._detach(e, dropped)
        return self._popped(key, default, dropped, expired)

    def popitem(self) -> Tuple[_K, _V]:
        """Removes and returns the least recent ``(key, value)``."""
        now = self._now()
        dropped: List[Any] = []
        evicted: List[Any] = []
        with self._lock:
            if now is not None:
                self._expire(now, evicted)
            if self._head != _EMPTY:
                self._detach(self._prev[self._head], dropped)
        self._release_evicted(evicted)
        if not dropped:
            raise KeyError("popitem(): LRU is empty")
        return dropped[0], dropped[1]

    def clear(self) -> None:
        fresh = object.__new__(LRU)
        fresh._maxweight = self._maxweight
        fresh._ttl = self._ttl
        fresh._reset()  # new containers built before the lock: allocating may run the GC
        with self._lock:
            old_keys = self._keys
            old_values = self._values
            self._adopt(fresh)
            self._version += 1
        del old_keys, old_values  # keys' and values' __del__ run here, the cache consistent

    def _adopt(self, other: LRU[_K, _V]) -> None:
        self._keys = other._keys
        self._values = other._values
        self._hashes = other._hashes
        self._plain = other._plain
        self._prev = other._prev
        self._next = other._next
        self._weights = other._weights
        self._expires = other._expires
        self._sprev = other._sprev
        self._snext = other._snext
        self._oldest = other._oldest
        self._table = other._table
        self._mask = other._mask
        self._shift = other._shift
        self._head = other._head
        self._size = other._size
        self._free = other._free
        self._fill = other._fill
        self._weight = other._weight

    def update(self, other: Union[Mapping[_K, _V], Iterable[Tuple[_K, _V]]] = (), /,
               **kwargs: _V) -> None:
        if isinstance(other, LRUType):
            # other[key] would promote, i.e. mutate other while iterating it; oldest first
            # keeps other's recency order
            for key, value in reversed(other.items()):
                self[key] = value
        elif isinstance(other, Mapping):
            for key in other:
                self[key] = other[key]
        elif hasattr(other, "keys"):
            for key in other.keys():
                self[key] = other[key]  # type: ignore[index]  # a mapping by duck typing
        else:
            # every item is checked to be a pair before the first is stored
            for key, value in list(iter_pairs(other)):
                self[key] = value
        for key, value in kwargs.items():
            self[key] = value  # type: ignore[index]  # keyword keys are str

    # -- capacity -------------------------------------------------------------------------

    @property
    def count(self) -> int:
        return self._count

    @count.setter
    def count(self, count: SupportsIndex) -> None:
        count = check_count(count)
        self._expire_now()
        evicted: List[Any] = []
        fresh: _Fresh = ([], [], [], [], [], [], [], {})  # allocated before the lock, for _compact
        with self._lock:
            self._count = count
            self._evict_until(count, 0, evicted)
            if self._fill // 2 > count and self._fill > 64:
                self._compact(fresh)
        self._release_evicted(evicted)

    @count.deleter
    def count(self) -> None:
        raise AttributeError("count cannot be deleted")

    def _compact(self, fresh: _Fresh) -> None:
        """Moves the live entries, most recent first, into the empty lists ``fresh`` (no user
        code: only appends), as the compiled engine moves them into a smaller arena."""
        keys, values, hashes, plain, prev, nxt, weights, moved = fresh
        n = self._size
        e = self._head
        j = 0
        while j < n:
            moved[e] = j
            keys.append(self._keys[e])
            values.append(self._values[e])
            hashes.append(self._hashes[e])
            plain.append(self._plain[e])
            prev.append(j - 1 if j else n - 1)
            nxt.append(j + 1 if j + 1 < n else 0)
            if self._weights is not None:
                weights.append(self._weights[e])
            e = self._next[e]
            j += 1
        self._keys, self._values, self._hashes, self._plain = keys, values, hashes, plain
        self._prev, self._next = prev, nxt
        if self._weights is not None:
            self._weights = weights
        if self._expires is not None:
            # the store order survives: walk it, oldest first, in the new numbering
            old_expires, old_snext, e = self._expires, self._snext, self._oldest
            self._expires, self._sprev, self._snext = [0.0] * n, [0] * n, [0] * n
            self._oldest = _EMPTY
            for _ in range(n):
                j = moved[e]
                self._stamp_at(j, old_expires[e])
                e = old_snext[e]
        self._fill = n
        self._free = _EMPTY
        self._head = 0 if n else _EMPTY
        self._version += 1
        size = _MIN_TABLE
        while size <= 2 * n:  # under half full, as _insert
            size *= 2
        self._resize_table(size)

    # -- views ----------------------------------------------------------------------------

    def _snapshot(self, keys: Optional[List[_K]], values: Optional[List[_V]]) -> None:
        """Fills the given lists with keys and/or values, most recent first, under the lock."""
        self._expire_now()
        with self._lock:
            e = self._head
            if e != _EMPTY:
                while True:
                    if keys is not None:
                        keys.append(self._keys[e])
                    if values is not None:
                        values.append(self._values[e])
                    e = self._next[e]
                    if e == self._head:
                        break

    def keys(self) -> List[_K]:
        keys: List[_K] = []
        self._snapshot(keys, None)
        return keys

    def values(self) -> List[_V]:
        values: List[_V] = []
        self._snapshot(None, values)
        return values

    def items(self) -> List[Tuple[_K, _V]]:
        keys: List[_K] = []
        values: List[_V] = []
        self._snapshot(keys, values)
        return list(zip(keys, values))

    def __iter__(self) -> Iterator[_K]:
        self._expire_now()
        return _Iterator(self, True)

    def __reversed__(self) -> Iterator[_K]:
        self._expire_now()
        return _Iterator(self, False)

    # -- whole-object protocols ------------------------------------------------------------

    def copy(self) -> Self:
        return cast("Self", rebuild(
            type(self), self._count, reversed(self.items()), self._on_evict,
            self._maxweight, self._getsizeof, LRU, self._ttl, self._timer,
        ))

    def __copy__(self) -> Self:
        return cast("Self", copy_of(self, LRU, self._count, self._on_evict, self._maxweight,
                                   self._getsizeof, self._ttl, self._timer))

    def __reduce__(self) -> Tuple[Any, ...]:
        return reduce_lru(self, LRU, self._count, self._on_evict, self._maxweight,
                          self._getsizeof, self._ttl, self._timer)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LRUType):
            return self.items() == other.items()
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        return lru_repr(self, self._count, self.items(), self._on_evict, self._maxweight,
                        self._getsizeof, self._ttl, self._timer)

    def _check(self) -> None:
        """Debug: asserts that the list, the table and the counters agree."""
        with self._lock:
            n = 0
            if self._head != _EMPTY:
                e = self._head
                while True:
                    n += 1
                    assert n <= self._size, "list longer than size"
                    assert self._prev[self._next[e]] == e, "broken back link"
                    e = self._next[e]
                    if e == self._head:
                        break
            assert n == self._size, "list and size disagree"
            assert self._size <= self._count, "size above count"
            n = 0
            total = 0
            for e in self._table:
                if e != _EMPTY:
                    n += 1
                    i = ((self._hashes[e] & _M64) * _FIB & _M64) >> self._shift
                    while self._table[i] != e:
                        assert self._table[i] != _EMPTY, "entry unreachable from its home slot"
                        i = (i + 1) & self._mask
                    if self._weights is not None:
                        total += self._weights[e]
            assert n == self._size, "table and list disagree"
            assert self._size * 2 < self._mask + 1, "table half full or more"
            if self._expires is not None:
                n = 0
                e = self._oldest
                while e != _EMPTY:
                    n += 1
                    assert n <= self._size, "store order longer than size"
                    assert e in self._table, "free entry in the store order"
                    assert self._sprev[self._snext[e]] == e, "broken store-order link"
                    e = self._snext[e]
                    if e == self._oldest:
                        break
                assert n == self._size, "store order and size disagree"
            if self._weights is not None:
                assert total == self._weight, "weight total drifted"
                assert self._weight <= self._maxweight, "weight above maxweight"  # type: ignore[operator]


class _Iterator:
    """Keys in recency order; raises RuntimeError once the cache changed. As dict's: once
    exhausted it stays exhausted (and lets go of the cache); once failed it keeps failing."""

    __slots__ = ("_lru", "_e", "_remaining", "_version", "_forward")
    _lru: Optional[LRU[Any, Any]]
    _e: int
    _remaining: int
    _version: int
    _forward: bool

    def __init__(self, lru: LRU[Any, Any], forward: bool) -> None:
        if not isinstance(lru, LRU):
            raise TypeError(f"an LRU is required, not {type(lru).__name__}")
        self._lru = lru
        self._forward = forward
        with lru._lock:
            self._version = lru._version
            self._remaining = lru._size
        self._e = _EMPTY

    def __iter__(self) -> _Iterator:
        return self

    def __next__(self) -> Any:
        lru = self._lru
        if lru is None:
            raise StopIteration
        key = _MISSING
        with lru._lock:
            changed = lru._version != self._version
            if not changed and self._remaining > 0:
                e = self._e
                if e == _EMPTY:
                    e = lru._head if self._forward else lru._prev[lru._head]
                key = lru._keys[e]
                self._e = lru._next[e] if self._forward else lru._prev[e]
                self._remaining -= 1
        if changed:
            raise RuntimeError("LRU mutated during iteration")
        if key is _MISSING:
            self._lru = None
            raise StopIteration
        return key


MutableMapping.register(LRU)
LRUType.register(LRU)
