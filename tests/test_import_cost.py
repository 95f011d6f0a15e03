"""Import cost (issue #21 item 4): ``import fastlru, ormcache`` loads neither asyncio nor inspect,
ast or platform (asyncio alone is about 100 modules); asyncio comes with the first ``async def``
decorated, inspect and ast with the first decoration. Checked in a fresh interpreter, by the
modules loaded (deterministic); the time is a benchmark's (``python -m fastlru.bench
--import-time``)."""
import json
import os
import subprocess
import sys

import pytest

HEAVY = ("asyncio", "inspect", "ast", "platform", "concurrent.futures")

IMPLS = [
    pytest.param({}, "c", id="c-extension", marks=pytest.mark.c_extension),
    pytest.param({"FASTLRU_NO_EXTENSIONS": "1"}, "python", id="pure-python"),
]


def _loaded_after(code, env, tmp_path):
    """Run ``code`` in a fresh interpreter: {"impl": ..., "loaded": the HEAVY modules loaded}."""
    script = code + f"""
import json, sys, fastlru, ormcache
print(json.dumps({{"impl": [fastlru.IMPLEMENTATION, ormcache.IMPLEMENTATION],
                   "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "error", **env}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("env, impl", IMPLS)
def test_import_loads_no_asyncio(env, impl, tmp_path):
    result = _loaded_after("import fastlru, ormcache", env, tmp_path)
    assert result == {"impl": [impl, impl], "loaded": []}


@pytest.mark.parametrize("env, impl", IMPLS)
def test_decorating_plain_functions_loads_no_asyncio(env, impl, tmp_path):
    code = """
import fastlru, ormcache

@fastlru.lru_cache(maxsize=8)
def square(x):
    return x * x

class Model:
    @ormcache.ormcache("x")
    def double(self, x):
        return 2 * x

assert square(3) == 9 and Model().double(4) == 8
"""
    result = _loaded_after(code, env, tmp_path)
    assert result["impl"] == [impl, impl]
    assert "asyncio" not in result["loaded"], result


@pytest.mark.parametrize("decorate", ["lru_cache", "ormcache"])
@pytest.mark.parametrize("env, impl", IMPLS)
def test_decorating_an_async_def_brings_asyncio(env, impl, decorate, tmp_path):
    """The first ``async def`` decorated imports asyncio, and the cached coroutine works."""
    code = f"""
import sys
import fastlru, ormcache

if {decorate!r} == "lru_cache":
    @fastlru.lru_cache(maxsize=8)
    async def square(x):
        return x * x
else:
    class Model:
        @ormcache.ormcache("x")
        async def square(self, x):
            return x * x
    square = Model().square
assert "asyncio" in sys.modules

import asyncio

async def main():
    return await asyncio.gather(square(3), square(3), square(4))

assert asyncio.run(main()) == [9, 9, 16]
"""
    result = _loaded_after(code, env, tmp_path)
    assert result["impl"] == [impl, impl] and "asyncio" in result["loaded"]


@pytest.mark.c_extension
def test_import_fastlru_loads_no_typing(tmp_path):
    """typing (with re and enum) cost more than the rest of ``import fastlru``: the compiled
    engine's modules read its names under ``TYPE_CHECKING`` only (the pure-Python twins and
    ormcache still import it). Counted within the process: what site loaded does not count."""
    code = """
import json, sys
before = set(sys.modules)
import fastlru
print(json.dumps({"impl": fastlru.IMPLEMENTATION, "new": sorted(set(sys.modules) - before)}))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "error"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["impl"] == "c"
    assert not {"typing", "re", "enum"} & set(result["new"]), result
