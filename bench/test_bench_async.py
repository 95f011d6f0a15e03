"""The cost of a cache hit on an ``async def`` method (issue #13): ``@ormcache('key')`` and
``fastlru.lru_cache`` on ``async def get_param(self, key)`` against the undecorated ``await`` of
the same method (whose body is a dict lookup), 64 keys, all cached.

A round awaits every key ``ROUNDS`` times inside one coroutine, driven without an event loop
(``coroutine.send(None)``): a hit never suspends, so only the awaits are timed.

pytest-benchmark: ``python -m pytest bench/test_bench_async.py --benchmark-only``.
The ratios (min and median of interleaved passes, the empty loop subtracted, as the
``ormcache`` section of ``python -m fastlru.bench``): ``python bench/test_bench_async.py``.
"""
import functools
import os
import sys
from typing import Any, Callable, Dict, List, Tuple

import pytest

try:
    import ormcache  # noqa: F401  (installed, or src already on the path)
except ImportError:  # a plain checkout: benchmark the sources next to this directory
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "src"))

ROUNDS = 20
KEYS = [f"param.{i}" for i in range(64)]
PARAMS = {key: key.upper() for key in KEYS}
UNDECORATED = "(a) undecorated await"


def contenders() -> Dict[str, Any]:
    """name -> an object whose ``get_param(key)`` is awaited; every cache already filled."""
    import fastlru
    from ormcache import Registry, ormcache

    registry = Registry("ormcache-bench-async")

    async def get_param(self: Any, key: str) -> str:
        return PARAMS[key]

    def shape(name: str, method: Callable) -> Any:
        # slotted records with pool and _name on the class, as Odoo's (and the sync table's)
        return type(name, (), {"__slots__": (), "pool": registry, "_name": f"bench.async.{name}",
                               "get_param": method})()

    found = {
        UNDECORATED: shape("plain", get_param),
        "ormcache": shape("ormcache", ormcache("key")(get_param)),
        f"fastlru.lru_cache ({fastlru.IMPLEMENTATION})": shape("lru", fastlru.lru_cache(maxsize=None)(get_param)),
    }
    for obj in found.values():
        awaits(obj, KEYS, 1)  # fill the caches
    return found


async def _awaits(obj: Any, keys: List[str], rounds: int) -> None:
    for _ in range(rounds):
        for key in keys:
            await obj.get_param(key)


async def _no_awaits(obj: Any, keys: List[str], rounds: int) -> None:
    for _ in range(rounds):
        for key in keys:
            pass


def awaits(obj: Any, keys: List[str], rounds: int, loop: Callable = _awaits) -> None:
    """Run ``loop`` to its end without an event loop (it must never suspend)."""
    coroutine = loop(obj, keys, rounds)
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise RuntimeError("a cache hit suspended: the benchmark measures hits only")


CONTENDERS = contenders()


@pytest.mark.parametrize("name", list(CONTENDERS))
def test_async_hit(benchmark, name):
    benchmark.group = "ormcache-hit-async"
    benchmark.extra_info["ops"] = ROUNDS * len(KEYS)
    benchmark(awaits, CONTENDERS[name], KEYS, ROUNDS)


def measure(repeats: int = 31, rounds: int = 100) -> Dict[str, Tuple[float, float]]:
    """name -> (min, median) ns per await, the empty loop's subtracted (interleaved passes)."""
    from fastlru.bench.timing import interleaved

    cases = {name: functools.partial(functools.partial, awaits, obj, KEYS, rounds) for name, obj in CONTENDERS.items()}
    cases["empty loop"] = functools.partial(functools.partial, awaits, None, KEYS, rounds, _no_awaits)
    samples = interleaved(cases, repeats, warmup=2)
    n = rounds * len(KEYS)
    empty = samples.pop("empty loop")
    return {name: ((got.min() - empty.min()) / n, (got.median() - empty.median()) / n) for name, got in samples.items()}


if __name__ == "__main__":
    found = measure()
    base = found[UNDECORATED]
    for name, (low, median) in found.items():
        print(f"{name:32s} min {low:7.1f} ns  median {median:7.1f} ns   "
              f"{low / base[0]:5.2f}x / {median / base[1]:5.2f}x the undecorated await")
