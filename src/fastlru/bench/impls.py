"""The contenders: how to build each cache, by name, and which ones this interpreter can import.

Every contender is built by ``make(capacity)``. A ``"mapping"`` contender is used as
``c[k]``, ``c[k] = v`` and ``c.get(k)``; a ``"function"`` contender (``functools.lru_cache``)
is a cached identity function, called ``f(k)``: a hit is a call with a cached argument, a store
is a call that misses; a ``"methods"`` contender (moka-py, theine: no subscript) is used through
its bound ``get`` and ``set`` methods, ``get(k)`` returning the value or None (``pairs``: a
``(value, found)`` pair, as theine's). ``exact_lru`` is False for caches with another policy
(TinyLFU admission): their sizes and hit ratios are reported, not checked against an LRU's.

>>> [impl.name for impl in available()[0]][:2]
['dict', 'fastlru']
"""
from __future__ import annotations

import functools
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

from fastlru._common import POLICIES

_T = TypeVar("_T")

DICT = "dict"
FASTLRU = "fastlru"
FASTLRU_PY = "fastlru-py"
ODOO = "odoo-lru"
ODOO_183 = "odoo-lru-18.3"
FUNCTOOLS = "functools.lru_cache"
LRU_DICT = "lru-dict"
CACHEBOX = "cachebox"
CACHETOOLS = "cachetools"
MOKA = "moka-py"
THEINE = "theine"
CACHE = "fastlru.Cache"  # rows "fastlru.Cache[<policy>]": ours, one per policy


@dataclass(frozen=True)
class Impl:
    name: str
    make: Callable[[int], Any]
    kind: str = "mapping"  # or "function", "methods"
    note: str = ""
    thread_safe: bool = True  # False: the threaded workload wraps each access in a lock
    pairs: bool = False  # "methods": get(k) returns (value, found)
    exact_lru: bool = True  # False: another eviction policy; sizes and hit ratios not checked
    size: Optional[Callable[[Any], int]] = None  # entries held (default: len(c))

    def entries(self, c: Any) -> int:
        """The number of entries ``c`` holds."""
        if self.kind == "function":
            return int(c.cache_info().currsize)
        return self.size(c) if self.size is not None else len(c)


def _identity(key: _T) -> _T:
    return key


def _make_dict(capacity: int) -> Dict[Any, Any]:
    return {}  # no capacity: the baseline never evicts


def _make_functools(capacity: int) -> Callable[[Any], Any]:
    return functools.lru_cache(maxsize=capacity)(_identity)


def _fastlru() -> Impl:
    import fastlru

    if fastlru.IMPLEMENTATION == "c":
        note = "compiled"
    else:
        note = "NOT COMPILED: fastlru.IMPLEMENTATION == %r" % fastlru.IMPLEMENTATION
    return Impl(FASTLRU, fastlru.LRU, note=note)


def _fastlru_py() -> Impl:
    from fastlru._lru_py import LRU

    return Impl(FASTLRU_PY, LRU, note="pure-Python twin")


def cache_name(policy: str) -> str:
    return "%s[%s]" % (CACHE, policy)


def _cache(policy: str) -> Callable[[], Impl]:
    def load() -> Impl:
        import fastlru

        note = "compiled" if fastlru.IMPLEMENTATION == "c" else "NOT COMPILED"
        return Impl(cache_name(policy), functools.partial(fastlru.Cache, policy=policy),
                    exact_lru=policy == "lru", note="%s, policy=%r" % (note, policy))
    return load


def _odoo() -> Impl:
    from .odoo_lru import LRU

    return Impl(ODOO, LRU, note="Odoo's classic LRU up to 18.2: OrderedDict + RLock (the code being replaced)")


def _odoo_183() -> Impl:
    from .odoo_lru_183 import LRU

    return Impl(ODOO_183, LRU, note="Odoo 18.3+ LRU, our reconstruction from odoo/odoo PR #205866: "
                                    "lock-free reads, one plain dict")


