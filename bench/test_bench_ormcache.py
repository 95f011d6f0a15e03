"""pytest-benchmark versions of the ormcache section of ``python -m fastlru.bench``: the same
contenders (``ormcache._bench.contenders()``: every class shape, ``ormcache_context``,
``ormcache_multi``, ``functools.lru_cache``, Odoo's classic ormcache), each round one pass of the
same loop (``ormcache._bench.calls``). ``extra_info["ops"]`` is the number of calls per round (ids
for ``ormcache_multi``), so ns/op = round time / ops.
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
