"""No flight table can hang (issue #20): a finished flight wakes its waiters whatever its removal
from the table does.

Two keys with the same hash, ``a`` and ``b``, are computed at once (their flights sit in one
table, ``a``'s first); a third caller waits for ``b``'s flight. Then a comparison with ``a``
raises once, exactly when ``b``'s flight is removed (the removal probes past ``a``): the caller
that computed ``b`` still gets its value, the waiter is woken with it, and once the value has
left the cache a new caller of ``b`` computes it (the flight left behind is done, never waited
for). Every flight table: ``lru_cache(single_flight=True)``, ``lru_cache`` on ``async def``,
``ormcache`` and ``ormcache_multi`` (sync and async, both hit paths), on both engines; and the
SQLAlchemy bridge's. Each scenario runs in a subprocess with a timeout, so that a hang fails the
test instead of hanging the suite.
"""
import asyncio
import json
import subprocess
import sys
import textwrap

import pytest

WAIT = 10  # seconds: only reached when something is broken

LRU_CACHES = [
    pytest.param("fastlru._functools_c", id="c-extension", marks=pytest.mark.c_extension),
    pytest.param("fastlru._functools_py", id="pure-python"),
]
ORMCACHES = [
    pytest.param("ormcache._cache_c", "fastlru._lru_c", id="c-hit-c-lru", marks=pytest.mark.c_extension),
    pytest.param("ormcache._cache_py", "fastlru._lru_py", id="py-hit-py-lru"),
    pytest.param("ormcache._cache_py", "fastlru._lru_c", id="py-hit-c-lru", marks=pytest.mark.c_extension),
]

PRELUDE = """
import asyncio, importlib, json, sys, threading

WAIT = %(wait)r
armed = [False]
compared = []  # one entry per comparison of two different keys


class Key:
    # every Key hashes alike; comparing two different ones raises once armed (then disarms)
    def __init__(self, name):
        self.name = name

    def __hash__(self):
        return 42

    def __eq__(self, other):
        if self is other:
            return True
        compared.append(threading.get_ident())
        if armed[0]:
            armed[0] = False
            raise ValueError("hostile __eq__")
        return False

    def __repr__(self):
        return "Key(%%r)" %% self.name


A, B = Key("a"), Key("b")
computed = []


def outcome(fn, *args):
    try:
        return ["value", fn(*args)]
    except BaseException as exc:
        return ["error", repr(exc)]
"""

SYNC = """
gates = {"a": threading.Event(), "b": threading.Event()}
entered = {"a": threading.Event(), "b": threading.Event()}


def body(name):
    computed.append(name)
    entered[name].set()
    gates[name].wait(WAIT)
    return "value " + name


def start(*args):
    box = []
    thread = threading.Thread(target=lambda: box.append(outcome(*args)), daemon=True)
    thread.start()
    return thread, box


def result(thread, box):
    thread.join(WAIT)
    return box[0] if box else ["hang"]


def scenario(call, clear):
    t1 = start(call, A)
    assert entered["a"].wait(WAIT)
    t2 = start(call, B)
    assert entered["b"].wait(WAIT)
    del compared[:]
    t3 = start(call, B)  # joins b's flight: its lookup there compares b with a
    for _ in range(WAIT * 1000):
        if t3[0].ident in compared:
            break
        threading.Event().wait(0.001)
    armed[0] = True  # b's removal from the table compares b with a: it raises there
    gates["b"].set()
    report = {"computer": result(*t2), "waiter": result(*t3)}
    clear()
    report["after"] = result(*start(call, B))
    gates["a"].set()
    report["other"] = result(*t1)
    report["computed"] = computed
    return report
"""

ASYNC = """
def scenario(call, clear):
    async def main():
        gates = {"a": asyncio.Event(), "b": asyncio.Event()}
        entered = {"a": asyncio.Event(), "b": asyncio.Event()}

        async def body(name):
            computed.append(name)
            entered[name].set()
            await gates[name].wait()
            return "value " + name

        async def result(awaitable):
            try:
                return ["value", await asyncio.wait_for(awaitable, WAIT)]
            except asyncio.TimeoutError:
                return ["hang"]
            except BaseException as exc:
                return ["error", repr(exc)]

        bodies.append(body)
        t1 = asyncio.ensure_future(call(A))
        await entered["a"].wait()
        t2 = asyncio.ensure_future(call(B))
        await entered["b"].wait()
        t3 = asyncio.ensure_future(call(B))  # joins b's flight
        for _ in range(5):
            await asyncio.sleep(0)
        armed[0] = True  # b's removal from the table compares b with a: it raises there
        gates["b"].set()
        report = {"computer": await result(t2), "waiter": await result(t3)}
        clear()
        report["after"] = await result(call(B))
        gates["a"].set()
        report["other"] = await result(t1)
        report["computed"] = computed
        return report

    return asyncio.run(main())


bodies = []  # the scenario's body, once its loop runs
"""


