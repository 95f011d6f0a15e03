"""``lru_cache``'s lookup errors propagate (issue #20): a ``KeyError`` raised by a key's ``__eq__``
or by a ``ttl``'s timer during the lookup is an error of the call, as in ``functools`` and the
twin, never taken for a miss (the function is not run, nothing is stored).

Then a differential fuzz against ``functools.lru_cache`` (hypothesis): calls of one or two
arguments drawn from ints, strings and objects that all hash alike, some of whose comparisons
raise (``KeyError``, ``ValueError``); every call's value or exception type, what is computed,
and the cache's size must agree.
"""
import asyncio
import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.lru import WRAPPERS, lru_cache_module  # noqa: F401 - the "module" fixture


class Colliding:
    """All hash alike; equal only to themselves; a comparison of two different ones involving
    one made with ``error`` raises it."""

    def __init__(self, name, error=None):
        self.name, self.error = name, error

    def __hash__(self):
        return 1

    def __eq__(self, other):
        if self is other:
            return True
        if not isinstance(other, Colliding):
            return NotImplemented
        error = self.error or other.error
        if error is not None:
            raise error(f"{self.name} == {other.name}")
        return False

    def __repr__(self):
        return self.name


@pytest.mark.parametrize("maxsize", [8, None])
def test_key_error_of_eq_propagates(module, maxsize):
    for lru_cache in (module.lru_cache, functools.lru_cache):  # (functools: the reference)
        calls = []
        f = lru_cache(maxsize=maxsize)(lambda key: calls.append(key) or len(calls))
        plain, hostile = Colliding("plain"), Colliding("hostile", KeyError)
        assert f(plain) == 1
        with pytest.raises(KeyError, match="hostile == plain|plain == hostile"):
            f(hostile)
        assert calls == [plain]  # not run
        assert f.cache_info().currsize == 1
        assert f(plain) == 1


def test_key_error_of_eq_propagates_single_flight(module):
    calls = []
    f = module.lru_cache(maxsize=8, single_flight=True)(lambda key: calls.append(key) or len(calls))
    plain, hostile = Colliding("plain"), Colliding("hostile", KeyError)
    assert f(plain) == 1
    with pytest.raises(KeyError):
        f(hostile)
    assert calls == [plain] and f.cache_info().currsize == 1


def test_key_error_of_eq_propagates_coroutine(module):
    calls = []

    @module.lru_cache(maxsize=8)
    async def f(key):
        calls.append(key)
        return len(calls)

    plain, hostile = Colliding("plain"), Colliding("hostile", KeyError)
    assert asyncio.run(f(plain)) == 1

    async def call_hostile():
        return await f(hostile)

    with pytest.raises(KeyError):
        asyncio.run(call_hostile())
    assert calls == [plain] and f.cache_info().currsize == 1


@pytest.mark.parametrize("single_flight", [False, True])
def test_key_error_of_timer_propagates(module, single_flight):
    failing = []

    def timer():
        if failing:
            raise KeyError("the clock")
        return 0.0

    calls = []
    f = module.lru_cache(maxsize=8, ttl=10, timer=timer, single_flight=single_flight)(
        lambda key: calls.append(key) or len(calls))
    assert f(1) == 1 and f(1) == 1
    failing.append(True)
    with pytest.raises(KeyError, match="the clock"):
        f(1)  # a hit whose timer fails: an error, not a recomputation
    with pytest.raises(KeyError, match="the clock"):
        f(2)
    assert calls == [1]
    failing.clear()
    assert f(1) == 1 and f.cache_info().currsize == 1


# -- differential fuzz against functools ---------------------------------------------------------

POOL_SIZE = 8


def pool():
    """A fresh pool of arguments (one per run: the two caches never share an object)."""
    return [0, 1, "s", Colliding("c0"), Colliding("c1"), Colliding("c2"),
            Colliding("k", KeyError), Colliding("v", ValueError)]


def replay(lru_cache, maxsize, calls):
    """Every call's value or exception type, what was computed (pool indices), the final size."""
    items = pool()
    computed = []
    where = {id(item): i for i, item in enumerate(items)}  # (by identity: no comparison runs)
    f = lru_cache(maxsize=maxsize)(lambda *args: computed.append([where[id(a)] for a in args]) or len(computed))
    record = []
    for indices in calls:
        try:
            record.append(("value", f(*[items[i] for i in indices])))
        except Exception as exc:  # noqa: BLE001 - compared between the two caches
            record.append(("error", type(exc).__name__))
    return record, computed, f.cache_info().currsize


@settings(max_examples=300, deadline=None)
@given(maxsize=st.sampled_from([1, 2, 3, 5, None]),
       calls=st.lists(st.lists(st.integers(0, POOL_SIZE - 1), min_size=1, max_size=2), max_size=30))
def test_differential_against_functools(module, maxsize, calls):
    assert replay(module.lru_cache, maxsize, calls) == replay(functools.lru_cache, maxsize, calls)
