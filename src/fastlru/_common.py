"""What both engines share: the statistics tuple, the argument rules, pickling."""
from __future__ import annotations

import abc
import os
import sys
import time
from _collections_abc import Mapping  # collections.abc's own module, loaded by os (issue #21: import cost)
from _operator import index as _index  # operator.index, without importing operator

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (issue #21: import cost)
if TYPE_CHECKING:
    from typing import (Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, SupportsIndex,
                        Tuple)

# A lookup whose key's __eq__ keeps changing the cache restarts at most this often, then raises
# RuntimeError instead of looping forever. Large enough that contention from other threads
# (which also forces restarts) never reaches it; small enough to end a pathological key fast.
MAX_RESTARTS = 1000


if TYPE_CHECKING:
    class CacheInfo(NamedTuple):
        """Counters of an LRU: ``hits``/``misses`` count ``lru[key]`` and ``lru.get(key)``."""

        hits: int
        misses: int
        evictions: int
        size: int
        count: int  # type: ignore[assignment]  # the LRU's count, shadowing tuple.count

        @property
        def currsize(self) -> int: ...
        @property
        def maxsize(self) -> int: ...
else:
    def _cache_info() -> type:
        """``CacheInfo``, made once, on first use: a namedtuple needs ``collections``, which
        ``import fastlru`` does not import (issue #21: import cost)."""
        from collections import namedtuple

        class CacheInfo(namedtuple("CacheInfo", ["hits", "misses", "evictions", "size", "count"])):
            """Counters of an LRU: ``hits``/``misses`` count ``lru[key]`` and ``lru.get(key)``."""

            __slots__ = ()

            @property
            def currsize(self):
                """``size`` under the name ``functools``' ``CacheInfo`` gives it."""
                return self.size

            @property
            def maxsize(self):
                """``count`` under the name ``functools``' ``CacheInfo`` gives it."""
                return self.count

        CacheInfo.__qualname__ = "CacheInfo"  # pickled by name, as a module-level class
        return CacheInfo

    def __getattr__(name):
        if name != "CacheInfo":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        made = globals()["CacheInfo"] = _cache_info()
        return made


class LRUType(abc.ABC):
    """Both engines' LRU classes register here, so either compares by order with the other."""

    if TYPE_CHECKING:  # what both engines have, for code that holds either
        def items(self) -> List[Tuple[Any, Any]]: ...


def as_int(value: SupportsIndex, what: str) -> int:
    """``value`` as an exact ``int`` through ``operator.index``: a bound is never checked with
    the object's own comparisons (an ``int`` subclass may lie), only with plain ints."""
    try:
        value = _index(value)
    except TypeError:
        if not hasattr(type(value), "__index__"):
            raise TypeError(f"{what} must be an int, not {type(value).__name__}") from None
        raise  # __index__ itself refused
    return int.__index__(value)  # exact: on 3.9 operator.index returns an int subclass as is


def check_count(count: SupportsIndex) -> int:
    """``count`` as the engines store it: an int in ``[1, sys.maxsize]`` (a C ``Py_ssize_t``)."""
    return min(max(as_int(count, "count"), 1), sys.maxsize)


def check_maxweight(maxweight: SupportsIndex) -> int:
    """``maxweight`` as the engines store it: an int in ``[0, sys.maxsize]``."""
    maxweight = as_int(maxweight, "maxweight")
    if maxweight < 0:
        raise ValueError("maxweight must be >= 0")
    return min(maxweight, sys.maxsize)  # as unreachable as any larger bound


def check_weight(weight: SupportsIndex, maxweight: int) -> int:
    """A ``getsizeof`` result as an int in ``[0, maxweight]``, else ``TypeError``/``ValueError``."""
    if type(weight) is not int:
        weight = as_int(weight, "getsizeof's result")
    if weight < 0:
        raise ValueError(f"getsizeof returned a negative weight: {weight}")
    if weight > maxweight:
        raise ValueError(f"item weighs {weight}, more than maxweight {maxweight}")
    return weight


def check_ttl(ttl: Optional[float]) -> Optional[float]:
    """``ttl`` as the engines store it: None, or a float of seconds in ``(0, inf]``."""
    if ttl is None:
        return None
    import math
    import numbers  # on the cold path (issue #21: import cost)

    if isinstance(ttl, bool) or not isinstance(ttl, numbers.Real):
        raise TypeError(f"ttl must be a number of seconds, not {type(ttl).__name__}")
    ttl = float(ttl)
    if math.isnan(ttl):
        raise ValueError("ttl must be a number of seconds, not NaN")
    if ttl <= 0:
        raise ValueError(f"ttl must be > 0, not {ttl!r}")
    return ttl


def check_timer(timer: Callable[[], float]) -> Callable[[], float]:
    if not callable(timer):
        raise TypeError("timer must be callable")
    return timer


def check_time(now: float) -> float:
    """What a ``timer`` returned, as a float (a clear error, never a corrupt expiry, else)."""
    if type(now) is not float:
        import numbers

        if isinstance(now, bool) or not isinstance(now, numbers.Real):
            raise TypeError(f"timer must return a number of seconds, not {type(now).__name__}")
        now = float(now)
    if now != now:
        raise ValueError("timer returned NaN")
    return now


def iter_pairs(pairs: Iterable[Any]) -> Iterator[Tuple[Any, Any]]:
    """``(key, value)`` from each item of ``pairs``, or a ``TypeError`` saying pairs were
    expected (``LRU(3, [1, 2, 3])`` would otherwise fail with "cannot unpack an int")."""
    if isinstance(pairs, Mapping):
        # iterating a mapping yields keys, which would unpack into nonsense pairs
        raise TypeError("pairs must be (key, value) pairs; use update() for a mapping")
    try:
        items = iter(pairs)
    except TypeError:
        raise TypeError(
            f"pairs must be an iterable of (key, value) pairs, not {type(pairs).__name__}"
        ) from None
    for index, item in enumerate(items):
        if type(item) is not tuple or len(item) != 2:
            try:
                item = tuple(item)
            except TypeError:
                item = None
            if item is None or len(item) != 2:
                raise TypeError(f"pairs must be (key, value) pairs; item {index} is not a pair")
        yield item


def lru_repr(lru: object, count: int, items: List[Tuple[Any, Any]], on_evict: object,
             maxweight: Optional[int], getsizeof: object, ttl: Optional[float],
             timer: object) -> str:
    """``repr`` of either engine: every constructor argument that differs from its default."""
    extra = ""
    if on_evict is not None:
        extra += f", on_evict={on_evict!r}"
    if maxweight is not None:
        extra += f", maxweight={maxweight!r}"
    if getsizeof is not None:
        extra += f", getsizeof={getsizeof!r}"
    if ttl is not None:
        extra += f", ttl={ttl!r}"
    if timer is not time.monotonic:
        extra += f", timer={timer!r}"
    return f"{type(lru).__name__}({count}, {items[::-1]!r}{extra})"


def rebuild(cls: Any, count: int, pairs: Iterable[Tuple[Any, Any]], on_evict: Any,
            maxweight: Optional[int], getsizeof: Any, base: Any = None,
            ttl: Optional[float] = None, timer: Callable[[], float] = time.monotonic) -> Any:
    """Unpickles (and copies) an LRU of either engine (module-level so pickle can name it).

    A subclass is built as pickle builds a dict subclass: ``cls.__new__`` and the engine's own
    ``__init__`` (``base``), never the subclass's ``__init__``, whose signature may differ; its
    attributes are restored afterwards (pickle's BUILD), as a dict subclass's are."""
    kwargs: Dict[str, Any] = {"on_evict": on_evict, "maxweight": maxweight, "getsizeof": getsizeof}
    if ttl is not None:
        kwargs["ttl"] = ttl
        kwargs["timer"] = timer
    if base is None or cls is base:
        return cls(count, pairs, **kwargs)
    lru = cls.__new__(cls)
    base.__init__(lru, count, pairs, **kwargs)
    return lru


def subclass_state(lru: object, base: type) -> Any:
    """What a subclass of ``base`` added to ``lru`` (its ``__dict__`` and its own ``__slots__``),
    as pickle's BUILD restores it: the dict, ``(dict or None, slots)``, or None."""
    slots: Dict[str, Any] = {}
    for klass in type(lru).__mro__:
        if klass is base:
            break
        names = klass.__dict__.get("__slots__", ())
        for name in (names,) if isinstance(names, str) else names:
            if name in ("__dict__", "__weakref__"):
                continue
            if name.startswith("__") and not name.endswith("__"):
                name = f"_{klass.__name__.lstrip('_')}{name}"
            try:
                slots[name] = getattr(lru, name)
            except AttributeError:
                pass
    attrs = getattr(lru, "__dict__", None) or None
    return (attrs, slots) if slots else attrs


def reduce_lru(lru: Any, base: type, count: int, on_evict: Any, maxweight: Optional[int],
               getsizeof: Any, ttl: Optional[float] = None,
               timer: Optional[Callable[[], float]] = None) -> Tuple[Any, ...]:
    """``__reduce__`` of either engine: the pairs oldest first; a subclass's attributes as state.
    With a ttl, the entries carried over start a fresh ttl when rebuilt (a monotonic clock's
    times mean nothing in another process)."""
    args: Tuple[Any, ...] = (type(lru), count, lru.items()[::-1], on_evict, maxweight, getsizeof, base)
    if ttl is not None:
        args += (ttl, timer)
    return rebuild, args, subclass_state(lru, base)


def _copy_by_reduce(rebuild_with: Callable[..., Any], args: Tuple[Any, ...], state: Any) -> Any:
    """What unpickling ``(rebuild_with, args, state)`` (a ``__reduce__``'s answer) gives: the
    rebuilt object, then the state (``__dict__``, or ``(__dict__, slots)``) set on it."""
    clone = rebuild_with(*args)
    attrs, slots = state if isinstance(state, tuple) else (state, {})
    if attrs:
        clone.__dict__.update(attrs)
    for name, value in slots.items():
        setattr(clone, name, value)
    return clone


def copy_of(lru: Any, base: type, count: int, on_evict: Any, maxweight: Optional[int],
            getsizeof: Any, ttl: Optional[float] = None,
            timer: Optional[Callable[[], float]] = None) -> Any:
    """``copy.copy(lru)``: what unpickling gives, without pickling (``copy()`` plus a
    subclass's attributes, as ``copy.copy`` gives for a dict subclass)."""
    return _copy_by_reduce(*reduce_lru(lru, base, count, on_evict, maxweight, getsizeof, ttl, timer))


def _import(name: str) -> Any:
    """``importlib.import_module(name)`` for an absolute name, without importing importlib."""
    __import__(name)
    return sys.modules[name]


def choose(package: str, compiled: str, twin: str) -> Tuple[Any, str]:
    """The compiled module of ``package`` and ``"c"``, or its pure-Python twin and ``"python"``
    when ``FASTLRU_NO_EXTENSIONS`` is set, the interpreter is not CPython, or the compiled one is
    missing. One rule for every compiled module of the distribution."""
    if not os.environ.get("FASTLRU_NO_EXTENSIONS") and sys.implementation.name == "cpython":
        try:
            return _import(f"{package}.{compiled}"), "c"
        except ImportError:  # pragma: no cover - exercised only where the build failed
            pass
    return _import(f"{package}.{twin}"), "python"


#: the eviction policies ``fastlru.Cache`` accepts, by name (both engines number them so)
POLICIES: Tuple[str, ...] = ("lru", "sieve", "s3fifo", "wtinylfu", "tinylfu")
#: the policy recommended for new code (README, "which policy"); ``Cache``'s default
DEFAULT_POLICY = "wtinylfu"


def check_policy(policy: object) -> str:
    """``policy`` if it names one of ``POLICIES``, else ``TypeError``/``ValueError``."""
    if type(policy) is not str:
        raise TypeError(f"policy must be a str, not {type(policy).__name__}")
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}: expected one of {', '.join(POLICIES)}")
    return policy


