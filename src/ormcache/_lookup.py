"""What both hit paths (``_cache_py`` and ``_cache_c``) share: everything but the hit.

- ``resolve``: which registry, model name, LRU and counter serve a call (once per owner kind).
- ``miss``: compute with single flight; concurrent misses on one key compute once, the others
  wait for that result. No lock is held while the method runs, nothing is shared between keys,
  and a thread never waits on a computation that (directly or through other threads) waits on it.
- ``uncached``: a key the cache cannot take (unhashable...) is computed without caching.
"""
from __future__ import annotations

import logging
import time
from threading import get_ident, Lock
from typing import Any, Callable, Dict, Optional, Set, Tuple

from .registry import Registry, default_registry

_logger = logging.getLogger("ormcache")

#: thread ident -> the flight it waits for (to detect waits that would close a cycle)
_waiting: Dict[int, "Flight"] = {}
#: methods whose uncacheable key was already logged (once per method)
_warned: Set[Any] = set()


def resolve(pool: Any, mkey: Any, func: Callable[..., Any], cache_name: str, counter_type: type) -> Tuple[Any, str, Any, Any]:
    """-> (registry, model name, LRU, counter) for an owner's ``pool`` and ``_name`` (or type)."""
    registry = pool if isinstance(pool, Registry) else default_registry
    model = mkey if isinstance(mkey, str) else getattr(mkey, "__qualname__", None) or str(mkey)
    lru = registry.caches[cache_name]
    counters = registry.counters
    counter = counters.get((model, func))
    if type(counter) is not counter_type:  # first call, or another hit path made it (tests)
        fresh = counter_type(cache_name)
        if counter is not None:
            fresh.hit, fresh.miss, fresh.err, fresh.gen_time = counter.hit, counter.miss, counter.err, counter.gen_time
        counter = counters[(model, func)] = fresh
    return registry, model, lru, counter


class Flight:
    """One computation in progress; ``lock`` is held by the computing thread until it ends."""

    __slots__ = ("thread", "lock", "value", "stored")

    def __init__(self) -> None:
        self.thread = get_ident()
        self.lock = Lock()
        self.lock.acquire()
        self.value: Any = None
        self.stored = False


def _waits_on_me(flight: Flight, me: int) -> bool:
    """True if ``flight`` is computed by this thread, or by one waiting (transitively) on it."""
    thread: Optional[int] = flight.thread
    for _ in range(256):
        if thread == me:
            return True
        waited = _waiting.get(thread)  # type: ignore[arg-type]
        if waited is None:
            return False
        thread = waited.thread
    return True  # a chain that long: do not wait


def timed(counter: Any, func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[Any, Any]) -> Any:
    start = time.perf_counter()
    try:
        return func(*args, **kwargs)
    finally:
        counter.gen_time += time.perf_counter() - start


def miss(func: Callable[..., Any], flights: Dict[Any, Any], registry: Any, lru: Any, counter: Any, key: Tuple[Any, ...], args: Tuple[Any, ...], kwargs: Dict[Any, Any]) -> Any:
    """The key is not cached: compute it once for all concurrent callers, store it, return it.

    ``key`` is the hit path's ``HashedKey``: hashed here, once, and never again by the flight
    table, the store or the flight removal (the lookup that missed hashed it once before). A
    key whose hash fails now is computed without the cache, as any key the cache cannot take.
    """
    try:
        hash(key)
    except Exception as exc:  # noqa: BLE001 - the cache never fails the call
        return uncached(func, counter, key, exc, args, kwargs)
    me = get_ident()
    fkey = (id(lru), key)
    while True:
        flight = Flight()
        current = flights.setdefault(fkey, flight)
        if current is flight:
            break
        if _waits_on_me(current, me):  # recursion on the same key, or a cycle of threads
            counter.miss += 1
            return timed(counter, func, args, kwargs)
        _waiting[me] = current
        try:
            with current.lock:  # released when the computing thread is done
                pass
        finally:
            _waiting.pop(me, None)
        if current.stored:
            counter.hit += 1
            return current.value
        # it failed (exceptions are never shared) or the cache was cleared meanwhile: look again
        try:
            value = lru[key]
        except Exception:  # noqa: BLE001 - not there (or the cache refuses): compute it ourselves
            continue
        counter.hit += 1
        return value
    counter.miss += 1
    generation = registry.generation
    try:
        value = timed(counter, func, args, kwargs)
        # a clear during the computation may have invalidated what it read: do not store then
        if registry.generation == generation:
            try:
                lru[key] = value
            except Exception as exc:  # noqa: BLE001 - the call never fails because of the cache
                counter.err += 1
                _warn_once(func, "cannot store key %r in %s: %r", key, exc)
            else:
                if registry.generation == generation:
                    flight.value = value
                    flight.stored = True
                else:  # a clear ran between the check and the store (another thread): undo it
                    lru.pop(key, None)
        return value
    finally:
        flights.pop(fkey, None)  # callers from now on find the value in the cache
        flight.lock.release()


def lookup_failed(func: Callable[..., Any], counter: Any, key: Any, exc: BaseException) -> None:
    """The cache refused the key (unhashable, failing ``__hash__``...): count it, log it once."""
    counter.err += 1
    _warn_once(func, "cache lookup error on key %r in %s: %r; computing without cache", key, exc)


def uncached(func: Callable[..., Any], counter: Any, key: Any, exc: BaseException, args: Tuple[Any, ...], kwargs: Dict[Any, Any]) -> Any:
    """``lookup_failed``, then compute without the cache."""
    lookup_failed(func, counter, key, exc)
    del exc  # a frame holding it would tie the method's own error to this one (a cycle)
    return func(*args, **kwargs)


def _warn_once(func: Callable[..., Any], message: str, key: Any, exc: BaseException) -> None:
    if func not in _warned:
        _warned.add(func)
        try:
            text = repr(key)
        except Exception:  # noqa: BLE001
            text = f"<unrepresentable {type(key).__name__}>"
        # text only: a record holding the exception would keep its frames (and arguments) alive
        _logger.warning(message.replace("%r", "%s"), text, getattr(func, "__qualname__", func), repr(exc))
