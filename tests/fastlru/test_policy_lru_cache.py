"""fastlru.lru_cache(maxsize, policy=...): results kept in a fastlru.Cache of that policy, for
both wrappers (compiled and pure-Python) and every policy."""
import asyncio
import importlib
import sys

import pytest

import fastlru
from support.lru import WRAPPERS


@pytest.fixture(params=WRAPPERS, scope="module")
def lru_cache(request):
    return importlib.import_module(request.param).lru_cache


@pytest.mark.parametrize("policy", fastlru.POLICIES)
def test_results_live_in_a_cache_of_the_policy(lru_cache, policy):
    calls = []

    @lru_cache(maxsize=3, policy=policy)
    def f(x, y=0):
        calls.append(x)
        return x * 10 + y

    assert [f(1), f(1), f(2), f(x=1), f(1, y=0)] == [10, 10, 20, 10, 10]
    assert f.cache_parameters() == {"maxsize": 3, "typed": False, "policy": policy}
    info = f.cache_info()
    assert info.maxsize == 3 and info.currsize <= 3 and info.hits + info.misses == 5
    for x in range(20):
        f(x)
    assert f.cache_info().currsize == 3
    assert type(f._lru).__name__ == "Cache" and f._lru.policy == policy
    f.cache_clear()
    assert f.cache_info() == (0, 0, 3, 0)
    assert "policy=%r" % policy in repr(f)


@pytest.mark.parametrize("policy", ["sieve", "wtinylfu"])
def test_single_flight_and_coroutines(lru_cache, policy):
    @lru_cache(maxsize=8, policy=policy, single_flight=True)
    def g(x):
        return -x

    assert g(2) == -2 and g(2) == -2 and g.cache_info().hits == 1

    @lru_cache(maxsize=8, policy=policy)
    async def h(x):
        return x + 1

    async def main():
        return [await h(1), await h(1)]

    assert asyncio.run(main()) == [2, 2]


def test_bad_policies_and_combinations(lru_cache):
    with pytest.raises(ValueError, match="unknown policy 'arc'"):
        lru_cache(maxsize=3, policy="arc")
    with pytest.raises(TypeError, match="policy must be a str"):
        lru_cache(maxsize=3, policy=3)
    with pytest.raises(TypeError, match="ttl is not supported with a policy"):
        lru_cache(maxsize=3, policy="sieve", ttl=5)


def test_unbounded_keeps_an_lru(lru_cache):
    @lru_cache(maxsize=None, policy="s3fifo")
    def f(x):
        return x

    f(1)
    assert type(f._lru).__name__ == "LRU"
    assert f.cache_parameters()["policy"] == "s3fifo"


@pytest.mark.parametrize("module", ["fastlru._policy_c", "fastlru._policy_py"])
@pytest.mark.parametrize("policy", fastlru.POLICIES)
def test_a_huge_count_allocates_little(module, policy):
    c = importlib.import_module(module).Cache(sys.maxsize, policy=policy)
    for k in range(100):
        c[k] = k
    assert len(c) == 100 and c[5] == 5
    c._check()


class _RaisingEq:
    """Equal hashes, and an ``__eq__`` that raises ``KeyError`` once armed: a lookup error, not
    a miss (as functools and the LRU-backed wrappers treat it)."""

    armed = False

    def __init__(self, n):
        self.n = n

    def __hash__(self):
        return 7

    def __eq__(self, other):
        if _RaisingEq.armed:
            raise KeyError("from __eq__")
        return isinstance(other, _RaisingEq) and other.n == self.n


@pytest.mark.parametrize("policy", fastlru.POLICIES)
def test_a_lookup_error_propagates_and_a_hit_is_served(lru_cache, policy):
    # The compiled wrapper's C lookup is the LRU engine's: a policy's Cache must be asked through
    # its own lookup (a Cache given to the LRU's C entry would be read as an LRU's memory).
    calls = []

    @lru_cache(maxsize=8, policy=policy)
    def f(x):
        calls.append(x)
        return ("v", x.n) if isinstance(x, _RaisingEq) else ("v", x)

    for _ in range(3):
        assert [f(i) for i in range(5)] == [("v", i) for i in range(5)]
    assert calls.count(0) >= 1 and f.cache_info().hits >= 5
    first = _RaisingEq(1)
    assert f(first) == ("v", 1)
    _RaisingEq.armed = True
    try:
        before = list(calls)
        with pytest.raises(KeyError, match="from __eq__"):
            f(_RaisingEq(2))  # collides with the stored key: its comparison raises
        assert calls == before  # not taken for a miss: the function did not run
    finally:
        _RaisingEq.armed = False


@pytest.mark.parametrize("policy", fastlru.POLICIES)
def test_a_coroutine_hit_of_a_policy_cache(lru_cache, policy):
    calls = []

    @lru_cache(maxsize=4, policy=policy)
    async def g(x):
        calls.append(x)
        return x * 2

    async def main():
        return [await g(1), await g(1), await g(2), await g(1)]

    assert asyncio.run(main()) == [2, 2, 4, 2]
    assert calls == [1, 2]