def cache_kwargs(policy: str, on_evict: Any, maxweight: Optional[int], getsizeof: Any,
                 ttl: Optional[float], timer: Callable[[], float]) -> Dict[str, Any]:
    """The keyword arguments that rebuild a ``fastlru.Cache`` of either engine (those that
    differ from the defaults; the timer only with a ttl, as ``reduce_lru``)."""
    kwargs: Dict[str, Any] = {"policy": policy}
    if on_evict is not None:
        kwargs["on_evict"] = on_evict
    if maxweight is not None:
        kwargs["maxweight"] = maxweight
    if getsizeof is not None:
        kwargs["getsizeof"] = getsizeof
    if ttl is not None:
        kwargs["ttl"] = ttl
        kwargs["timer"] = timer
    return kwargs


def rebuild_cache(cls: Any, base: Any, count: int, pairs: Iterable[Tuple[Any, Any]],
                  kwargs: Dict[str, Any]) -> Any:
    """Unpickles (and copies) a ``fastlru.Cache`` of either engine, as ``rebuild`` an LRU: a
    subclass through ``cls.__new__`` and the engine's own ``__init__``."""
    if cls is base:
        return cls(count, pairs, **kwargs)
    cache = cls.__new__(cls)
    base.__init__(cache, count, pairs, **kwargs)
    return cache


