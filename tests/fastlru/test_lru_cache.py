"""``fastlru.lru_cache``/``fastlru.cache`` as drop-ins for ``functools``': the scenarios of
CPython's ``Lib/test/test_functools.py`` (TestLRU, TestCache) ported, on both wrappers, then
what fastlru adds (``ttl``, ``single_flight``)."""
import builtins
import copy
import functools
import gc
import importlib
import pickle
import sys
import sysconfig
import threading
import unittest.mock
import weakref
from inspect import Signature
from random import choice

import pytest

import fastlru
from support.lru import WRAPPERS, lru_cache_module  # noqa: F401 - the "module" fixture


def test_public_names():
    assert fastlru.lru_cache is importlib.import_module(
        "fastlru._functools_c" if fastlru.IMPLEMENTATION == "c" else "fastlru._functools_py"
    ).lru_cache
    assert "lru_cache" in fastlru.__all__ and "cache" in fastlru.__all__


# ---------------------------------------------------------------- CPython's TestCache / TestLRU

def test_cache(module):
    @module.cache
    def fib(n):
        if n < 2:
            return n
        return fib(n - 1) + fib(n - 2)

    assert [fib(n) for n in range(16)] == [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233,
                                          377, 610]
    assert fib.cache_info() == functools._CacheInfo(hits=28, misses=16, maxsize=None, currsize=16)
    fib.cache_clear()
    assert fib.cache_info() == (0, 0, None, 0)


def test_lru(module):
    def orig(x, y):
        return 3 * x + y

    f = module.lru_cache(maxsize=20)(orig)
    hits, misses, maxsize, currsize = f.cache_info()
    assert (hits, misses, maxsize, currsize) == (0, 0, 20, 0)
    domain = range(5)
    for _ in range(1000):
        x, y = choice(domain), choice(domain)
        assert f(x, y) == orig(x, y)
    hits, misses, maxsize, currsize = f.cache_info()
    assert hits > misses
    assert hits + misses == 1000
    assert currsize == 20

    f.cache_clear()
    assert f.cache_info() == (0, 0, 20, 0)
    f(x, y)
    assert f.cache_info() == (0, 1, 20, 1)

    # bypassing the cache
    assert f.__wrapped__ is orig
    f.__wrapped__(x, y)
    assert f.cache_info() == (0, 1, 20, 1)

    # size zero: never cache; size one: the one value
    for size, computed, info in ((0, 5, (0, 5, 0, 0)), (1, 1, (4, 1, 1, 1))):
        f_cnt = 0

        @module.lru_cache(size)
        def f():
            nonlocal f_cnt
            f_cnt += 1
            return 20

        assert f.cache_info().maxsize == size
        for _ in range(5):
            assert f() == 20
        assert f_cnt == computed
        assert f.cache_info() == info

    # size two
    f_cnt = 0

    @module.lru_cache(2)
    def f(x):
        nonlocal f_cnt
        f_cnt += 1
        return x * 10

    assert f.cache_info().maxsize == 2
    for x in 7, 9, 7, 9, 7, 9, 8, 8, 8, 9, 9, 9, 8, 8, 8, 7:
        assert f(x) == x * 10
    assert f_cnt == 4
    assert f.cache_info() == (12, 4, 2, 2)


def test_lru_no_args(module):
    @module.lru_cache
    def square(x):
        return x ** 2

    assert list(map(square, [10, 20, 10])) == [100, 400, 100]
    assert square.cache_info() == (1, 2, 128, 2)


def test_lru_bug_35780(module):
    # a call of the function that stores its own key must not corrupt the cache
    once = True

    @module.lru_cache(maxsize=10)
    def f(x):
        nonlocal once
        rv = f".{x}."
        if x == 20 and once:
            once = False
            rv = f(x)
        return rv

    for x in range(15):
        assert f(x) == f".{x}."
    assert f.cache_info().currsize == 10
    assert f(20) == ".20."
    assert f.cache_info().currsize == 10


def test_lru_bug_36650(module):
    # an empty **kwargs is the same call as no keywords
    @module.lru_cache()
    def f(x):
        pass

    f(0)
    f(0, **{})
    assert f.cache_info().hits == 1


