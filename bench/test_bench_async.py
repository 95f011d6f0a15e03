"""The cost of a cache hit on an ``async def`` method (issue #13): ``@ormcache('key')`` (both hit
paths) and ``fastlru.lru_cache`` on ``async def get_param(self, key)`` against the undecorated
``await`` of the same method (whose body is a dict lookup), 64 keys, all cached.

A round awaits every key inside one coroutine, driven without an event loop
(``coroutine.send(None)``): a hit never suspends, so only the awaits are timed. The contenders
and loops are ``ormcache._bench``'s (``async_contenders``, ``awaits``), the table
``ormcache-hit-async`` of ``python -m fastlru.bench``.

pytest-benchmark: ``python -m pytest bench/test_bench_async.py --benchmark-only``.
The ratios (min and median of interleaved passes, the empty loop subtracted, the same run as
every ``ormcache`` table): ``python bench/test_bench_async.py``.
"""
import os
import sys

import pytest

try:
    import ormcache  # noqa: F401  (installed, or src already on the path)
except ImportError:  # a plain checkout: benchmark the sources next to this directory
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "src"))

from ormcache import _bench  # noqa: E402

ROUNDS = 20
CONTENDERS = _bench.async_contenders()


@pytest.mark.parametrize("name", list(CONTENDERS))
def test_async_hit(benchmark, name):
    benchmark.group = _bench.ASYNC
    benchmark.extra_info["ops"] = ROUNDS * len(_bench.KEYS)
    benchmark(_bench.awaits, CONTENDERS[name], list(_bench.KEYS), ROUNDS)


if __name__ == "__main__":
    from fastlru.bench.report import table

    rows = _bench.rows(quick="--full" not in sys.argv)
    print(table(_bench.ASYNC, [r for r in rows if r["workload"] == _bench.ASYNC]))
