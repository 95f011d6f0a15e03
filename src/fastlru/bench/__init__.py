"""The benchmark of fastlru: ``python -m fastlru.bench [--quick] [--json PATH] [--plot PATH]
[--only WORKLOAD]``.

It times ``fastlru.LRU`` against a plain ``dict`` (same loop, same run), the pure-Python twin,
Odoo's classic LRU (``odoo_lru``, the code being replaced) and the peer libraries that import
(``functools.lru_cache``, lru-dict, cachebox, cachetools), then checks the project's targets.

Modules: ``impls`` (the contenders), ``data`` (keys and sequences), ``loops`` (the timed loops),
``timing`` (interleaved GC-free passes), ``workloads``, ``memory`` (bytes per entry in a
subprocess), ``report`` (tables and targets), ``plot``, ``extra`` (sections of other layers),
``cli``.

Other layers add sections: a distribution declares a module in the ``fastlru.bench`` entry-point
group (``[project.entry-points."fastlru.bench"]`` of pyproject.toml); each such module that
imports must provide ``rows(quick: bool)`` returning dicts with ``workload``, ``impl``, ``ns``,
``baseline``, ``ratio``, ``note``. fastlru names no upper layer, not even in a string.
"""
from typing import Any, List

#: the entry-point group of the extra sections
ENTRY_POINT_GROUP = "fastlru.bench"


def extra_sections() -> List[str]:
    """The modules of the extra sections the installed distributions declare, sorted."""
    from importlib.metadata import entry_points

    found: Any
    try:
        found = entry_points(group=ENTRY_POINT_GROUP)
    except TypeError:  # Python 3.9: a dict of groups
        groups: Any = entry_points()
        found = groups.get(ENTRY_POINT_GROUP, ())
    return sorted({ep.value for ep in found})
