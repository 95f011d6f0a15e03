"""fastlru: a compiled LRU map, thread-safe and safe against re-entrant keys.

>>> from fastlru import LRU
>>> cache = LRU(2)
>>> cache["a"] = 1; cache["b"] = 2; cache["c"] = 3
>>> list(cache)
['c', 'b']

``fastlru.Cache(count, policy=...)`` is a bounded mapping whose eviction policy is chosen by name
(``fastlru.POLICIES``: ``"lru"``, ``"sieve"``, ``"s3fifo"``, ``"wtinylfu"``, ``"tinylfu"``).

``fastlru.lru_cache`` and ``fastlru.cache`` are drop-ins for ``functools``' decorators, on LRU.

``fastlru.LRU`` is the compiled engine unless ``FASTLRU_NO_EXTENSIONS`` is set, the
interpreter is not CPython, or the extension is missing; ``IMPLEMENTATION`` says which
(``"c"`` or ``"python"``).
"""
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (issue #21: import cost)

from ._common import DEFAULT_POLICY, POLICIES, choose

__all__ = ["LRU", "Cache", "POLICIES", "DEFAULT_POLICY", "CacheInfo", "IMPLEMENTATION",
           "lru_cache", "cache"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    # Type checkers read the pure-Python twin: no hand-kept stub of the extension can drift.
    from ._common import CacheInfo
    from ._functools_py import cache, lru_cache
    from ._lru_py import LRU
    from ._policy_py import Cache

    IMPLEMENTATION = "python"
else:
    _engine, IMPLEMENTATION = choose(__name__, "_lru_c", "_lru_py")
    LRU = _engine.LRU
    _wrappers, _ = choose(__name__, "_functools_c", "_functools_py")
    lru_cache = _wrappers.lru_cache
    cache = _wrappers.cache
    _policies, _ = choose(__name__, "_policy_c", "_policy_py")
    Cache = _policies.Cache

    def __getattr__(name):
        """``CacheInfo``, made on first use (issue #21: import cost)."""
        if name != "CacheInfo":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from ._common import CacheInfo

        globals()["CacheInfo"] = CacheInfo
        return CacheInfo
