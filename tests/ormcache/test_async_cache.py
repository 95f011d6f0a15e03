"""Coroutine functions and methods under ``fastlru.lru_cache``/``cache`` and ormcache's decorators
(issue #13, item 1): the awaited value is cached, never the coroutine; concurrent awaits of one
key in one event loop compute once; a failed or cancelled computation is neither cached nor
shared (its waiters look again, then one of them computes); threads running their own loops.

The lru_cache tests run on both wrappers (``module``), the ormcache ones on both engines and
both hit paths (``registry``). Every scenario runs under ``asyncio.run`` with a deadline
(``wait_for``), so a deadlock fails the test instead of hanging the run.
"""
import asyncio
import inspect
import os
import sys
import threading
import warnings

import pytest

from ormcache import get_cache_key_counter, ormcache as cached, ormcache_context, ormcache_multi
from support.lru import WRAPPERS, lru_cache_module  # noqa: F401 - the "module" fixture


def asyncio_iscoroutinefunction(func):
    """``asyncio.iscoroutinefunction(func)``: still what older code asks; deprecated since
    Python 3.14 (its DeprecationWarning is not this test's subject)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "'asyncio.iscoroutinefunction' is deprecated",
                                DeprecationWarning)
        return asyncio.iscoroutinefunction(func)


DEADLINE = 10  # seconds: a scenario that has not ended by then is deadlocked

def run(coroutine):
    """``asyncio.run`` with a deadline."""
    return asyncio.run(asyncio.wait_for(coroutine, DEADLINE))


class Gate:
    """Holds a computation until the test opens it; counts the computations that started."""

    def __init__(self):
        self.started = 0
        self.event = None

    @property
    def opened(self):
        # made in the running loop: on Python 3.9 an Event binds to a loop when it is created
        if self.event is None:
            self.event = asyncio.Event()
        return self.event

    async def enter(self):
        self.started += 1
        await self.opened.wait()


async def until(condition):
    """Yield to the loop until ``condition()`` holds."""
    while not condition():
        await asyncio.sleep(0)


# -- fastlru.lru_cache -------------------------------------------------------------------------


def test_lru_cache_caches_the_awaited_value(module):
    calls = []

    @module.lru_cache(maxsize=8)
    async def double(x):
        calls.append(x)
        await asyncio.sleep(0)
        return [x, x]

    async def main():
        first = await double(2)
        second = await double(2)  # today: RuntimeError, the coroutine object was cached
        return first, second

    first, second = run(main())
    assert first == [2, 2] and second is first and calls == [2]
    assert tuple(double.cache_info()) == (1, 1, 8, 1)
    assert inspect.iscoroutinefunction(double)
    assert double.__wrapped__.__name__ == "double" and double.__name__ == "double"
    assert double.cache_parameters() == {"maxsize": 8, "typed": False}
    double.cache_clear()
    assert tuple(double.cache_info()) == (0, 0, 8, 0)
    assert run(double(2)) == [2, 2] and calls == [2, 2]


async def awaited_as_coroutines(call, call_with_keyword):
    """Six hits (``call()`` returns a fresh one), awaited as a coroutine of the function would
    be: directly (and once only), by create_task, ensure_future, gather, and a task's repr."""
    hit = call()
    assert asyncio.iscoroutine(hit)
    values = [await hit]
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        await hit
    values.append(await asyncio.create_task(call()))
    values.append(await asyncio.ensure_future(call()))
    values.extend(await asyncio.gather(call(), call_with_keyword()))
    task = asyncio.create_task(call())
    assert "Task" in repr(task)
    values.append(await task)
    return values


def sends_throws_and_closes(call, value):
    """Three hits driven by hand as coroutines: send, throw, close, each then exhausted."""
    hit = call()
    with pytest.raises(TypeError, match="can't send non-None value to a just-started coroutine"):
        hit.send(1)
    with pytest.raises(StopIteration) as stopped:
        hit.send(None)  # still usable after the refused send
    assert stopped.value.value == value
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        hit.send(None)

    hit = call()
    with pytest.raises(ValueError, match="thrown in"):
        hit.throw(ValueError("thrown in"))
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        hit.send(None)

    hit = call()
    hit.close()
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        hit.send(None)
    hit.close()  # again: nothing to do, as a coroutine's


