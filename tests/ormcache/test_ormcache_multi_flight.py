"""``ormcache_multi`` under threads (issue #11): single flight per id, as ``ormcache``'s.

Two threads missing overlapping id sets compute each id once; an id another thread is computing
is waited for, never passed to the method again; a failed computation is not shared (the waiter
computes the id itself); recursion on an id in flight does not deadlock; a clear during the
computation stores nothing. Every test runs on both engines and both hit paths.
"""
import threading

import pytest

from ormcache import _cold, ormcache_multi
from support.models import make_model

WAIT = 10  # seconds: only reached when something is broken


def wait_until_waiting(thread):
    """Until ``thread`` waits for another thread's flight."""
    for _ in range(WAIT * 1000):
        if thread.ident in _cold._waiting:
            return
        threading.Event().wait(0.001)
    raise AssertionError("the thread never waited for the other one's computation")


def start(target, *args):
    errors = []

    def guarded():
        try:
            target(*args)
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            errors.append(exc)

    thread = threading.Thread(target=guarded)
    thread.errors = errors
    thread.start()
    return thread


def finish(*threads):
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive(), "deadlock?"
        assert thread.errors == []


def names_model(registry, calls, gate=None, fail=None):
    """``names(mode, ids)``: records each call's ids; the first call waits for ``gate``, and
    raises if it was given the id ``fail``."""

    @ormcache_multi("mode", multi="ids")
    def names(self, mode, ids):
        calls.append(sorted(ids))
        first = len(calls) == 1
        if gate is not None and first:
            assert gate.wait(WAIT)
        if fail is not None and fail in ids and first:
            raise RuntimeError("first computation fails")
        return {i: f"{mode}{i}" for i in ids}

    return make_model(registry, names=names)


def test_overlapping_ids_are_computed_once(registry):
    calls, results = [], {}
    gate = threading.Event()
    Model = names_model(registry, calls, gate)
    first = start(lambda: results.setdefault("first", Model().names("a", [1, 2, 3])))
    for _ in range(WAIT * 1000):  # until the first thread computes (its flights are up)
        if calls:
            break
        threading.Event().wait(0.001)
    second = start(lambda: results.setdefault("second", Model().names("a", [2, 3, 4])))
    wait_until_waiting(second)  # it computed 4 alone, and waits for 2 and 3
    assert calls == [[1, 2, 3], [4]]
    gate.set()
    finish(first, second)
    assert calls == [[1, 2, 3], [4]]
    assert results == {"first": {1: "a1", 2: "a2", 3: "a3"}, "second": {2: "a2", 3: "a3", 4: "a4"}}
    assert _cold._waiting == {}
    assert sorted(key[3] for key in registry.caches["default"].keys()) == [1, 2, 3, 4]
    assert Model().names("a", [4, 3, 2, 1]) == {4: "a4", 3: "a3", 2: "a2", 1: "a1"} and len(calls) == 2


def test_a_failed_computation_is_not_shared(registry):
    calls, results = [], {}
    gate = threading.Event()
    Model = names_model(registry, calls, gate, fail=1)
    first = start(lambda: results.setdefault("first", Model().names("a", [1, 2])))
    for _ in range(WAIT * 1000):
        if calls:
            break
        threading.Event().wait(0.001)
    second = start(lambda: results.setdefault("second", Model().names("a", [2, 5])))
    wait_until_waiting(second)
    gate.set()
    first.join(WAIT)
    assert [type(e) for e in first.errors] == [RuntimeError]
    second.join(WAIT)
    assert second.errors == [] and results == {"second": {2: "a2", 5: "a5"}}
    assert calls == [[1, 2], [5], [2]]  # the waiter computed 2 itself, after the failure


def test_many_threads_each_id_once(registry):
    calls = []
    Model = names_model(registry, calls)
    barrier = threading.Barrier(8)
    results = [None] * 8

    def run(i):
        barrier.wait()
        results[i] = Model().names("a", [(i + j) % 12 for j in range(6)])

    threads = [start(run, i) for i in range(8)]
    finish(*threads)
    computed = sorted(i for ids in calls for i in ids)
    assert computed == sorted(set(computed)) == list(range(12))  # each id once
    for i, result in enumerate(results):
        assert result == {(i + j) % 12: f"a{(i + j) % 12}" for j in range(6)}


def test_recursion_on_an_id_in_flight(registry):
    calls = []

    class Model:
        _name = "m"
        pool = registry

        @ormcache_multi(multi="ids")
        def names(self, ids):
            calls.append(list(ids))
            if ids == [1, 2]:
                assert self.names([2, 3]) == {2: "n2", 3: "n3"}  # 2 is in flight here
            return {i: f"n{i}" for i in ids}

    assert Model().names([1, 2]) == {1: "n1", 2: "n2"}
    assert calls == [[1, 2], [2, 3]]
    assert Model().names([3, 2, 1]) == {3: "n3", 2: "n2", 1: "n1"} and len(calls) == 2


def test_a_clear_during_the_computation_stores_nothing(registry):
    class Model:
        _name = "m"
        pool = registry

        @ormcache_multi(multi="ids")
        def names(self, ids):
            registry.clear_cache()
            return {i: i for i in ids}

    assert Model().names([1, 2]) == {1: 1, 2: 2}
    assert len(registry.caches["default"]) == 0


def test_the_method_is_called_back_as_it_was_called(registry):
    """Positional, keyword and default ids: the method gets the same arguments, with only the
    missing ids as a list."""
    seen = []

    class Model:
        _name = "m"
        pool = registry

        @ormcache_multi("mode", multi="ids")
        def names(self, ids=(1, 2), mode="a", *rest, **extra):
            seen.append((list(ids), mode, rest, extra))
            return {i: f"{mode}{i}" for i in ids}

    m = Model()
    assert m.names((1, 2), "b") == {1: "b1", 2: "b2"}
    assert m.names([2, 3], "b", "x") == {2: "b2", 3: "b3"}
    assert m.names(ids=[4], mode="b", flag=1) == {4: "b4"}
    assert m.names() == {1: "a1", 2: "a2"}
    assert seen == [([1, 2], "b", (), {}), ([3], "b", ("x",), {}), ([4], "b", (), {"flag": 1}), ([1, 2], "a", (), {})]
    with pytest.raises(TypeError):
        m.names(1, 2, ids=3)  # as the method: ids given twice


def test_ids_from_a_generator_are_read_once(registry):
    calls = []
    Model = names_model(registry, calls)
    assert Model().names("a", (i for i in [1, 2])) == {1: "a1", 2: "a2"}
    assert Model().names("a", (i for i in [2, 3])) == {2: "a2", 3: "a3"}
    assert calls == [[1, 2], [3]]