def run_scenario(kind, setup):
    """Runs the scenario (``kind``: SYNC or ASYNC) in a subprocess; ``setup`` defines ``call(key)``
    (whose computation is ``body(key.name)``) and ``clear()``, then ``report = scenario(call, clear)``."""
    source = PRELUDE % {"wait": WAIT} + kind + textwrap.dedent(setup) + "\nprint(json.dumps(report))\n"
    done = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=8 * WAIT)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report.pop("left", 0) == 0  # no flight stays in the table (where it can be seen)
    return report


EXPECTED = {
    "computer": ["value", "value b"],  # its value, not the removal's error
    "waiter": ["value", "value b"],  # woken, with the value
    "after": ["value", "value b"],  # the flight left behind is not waited for
    "other": ["value", "value a"],
    "computed": ["a", "b", "b"],
}
MULTI_EXPECTED = {
    "computer": ["value", {"b": "value b"}],
    "waiter": ["value", {"b": "value b"}],
    "after": ["value", {"b": "value b"}],
    "other": ["value", {"a": "value a"}],
    "computed": ["a", "b", "b"],
}


@pytest.mark.parametrize("module", LRU_CACHES)
def test_lru_cache_single_flight(module):
    assert run_scenario(SYNC, f"""
        f = importlib.import_module({module!r}).lru_cache(maxsize=None, single_flight=True)(lambda key: body(key.name))
        report = scenario(f, f.cache_clear)
        if hasattr(f, "_flight"):  # the twin's table
            report["left"] = len(f._flight._pending)
    """) == EXPECTED


@pytest.mark.parametrize("module", LRU_CACHES)
def test_lru_cache_coroutine(module):
    assert run_scenario(ASYNC, f"""
        @importlib.import_module({module!r}).lru_cache(maxsize=None)
        async def f(key):
            return await bodies[0](key.name)

        report = scenario(f, f.cache_clear)
    """) == EXPECTED


def ormcache_setup(hit, lru, decorator, method, call):
    """The setup of an ``ormcache`` scenario: a registry on the ``lru`` engine, the ``hit`` path."""
    return f"""
        from ormcache import Registry, decorators, ormcache, ormcache_multi
        decorators._impl = importlib.import_module({hit!r})
        registry = Registry("flight-hostile", lru_factory=importlib.import_module({lru!r}).LRU)

        class Model:
            _name = "m"
            pool = registry

            @{decorator}
            {method}

        {call}
        report = scenario(call, registry.clear_all_caches)
        flights = getattr(Model.__dict__["get"], "flights", None)  # (the twin multi's: not exposed)
        if flights is not None:
            report["left"] = len(getattr(flights, "table", flights))  # (an AsyncFlights' table)
    """


@pytest.mark.parametrize("hit, lru", ORMCACHES)
def test_ormcache(hit, lru):
    assert run_scenario(SYNC, ormcache_setup(hit, lru, 'ormcache("key")', """
            def get(self, key):
                return body(key.name)""", "call = Model().get")) == EXPECTED


@pytest.mark.parametrize("hit, lru", ORMCACHES)
def test_ormcache_multi(hit, lru):
    assert run_scenario(SYNC, ormcache_setup(hit, lru, 'ormcache_multi(multi="keys")', """
            def get(self, keys):
                return {key: body(key.name) for key in keys}""", """
        def call(key):
            return {k.name: v for k, v in Model().get([key]).items()}""")) == MULTI_EXPECTED


@pytest.mark.parametrize("hit, lru", ORMCACHES)
def test_ormcache_coroutine(hit, lru):
    assert run_scenario(ASYNC, ormcache_setup(hit, lru, 'ormcache("key")', """
            async def get(self, key):
                return await bodies[0](key.name)""", "call = Model().get")) == EXPECTED


@pytest.mark.parametrize("hit, lru", ORMCACHES)
def test_ormcache_multi_coroutine(hit, lru):
    assert run_scenario(ASYNC, ormcache_setup(hit, lru, 'ormcache_multi(multi="keys")', """
            async def get(self, keys):
                return {key: await bodies[0](key.name) for key in keys}""", """
        async def call(key):
            return {k.name: v for k, v in (await Model().get([key])).items()}""")) == MULTI_EXPECTED
