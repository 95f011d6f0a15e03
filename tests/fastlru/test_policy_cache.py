"""fastlru.Cache: the mapping API, bad and hostile input, threads and a model check, for every
policy of both implementations (the compiled engine and its pure-Python twin)."""
import random
import sys
import threading

import pytest

import fastlru

def test_policies_listed():
    assert fastlru.POLICIES == ("lru", "sieve", "s3fifo", "wtinylfu", "tinylfu")
    assert fastlru.DEFAULT_POLICY in fastlru.POLICIES
    assert fastlru.Cache(3).policy == fastlru.DEFAULT_POLICY


def test_mapping_api(make, policy):
    c = make(10, [("a", 1), ("b", 2)])
    assert c.policy == policy
    assert len(c) == 2 and c["a"] == 1 and c.get("b") == 2 and c.get("x") is None
    assert c.get("x", 5) == 5 and "a" in c and "x" not in c
    assert c.peek("a") == 1 and c.peek("x", 7) == 7
    c["a"] = 10
    assert c["a"] == 10 and len(c) == 2
    assert c.setdefault("a", 99) == 10 and c.setdefault("c", 3) == 3
    assert c.pop("c") == 3 and c.pop("c", None) is None
    with pytest.raises(KeyError):
        c.pop("c")
    with pytest.raises(KeyError):
        c["missing"]
    del c["b"]
    with pytest.raises(KeyError):
        del c["b"]
    c.update({"d": 4}, e=5)
    c.update([("f", 6)])
    assert sorted(c.keys()) == ["a", "d", "e", "f"]
    assert sorted(c.values()) == [4, 5, 6, 10]
    assert dict(c.items()) == {"a": 10, "d": 4, "e": 5, "f": 6}
    assert sorted(c) == ["a", "d", "e", "f"]
    assert c == {"a": 10, "d": 4, "e": 5, "f": 6}
    k, v = c.popitem()
    assert k not in c and len(c) == 3
    c.clear()
    assert len(c) == 0 and c.get("a") is None
    with pytest.raises(KeyError):
        c.popitem()
    c._check()
    assert policy in repr(c)


def test_info_counts_reads(make):
    c = make(4)
    c[1] = 1
    c[1], c.get(2), c.get(1)
    info = c.info()
    assert (info.hits, info.misses, info.evictions, info.size, info.count) == (2, 1, 0, 1, 4)
    c.clear_stats()
    assert c.info()[:3] == (0, 0, 0)


@pytest.mark.parametrize("count", [1, 2, 3, 10, 100])
def test_bounded_and_evictions_reported(make, count):
    seen = []
    c = make(count, on_evict=lambda k, v: seen.append((k, v)))
    rng = random.Random(count)
    model = {}
    for i in range(3000):
        k = int(rng.paretovariate(0.8)) % 500
        if c.get(k) is None:
            c[k] = -k
            model[k] = -k
        assert len(c) <= count
    c._check()
    for k, v in seen:
        assert v == -k
    assert len(seen) == c.info().evictions
    # every key stored is either still here or was reported evicted exactly as often as stored
    assert len(c) + len(seen) == c.info().misses
    for k, v in c.items():
        assert model[k] == v


def test_on_evict_errors_are_reported_not_raised(make, monkeypatch):
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_value))

    def boom(k, v):
        raise ValueError("boom %s" % k)

    c = make(1, on_evict=boom)
    c["a"] = 1
    c["b"] = 2
    assert len(c) == 1
    assert len(reported) == 1 and isinstance(reported[0], ValueError)
    c._check()


def test_model(make):
    """Random operations against a dict: whatever the cache holds, it holds correctly."""
    rng = random.Random(7)
    c = make(16)
    model = {}
    for i in range(5000):
        k = rng.randrange(40)
        op = rng.random()
        if op < 0.5:
            got = c.get(k, None)
            assert got is None or got == model[k]
        elif op < 0.85:
            c[k] = model[k] = (k, i)
            assert c.peek(k) == (k, i)
        elif op < 0.95:
            assert c.pop(k, None) in (None, model.get(k))
            assert k not in c
        else:
            k2, v2 = c.popitem() if len(c) else (None, None)
            assert k2 is None or model[k2] == v2
        assert len(c) <= 16
    c._check()
    for k, v in c.items():
        assert model[k] == v


# -- bad input ------------------------------------------------------------------------------


def test_bad_arguments(policy_module):
    Cache = policy_module.Cache
    with pytest.raises(TypeError):
        Cache("3")
    with pytest.raises(TypeError):
        Cache(3, policy=1)
    with pytest.raises(ValueError, match="unknown policy 'arc'"):
        Cache(3, policy="arc")
    with pytest.raises(TypeError):
        Cache(3, on_evict=5)
    with pytest.raises(TypeError):
        Cache(3, pairs=[1])
    c = Cache(3, policy="lru")
    with pytest.raises(RuntimeError):
        c.__init__(3)
    assert Cache(0).count == 1  # as LRU: clamped to 1


def test_before_init_is_a_valid_cache(policy_module):
    c = policy_module.Cache.__new__(policy_module.Cache)
    c["a"] = 1
    c["b"] = 2
    assert len(c) == 1 and c.count == 1
    with pytest.raises(RuntimeError):
        c.__init__(5)