#: Python 3.10+: the compiled wrappers serve a coroutine function's hit without a Python frame;
#: 3.9's inspect takes only real functions for coroutine functions: there the wrapper is an
#: ``async def`` (whose frame runs on a hit)
COMPILED_ASYNC_HIT = sys.version_info >= (3, 10)


def expected_frames(wrapper_frames):
    """The frames a hit runs: none (3.10+), else the ``async def`` wrapper's."""
    return [] if COMPILED_ASYNC_HIT else wrapper_frames


def python_frames_of_hits(package, calls, values):
    """The names of ``package``'s Python frames run while each of ``calls`` is awaited (all
    hits, giving ``values``: driven without an event loop, they must not suspend)."""
    where = os.path.dirname(package.__file__)
    frames = []

    def profile(frame, event, arg):  # the package's frames only (a pure-Python LRU has its own)
        if event == "call" and frame.f_code.co_filename.startswith(where):
            frames.append(frame.f_code.co_name)

    async def hits():
        sys.setprofile(profile)
        try:
            return [await call() for call in calls]
        finally:
            sys.setprofile(None)

    coroutine = hits()
    with pytest.raises(StopIteration) as done:
        coroutine.send(None)
    assert done.value.value == values
    return frames


def test_lru_cache_a_hit_is_awaited_as_the_functions_coroutine(module):
    calls = []

    @module.lru_cache(maxsize=8)
    async def double(x):
        calls.append(x)
        return [x, x]

    assert run(double(2)) == [2, 2]
    assert asyncio_iscoroutinefunction(double)
    assert run(awaited_as_coroutines(lambda: double(2), lambda: double(x=2))) == [[2, 2]] * 6
    assert calls == [2, 2]  # x=2 is a key of its own, as in functools
    assert tuple(double.cache_info()) == (5, 2, 8, 2)
    sends_throws_and_closes(lambda: double(2), [2, 2])
    assert calls == [2, 2]


def test_lru_cache_compiled_hit_runs_no_python_frame():
    import fastlru
    from fastlru import _functools_c

    calls = []

    @_functools_c.lru_cache(maxsize=8)
    async def double(x):
        calls.append(x)
        return [x, x]

    class Service:
        @_functools_c.cache
        async def load(self, x):
            calls.append(("load", x))
            return x * 10

    service = Service()
    assert run(double(2)) == [2, 2] and run(service.load(1)) == 10
    frames = python_frames_of_hits(fastlru, [lambda: double(2), lambda: double(2), lambda: service.load(1)], [[2, 2], [2, 2], 10])
    assert frames == expected_frames(["wrapper"] * 3)  # today, on 3.10+ too: ['wrapper'] * 3
    assert calls == [2, ("load", 1)]
    # the compiled hit returns a coroutine already done, a fresh one per call
    hit, other = double(2), double(2)
    assert isinstance(hit, _functools_c.AwaitedValue) is COMPILED_ASYNC_HIT and hit is not other
    hit.close()
    other.close()


def test_lru_cache_and_ormcache_hits_keep_no_reference(module, registry):
    """Hits awaited, or dropped unawaited (closed), leave the cached value's reference count
    as it was: the done coroutine hands its value over, or lets it go."""
    value = object()

    @module.lru_cache(maxsize=8)
    async def function(x):
        return value

    class Model:
        _name = "test.refs"
        pool = registry

        @cached("x")
        async def method(self, x):
            return value

    model = Model()
    assert run(function(1)) is value and run(model.method(1)) is value
    before = sys.getrefcount(value)

    async def awaits():
        for _ in range(1000):
            assert await function(1) is value and await model.method(1) is value

    run(awaits())
    for _ in range(1000):
        function(1).close()
        model.method(1).close()
    assert sys.getrefcount(value) == before


