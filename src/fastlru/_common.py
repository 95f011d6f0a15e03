"""What both engines share: the statistics tuple."""
import abc
from typing import NamedTuple

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
