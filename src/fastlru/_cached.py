"""What both ``lru_cache`` wrappers (``_functools_c``/``_functools_py``) share: the decorator
with ``functools.lru_cache``'s argument rules and its ``CacheInfo`` (single-flight misses:
``SingleFlight``, on ``_flight``)."""
from __future__ import annotations

import time
from _thread import get_ident  # threading's own (issue #21: import cost)

from ._aio import cached_coroutine, refuse_async_generator
from ._common import check_policy, check_timer, check_ttl
from ._flight import AGAIN, CYCLE, claim, drop, join, new_flight, publish

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (issue #21: import cost)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Hashable, Optional, Tuple

    from ._typing import CacheDecorator, LRUCacheDecorator, LRUCacheInfo as LRUCacheInfo
else:
    def __getattr__(name):
        """``LRUCacheInfo``, made on first use (a namedtuple needs ``collections``, which
        ``import fastlru`` does not import: issue #21): functools.lru_cache's shape,
        ``hits, misses, maxsize, currsize = f.cache_info()``."""
        if name != "LRUCacheInfo":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from collections import namedtuple

        made = globals()["LRUCacheInfo"] = namedtuple("CacheInfo", ["hits", "misses", "maxsize", "currsize"])
        return made


def decorators(wrapper_type: Callable[..., Any], make_key: Callable[..., Hashable],
               coroutine_wrapper: Callable[..., Any] = cached_coroutine,
               ) -> Tuple[LRUCacheDecorator, CacheDecorator]:
    """``lru_cache`` and ``cache`` decorating with ``wrapper_type(func, maxsize, typed, ttl,
    timer, single_flight)``; a coroutine function's is ``coroutine_wrapper(wrapper, make_key,
    func, typed)``: by default an ``async def`` wrapper around it (``_aio.cached_coroutine``),
    which looks up ``make_key(args, kwargs, typed)``; the compiled module passes its own."""

    def lru_cache(maxsize: Any = 128, typed: bool = False, *, ttl: Optional[float] = None,
                  single_flight: bool = False, timer: Callable[[], float] = time.monotonic,
                  policy: Optional[str] = None) -> Any:
        """Least-recently-used cache decorator, as ``functools.lru_cache``, on ``fastlru.LRU``.

        >>> from fastlru import lru_cache
        >>> @lru_cache(maxsize=2)
        ... def square(x):
        ...     return x * x
        >>> square(3), square(3), square.cache_info()
        (9, 9, CacheInfo(hits=1, misses=1, maxsize=2, currsize=1))

        ``maxsize=None`` is unbounded, ``maxsize=0`` caches nothing; ``typed=True`` caches
        ``f(3)`` and ``f(3.0)`` apart. Beyond functools: ``ttl`` seconds of life per result
        (read on ``timer``), and ``single_flight=True``: concurrent misses of one key compute
        it once, the other callers wait for that result. ``policy`` (one of
        ``fastlru.POLICIES``) keeps the results in a ``fastlru.Cache`` of that eviction policy
        instead of an LRU (not with ``ttl``; an unbounded cache evicts nothing, so keeps an LRU).

        A coroutine function's wrapper is a coroutine function: the awaited value is cached
        (never the coroutine), and concurrent awaits of one key in one event loop always
        compute it once (see ``fastlru._aio``).
        """
        if isinstance(maxsize, int):
            if maxsize < 0:
                maxsize = 0  # as functools
        elif callable(maxsize) and isinstance(typed, bool):
            # bare @lru_cache: the function came as maxsize
            return lru_cache()(maxsize)
        elif maxsize is not None:
            raise TypeError("Expected first argument to be an integer, a callable, or None")
        ttl = check_ttl(ttl)
        check_timer(timer)
        if policy is not None:
            policy = check_policy(policy)
            if ttl is not None:
                raise TypeError("lru_cache: ttl is not supported with a policy")

        def decorating_function(user_function: Callable[..., Any]) -> Any:
            if not callable(user_function):
                raise TypeError("the cached object must be callable")
            refuse_async_generator(user_function, "lru_cache")
            wrapper = wrapper_type(user_function, maxsize, typed, ttl, timer, single_flight,
                                   policy)
            import inspect  # at decoration, not at import (issue #21)

            if inspect.iscoroutinefunction(user_function):
                return coroutine_wrapper(wrapper, make_key, user_function, typed)
            from functools import update_wrapper  # at decoration (issue #21: import cost)

            return update_wrapper(wrapper, user_function)

        return decorating_function

    def cache(user_function: Callable[..., Any], /) -> Any:
        """Unbounded cache, as ``functools.cache``: ``lru_cache(maxsize=None)``."""
        return lru_cache(maxsize=None)(user_function)

    return lru_cache, cache


def wrapper_repr(wrapper: Any, lru: Any) -> str:
    """``repr`` of an ``lru_cache`` wrapper: the function, ``cache_parameters()`` and a timer
    that is not the default (``lru``: the wrapper's LRU, None when ``maxsize=0``)."""
    func = wrapper.__wrapped__
    name = f"{getattr(func, '__module__', None)}.{getattr(func, '__qualname__', func)}"
    shown = " ".join(f"{key}={value!r}" for key, value in wrapper.cache_parameters().items())
    if lru is not None and getattr(lru, "timer", time.monotonic) is not time.monotonic:
        shown += f" timer={lru.timer!r}"
    return f"<fastlru.lru_cache of {name} {shown}>"


def parameters(maxsize: Optional[int], typed: bool, ttl: Optional[float],
               single_flight: bool, policy: Optional[str] = None) -> Dict[str, Any]:
    """``cache_parameters()``: functools' two keys, and ours only where they are set."""
    params: Dict[str, Any] = {"maxsize": maxsize, "typed": typed}
    if ttl is not None:
        params["ttl"] = ttl
    if single_flight:
        params["single_flight"] = True
    if policy is not None:
        params["policy"] = policy
    return params


class SingleFlight:
    """``lru_cache(single_flight=True)``'s table: misses of one key that overlap compute it once,
    the other callers take that value; if the computation fails, a waiter computes. The rules
    are ``_flight``'s (a recursive call of the key computes directly, as does one that would
    close a cycle of threads, through ``@ormcache`` flights too)."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: Dict[Hashable, Any] = {}

    def call(self, lru: Any, key: Hashable, func: Callable[..., Any],
             args: Tuple[Any, ...], kwargs: Dict[str, Any], missing: object) -> Any:
        """``func(*args, **kwargs)``, the value of ``key`` that missed in ``lru``: computed
        once for the overlapping callers, stored with ``lru.setdefault``."""
        me = get_ident()
        pending = self._pending
        while True:
            flight = new_flight(me)
            current = claim(pending, key, flight)
            if current is flight:
                break
            result = join(current, me)
            if result is CYCLE:
                result = func(*args, **kwargs)
                lru.setdefault(key, result)
                return result
            if result is not AGAIN:
                return result
            # the leader failed: look again, then compete
        try:
            result = lru.peek(key, missing)  # a flight that just ended stored it
            if result is missing:
                result = func(*args, **kwargs)
                lru.setdefault(key, result)
            publish(flight, result)
            return result
        finally:
            drop(pending, key, flight)
