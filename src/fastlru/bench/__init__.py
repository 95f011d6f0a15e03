"""The benchmark of fastlru: ``python -m fastlru.bench [--quick] [--json PATH] [--plot PATH]
[--only WORKLOAD]``.

It times ``fastlru.LRU`` against a plain ``dict`` (same loop, same run), the pure-Python twin,
Odoo's classic LRU (``odoo_lru``, the code being replaced) and the peer libraries that import
(``functools.lru_cache``, lru-dict, cachebox, cachetools), then checks the project's targets.

Modules: ``impls`` (the contenders), ``data`` (keys and sequences), ``loops`` (the timed loops),
``timing`` (interleaved GC-free passes), ``workloads``, ``memory`` (bytes per entry in a
subprocess), ``report`` (tables and targets), ``plot``, ``extra`` (sections of other layers),
``cli``.

Other layers add sections: each module listed in ``EXTRA_SECTIONS`` that imports must provide
``rows(quick: bool)`` returning dicts with ``workload``, ``impl``, ``ns``, ``baseline``,
``ratio``, ``note``.
"""
EXTRA_SECTIONS = ["ormcache._bench", "ormcache._bench_odoo"]