def test_lru_hash_only_once(module):
    @module.lru_cache(maxsize=1)
    def f(x, y):
        return x * 3 + y

    mock_int = unittest.mock.Mock()
    mock_int.__mul__ = unittest.mock.Mock(return_value=15)
    mock_int.__hash__ = unittest.mock.Mock(return_value=999)

    assert f(mock_int, 1) == 16  # a miss: lookup and store, one hash
    assert mock_int.__hash__.call_count == 1
    assert f.cache_info() == (0, 1, 1, 1)
    assert f(mock_int, 1) == 16  # a hit
    assert mock_int.__hash__.call_count == 2
    assert f.cache_info() == (1, 1, 1, 1)
    assert f(6, 2) == 20  # evicts: no hash of the evicted key
    assert mock_int.__hash__.call_count == 2
    assert f.cache_info() == (1, 2, 1, 1)
    assert f(mock_int, 1) == 16
    assert mock_int.__hash__.call_count == 3
    assert f.cache_info() == (1, 3, 1, 1)


def test_lru_reentrancy_with_len(module):
    old_len = builtins.len
    try:
        builtins.len = module.lru_cache(4)(len)
        for i in [0, 0, 1, 2, 3, 3, 4, 5, 6, 1, 7, 2, 1]:
            assert len("abcdefghijklmn"[:i]) == i
    finally:
        builtins.len = old_len


def test_lru_star_arg_handling(module):
    @module.lru_cache()
    def f(*args):
        return args

    assert f(1, 2) == (1, 2)
    assert f((1, 2)) == ((1, 2),)


def test_lru_type_error(module):
    @module.lru_cache(maxsize=None)
    def infinite_cache(o):
        pass

    @module.lru_cache(maxsize=10)
    def limited_cache(o):
        pass

    with pytest.raises(TypeError):
        infinite_cache([])
    with pytest.raises(TypeError):
        limited_cache([])


def test_lru_with_maxsize_none(module):
    @module.lru_cache(maxsize=None)
    def fib(n):
        if n < 2:
            return n
        return fib(n - 1) + fib(n - 2)

    assert [fib(n) for n in range(16)] == [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233,
                                          377, 610]
    assert fib.cache_info() == (28, 16, None, 16)
    fib.cache_clear()
    assert fib.cache_info() == (0, 0, None, 0)


def test_lru_with_maxsize_negative(module):
    @module.lru_cache(maxsize=-10)
    def eq(n):
        return n

    for _ in (0, 1):
        assert [eq(n) for n in range(150)] == list(range(150))
    assert eq.cache_info() == (0, 300, 0, 0)


def test_lru_with_exceptions(module):
    for maxsize in (None, 128):
        @module.lru_cache(maxsize)
        def func(i):
            return "abc"[i]

        assert func(0) == "a"
        with pytest.raises(IndexError) as info:
            func(15)
        assert info.value.__context__ is None  # no chained KeyError from the lookup
        with pytest.raises(IndexError):
            func(15)  # the failure was not cached


def test_lru_with_types(module):
    for maxsize in (None, 128):
        @module.lru_cache(maxsize=maxsize, typed=True)
        def square(x):
            return x * x

        assert square(3) == 9 and type(square(3)) is int
        assert square(3.0) == 9.0 and type(square(3.0)) is float
        assert square(x=3) == 9 and type(square(x=3)) is int
        assert square(x=3.0) == 9.0 and type(square(x=3.0)) is float
        assert square.cache_info().hits == 4
        assert square.cache_info().misses == 4


def test_lru_cache_typed_is_not_recursive(module):
    cached = module.lru_cache(typed=True)(repr)
    assert cached(1) == "1"
    assert cached(True) == "True"
    assert cached(1.0) == "1.0"
    assert cached(0) == "0"
    assert cached(False) == "False"
    assert cached(0.0) == "0.0"
    assert cached((1,)) == "(1,)"
    assert cached((True,)) == "(1,)"
    assert cached((1.0,)) == "(1,)"
    assert cached((0,)) == "(0,)"
    assert cached((False,)) == "(0,)"
    assert cached((0.0,)) == "(0,)"

    class T(tuple):
        pass

    assert cached(T((1,))) == "(1,)"
    assert cached(T((True,))) == "(1,)"
    assert cached(T((1.0,))) == "(1,)"