def test_lru_cache_keys_as_functools(module):
    calls = []

    @module.lru_cache(typed=True)
    async def f(x, y=0):
        calls.append((x, y))
        return (x, y)

    async def main():
        return [await f(1), await f(1.0), await f(1, y=2), await f(1, y=2), await f(1, 2), await f(1)]

    assert run(main()) == [(1, 0), (1.0, 0), (1, 2), (1, 2), (1, 2), (1, 0)]
    # typed: 1 and 1.0 apart; f(1, y=2) and f(1, 2) are two keys, as in functools
    assert calls == [(1, 0), (1.0, 0), (1, 2), (1, 2)]
    assert f.cache_info().hits == 2


def test_lru_cache_bare_cache_and_methods(module):
    class Service:
        calls = 0

        @module.cache
        async def load(self, x):
            Service.calls += 1
            return x * 10

    service = Service()
    assert inspect.iscoroutinefunction(Service.load) and inspect.iscoroutinefunction(service.load)

    async def main():
        return [await service.load(1), await service.load(1), await Service.load(service, 1)]

    assert run(main()) == [10, 10, 10] and Service.calls == 1


def test_lru_cache_maxsize_zero_awaits_every_call(module):
    calls = []

    @module.lru_cache(maxsize=0)
    async def f(x):
        calls.append(x)
        return x

    async def main():
        return [await f(1), await f(1)]

    assert run(main()) == [1, 1] and calls == [1, 1]
    assert tuple(f.cache_info()) == (0, 2, 0, 0)


def test_lru_cache_hundred_tasks_on_one_cold_key_compute_once(module):
    gate = Gate()

    @module.lru_cache
    async def f(x):
        await gate.enter()
        return object()

    async def main():
        tasks = [asyncio.ensure_future(f(1)) for _ in range(100)]
        await until(lambda: gate.started)
        for _ in range(10):
            await asyncio.sleep(0)
        gate.opened.set()
        return await asyncio.gather(*tasks)

    results = run(main())
    assert gate.started == 1
    assert all(result is results[0] for result in results)


def test_lru_cache_cancelled_computation_is_retried_by_a_waiter(module):
    gate = Gate()

    @module.lru_cache
    async def f(x):
        await gate.enter()
        return x * 2

    async def main():
        leader = asyncio.ensure_future(f(21))
        await until(lambda: gate.started == 1)
        waiters = [asyncio.ensure_future(f(21)) for _ in range(5)]
        for _ in range(5):
            await asyncio.sleep(0)
        leader.cancel()
        await until(lambda: gate.started == 2)  # a waiter took over
        gate.opened.set()
        with pytest.raises(asyncio.CancelledError):
            await leader
        return await asyncio.gather(*waiters)  # none of them gets CancelledError

    assert run(main()) == [42] * 5
    assert gate.started == 2
    assert run(f(21)) == 42 and gate.started == 2  # cached


def test_lru_cache_failure_reaches_its_caller_only_and_is_not_cached(module):
    gate = Gate()
    outcomes = ["fail", "ok"]

    @module.lru_cache
    async def f(x):
        await gate.enter()
        if outcomes.pop(0) == "fail":
            raise ValueError("backend down")
        return x

    async def main():
        leader = asyncio.ensure_future(f(7))
        await until(lambda: gate.started == 1)
        waiters = [asyncio.ensure_future(f(7)) for _ in range(5)]
        for _ in range(5):
            await asyncio.sleep(0)
        gate.opened.set()
        with pytest.raises(ValueError, match="backend down"):
            await leader
        return await asyncio.gather(*waiters)  # a waiter computed again, once, for all

    assert run(main()) == [7] * 5
    assert gate.started == 2


