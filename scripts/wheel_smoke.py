"""Smoke test of an installed wheel (scripts/wheels runs it in a fresh venv, outside the tree):
the compiled engine is in use, an LRU hit and an eviction, an ``@ormcache`` hit, and on a
free-threaded interpreter the GIL stays off after the imports."""
import sys
import sysconfig

import fastlru
import ormcache
from ormcache import Registry
from ormcache import ormcache as cached

assert fastlru.IMPLEMENTATION == ormcache.IMPLEMENTATION == "c", "a compiled module is missing"
assert type(fastlru.LRU(1)).__module__ == "fastlru._lru_c"

lru = fastlru.LRU(2)
lru["a"], lru["b"] = 1, 2
assert lru["a"] == 1  # a hit, "a" most recent
lru["c"] = 3  # evicts "b"
assert "b" not in lru and lru.keys() == ["c", "a"]
info = lru.info()
assert (info.hits, info.misses, info.evictions) == (1, 0, 1), info

calls = []
registry = Registry("wheel-smoke")


class Partner:
    _name = "res.partner"
    pool = registry

    @cached("key")
    def compute(self, key):
        calls.append(key)
        return ("value", key)


assert Partner().compute(7) == Partner().compute(7) == ("value", 7)
assert calls == [7]
counter = registry.counters[("res.partner", Partner.compute.__wrapped__)]
assert (counter.hit, counter.miss) == (1, 1)

free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
if free_threaded:
    assert not sys._is_gil_enabled(), "importing fastlru or ormcache enabled the GIL"
print("smoke test passed: CPython %s%s, compiled engine, LRU hit and eviction, @ormcache hit"
      % (sysconfig.get_python_version(), "t (GIL off)" if free_threaded else ""))
