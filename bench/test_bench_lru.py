"""Benchmarks of the core workloads, dict vs both fastlru engines vs Odoo's LRU.

Each benchmark round is one pass of a timed loop from ``fastlru.bench.loops`` (the same loops
as the comparison command); ``extra_info["ops"]`` is the number of operations per round, so
ns/op = round time / ops.
"""
import functools

import pytest

from fastlru.bench import data, loops

CAPACITY = 8192
LOOKUPS = 20_000
SET_KEYS = 100_000  # cycled through: as in `python -m fastlru.bench`
ZIPF_SPACE, ZIPF_S, ZIPF_WARM, ZIPF_OPS = 100_000, 1.1, 20_000, 20_000
ROUNDS = 15


def _filled(make_cache, keys):
    c = make_cache(len(keys))
    for k in keys:
        c[k] = k
    return c


@pytest.mark.parametrize("key_kind", ["int", "tuple"])
def test_get_hit(benchmark, make_cache, key_kind):
    keys = data.int_keys(CAPACITY) if key_kind == "int" else data.tuple_keys(CAPACITY)
    lookups = data.uniform_sequence(keys, LOOKUPS)
    c = _filled(make_cache, keys)
    benchmark.group = "get-hit-%s" % key_kind
    benchmark.extra_info["ops"] = len(lookups)
    benchmark(loops.get_each, c, lookups)
    assert len(c) == CAPACITY


def test_set_evict(benchmark, make_cache):
    keys = data.int_keys(SET_KEYS)
    value = object()
    c = make_cache(CAPACITY)
    # One untimed cycle first: from then on every store into an LRU misses and evicts, and every
    # store into the dict replaces a value.
    loops.set_each(c, keys, value)
    benchmark.group = "set-evict"
    benchmark.extra_info["ops"] = len(keys)
    benchmark(loops.set_each, c, keys, value)
    assert len(c) == (SET_KEYS if isinstance(c, dict) else CAPACITY)


@functools.lru_cache(maxsize=None)
def _zipf():
    seq = data.zipf_sequence(ZIPF_SPACE, ZIPF_S, ZIPF_WARM + ZIPF_OPS)
    return seq[:ZIPF_WARM], seq[ZIPF_WARM:]


def test_zipf_get_or_set(benchmark, make_cache):
    warm, timed = _zipf()

    def setup():  # a fresh cache brought to steady state by the untimed warm-up
        c = make_cache(CAPACITY)
        loops.get_or_set_each(c, warm)
        return (c, timed), {}

    benchmark.group = "zipf"
    benchmark.extra_info["ops"] = len(timed)
    benchmark.pedantic(loops.get_or_set_each, setup=setup, rounds=ROUNDS, iterations=1,
                       warmup_rounds=1)
