"""Pure-Python twin of ``_functools_c.pyx``: ``lru_cache``/``cache`` on ``fastlru.LRU``.

Keys are built as ``functools._make_key`` builds them (so keyword order, ``typed`` and the
single ``int``/``str`` shortcut behave alike), in a list that caches its hash: a call hashes
its arguments once, even on a miss (lookup and store).
"""
from __future__ import annotations

import sys
from types import CoroutineType, MethodType
from typing import Any, Callable, Dict, Optional, Tuple, Type

from ._cached import LRUCacheInfo, SingleFlight, decorators, parameters, wrapper_repr
from ._lru_py import LRU
from ._policy_py import Cache

__all__ = ["lru_cache", "cache", "AwaitedValue", "LRUCacheWrapper"]

#: What a coroutine function's wrapper returns on a hit: here the ``async def`` wrapper's own
#: coroutine (``_aio.cached_coroutine``); the compiled twin's is a coroutine already done.
AwaitedValue = CoroutineType

_MISSING: Any = object()
_KWD_MARK = (object(),)  # separates positional from keyword arguments in a key
_FAST_TYPES = frozenset({int, str})


class _HashedSeq(list[Any]):
    """A key that hashes its items once (a list, so it never equals a tuple argument)."""

    __slots__ = ("hashvalue",)

    def __init__(self, items: Tuple[Any, ...]) -> None:
        self[:] = items
        self.hashvalue = hash(items)

    def __hash__(self) -> int:  # type: ignore[override]  # list sets __hash__ = None
        return self.hashvalue


def _make_key(args: Tuple[Any, ...], kwds: Dict[str, Any], typed: bool,
              _len: Callable[[Any], int] = len, _type: Type[type] = type,
              _tuple: Type[Tuple[Any, ...]] = tuple) -> Any:
    # (builtins bound at import: a cached builtins.len must not be called from here)
    key = args
    if kwds:
        key += _KWD_MARK
        for item in kwds.items():
            key += item
    if typed:
        key += _tuple(_type(v) for v in args)
        if kwds:
            key += _tuple(_type(v) for v in kwds.values())
    elif _len(key) == 1 and _type(key[0]) in _FAST_TYPES:
        return key[0]
    return _HashedSeq(key)


class LRUCacheWrapper:
    """The callable ``lru_cache`` returns: as ``functools``' wrapper, a descriptor (binds as a
    method), weak-referenceable, pickled by name, copied as itself."""

    __slots__ = ("_func", "_lru", "_maxsize", "_typed", "_ttl", "_flight", "_misses", "_policy",
                 "__dict__", "__weakref__")

    def __init__(self, func: Callable[..., Any], maxsize: Optional[int], typed: bool,
                 ttl: Optional[float], timer: Callable[[], float], single_flight: bool,
                 policy: Optional[str] = None) -> None:
        self._func = func
        self._maxsize = maxsize
        self._typed = bool(typed)
        self._ttl = ttl
        self._misses = 0  # only for maxsize=0 (the others count in the LRU)
        self._flight = SingleFlight() if single_flight else None
        self._policy = policy
        self._lru: Any = None  # an LRU, or a Cache with a policy
        if maxsize != 0:
            if policy is not None and maxsize is not None:
                self._lru = Cache(maxsize, policy=policy)
            else:
                self._lru = LRU(sys.maxsize if maxsize is None else maxsize, ttl=ttl, timer=timer)

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        lru = self._lru
        if lru is None:
            self._misses += 1
            return self._func(*args, **kwargs)
        key = _make_key(args, kwargs, self._typed)
        result = lru.get(key, _MISSING)
        if result is not _MISSING:
            return result
        if self._flight is not None:
            return self._flight.call(lru, key, self._func, args, kwargs, _MISSING)
        result = self._func(*args, **kwargs)
        lru.setdefault(key, result)  # a call made meanwhile (re-entrant, a thread) stored first
        return result

    # type comments: the signatures stay functools' bare "()" (CPython's tests compare them)
    def cache_info(self):  # type: () -> LRUCacheInfo
        """``CacheInfo(hits, misses, maxsize, currsize)``, as ``functools``."""
        if self._lru is None:
            return LRUCacheInfo(0, self._misses, 0, 0)
        info = self._lru.info()
        return LRUCacheInfo(info.hits, info.misses, self._maxsize, info.size)

    def cache_clear(self):  # type: () -> None
        """Empties the cache and resets its statistics."""
        self._misses = 0
        if self._lru is not None:
            self._lru.clear()
            self._lru.clear_stats()

    def cache_parameters(self):  # type: () -> Dict[str, Any]
        return parameters(self._maxsize, self._typed, self._ttl, self._flight is not None,
                          self._policy)

    def __repr__(self) -> str:
        return wrapper_repr(self, self._lru)

    def __get__(self, obj: object, objtype: Optional[type] = None) -> Any:
        if obj is None:
            return self
        return MethodType(self, obj)

    def __reduce__(self) -> str:
        return self.__qualname__  # type: ignore[attr-defined, no-any-return]  # update_wrapper's

    def __copy__(self) -> LRUCacheWrapper:
        return self

    def __deepcopy__(self, memo: object) -> LRUCacheWrapper:
        return self


lru_cache, cache = decorators(LRUCacheWrapper, _make_key)
