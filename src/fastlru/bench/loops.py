"""The timed loops. Every contender runs the very same bytecode for a workload, dict included;
only ``functools.lru_cache`` needs its own shape (a call instead of a subscript)."""
from __future__ import annotations

from typing import Any, Callable, ContextManager, Iterable


def get_each(c: Any, keys: Iterable[Any]) -> None:
    for k in keys:
        c[k]


def call_each(f: Callable[[Any], Any], keys: Iterable[Any]) -> None:
    for k in keys:
        f(k)


def set_each(c: Any, keys: Iterable[Any], value: Any) -> None:
    for k in keys:
        c[k] = value


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


def count_misses(c: Any, keys: Iterable[Any]) -> int:
    """Untimed: the get-or-set loop, counting misses (to report hit ratios)."""
    misses = 0
    for k in keys:
        v = c.get(k)
        if v is None:
            misses += 1
            c[k] = k
    return misses
