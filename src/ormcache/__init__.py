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
from fastlru import __version__  # one distribution (fastlru), one version

from .decorators import IMPLEMENTATION, ormcache, ormcache_context, ormcache_multi
from .registry import CACHE_SIZES, CACHES_BY_KEY, Registry, default_registry
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