def reduce_cache(cache: Any, base: type, count: int, kwargs: Dict[str, Any]) -> Tuple[Any, ...]:
    """``__reduce__`` of a ``fastlru.Cache``: its entries in the reverse of ``items()`` (so the
    newest is stored last), a subclass's attributes as state. The policy's history (a ghost,
    a sketch, visited bits) is not carried over; with a ttl the entries start a fresh ttl."""
    args = (type(cache), base, count, cache.items()[::-1], kwargs)
    return rebuild_cache, args, subclass_state(cache, base)


def copy_cache(cache: Any, base: type, count: int, kwargs: Dict[str, Any]) -> Any:
    """``copy.copy(cache)``: what unpickling gives, without pickling."""
    return _copy_by_reduce(*reduce_cache(cache, base, count, kwargs))


def cache_repr(cache: object, count: int, items: List[Tuple[Any, Any]],
               kwargs: Dict[str, Any]) -> str:
    """``repr`` of a ``fastlru.Cache`` of either engine, as ``lru_repr``: evaluating it builds
    an equal cache (its entries in the order ``reduce_cache`` stores them)."""
    extra = "".join(f", {name}={value!r}" for name, value in kwargs.items()
                    if not (name == "timer" and value is time.monotonic))
    return f"{type(cache).__name__}({count}, {items[::-1]!r}{extra})"


class CacheType(abc.ABC):
    """Both engines' ``Cache`` classes register here (so ``update`` copies either without
    reading it through ``[]``, which its policy would record)."""

    if TYPE_CHECKING:  # what both engines have, for code that holds either
        def items(self) -> List[Tuple[Any, Any]]: ...
