"""What both engines share: the statistics tuple."""
from typing import NamedTuple


class CacheInfo(NamedTuple):
    """Counters of an LRU: ``hits``/``misses`` count ``lru[key]`` and ``lru.get(key)``."""

    hits: int
    misses: int
    evictions: int
    size: int
    count: int