def test_lru_cache_threads_each_with_their_own_loop(module):
    calls = []

    @module.lru_cache
    async def f(x):
        calls.append(threading.get_ident())
        await asyncio.sleep(0.01)
        return x + 1

    results = []

    def thread_main():
        async def main():
            return await asyncio.gather(*(f(1) for _ in range(20)))

        results.append(run(main()))

    threads = [threading.Thread(target=thread_main) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert results == [[2] * 20] * 4
    assert 1 <= len(calls) <= 4  # at most once per loop, never a future of another loop


def test_lru_cache_refuses_async_generators(module):
    async def items():
        yield 1

    with pytest.raises(TypeError, match="async generator function .*items"):
        module.lru_cache(items)
    with pytest.raises(TypeError, match="async generator"):
        module.cache(items)


# -- ormcache ----------------------------------------------------------------------------------


def async_model(registry, name="test.async"):
    """A model with an ``async def`` cached method and a plain one, both counting calls."""

    class Model:
        _name = name
        pool = registry
        calls = []
        sync_calls = []
        gate = None

        @cached("key")
        async def get(self, key):
            """Return the value of key."""
            self.calls.append(key)
            if self.gate is not None:
                await self.gate.enter()
            await asyncio.sleep(0)
            return f"value of {key}"

        @cached("key")
        def get_sync(self, key):
            self.sync_calls.append(key)
            return f"sync {key}"

    return Model


def test_ormcache_caches_the_awaited_value(registry):
    Model = async_model(registry)
    model = Model()
    assert inspect.iscoroutinefunction(Model.get) and inspect.iscoroutinefunction(model.get)
    assert Model.get.__doc__ == "Return the value of key." and Model.get.__wrapped__.__name__ == "get"
    assert Model.get.__cache__.func is Model.get.__wrapped__

    async def main():
        return [await model.get("a"), await model.get("a"), await model.get(key="a")]

    assert run(main()) == ["value of a"] * 3  # today: RuntimeError (a coroutine was cached)
    assert Model.calls == ["a"]
    cache, key, counter = get_cache_key_counter(model.get, "a")
    assert cache[key] == "value of a"
    assert (counter.hit, counter.miss) == (2, 1)

    Model.get.clear_cache(model)
    assert key not in cache
    assert run(model.get("a")) == "value of a" and Model.calls == ["a", "a"]
    # the plain method of the same class is a plain cached method
    assert not inspect.iscoroutinefunction(Model.get_sync)
    assert model.get_sync("a") == "sync a" and model.get_sync("a") == "sync a"
    assert Model.sync_calls == ["a"]


def test_ormcache_a_hit_is_awaited_as_the_methods_coroutine(registry):
    """What a hit returns behaves as the method's coroutine would; a hit is counted once."""
    Model = async_model(registry)
    model = Model()
    assert run(model.get("a")) == "value of a"  # cached from here on
    assert asyncio_iscoroutinefunction(Model.get) and asyncio_iscoroutinefunction(model.get)
    assert run(awaited_as_coroutines(lambda: model.get("a"), lambda: model.get(key="a"))) == ["value of a"] * 6
    _, _, counter = get_cache_key_counter(model.get, "a")
    assert (counter.hit, counter.miss) == (6, 1)
    sends_throws_and_closes(lambda: model.get("a"), "value of a")
    assert Model.calls == ["a"]


def test_ormcache_compiled_hit_on_async_def_runs_no_python_frame(LRU, monkeypatch):
    """The compiled hit path serves an ``async def`` method's hit without a Python frame (no
    coroutine of a wrapper to create and run): the sync hit's cost plus a done awaitable."""
    import ormcache
    from ormcache import Registry, _cache_c, decorators

    monkeypatch.setattr(decorators, "_impl", _cache_c)
    name = "test-async-frames"
    registry = Registry(name, lru_factory=LRU)
    try:
        Model = async_model(registry)
        model = Model()
        assert run(model.get("a")) == "value of a"
        frames = python_frames_of_hits(ormcache, [lambda: model.get("a"), lambda: Model.get(model, "a")], ["value of a"] * 2)
        # today, on 3.10+ too: ['wrapper', 'owner_keys', 'wrapper', 'owner_keys']
        assert frames == expected_frames(["wrapper", "owner_keys"] * 2)
        assert Model.calls == ["a"]
    finally:
        Registry.delete(name)


def test_ormcache_follows_the_owners_registry_and_forgets_deleted_ones(LRU, hit_path):
    import gc
    import weakref

    from ormcache import Registry

    names = [f"test-async-registry-{n}" for n in range(2)]
    first, second = (Registry(name, lru_factory=LRU) for name in names)
    try:
        Model = async_model(first)
        model = Model()
        assert run(model.get("a")) == "value of a"
        Model.pool = second  # the wrapper remembers the last registry: it must see the change
        assert run(model.get("a")) == "value of a" and Model.calls == ["a", "a"]
        assert run(model.get("a")) == "value of a" and Model.calls == ["a", "a"]
        assert len(first.caches["default"]) == len(second.caches["default"]) == 1
        ref = weakref.ref(second)
        Registry.delete(names[1])
        del second
        Model.pool = Registry(names[1], lru_factory=LRU)  # the new registry of that database
        assert run(model.get("a")) == "value of a" and Model.calls == ["a", "a", "a"]
        gc.collect()
        assert ref() is None
    finally:
        for name in names:
            Registry.delete(name)


def test_ormcache_add_value_and_registry_clear(registry):
    Model = async_model(registry)
    model = Model()
    Model.get.__cache__.add_value(model, "k", cache_value="prefilled")
    assert run(model.get("k")) == "prefilled" and Model.calls == []
    registry.clear_cache()
    assert run(model.get("k")) == "value of k" and Model.calls == ["k"]


def test_ormcache_hundred_tasks_on_one_cold_key_compute_once(registry):
    Model = async_model(registry)
    model = Model()
    gate = Model.gate = Gate()

    async def main():
        tasks = [asyncio.ensure_future(model.get("x")) for _ in range(100)]
        await until(lambda: gate.started)
        for _ in range(10):
            await asyncio.sleep(0)
        assert len(Model.get.flights.table) == 1
        gate.opened.set()
        return await asyncio.gather(*tasks)

    assert run(main()) == ["value of x"] * 100
    assert Model.calls == ["x"] and gate.started == 1
    assert Model.get.flights.table == {}
    _, _, counter = get_cache_key_counter(model.get, "x")
    assert (counter.hit, counter.miss) == (99, 1)


async def leader_and_waiters(model, gate, n):
    """The first ``model.get("x")``, held by ``gate``, and ``n`` more calls of the same key,
    waiting on it."""
    leader = asyncio.ensure_future(model.get("x"))
    await until(lambda: gate.started == 1)
    waiters = [asyncio.ensure_future(model.get("x")) for _ in range(n)]
    for _ in range(5):
        await asyncio.sleep(0)
    return leader, waiters


def test_ormcache_cancelled_computation_is_retried_by_a_waiter(registry):
    Model = async_model(registry)
    model = Model()
    gate = Model.gate = Gate()

    async def main():
        leader, waiters = await leader_and_waiters(model, gate, 5)
        leader.cancel()
        await until(lambda: gate.started == 2)
        gate.opened.set()
        with pytest.raises(asyncio.CancelledError):
            await leader
        return await asyncio.gather(*waiters)

    assert run(main()) == ["value of x"] * 5
    assert gate.started == 2
    cache, key, _ = get_cache_key_counter(model.get, "x")
    assert cache[key] == "value of x"


def test_ormcache_a_cancelled_waiter_leaves_the_others_alone(registry):
    Model = async_model(registry)
    model = Model()
    gate = Model.gate = Gate()

    async def main():
        leader, waiters = await leader_and_waiters(model, gate, 3)
        waiters[0].cancel()
        for _ in range(5):
            await asyncio.sleep(0)
        gate.opened.set()
        results = await asyncio.gather(leader, *waiters, return_exceptions=True)
        return [type(result).__name__ if isinstance(result, BaseException) else result for result in results]

    assert run(main()) == ["value of x", "CancelledError", "value of x", "value of x"]
    assert gate.started == 1


def test_ormcache_failure_reaches_its_caller_only_and_is_not_cached(registry):
    outcomes = ["fail", "ok"]
    gate = Gate()

    class Model:
        _name = "test.failing"
        pool = registry

        @cached("key")
        async def get(self, key):
            await gate.enter()
            if outcomes.pop(0) == "fail":
                raise LookupError("backend down")
            return key

    model = Model()

    async def main():
        leader = asyncio.ensure_future(model.get(1))
        await until(lambda: gate.started == 1)
        waiters = [asyncio.ensure_future(model.get(1)) for _ in range(5)]
        for _ in range(5):
            await asyncio.sleep(0)
        gate.opened.set()
        with pytest.raises(LookupError, match="backend down"):
            await leader
        return await asyncio.gather(*waiters)

    assert run(main()) == [1] * 5
    assert gate.started == 2
    assert Model.get.flights.table == {}
    outcomes.append("fail")
    registry.clear_cache()
    with pytest.raises(LookupError):
        run(model.get(1))
    cache, key, _ = get_cache_key_counter(model.get, 1)
    assert key not in cache


def test_ormcache_a_clear_during_the_computation_drops_its_value(registry):
    Model = async_model(registry)
    model = Model()
    gate = Model.gate = Gate()

    async def main():
        task = asyncio.ensure_future(model.get("x"))
        await until(lambda: gate.started == 1)
        registry.clear_cache()
        gate.opened.set()
        return await task

    assert run(main()) == "value of x"  # returned, not stored: it may predate the clear
    cache, key, _ = get_cache_key_counter(model.get, "x")
    assert key not in cache
    Model.gate = None
    assert run(model.get("x")) == "value of x" and key in cache


def test_ormcache_recursion_on_the_same_key_does_not_deadlock(registry):
    class Model:
        _name = "test.recursive"
        pool = registry
        calls = []

        @cached("n")
        async def f(self, n, depth=0):
            self.calls.append(depth)
            if depth < 2:
                return await self.f(n, depth + 1)
            return n

    assert run(Model().f(5)) == 5 and Model.calls == [0, 1, 2]


def test_ormcache_two_tasks_awaiting_each_others_key_do_not_deadlock(registry):
    class Model:
        _name = "test.cycle"
        pool = registry
        calls = []

        @cached("n")
        async def f(self, n, hops=0):
            self.calls.append((n, hops))
            await asyncio.sleep(0.01)  # both tasks lead their own key before awaiting the other
            if hops == 0:
                return n + await self.f(1 - n, 1)  # key 0 awaits key 1, key 1 awaits key 0
            return n

    model = Model()

    async def main():
        return await asyncio.gather(model.f(0), model.f(1))

    assert run(main()) == [1, 1]
    # the second task computed key 0 itself: waiting would have closed a cycle
    assert sorted(Model.calls) == [(0, 0), (0, 1), (1, 0)]
    assert Model.f.flights.table == {}


def test_ormcache_threads_each_with_their_own_loop(registry):
    Model = async_model(registry)
    model = Model()
    errors, results = [], []

    def thread_main():
        async def main():
            return await asyncio.gather(*(model.get(k) for k in ("a", "b") * 10))

        try:
            results.append(run(main()))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=thread_main) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert errors == []
    assert results == [["value of a", "value of b"] * 10] * 4
    assert 2 <= len(Model.calls) <= 8  # at most once per key and loop
    assert Model.get.flights.table == {}


