"""What both engines share: the statistics tuple."""
import abc
import importlib
import os
import platform
from typing import NamedTuple, Tuple

# A lookup whose key's __eq__ keeps changing the cache restarts at most this often, then raises
# RuntimeError instead of looping forever. Large enough that contention from other threads
# (which also forces restarts) never reaches it; small enough to end a pathological key fast.
MAX_RESTARTS = 1000


class CacheInfo(NamedTuple):
    """Counters of an LRU: ``hits``/``misses`` count ``lru[key]`` and ``lru.get(key)``."""

    hits: int
    misses: int
    evictions: int
    size: int
    count: int


class LRUType(abc.ABC):
    """Both engines' LRU classes register here, so either compares by order with the other."""


def rebuild(cls, count, pairs, on_evict, maxweight, getsizeof):
    """Unpickles an LRU of either engine (module-level so pickle can name it)."""
    return cls(count, pairs, on_evict=on_evict, maxweight=maxweight, getsizeof=getsizeof)


def choose(package: str, compiled: str, twin: str) -> Tuple[object, str]:
    """The compiled module of ``package`` and ``"c"``, or its pure-Python twin and ``"python"``
    when ``FASTLRU_NO_EXTENSIONS`` is set, the interpreter is not CPython, or the compiled one is
    missing. One rule for every compiled module of the distribution."""
    if not os.environ.get("FASTLRU_NO_EXTENSIONS") and platform.python_implementation() == "CPython":
        try:
            return importlib.import_module(f"{package}.{compiled}"), "c"
        except ImportError:  # pragma: no cover - exercised only where the build failed
            pass
    return importlib.import_module(f"{package}.{twin}"), "python"
