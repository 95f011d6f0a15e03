"""Threads hammering one cache with a tiny switch interval (so the GIL changes hands in the
middle of operations). Afterwards: no unexpected exception in any thread, ``len <= count``,
``_check()`` passes, and the counters add up (no lost update)."""
import random
import threading

import pytest

from support.freethreaded import fast_switching, run_threads  # noqa: F401 - autouse

THREADS = 8
OPS_PER_THREAD = 200_000
KEY_SPACE = 96
HANG = 300  # seconds a thread may take before run_threads calls it hung (200,000 operations each)


def check_after(lru):
    assert lru._check() is None
    assert len(lru) <= lru.count
    assert len(lru) == len(list(lru)) == len(lru.keys()) == lru.info().size
    if lru.maxweight is not None:
        assert lru.weight <= lru.maxweight


class Stats:
    def __init__(self):
        self.lookups = 0
        self.evicted = []
        self.lock = threading.Lock()

    def add_lookups(self, n):
        with self.lock:
            self.lookups += n


def mixed_worker(lru, stats, n_ops, seed, fixed_count=True):
    """A worker doing ``n_ops`` random operations; values are ``(key, tag)`` so a value read
    under a key proves it belongs to that key."""

    def work(tid):
        rnd = random.Random(seed + tid)
        ops = rnd.choices(range(16), k=n_ops)
        keys = rnd.choices(range(KEY_SPACE), k=n_ops)
        lookups = 0
        for op, k in zip(ops, keys):
            if op <= 3:
                lru[k] = (k, tid)
            elif op <= 5:
                lookups += 1
                v = lru.get(k)
                if v is not None and v[0] != k:
                    raise AssertionError(f"key {k} maps to {v}")
            elif op == 6:
                lookups += 1
                try:
                    v = lru[k]
                except KeyError:
                    pass
                else:
                    if v[0] != k:
                        raise AssertionError(f"key {k} maps to {v}")
            elif op == 7:
                v = lru.peek(k)
                if v is not None and v[0] != k:
                    raise AssertionError(f"key {k} maps to {v}")
            elif op == 8:
                k in lru
            elif op == 9:
                v = lru.pop(k, None)
                if v is not None and v[0] != k:
                    raise AssertionError(f"popped {v} under {k}")
            elif op == 10:
                try:
                    del lru[k]
                except KeyError:
                    pass
            elif op == 11:
                v = lru.setdefault(k, (k, tid))
                if v[0] != k:
                    raise AssertionError(f"setdefault {v} under {k}")
            elif op == 12:
                try:
                    pk, pv = lru.popitem()
                except KeyError:
                    pass
                else:
                    if pv[0] != pk:
                        raise AssertionError(f"popitem {pk} -> {pv}")
            elif op == 13:
                lru.update([(k, (k, tid)), ((k + 1) % KEY_SPACE, ((k + 1) % KEY_SPACE, tid))])
            elif op == 14:
                for ik, iv in lru.items():
                    if iv[0] != ik:
                        raise AssertionError(f"items {ik} -> {iv}")
                if fixed_count and len(lru.keys()) > lru.count:
                    raise AssertionError("keys() longer than count")
            else:
                try:
                    for _ in lru:
                        pass
                except RuntimeError:
                    pass  # mutated by another thread during iteration: the contract
        stats.add_lookups(lookups)

    return work


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_mixed_operations_eight_threads(LRU, fast_switching):
    stats = Stats()
    lru = LRU(64, on_evict=lambda k, v: stats.evicted.append((k, v)))
    worker = mixed_worker(lru, stats, OPS_PER_THREAD, seed=1)
    errors = run_threads([worker] * THREADS, HANG)
    assert errors == []
    check_after(lru)
    info = lru.info()
    assert info.hits + info.misses == stats.lookups
    assert info.evictions == len(stats.evicted)
    assert all(v[0] == k for k, v in stats.evicted)
    assert info.evictions > 0 and info.hits > 0 and info.misses > 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_mixed_operations_weighted(LRU, fast_switching):
    stats = Stats()
    lru = LRU(64, maxweight=40, getsizeof=lambda v: v[0] % 4, on_evict=lambda k, v: stats.evicted.append((k, v)))
    worker = mixed_worker(lru, stats, OPS_PER_THREAD // 4, seed=2)
    errors = run_threads([worker] * THREADS, HANG)
    assert errors == []
    check_after(lru)
    assert lru.weight == sum(v[0] % 4 for v in lru.values())
    info = lru.info()
    assert info.hits + info.misses == stats.lookups
    assert info.evictions == len(stats.evicted)


@pytest.mark.timeout(600)
def test_resize_and_clear_while_others_work(LRU, fast_switching):
    stats = Stats()
    lru = LRU(50, on_evict=lambda k, v: stats.evicted.append(k))
    worker = mixed_worker(lru, stats, 20_000, seed=3, fixed_count=False)
    stop = threading.Event()

    def resizer(tid):
        rnd = random.Random(tid)
        while not stop.is_set():
            lru.count = rnd.randint(-2, 80)

    def clearer(tid):
        while not stop.is_set():
            lru.clear()
            for _ in range(200):
                if stop.is_set():
                    break
                lru[tid] = (tid, tid)

    def workers_then_stop(tid):
        try:
            worker(tid)
        finally:
            done.append(tid)
            if len(done) == 4:
                stop.set()

    done = []
    errors = run_threads([workers_then_stop] * 4 + [resizer, resizer, clearer, clearer], HANG)
    assert errors == []
    check_after(lru)
    info = lru.info()
    assert info.hits + info.misses == stats.lookups
    assert info.evictions == len(stats.evicted)
    lru.count = 10
    lru.update([(i, (i, 0)) for i in range(100)])
    assert lru.keys() == list(range(99, 89, -1))
    check_after(lru)


@pytest.mark.timeout(600)
def test_resize_down_atomic_for_readers(LRU, fast_switching):
    # Readers never see more entries than the smallest count ever set after it was set.
    lru = LRU(1000, [(i, i) for i in range(1000)])
    stop = threading.Event()
    bad = []

    def shrinker(tid):
        for c in range(1000, 0, -7):
            lru.count = c
            n = len(lru)
            if n > c:
                bad.append((c, n))
        stop.set()

    def reader(tid):
        while not stop.is_set():
            c = lru.count
            ks = lru.keys()  # count only goes down: a finished shrink bounds what follows
            if len(ks) > c:
                bad.append(("more keys than count", c, len(ks)))
            if len(ks) != len(set(ks)):
                bad.append(("duplicate keys", len(ks)))
            lru.get(tid)

    errors = run_threads([shrinker, reader, reader, reader], HANG)
    assert errors == []
    assert bad == []
    check_after(lru)


@pytest.mark.timeout(600)
def test_on_evict_reentering_from_many_threads(LRU, fast_switching):
    # on_evict writes into the cache it is called from, in every thread: no deadlock.
    calls = []

    def on_evict(key, value):
        calls.append(key)
        if isinstance(key, int):
            lru[("again", key % 7)] = value
            lru.get(key)

    lru = LRU(16, on_evict=on_evict)

    def work(tid):
        for i in range(10_000):
            lru[tid * 100_000 + i] = i
            lru.get(tid * 100_000 + i - 3)

    errors = run_threads([work] * 4, HANG)
    assert errors == []
    assert calls
    check_after(lru)
    assert lru.info().evictions == len(calls)


@pytest.mark.timeout(600)
def test_iterators_in_threads_raise_only_runtimeerror(LRU, fast_switching):
    lru = LRU(200, [(i, i) for i in range(200)])
    stop = threading.Event()
    raised = []

    def mutator(tid):
        rnd = random.Random(tid)
        for _ in range(30_000):
            k = rnd.randrange(400)
            lru[k] = k
            lru.pop(rnd.randrange(400), None)
        stop.set()

    def iterator(tid):
        while not stop.is_set():
            try:
                for k in (lru if tid % 2 else reversed(lru)):
                    if not isinstance(k, int):
                        raise AssertionError(k)
            except RuntimeError:
                raised.append(tid)

    errors = run_threads([mutator, iterator, iterator, iterator], HANG)
    assert errors == []
    assert raised, "iteration never observed a concurrent mutation"
    check_after(lru)


class SlowKey:
    """Colliding hashes and a Python ``__eq__``: the GIL changes hands during comparisons, so
    lookups see other threads' mutations and restart."""

    __slots__ = ("n",)

    def __init__(self, n):
        self.n = n

    def __hash__(self):
        return self.n % 4

    def __eq__(self, other):
        return isinstance(other, SlowKey) and other.n == self.n


@pytest.mark.timeout(600)
def test_colliding_python_keys_from_many_threads(LRU, fast_switching):
    lru = LRU(48)
    gave_up = []

    def work(tid):
        rnd = random.Random(tid)
        for _ in range(15_000):
            k = SlowKey(rnd.randrange(100))
            op = rnd.randrange(5)
            try:
                if op <= 1:
                    lru[k] = (k.n, tid)
                elif op == 2:
                    v = lru.get(k)
                    if v is not None and v[0] != k.n:
                        raise AssertionError(f"{k.n} -> {v}")
                elif op == 3:
                    v = lru.pop(k, None)
                    if v is not None and v[0] != k.n:
                        raise AssertionError(f"popped {v} under {k.n}")
                else:
                    k in lru
            except RuntimeError as exc:
                # Allowed by the contract only as the restart bound, with its message.
                if str(exc) != "LRU mutated during key comparison":
                    raise
                gave_up.append(tid)

    errors = run_threads([work] * 4, HANG)
    assert errors == []
    check_after(lru)
    assert all(k.n == v[0] for k, v in lru.items())
    ns = [k.n for k in lru.keys()]
    assert len(ns) == len(set(ns)), "one key stored twice"
    # Contention alone must not routinely exhaust the restart bound.
    assert len(gave_up) < 4 * 15_000 // 100