def test_lru_with_keyword_args(module):
    for maxsize in (128, None):
        @module.lru_cache(maxsize=maxsize)
        def fib(n):
            if n < 2:
                return n
            return fib(n=n - 1) + fib(n=n - 2)

        assert [fib(n=number) for number in range(16)] == [
            0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610]
        assert fib.cache_info() == (28, 16, maxsize, 16)
        fib.cache_clear()
        assert fib.cache_info() == (0, 0, maxsize, 0)


def test_kwargs_order(module):
    # PEP 468: keyword order is part of the key, as in functools
    @module.lru_cache(maxsize=10)
    def f(**kwargs):
        return list(kwargs.items())

    assert f(a=1, b=2) == [("a", 1), ("b", 2)]
    assert f(b=2, a=1) == [("b", 2), ("a", 1)]
    assert f.cache_info() == (0, 2, 10, 2)


def test_positional_and_keyword_calls_are_different_keys(module):
    # as functools: f(1) and f(x=1) are cached apart, a tuple argument is not its items
    @module.lru_cache()
    def f(x=0, y=0):
        return (x, y)

    f(1)
    f(x=1)
    f(1, 2)
    f((1, 2))
    assert f.cache_info() == (0, 4, 128, 4)


def test_lru_cache_decoration(module):
    def f(zomg: "zomg_annotation"):  # noqa: F821
        """f doc string"""
        return 42

    g = module.lru_cache()(f)
    for attr in functools.WRAPPER_ASSIGNMENTS:
        assert getattr(g, attr) == getattr(f, attr)


def test_lru_cache_threaded(module):
    n, m = 5, 11

    def orig(x, y):
        return 3 * x + y

    f = module.lru_cache(maxsize=n * m)(orig)
    assert f.cache_info().currsize == 0
    start = threading.Event()
    errors = []

    def full(k):
        start.wait(10)
        for _ in range(m):
            if f(k, 0) != orig(k, 0):
                errors.append(k)

    def clear():
        start.wait(10)
        for _ in range(2 * m):
            f.cache_clear()

    orig_si = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=full, args=[k]) for k in range(n)]
        for t in threads:
            t.start()
        start.set()
        for t in threads:
            t.join()
        hits, misses, maxsize, currsize = f.cache_info()
        assert misses <= n  # (CPython's C wrapper: ==; its Python one: <=)
        assert hits <= m * n - misses
        assert hits + misses == m * n
        assert currsize == n

        threads = [threading.Thread(target=clear)]
        threads += [threading.Thread(target=full, args=[k]) for k in range(n)]
        start.clear()
        for t in threads:
            t.start()
        start.set()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(orig_si)
    assert errors == []


def test_lru_cache_threaded2(module):
    # simultaneous misses of one key all run the function (functools' behaviour, the default)
    n, m = 5, 7
    start = threading.Barrier(n + 1)
    pause = threading.Barrier(n + 1)
    stop = threading.Barrier(n + 1)

    @module.lru_cache(maxsize=m * n)
    def f(x):
        pause.wait(10)
        return 3 * x

    assert f.cache_info() == (0, 0, m * n, 0)
    errors = []

    def test():
        for i in range(m):
            start.wait(10)
            if f(i) != 3 * i:
                errors.append(i)
            stop.wait(10)

    threads = [threading.Thread(target=test) for _ in range(n)]
    for t in threads:
        t.start()
    try:
        for i in range(m):
            start.wait(10)
            stop.reset()
            pause.wait(10)
            start.reset()
            stop.wait(10)
            pause.reset()
            assert f.cache_info() == (0, (i + 1) * n, m * n, i + 1)
    finally:
        for t in threads:
            t.join(10)
    assert errors == []