def test_unhashable_and_failing_hash_leave_cache_unchanged(make):
    c = make(3, [(1, 1)])

    class BadHash:
        def __hash__(self):
            raise ZeroDivisionError

    for bad in ([], {}, BadHash()):
        for op in (lambda k: c.__setitem__(k, 1), c.get, c.__getitem__, c.pop,
                   c.__contains__, c.__delitem__, c.peek):
            with pytest.raises((TypeError, ZeroDivisionError)):
                op(bad)
    assert c.items() == [(1, 1)] and c.info().misses == 0
    c._check()


class Reentrant:
    """A key whose __eq__ changes the cache it is being looked up in."""

    def __init__(self, cache, action, h=1):
        self.cache = cache
        self.action = action
        self.h = h

    def __hash__(self):
        return self.h

    def __eq__(self, other):
        self.action(self.cache)
        return self is other


@pytest.mark.parametrize("action", [
    lambda c: c.clear(),
    lambda c: c.__setitem__(object(), 1),
    lambda c: c.pop(Reentrant(None, None, h=2), None),
    lambda c: len(c.items()),
])
def test_reentrant_eq_does_not_deadlock_or_corrupt(make, action):
    c = make(4)
    keys = [Reentrant(c, action) for _ in range(3)]  # one hash: each lookup compares

    def attempt(op, *args):
        try:
            op(*args)
        except RuntimeError as exc:  # a key that changes the cache on every comparison
            assert "mutated during key comparison" in str(exc)

    for k in keys:
        attempt(c.__setitem__, k, 1)
        attempt(c.get, k)
    for k in keys:
        attempt(c.get, k)
        attempt(c.pop, k, None)
    c._check()
    assert len(c) <= 4


def test_eq_raising_propagates_and_leaves_cache_consistent(make):
    c = make(4)

    class Raiser:
        def __hash__(self):
            return 5

        def __eq__(self, other):
            raise ArithmeticError

    a, b = Raiser(), Raiser()
    c[a] = 1
    with pytest.raises(ArithmeticError):
        c[b] = 2
    with pytest.raises(ArithmeticError):
        c.get(b)
    assert c.peek(a) == 1 and len(c) == 1
    c._check()


def test_endless_mutation_in_eq_raises(make):
    c = make(100_000)  # large: the churn never evicts the keys compared against

    class Churn:
        def __hash__(self):
            return 9

        def __eq__(self, other):
            c[object()] = 0  # changes the cache on every comparison
            return False

    c[Churn()] = 1
    with pytest.raises(RuntimeError, match="mutated during key comparison"):
        c.get(Churn())
    c._check()


# -- threads --------------------------------------------------------------------------------


def test_threads(make):
    c = make(64)
    errors = []

    def work(seed):
        rng = random.Random(seed)
        try:
            for i in range(3000):
                k = rng.randrange(200)
                r = rng.random()
                if r < 0.6:
                    v = c.get(k)
                    assert v is None or v == k
                elif r < 0.95:
                    c[k] = k
                else:
                    c.pop(k, None)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    c._check()
    assert len(c) <= 64


# -- what each policy is known for -----------------------------------------------------------


def test_lru_order(policy_module):
    c = policy_module.Cache(3, policy="lru")
    c["a"], c["b"], c["c"] = 1, 2, 3
    c["a"]
    c["d"] = 4
    assert c.keys() == ["d", "a", "c"]


def test_sieve_keeps_visited(policy_module):
    c = policy_module.Cache(3, policy="sieve")
    c["a"], c["b"], c["c"] = 1, 2, 3
    c["a"]
    c["d"] = 4  # the hand skips "a" (visited, now cleared) and evicts "b"
    assert sorted(c) == ["a", "c", "d"]
    c["e"] = 5  # the hand moved on: "c" goes
    assert sorted(c) == ["a", "d", "e"]


def test_s3fifo_ghost_readmits_to_main(policy_module):
    c = policy_module.Cache(10, policy="s3fifo")
    for k in range(10):
        c[k] = k
    c[10] = 10  # 0, never read, leaves the small FIFO for the ghost
    assert 0 not in c
    c[0] = 0  # remembered by the ghost: straight to the main FIFO
    for k in range(100, 120):  # one-hit wonders churn through the small FIFO only
        c[k] = k
    assert 0 in c


@pytest.mark.parametrize("policy_name", ["wtinylfu", "s3fifo"])
def test_frequent_keys_survive_a_scan(policy_module, policy_name):
    c = policy_module.Cache(100, policy=policy_name)
    for _ in range(5):
        for k in range(50):
            if c.get(k) is None:
                c[k] = k
    for k in range(1000, 1300):  # a scan of 3x the cache
        if c.get(k) is None:
            c[k] = k
    assert sum(k in c for k in range(50)) >= 45


def test_cycles_through_values_are_collected(make):
    import gc
    import weakref

    class Holder:
        pass

    c = make(8)
    h = Holder()
    h.cache = c
    c["self"] = h
    ref = weakref.ref(h)
    del c, h
    gc.collect()
    assert ref() is None
