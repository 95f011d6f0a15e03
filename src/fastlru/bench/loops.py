"""The timed loops. Every contender runs the very same bytecode for a workload, dict included;
only ``functools.lru_cache`` (a call instead of a subscript) and the caches without a subscript
(moka-py, theine: their bound ``get``/``set`` methods, called as such) need their own shape."""
from __future__ import annotations
from typing import Any, Callable, ContextManager, Iterable, Sequence


def get_each(c: Any, keys: Iterable[Any]) -> None:
    for k in keys:
        c[k]


def call_each(f: Callable[[Any], Any], keys: Iterable[Any]) -> None:
    for k in keys:
        f(k)


def set_each(c: Any, keys: Iterable[Any], value: Any) -> None:
    for k in keys:
        c[k] = value


def set_call_each(set_: Callable[[Any, Any], Any], keys: Sequence[Any], value: Any) -> None:
    for k in keys:
        set_(k, value)


def get_or_set_call_each(get: Callable[[Any], Any], set_: Callable[[Any, Any], Any], keys: Sequence[Any]) -> None:
    for k in keys:
        v = get(k)
        if v is None:
            set_(k, k)


def get_or_set_pair_each(get: Callable[[Any], Any], set_: Callable[[Any, Any], Any], keys: Sequence[Any]) -> None:
    for k in keys:
        v, found = get(k)
        if not found:
            set_(k, k)


def get_or_set_each(c: Any, keys: Iterable[Any]) -> None:
    for k in keys:
        v = c.get(k)
        if v is None:
            c[k] = k


def get_or_set_each_locked(c: Any, keys: Iterable[Any], lock: ContextManager[Any]) -> None:
    # For caches that are not thread-safe (cachetools): the lock the user would have to add.
    for k in keys:
        with lock:
            v = c.get(k)
            if v is None:
                c[k] = k


def count_misses(get: Callable[[Any], Any], set_: Callable[[Any, Any], Any], keys: Sequence[Any],
                 pairs: bool = False) -> int:
    """Untimed: the get-or-set loop, counting misses (to report hit ratios)."""
    misses = 0
    for k in keys:
        v = get(k)
        if (not v[1]) if pairs else v is None:
            misses += 1
            set_(k, k)
    return misses