def test_ormcache_refuses_async_generators(registry):
    with pytest.raises(TypeError, match="ormcache cannot cache the async generator function .*items"):

        class Model:
            @cached("x")
            async def items(self, x):
                yield x

    with pytest.raises(TypeError, match="ormcache_multi cannot cache the async generator"):

        class Other:
            @ormcache_multi(multi="ids")
            async def items(self, ids):
                yield ids


def test_ormcache_classmethod_staticmethod_function_and_context(registry):
    calls = []

    class Model:
        _name = "test.kinds"
        pool = registry
        env = None

        @classmethod
        @cached("x")
        async def by_class(cls, x):
            calls.append(("class", x))
            return x

        @staticmethod
        @cached("x")
        async def static(x):
            calls.append(("static", x))
            return x

        @ormcache_context("x", keys=("lang",))
        async def translated(self, x, context=None):
            calls.append(("context", x, (context or {}).get("lang")))
            return f"{x}/{(context or {}).get('lang')}"

    model = Model()
    assert inspect.iscoroutinefunction(Model.by_class) and inspect.iscoroutinefunction(Model.static)

    async def main():
        return [
            await Model.by_class(1), await model.by_class(1),
            await Model.static(2), await Model.static(2),
            await model.translated(3, context={"lang": "fr"}), await model.translated(3, context={"lang": "fr"}),
            await model.translated(3, context={"lang": "de"}),
        ]

    assert run(main()) == [1, 1, 2, 2, "3/fr", "3/fr", "3/de"]
    assert calls == [("class", 1), ("static", 2), ("context", 3, "fr"), ("context", 3, "de")]


