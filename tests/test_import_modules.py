"""What ``import fastlru`` and ``import ormcache`` load (issue #21 item 4): none of the standard
modules that cost more than the rest of the import (typing with re and enum, logging with
traceback and tokenize, threading, contextlib, signal, weakref, functools...) until something
needs them: a decoration, a message logged, a signal handler, a coroutine. Checked in a fresh
interpreter by the modules it loaded (deterministic: no timing; the time is a benchmark's,
``python -m fastlru.bench --import-time``)."""
import json
import os
import subprocess
import sys
import tempfile

import pytest

#: never loaded by ``import fastlru`` with the compiled engine
FASTLRU_SPARES = {"typing", "re", "enum", "threading", "functools", "importlib", "numbers", "math",
                  "types", "warnings", "asyncio", "inspect", "ast", "platform", "logging",
                  "collections", "operator"}
#: never loaded by ``import ormcache`` (and fastlru) with the compiled engine
ORMCACHE_SPARES = FASTLRU_SPARES | {"contextlib", "signal", "weakref", "traceback", "string",
                                    "fastlru._lru_py", "fastlru._functools_py", "fastlru._policy_py",
                                    # what a decoration or a statistics call imports
                                    "ormcache.keys", "ormcache.statistics", "ormcache._cache_py"}
#: never loaded by ``import ormcache`` with the pure-Python twins (which import typing, and with
#: it contextlib, themselves)
TWIN_SPARES = {"logging", "traceback", "signal", "weakref", "asyncio", "inspect", "ast"}


def _new_modules(code, env=None):
    """The modules ``code`` loads in a fresh interpreter, beyond what startup loaded."""
    script = f"""
import json, sys
before = set(sys.modules)
{code}
print(json.dumps(sorted(set(sys.modules) - before)))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=tempfile.gettempdir(),  # not the source tree: the installed packages
                          env={**os.environ, "PYTHONWARNINGS": "error", **(env or {})})
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


@pytest.mark.c_extension
def test_import_fastlru_loads_none_of_the_heavy_modules():
    new = _new_modules("import fastlru; assert fastlru.IMPLEMENTATION == 'c'")
    assert not new & FASTLRU_SPARES, sorted(new & FASTLRU_SPARES)


@pytest.mark.c_extension
def test_import_ormcache_loads_none_of_the_heavy_modules():
    new = _new_modules("import ormcache; assert ormcache.IMPLEMENTATION == 'c'")
    assert not new & ORMCACHE_SPARES, sorted(new & ORMCACHE_SPARES)


def test_import_ormcache_with_the_twins_loads_no_logging():
    new = _new_modules("import ormcache; assert ormcache.IMPLEMENTATION == 'python'",
                       {"FASTLRU_NO_EXTENSIONS": "1"})
    assert not new & TWIN_SPARES, sorted(new & TWIN_SPARES)


@pytest.mark.parametrize("env", [{}, {"FASTLRU_NO_EXTENSIONS": "1"}], ids=["c-extension", "pure-python"])
def test_what_is_imported_late_still_works(env):
    """The lazy pieces: a logged message goes to the ``ormcache`` logger, the signal handlers,
    ``cursor_scope()``, the signaling type aliases, ``PerLoop[...]`` and ``KeyFunction``."""
    code = """
import logging, signal
import ormcache
from ormcache import Registry, ormcache as cached
from ormcache.keys import KeyFunction
from ormcache.signaling.base import PerLoop, Step, Steps, Versions

records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append((record.name, record.levelname, record.getMessage()))
logging.getLogger("ormcache").addHandler(Keep())
logging.getLogger("ormcache").setLevel(logging.INFO)
ormcache.log_ormcache_stats()
assert records and records[0][:2] == ("ormcache", "INFO"), records

previous = ormcache.enable_signal_handlers()
assert signal.getsignal(signal.SIGUSR1) is ormcache.log_ormcache_stats
for signum, handler in previous.items():
    signal.signal(signum, handler)

registry = Registry("import-modules")
class Model:
    pool = registry
    _name = "m"
    @cached("x")
    def double(self, x):
        return 2 * x
with registry.cursor_scope() as scoped:
    assert scoped is registry and Model().double(2) == 4
try:
    with registry.cursor_scope():
        raise KeyError("inside")
except KeyError:
    pass
else:
    raise AssertionError("the scope swallowed the error")
Registry.delete("import-modules")

assert KeyFunction(len, None, 0, 1) == (len, None, 0, 1, None, -1, None)
assert KeyFunction._fields[-3:] == ("context_keys", "context_index", "plan")
assert PerLoop[int] is PerLoop
assert str(Versions) == "typing.Tuple[typing.Any, typing.Tuple[int, ...]]", Versions
assert Step is not None and Steps is not None

namespace = {}
exec("from ormcache import *", namespace)
assert set(ormcache.__all__) <= set(namespace) and namespace["stats"] is ormcache.statistics.stats
assert {"stats", "get_cache_key_counter"} <= set(dir(ormcache))

import pickle
import fastlru
from fastlru import CacheInfo, LRU, lru_cache
info = LRU(2, [(1, 1)]).info()
assert type(info) is CacheInfo is fastlru.CacheInfo and CacheInfo.__qualname__ == "CacheInfo"
assert (info.size, info.currsize, info.maxsize) == (1, 1, 2) and pickle.loads(pickle.dumps(info)) == info
assert info._fields == ("hits", "misses", "evictions", "size", "count") and info._replace(hits=3).hits == 3
@lru_cache(4)
def square(x):
    return x * x
square(2)
assert square.cache_info() == (0, 1, 4, 1) and square.cache_info()._asdict()["currsize"] == 1
namespace = {}
exec("from fastlru import *", namespace)
assert namespace["CacheInfo"] is CacheInfo
"""
    _new_modules(code, env)
