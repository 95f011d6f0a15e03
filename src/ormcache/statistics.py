"""Statistics per (database, model, method): as rows, as a logged table, on SIGUSR1/SIGUSR2.

>>> from ormcache import stats
>>> rows = stats()          # every registry; stats(registry) for one
>>> sorted(rows[0]) if rows else []  # doctest: +SKIP
['cache', 'db', 'entries', 'err', 'gen_time', 'hit', 'method', 'miss', 'model', 'ratio', 'tx_calls', 'tx_err', 'tx_hit', 'tx_miss', 'tx_ratio']

Counters are plain integers bumped without a lock (as in Odoo): under heavy concurrency a few
increments may be lost; they are statistics, not accounting.
"""
from __future__ import annotations

import sys
from _thread import allocate_lock
from collections import Counter as _Tally

from . import _cache_py
from ._logger import get_logger
from ._cache_py import Counter
from ._cold import owner_keys, resolve
from .registry import Registry

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (issue #21: import cost)
if TYPE_CHECKING:
    import threading
    from typing import Any, Dict, List, Optional, Set, Tuple

#: the types of the keys ormcache stores: plain tuples (``add_value``) and the hit paths'
#: ``HashedKey`` (a miss); a user's tuple subclass in a cache is not one of ours
KEY_TYPES = {tuple, _cache_py.HashedKey}
try:
    from . import _cache_c  # type: ignore[attr-defined]  # compiled: no stub
except ImportError:  # not built: the twin's keys only
    pass
else:
    KEY_TYPES.add(_cache_c.HashedKey)

__all__ = ["Counter", "stats", "cache_usage", "log_ormcache_stats", "enable_signal_handlers", "get_cache_key_counter"]

_logger = get_logger("ormcache")
_log_lock = allocate_lock()
#: the thread logging after the last signal (tests join it)
last_log_thread: Optional[threading.Thread] = None


def _entries(registry: Registry) -> Dict[Tuple[Any, ...], int]:
    """Key prefix (model, method[, name]) -> number of cached entries, over all caches."""
    tally: _Tally[Tuple[Any, ...]] = _Tally()
    for _, lru in registry.all_caches():
        for key in lru.keys():
            if type(key) in KEY_TYPES and len(key) >= 2:
                tally[key[:2]] += 1
                if len(key) >= 3:
                    try:
                        tally[key[:3]] += 1
                    except TypeError:  # an unhashable third part: not a counter's prefix
                        pass
    return tally


def _method_name(parts: Tuple[Any, ...]) -> str:
    if len(parts) == 1:
        return getattr(parts[0], "__qualname__", None) or str(parts[0])
    return ".".join(str(part) for part in parts)


def stats(registry: Optional[Registry] = None) -> List[Dict[str, Any]]:
    """One row per (database, model, method) with its counters and number of cached entries."""
    registries = [registry] if registry is not None else Registry.registries()
    rows = []
    for reg in registries:
        entries = _entries(reg)
        # counters are keyed (model, method) by the decorators; other layers may add longer keys
        for key, counter in list(reg.counters.items()):
            model, *method = key if isinstance(key, tuple) and len(key) >= 2 else ("?", key)
            rows.append(
                {
                    "db": reg.db_name,
                    "model": str(model),
                    "method": _method_name(tuple(method)),
                    "cache": counter.cache_name,
                    "entries": entries.get(key, 0),
                    "hit": counter.hit,
                    "miss": counter.miss,
                    "err": counter.err,
                    "gen_time": counter.gen_time,
                    "ratio": counter.ratio,
                    # Odoo 19's transaction statistics (``Registry.tx_stats``)
                    "tx_hit": counter.tx_hit,
                    "tx_miss": counter.tx_miss,
                    "tx_err": counter.tx_err,
                    "tx_ratio": counter.tx_ratio,
                    "tx_calls": counter.tx_calls,
                }
            )
    rows.sort(key=lambda row: (str(row["db"]), row["model"], row["method"]))
    return rows


def estimate_size(obj: Any, seen: Optional[Set[int]] = None) -> int:
    """Rough bytes held by ``obj`` and what it contains (each object counted once)."""
    seen = set(map(id, (None, True, False))) if seen is None else seen
    total, todo = 0, [obj]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        total += sys.getsizeof(current)
        if isinstance(current, dict):
            todo.extend(current.keys())
            todo.extend(current.values())
        elif isinstance(current, (list, tuple, set, frozenset)):
            todo.extend(current)
        elif hasattr(current, "__dict__") and not isinstance(current, type) and not callable(current):
            todo.append(vars(current))
    return total


def cache_usage(registry: Registry, sizes: bool = False) -> List[Tuple[str, int, int, Optional[int]]]:
    """(cache name, entries, capacity, estimated bytes or None) for each cache of ``registry``."""
    usage = []
    for name, lru in registry.all_caches():
        size = None
        if sizes:
            seen: Set[Any] = set()
            # keys hold the method object: shared, not the cache's memory
            seen.update(id(key[1]) for key in lru.keys() if type(key) in KEY_TYPES and len(key) >= 2)
            size = sum(estimate_size(pair, seen) for pair in lru.items())
        usage.append((name, len(lru), lru.count, size))
    return usage


def format_stats(sizes: bool = False) -> str:
    """The table ``log_ormcache_stats`` logs."""
    lines = ["Caches stats:"]
    header = f"{'Cache Name':>25},{'Entry':>7},{'Hit':>8},{'Miss':>8},{'Err':>6},{'Gen Time [s]':>13},{'Hit Ratio':>10},{'TX Hit Ratio':>13},{'TX Call':>8},  Model.Method"
    rows = stats()
    for reg in sorted(Registry.registries(), key=lambda r: str(r.db_name)):
        lines.append(f"Database {reg.db_name}:")
        for name, entries, count, size in cache_usage(reg, sizes):
            lines.append(f" * {name}: {entries}/{count}" + (f" ({size} bytes)" if size is not None else ""))
        lines.append("Details:")
        lines.append(header)
        for row in rows:
            if row["db"] == reg.db_name:
                lines.append(
                    f"{row['cache']:>25},{row['entries']:7d},{row['hit']:8d},{row['miss']:8d},{row['err']:6d},"
                    f"{row['gen_time']:13.3f},{row['ratio']:9.1f}%,{row['tx_ratio']:12.1f}%,{row['tx_calls']:8d},"
                    f"  {row['model']}.{row['method']}"
                )
    return "\n".join(lines)


def log_ormcache_stats(sig: Optional[int] = None, frame: Any = None, *, sizes: Optional[bool] = None) -> None:
    """Log the statistics table; a signal handler (SIGUSR2 adds bytes per cache).

    Called from a signal handler it logs from a new thread: the logging module's locks must
    not be taken inside a handler that may have interrupted them.
    """
    global last_log_thread
    import signal  # signal and threading on use, not at import (issue #21: import cost)
    import threading

    show_sizes = bool(sizes) if sizes is not None else sig == getattr(signal, "SIGUSR2", None)
    if sig is None:
        _logger.info("%s", format_stats(show_sizes))
        return

    def run() -> None:
        if not _log_lock.acquire(blocking=False):  # a table is being logged already
            return
        try:
            _logger.info("%s", format_stats(show_sizes))
        except Exception:  # noqa: BLE001
            _logger.exception("ormcache: logging the statistics failed")
        finally:
            _log_lock.release()

    last_log_thread = threading.Thread(target=run, name="ormcache.log_stats", daemon=True)
    last_log_thread.start()


def enable_signal_handlers() -> Dict[int, Any]:
    """Log the statistics on SIGUSR1 (and with bytes per cache on SIGUSR2); main thread only.

    Returns the previous handlers, by signal number.
    """
    import signal

    previous = {}
    for name in ("SIGUSR1", "SIGUSR2"):
        signum = getattr(signal, name, None)
        if signum is not None:
            previous[signum] = signal.signal(signum, log_ormcache_stats)
    return previous


def get_cache_key_counter(method: Any, *args: Any, **kwargs: Any) -> Tuple[Any, Tuple[Any, ...], Any]:
    """``(lru, key, counter)`` of the call ``method(*args, **kwargs)`` (Odoo's test helper).

    ``method`` is a bound method (``model.method``) or a decorated function.
    """
    spec = method.__cache__
    owner = getattr(method, "__self__", None)
    if spec.has_owner:
        args = (owner, *args)
        pool = owner_keys(owner)[0]
    else:
        pool = None
    key = spec.key_of(*args, **kwargs)
    _, _, lru, counter = resolve(pool, key[0], spec.func, spec.cache_name, spec.counter_type)
    return lru, key, counter
