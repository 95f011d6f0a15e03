"""ormcache: Odoo-compatible method-result caches built on fastlru.

>>> from ormcache import ormcache, Registry
>>> class Settings:
...     pool = Registry("example")
...     _name = "res.config"
...     @ormcache("key")
...     def get_param(self, key):
...         return len(key)
>>> Settings().get_param("abc")
3
>>> Settings.pool.clear_cache()          # or Settings.get_param.clear_cache(Settings())
>>> Registry.delete("example")
"""
from __future__ import annotations

from fastlru import __version__  # one distribution (fastlru), one version

from .decorators import IMPLEMENTATION, ormcache, ormcache_context, ormcache_multi
from .registry import CACHE_SIZES, CACHES_BY_KEY, Registry, default_registry

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (issue #21: import cost)
if TYPE_CHECKING:
    from typing import Any, List

    from .statistics import enable_signal_handlers, get_cache_key_counter, log_ormcache_stats, stats

__all__ = [
    "ormcache",
    "ormcache_context",
    "ormcache_multi",
    "Registry",
    "default_registry",
    "CACHE_SIZES",
    "CACHES_BY_KEY",
    "stats",
    "log_ormcache_stats",
    "enable_signal_handlers",
    "get_cache_key_counter",
    "IMPLEMENTATION",
    "__version__",
]

#: the names ``ormcache.statistics`` provides, imported on first use (issue #21: import cost)
_STATISTICS = frozenset({"stats", "log_ormcache_stats", "enable_signal_handlers", "get_cache_key_counter"})


if not TYPE_CHECKING:  # type checkers see the names imported above (and no catch-all getattr)
    def __getattr__(name: str) -> Any:
        if name not in _STATISTICS:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from . import statistics

        value = getattr(statistics, name)
        globals()[name] = value
        return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | _STATISTICS)
