"""pytest-benchmark versions of the ormcache section of ``python -m fastlru.bench``: the same
contenders (``ormcache._bench.contenders()``: every class shape, ``ormcache_context``,
``ormcache_multi``, ``functools.lru_cache``, Odoo's classic ormcache), each round one pass of the
same loop (``ormcache._bench.calls``). ``extra_info["ops"]`` is the number of calls per round (ids
for ``ormcache_multi``), so ns/op = round time / ops. ``test_ormcache_miss``: the miss table (a
miss with and without its flight bookkeeping; each round from an empty cache).
"""
import pytest

from ormcache import _bench

ROUNDS = 20
CONTENDERS = _bench.contenders()


@pytest.mark.parametrize(
    "workload, name",
    [pytest.param(workload, name, id=f"{workload}-{name}") for workload, found in CONTENDERS.items() for name in found],
)
def test_ormcache_hit(benchmark, workload, name):
    obj = CONTENDERS[workload][name]
    args = _bench.call_args(name)
    benchmark.group = workload
    benchmark.extra_info["ops"] = ROUNDS * len(args) * (_bench.MULTI_IDS if "multi" in name else 1)
    benchmark(_bench.calls, obj, args, ROUNDS)


@pytest.mark.parametrize("name", [_bench.MISS_OURS, _bench.MISS_BARE])
def test_ormcache_miss(benchmark, name):
    obj = _bench.miss_contenders()[name]
    benchmark.group = _bench.MISS
    benchmark.extra_info["ops"] = len(_bench.MISS_KEYS)
    try:
        benchmark.pedantic(lambda run: run(), setup=lambda: ((_bench._prepare_miss(name, obj, 1),), {}), rounds=200)
    finally:
        _bench._prepare_miss(_bench.MISS_OURS, obj, 1)  # the compiled hit path's own miss again