def _functools() -> Impl:
    return Impl(FUNCTOOLS, _make_functools, kind="function", note="f(k) on a cached identity")


def _lru_dict() -> Impl:
    from lru import LRU

    return Impl(LRU_DICT, LRU, note="lru.LRU")


def _cachebox() -> Impl:
    from cachebox import LRUCache

    return Impl(CACHEBOX, LRUCache, note="cachebox.LRUCache")


def _cachetools() -> Impl:
    from cachetools import LRUCache

    return Impl(CACHETOOLS, LRUCache, note="cachetools.LRUCache", thread_safe=False)


def _moka_count(c: Any) -> int:
    c.run_pending_tasks()  # moka applies evictions in batches: settle them before counting
    return int(c.count())


def _moka() -> Impl:
    from moka_py import Moka

    return Impl(MOKA, Moka, kind="methods", exact_lru=False, size=_moka_count,
                note="moka_py.Moka (TinyLFU, not an LRU): get()/set() methods")


def _theine() -> Impl:
    from theine import Cache

    return Impl(THEINE, Cache, kind="methods", pairs=True, exact_lru=False,
                note="theine.Cache (TinyLFU, not an LRU): get()/set() methods")


# Order of the tables: the baseline, ours, the code being replaced, then the peers.
_LOADERS: List[Tuple[str, Callable[[], Impl]]] = [
    (DICT, lambda: Impl(DICT, _make_dict, note="baseline, no eviction")),
    (FASTLRU, _fastlru),
    (FASTLRU_PY, _fastlru_py),
    *[(cache_name(p), _cache(p)) for p in POLICIES],  # every policy of fastlru.Cache
    (ODOO, _odoo),
    (ODOO_183, _odoo_183),
    (FUNCTOOLS, _functools),
    (LRU_DICT, _lru_dict),
    (CACHEBOX, _cachebox),
    (CACHETOOLS, _cachetools),
    (MOKA, _moka),
    (THEINE, _theine),
]
NAMES = [name for name, _ in _LOADERS]
# The module each peer imports (checked in a child first on a free-threaded interpreter).
_MODULES = {LRU_DICT: "lru", CACHEBOX: "cachebox", CACHETOOLS: "cachetools", MOKA: "moka_py",
            THEINE: "theine"}
# Contenders that are ours or the baseline: their absence is an error, not a skip.
REQUIRED = {DICT, FASTLRU, FASTLRU_PY, ODOO, ODOO_183} | {n for n, _ in _LOADERS if n.startswith(CACHE)}


def get(name: str) -> Impl:
    """The contender called ``name`` (ImportError if its library is missing)."""
    for known, loader in _LOADERS:
        if known == name:
            return loader()
    raise KeyError(name)


def available() -> Tuple[List[Impl], List[Tuple[str, str]]]:
    """(importable contenders, [(name, why skipped)])."""
    found, skipped = [], []
    for name, loader in _LOADERS:
        if name in _MODULES and _enables_gil(_MODULES[name]):
            skipped.append((name, "importing %s would enable the GIL of this free-threaded "
                                  "interpreter (its build does not declare free-threading support)"
                            % _MODULES[name]))
            continue
        try:
            found.append(loader())
        except ImportError as exc:
            if name in REQUIRED:
                raise
            skipped.append((name, "not importable: %s" % exc))
    return found, skipped


def _enables_gil(module: str) -> bool:
    """On a free-threaded interpreter whose GIL is off: whether importing ``module`` turns it on
    (for the whole process, every contender's numbers included), asked of a child process."""
    if not (hasattr(sys, "_is_gil_enabled") and not sys._is_gil_enabled()):
        return False
    code = "import sys\ntry:\n import %s\nexcept ImportError:\n sys.exit(0)\nsys.exit(3 if sys._is_gil_enabled() else 0)" % module
    return subprocess.run([sys.executable, "-W", "ignore", "-c", code]).returncode == 3