def test_lru_cache_threaded3(module):
    # a few threads, a small cache, overlapping keys: every answer right (no sleep: a barrier)
    barrier = threading.Barrier(5)

    @module.lru_cache(maxsize=2)
    def f(x):
        return 3 * x

    results = []

    def test(i, x):
        barrier.wait(10)
        results.append(f(x) == 3 * x)

    threads = [threading.Thread(target=test, args=(i, v)) for i, v in enumerate([1, 2, 2, 3, 2])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 5


def test_need_for_rlock(module):
    # a key whose __eq__ calls the cached function: deadlocks on a plain lock
    @module.lru_cache(maxsize=10)
    def test_func(x):
        return x

    class DoubleEq:
        def __init__(self, x):
            self.x = x

        def __hash__(self):
            return self.x

        def __eq__(self, other):
            if self.x == 2:
                test_func(DoubleEq(1))
            return self.x == other.x

    test_func(DoubleEq(1))
    test_func(DoubleEq(2))
    assert test_func(DoubleEq(2)) == DoubleEq(2)


def test_lru_method(module):
    class X(int):
        f_cnt = 0

        @module.lru_cache(2)
        def f(self, x):
            self.f_cnt += 1
            return x * 10 + self

    a = X(5)
    b = X(5)
    c = X(7)
    assert X.f.cache_info() == (0, 0, 2, 0)
    for x in 1, 2, 2, 3, 1, 1, 1, 2, 3, 3:
        assert a.f(x) == x * 10 + 5
    assert (a.f_cnt, b.f_cnt, c.f_cnt) == (6, 0, 0)
    assert X.f.cache_info() == (4, 6, 2, 2)
    for x in 1, 2, 1, 1, 1, 1, 3, 2, 2, 2:
        assert b.f(x) == x * 10 + 5
    assert (a.f_cnt, b.f_cnt, c.f_cnt) == (6, 4, 0)
    assert X.f.cache_info() == (10, 10, 2, 2)
    for x in 2, 1, 1, 1, 1, 2, 1, 3, 2, 1:
        assert c.f(x) == x * 10 + 7
    assert (a.f_cnt, b.f_cnt, c.f_cnt) == (6, 4, 5)
    assert X.f.cache_info() == (15, 15, 2, 2)
    assert a.f.cache_info() == X.f.cache_info()
    assert b.f.cache_info() == X.f.cache_info()
    assert c.f.cache_info() == X.f.cache_info()


def test_method_binding_as_functools(module):
    class A:
        @module.lru_cache
        def meth(self, x):
            return (self, x)

        @staticmethod
        @module.lru_cache
        def static(x):
            return x

        @classmethod
        @module.lru_cache
        def klass(cls, x):
            return (cls, x)

    a = A()
    assert A.__dict__["meth"].__get__(None, A) is A.__dict__["meth"]
    assert a.meth(1) == (a, 1)
    assert a.meth.__self__ is a
    assert a.meth.__func__ is A.meth
    assert A.static(3) == 3 and a.static(3) == 3
    assert A.klass(4) == (A, 4)
    assert a.meth.cache_info() == (0, 1, 128, 1)
    assert a.meth.__wrapped__ is A.meth.__wrapped__


def _cached_func(x, y):
    return 3 * x + y


# Module-level cached callables of each wrapper, as CPython's test has (pickle finds them by
# name). Imported here directly: a compiled module that did not build fails, never skips.
_c = importlib.import_module("fastlru._functools_c")
_py = importlib.import_module("fastlru._functools_py")


@_c.lru_cache()
def c_cached_func(x, y):
    return 3 * x + y


@_py.lru_cache()
def py_cached_func(x, y):
    return 3 * x + y


class CHolder:
    @_c.lru_cache()
    def cached_meth(self, x, y):
        return 3 * x + y

    @staticmethod
    @_c.lru_cache()
    def cached_staticmeth(x, y):
        return 3 * x + y


class PyHolder:
    @_py.lru_cache()
    def cached_meth(self, x, y):
        return 3 * x + y

    @staticmethod
    @_py.lru_cache()
    def cached_staticmeth(x, y):
        return 3 * x + y


def _pickle_targets(module):
    if module is _c:
        return c_cached_func, CHolder.cached_meth, CHolder.cached_staticmeth
    return py_cached_func, PyHolder.cached_meth, PyHolder.cached_staticmeth


def test_pickle(module):
    for f in _pickle_targets(module):
        for proto in range(pickle.HIGHEST_PROTOCOL + 1):
            assert pickle.loads(pickle.dumps(f, proto)) is f


def test_copy(module):
    part = functools.partial(_cached_func, 2)
    for f in (*_pickle_targets(module), module.lru_cache(2)(part)):
        assert copy.copy(f) is f
        assert copy.deepcopy(f) is f


def test_lru_cache_parameters(module):
    @module.lru_cache(maxsize=2)
    def f():
        return 1

    assert f.cache_parameters() == {"maxsize": 2, "typed": False}

    @module.lru_cache(maxsize=1000, typed=True)
    def f():
        return 1

    assert f.cache_parameters() == {"maxsize": 1000, "typed": True}
    assert module.cache(f).cache_parameters() == {"maxsize": None, "typed": False}
    g = module.lru_cache(ttl=3, single_flight=True)(f)
    assert g.cache_parameters() == {"maxsize": 128, "typed": False, "ttl": 3.0,
                                    "single_flight": True}


@pytest.mark.skipif(
    sys.version_info[:2] == (3, 13) and bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    reason="free-threaded 3.13 makes functions and classes immortal once a second thread has run, "
           "so gc.collect() cannot free them (CPython's own copy of this test is marked "
           "@support.suppress_immortalization(); functools.lru_cache fails it the same way)")
def test_lru_cache_weakrefable(module):
    @module.lru_cache
    def test_function(x):
        return x

    class A:
        @module.lru_cache
        def test_method(self, x):
            return (self, x)

        @staticmethod
        @module.lru_cache
        def test_staticmethod(x):
            return x

    refs = [weakref.ref(test_function), weakref.ref(A.test_method),
            weakref.ref(A.test_staticmethod)]
    for ref in refs:
        assert ref() is not None
    del A
    del test_function
    gc.collect()
    for ref in refs:
        assert ref() is None


def test_common_signatures(module):
    def orig(a, /, b, c=True): ...

    lru = module.lru_cache(1)(orig)
    assert str(Signature.from_callable(lru)) == "(a, /, b, c=True)"
    assert str(Signature.from_callable(lru.cache_info)) == "()"
    assert str(Signature.from_callable(lru.cache_clear)) == "()"


def test_lru_recursion(module):
    @module.lru_cache
    def fib(n):
        if n <= 1:
            return n
        return fib(n - 1) + fib(n - 2)

    a, b = 0, 1
    for _ in range(150):
        a, b = b, a + b
    assert fib(150) == a
    assert fib.cache_info().currsize == 128


def test_bad_maxsize(module):
    with pytest.raises(TypeError, match="Expected first argument to be an integer, a callable, or None"):
        module.lru_cache("3")
    with pytest.raises(TypeError):
        module.lru_cache(ttl="3")
    with pytest.raises(ValueError):
        module.lru_cache(ttl=-1)


# ---------------------------------------------------------------- beyond functools

class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_ttl(module):
    clock = Clock()
    calls = []

    @module.lru_cache(ttl=10, timer=clock)
    def f(x):
        calls.append(x)
        return x * 2

    assert f(1) == 2 and f(1) == 2
    clock.now = 9.5
    assert f(1) == 2
    assert calls == [1]
    clock.now = 10
    assert f(1) == 2  # expired: computed again
    assert calls == [1, 1]
    assert f.cache_info() == (2, 2, 128, 1)
    clock.now = 30
    assert f.cache_info().currsize == 0


def test_single_flight_computes_once_per_key(module):
    n = 6
    entered = threading.Event()
    release = threading.Event()
    calls = []

    @module.lru_cache(single_flight=True)
    def f(x):
        calls.append(x)
        entered.set()
        release.wait(10)
        return x * 3

    results = []

    def call():
        results.append(f(7))

    leader = threading.Thread(target=call)
    leader.start()
    assert entered.wait(10)
    followers = [threading.Thread(target=call) for _ in range(n - 1)]
    for t in followers:
        t.start()
    # the followers are now waiting on the leader's flight (or will find its result)
    for _ in range(100):
        if threading.active_count() >= n:
            break
    release.set()
    for t in [leader, *followers]:
        t.join(10)
    assert results == [21] * n
    assert calls == [7]
    assert f.cache_info().currsize == 1


def test_single_flight_leader_failure_lets_a_waiter_compute(module):
    entered = threading.Event()
    release = threading.Event()
    calls = []

    @module.lru_cache(single_flight=True)
    def f(x):
        calls.append(x)
        if len(calls) == 1:
            entered.set()
            release.wait(10)
            raise RuntimeError("leader fails")
        return "ok"

    outcome = {}

    def leader():
        try:
            f(1)
        except RuntimeError as exc:
            outcome["leader"] = str(exc)

    def follower():
        outcome["follower"] = f(1)

    t1 = threading.Thread(target=leader)
    t1.start()
    assert entered.wait(10)
    t2 = threading.Thread(target=follower)
    t2.start()
    release.set()
    t1.join(10)
    t2.join(10)
    assert outcome == {"leader": "leader fails", "follower": "ok"}
    assert calls == [1, 1]


def test_single_flight_reentrant_call_of_the_same_key_does_not_deadlock(module):
    depth = []

    @module.lru_cache(single_flight=True)
    def f(x):
        depth.append(x)
        if len(depth) == 1:
            return f(x) + 1  # same key, same thread, while leading its flight
        return 10

    assert f(5) == 11
    assert f(5) == 10  # the inner result was stored first, and wins


def test_default_is_not_single_flight(module):
    assert module.lru_cache()(abs).cache_parameters() == {"maxsize": 128, "typed": False}


@pytest.mark.parametrize("decorator", ["fastlru", "functools"])
def test_every_call_path_builds_the_same_key(module, decorator):
    # vectorcall, a call with a tuple and a dict (tp_call), *args/**kwargs, map(): one key each;
    # the same sequence run on functools.lru_cache gives the same statistics
    lru_cache = module.lru_cache if decorator == "fastlru" else functools.lru_cache

    @lru_cache()
    def f(a, b=0, *, c=0):
        return (a, b, c)

    assert f(1, b=2, c=3) == (1, 2, 3)
    assert type(f).__call__(f, 1, b=2, c=3) == (1, 2, 3)
    assert f(*(1,), **{"b": 2, "c": 3}) == (1, 2, 3)
    assert functools.partial(f, 1, b=2)(c=3) == (1, 2, 3)
    assert f.cache_info() == (3, 1, 128, 1)
    assert list(map(f, [5, 5])) == [(5, 0, 0)] * 2
    assert f.cache_info() == (4, 2, 128, 2)
    # 5.0 == 5, but a lone int is its own key and a lone float is not: a miss, as in functools
    assert f(5.0) == (5.0, 0, 0)
    assert f((5,)) == ((5,), 0, 0)
    assert f.cache_info() == (4, 4, 128, 4)


def test_typed_keys_from_keywords(module):
    @module.lru_cache(typed=True)
    def f(a, b=0):
        return (a, b)

    f(1, b=2)
    f(1, b=2.0)
    f(1, b=2)
    f(b=2, a=1)  # keyword order is part of the key
    assert f.cache_info() == (1, 3, 128, 3)


def test_no_reference_leaks(module):
    # every path (hit, miss, eviction, keywords, typed, maxsize=0, an exception) releases what
    # it took: the refcounts of an argument, a keyword value and a result come back
    arg, kwval, result = object(), object(), object()

    def func(a, b=None, *, fail=False):
        if fail:
            raise KeyError("no")
        return result

    wrappers = [module.lru_cache(maxsize=2)(func), module.lru_cache(maxsize=2, typed=True)(func),
                module.lru_cache(maxsize=0)(func), module.cache(func)]
    before = (sys.getrefcount(arg), sys.getrefcount(kwval), sys.getrefcount(result))
    for _ in range(3):
        for w in wrappers:
            for _ in range(200):
                w(arg)
                w(arg, b=kwval)
                w(arg, kwval)
                w(1)
                w(2)
                w(3)
                with pytest.raises(KeyError):
                    w(arg, fail=True)
            w.cache_clear()
    assert (sys.getrefcount(arg), sys.getrefcount(kwval), sys.getrefcount(result)) == before