def test_ormcache_unhashable_key_is_computed_uncached(registry, caplog):
    Model = async_model(registry)
    model = Model()

    async def main():
        return [await model.get(["a"]), await model.get(["a"])]

    assert run(main()) == ["value of ['a']"] * 2
    assert Model.calls == [["a"], ["a"]]
    _, _, counter = get_cache_key_counter(model.get, "a")
    assert (counter.err, counter.hit, counter.miss) == (2, 0, 0)


# -- ormcache_multi ----------------------------------------------------------------------------


def multi_model(registry, gate=None):
    class Model:
        _name = "test.multi"
        pool = registry
        calls = []

        @ormcache_multi("mode", multi="ids")
        async def names(self, mode, ids):
            self.calls.append(list(ids))
            if gate is not None:
                await gate.enter()
            await asyncio.sleep(0)
            return {i: f"{mode}{i}" for i in ids}

    return Model


def test_multi_awaits_the_method_once_with_the_missing_ids(registry):
    Model = multi_model(registry)
    model = Model()
    assert inspect.iscoroutinefunction(Model.names)

    async def main():
        first = await model.names("n", [1, 2])
        second = await model.names("n", ids=[3, 2, 1])
        return first, second

    assert run(main()) == ({1: "n1", 2: "n2"}, {3: "n3", 2: "n2", 1: "n1"})
    assert Model.calls == [[1, 2], [3]]
    assert list(run(model.names("n", [2, 1, 3]))) == [2, 1, 3]  # in the order asked
    assert Model.calls == [[1, 2], [3]]


