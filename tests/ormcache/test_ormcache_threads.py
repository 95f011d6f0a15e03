"""ormcache under threads: single flight, no lock across keys, no deadlock on cycles."""
import threading
import time

from ormcache import ormcache as cached
from ormcache import _cold

WAIT = 10  # seconds: only reached when something is broken


def run_threads(count, target):
    errors = []

    def guarded(i):
        try:
            target(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert not any(t.is_alive() for t in threads), "threads still running: deadlock?"
    assert errors == []


def test_single_flight_16_threads_compute_once(registry):
    calls = []
    release = threading.Event()
    barrier = threading.Barrier(16)

    class Model:
        _name = "m"
        pool = registry

        @cached("key")
        def slow(self, key):
            calls.append(threading.get_ident())
            assert release.wait(WAIT)
            return {"value": key}

    results = [None] * 16

    def call(i):
        barrier.wait()
        results[i] = Model().slow("k")

    def release_later():
        time.sleep(0.3)  # every thread is in by now: waiting on the first one's computation
        release.set()

    threading.Thread(target=release_later).start()
    run_threads(16, call)
    assert len(calls) == 1
    assert all(r is results[0] for r in results) and results[0] == {"value": "k"}
    counter = registry.counters[("m", Model.slow.__wrapped__)]
    assert counter.miss == 1 and counter.hit == 15
    assert Model.__dict__["slow"].flights == {} and _cold._waiting == {}  # nothing left behind


def test_a_slow_key_does_not_block_other_keys(registry):
    started, release = threading.Event(), threading.Event()

    class Model:
        _name = "m"
        pool = registry

        @cached("key")
        def f(self, key):
            if key == "slow":
                started.set()
                assert release.wait(WAIT)
            return key

    slow = threading.Thread(target=Model().f, args=("slow",))
    slow.start()
    try:
        assert started.wait(WAIT)
        done = []
        other = threading.Thread(target=lambda: done.append(Model().f("fast")))
        other.start()
        other.join(WAIT)
        assert done == ["fast"]  # while "slow" is still being computed
        assert slow.is_alive()
    finally:
        release.set()
        slow.join(WAIT)
    assert Model().f("slow") == "slow"


def test_waiters_retry_when_the_computation_fails(registry):
    calls = []
    release = threading.Event()
    barrier = threading.Barrier(8)

    class Model:
        _name = "m"
        pool = registry

        @cached("key")
        def f(self, key):
            calls.append(key)
            if len(calls) == 1:
                assert release.wait(WAIT)
                raise RuntimeError("the first computation fails")
            return "ok"

    outcomes = []

    def call(i):
        barrier.wait()
        try:
            outcomes.append(Model().f("k"))
        except RuntimeError:
            outcomes.append("error")

    def release_later():
        time.sleep(0.3)
        release.set()

    threading.Thread(target=release_later).start()
    run_threads(8, call)
    # the error is not shared: one caller sees it, the others compute again (once) and hit
    assert sorted(outcomes) == ["error"] + ["ok"] * 7
    assert len(calls) == 2
    assert Model.__dict__["f"].flights == {} and _cold._waiting == {}


def test_cycle_between_two_threads_does_not_deadlock(registry):
    """Thread 0 computes a, which needs b; thread 1 computes b, which needs a: whichever waits
    second would close a cycle, so it computes the other key itself instead of waiting."""
    a_started, b_started = threading.Event(), threading.Event()

    class Model:
        _name = "m"
        pool = registry

        @cached("key")
        def f(self, key, depth=0):
            if key == "a" and depth == 0:
                a_started.set()
                assert b_started.wait(WAIT)
                time.sleep(0.05)
                return "a+" + self.f("b", 1)
            if key == "b" and depth == 0:
                b_started.set()
                assert a_started.wait(WAIT)
                time.sleep(0.2)
                return "b+" + self.f("a", 1)
            return key

    results = {}
    run_threads(2, lambda i: results.__setitem__(i, Model().f("ab"[i])))
    assert results[0] in ("a+b", "a+b+a") and results[1] in ("b+a", "b+a+b")
    assert results[0] == "a+b+a" or results[1] == "b+a+b"  # one computed the other's key inline


def test_concurrent_hits_misses_and_clears_stay_consistent(registry, LRU):
    class Model:
        _name = "m"
        pool = registry

        @cached("key")
        def f(self, key):
            return key * 2

    def work(i):
        m = Model()
        for n in range(2000):
            key = (n * 7 + i) % 50
            assert m.f(key) == key * 2
            if n % 500 == 0:
                registry.clear_cache()

    run_threads(8, work)
    lru = registry.caches["default"]
    if hasattr(lru, "_check"):
        lru._check()
    assert all(value == key[2] * 2 for key, value in lru.items())
    assert not Model.f.__cache__.func.__name__ == ""  # the wrapper is intact
    counter = registry.counters[("m", Model.f.__wrapped__)]
    assert counter.hit + counter.miss > 0


def test_single_flight_per_database_when_one_method_serves_two(LRU, hit_path):
    """One method, two registries (databases): the same key misses in both at once. Each
    database computes it once however many threads ask (the compiled miss keys the first
    database's flights by the key alone, the other's by (LRU, key): both single), and neither
    waits for the other's computation."""
    from ormcache import Registry

    names = [f"two-databases-{i}-{id(LRU)}-{hit_path.__name__}" for i in range(2)]
    registries = [Registry(name, lru_factory=LRU) for name in names]
    try:
        calls = []
        entered = [threading.Event(), threading.Event()]
        release = threading.Event()

        class Model:
            _name = "m"

            def __init__(self, pool):
                self.pool = pool

            @cached("key")
            def slow(self, key):
                database = registries.index(self.pool)
                calls.append(database)
                entered[database].set()
                assert release.wait(WAIT)
                return (database, key)

        release.set()
        Model(registries[0]).slow("warm")  # the first miss: registries[0]'s LRU keys by the key alone
        calls.clear()
        release.clear()
        entered[0].clear()
        results = {}
        barrier = threading.Barrier(8)

        def call(i):
            database = i % 2
            barrier.wait()
            results[i] = Model(registries[database]).slow("k")

        def release_later():
            # both databases compute at once (neither waits for the other's flight)
            assert entered[0].wait(WAIT) and entered[1].wait(WAIT)
            time.sleep(0.2)  # every thread is in by now
            release.set()

        releaser = threading.Thread(target=release_later)
        releaser.start()
        run_threads(8, call)
        releaser.join(WAIT)
        assert sorted(calls) == [0, 1]
        assert all(results[i] == (i % 2, "k") for i in range(8))
        assert Model.__dict__["slow"].flights == {} and _cold._waiting == {}
    finally:
        for name in names:
            Registry.delete(name)
