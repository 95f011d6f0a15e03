"""A cache hit through ``fastlru.lru_cache`` (compiled and pure-Python wrappers) against
``functools.lru_cache`` on the same function: one int argument (its own key) and two arguments
(a key tuple). Each round is ``CALLS`` hits; ns/op = round time / ``extra_info["ops"]``.

Run: ``python -m pytest bench/test_bench_lru_cache.py -q --benchmark-only``.
"""
import functools
import importlib

import pytest

CALLS = 20_000
DECORATORS = [
    pytest.param("functools", id="functools"),
    pytest.param("fastlru._functools_c", id="c-extension", marks=pytest.mark.c_extension),
    pytest.param("fastlru._functools_py", id="pure-python"),
]


def one(x):
    return x


def two(x, y):
    return x


def _hits(f, args):
    for a in args:
        f(a)


def _hits2(f, args):
    for a in args:
        f(a, a)


@pytest.fixture(params=DECORATORS, scope="module")
def lru_cache(request):
    if request.param == "functools":
        return functools.lru_cache
    return importlib.import_module(request.param).lru_cache


@pytest.mark.parametrize("arity", [1, 2])
def test_lru_cache_hit(benchmark, lru_cache, arity):
    args = list(range(64)) * (CALLS // 64)
    if arity == 1:
        f, loop = lru_cache(maxsize=128)(one), _hits
    else:
        f, loop = lru_cache(maxsize=128)(two), _hits2
    loop(f, range(64))  # fill: every timed call is a hit
    benchmark.group = f"lru_cache-hit-{arity}-arg"
    benchmark.extra_info["ops"] = len(args)
    benchmark(loop, f, args)
    assert f.cache_info().misses == 64