def test_multi_per_id_single_flight(registry):
    gate = Gate()
    Model = multi_model(registry, gate)
    model = Model()

    async def main():
        first = asyncio.ensure_future(model.names("n", [1, 2, 3]))
        await until(lambda: gate.started == 1)
        second = asyncio.ensure_future(model.names("n", [2, 3, 4]))
        await until(lambda: gate.started == 2)  # computes 4 only, then waits for 2 and 3
        gate.opened.set()
        return await first, await second

    assert run(main()) == ({1: "n1", 2: "n2", 3: "n3"}, {2: "n2", 3: "n3", 4: "n4"})
    assert Model.calls == [[1, 2, 3], [4]]
    assert Model.names.flights.table == {}


def test_multi_cancelled_computation_is_retried_by_a_waiter(registry):
    gate = Gate()
    Model = multi_model(registry, gate)
    model = Model()

    async def main():
        leader = asyncio.ensure_future(model.names("n", [1, 2]))
        await until(lambda: gate.started == 1)
        waiter = asyncio.ensure_future(model.names("n", [2, 3]))
        await until(lambda: gate.started == 2)
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        gate.opened.set()  # the waiter ends its own computation of 3, then computes 2 itself
        return await waiter

    assert run(main()) == {2: "n2", 3: "n3"}
    assert Model.calls == [[1, 2], [3], [2]]


def test_multi_failure_and_missing_id(registry):
    class Model:
        _name = "test.multi.fail"
        pool = registry
        calls = []

        @ormcache_multi(multi="ids")
        async def names(self, ids):
            self.calls.append(list(ids))
            return {i: i for i in ids if i != 13}

    model = Model()
    with pytest.raises(KeyError, match="returned no value for ids 13"):
        run(model.names([1, 13]))
    assert run(model.names([1])) == {1: 1}  # 1 was stored before the error
    assert Model.calls == [[1, 13]]
    assert Model.names.flights.table == {}
