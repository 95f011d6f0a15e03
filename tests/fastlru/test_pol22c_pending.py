"""W-TinyLFU's and TinyLFU's read hits defer their sketch increments (issue #22's hit cost): a
hit adds to its entry's pending count, and the pending hits reach the sketch before anything
reads it or the entry leaves. These tests hold the deferral to what an increment per hit gives:
the sketch (``Cache._sketch()``, which takes the pending hits in first) is the one an eager
model of Caffeine's sketch computes from the same stores and reads, on both engines."""
import random

import pytest

from fastlru import _policy_py


class Eager:
    """An increment per store and per read hit: the sketch before deferral (the twin's own
    ``_Sketch.increment``, which stores still use)."""

    def __init__(self, count):
        self.sketch = _policy_py._Sketch(count)

    def record(self, key):
        self.sketch.increment(hash(key))

    def view(self):
        s = self.sketch
        return bytes(s.table), bytes(s.door), s.additions


@pytest.fixture(params=["wtinylfu", "tinylfu"])
def lfu(request):
    return request.param


def test_read_hits_reach_the_sketch_as_increments(policy_module, lfu):
    count = 200
    cache = policy_module.Cache(count, policy=lfu)
    model = Eager(count)
    keys = list(range(40))  # few keys, under 15 reads each: no counter saturates, no reset
    for k in keys:
        cache[k] = k
        model.record(k)
    rng = random.Random(22)
    for _ in range(300):
        k = rng.choice(keys)
        assert cache.get(k) == k
        model.record(k)
    assert cache._sketch() == model.view()
    assert cache._sketch() == model.view(), "the debug view itself changes nothing"


def test_many_reads_of_one_key_saturate_as_increments(policy_module, lfu):
    cache = policy_module.Cache(100, policy=lfu)
    model = Eager(100)
    cache["hot"] = 1
    model.record("hot")
    for n in range(1, 40):
        cache["hot"]
        model.record("hot")
        if n in (1, 2, 14, 15, 16, 39):
            assert cache._sketch() == model.view(), n


@pytest.mark.parametrize("leave", ["pop", "del", "popitem", "count"])
def test_pending_reads_are_recorded_before_the_entry_leaves(policy_module, lfu, leave):
    cache = policy_module.Cache(50, policy=lfu)
    model = Eager(50)
    for k in range(10):
        cache[k] = k
        model.record(k)
    for _ in range(5):
        for k in range(10):
            cache.get(k)
            model.record(k)
    if leave == "pop":
        cache.pop(3)
    elif leave == "del":
        del cache[3]
    elif leave == "popitem":
        cache.popitem()
    else:
        cache.count = 5  # evicts 5 and renumbers nothing yet: the arena is small
    assert cache._sketch() == model.view()


def test_an_admission_sees_every_read_before_it(policy_module):
    # A candidate read often while in the window beats a probation victim read less, as with
    # an increment per read: its pending reads reach the sketch before the comparison.
    cache = policy_module.Cache(100, policy="wtinylfu")
    for k in range(100):
        cache[k] = k
    for _ in range(6):
        for k in range(50, 100):
            cache.get(k)
    cache["new"] = 0  # the window (1 entry) holds it
    for _ in range(10):
        cache.get("new")
    cache["next"] = 0  # "new" leaves the window: admitted over a probation entry read once
    assert "new" in cache
    counters, door, additions = cache._sketch()
    twin = _policy_py.Cache(100, policy="wtinylfu")
    for k in range(100):
        twin[k] = k
    for _ in range(6):
        for k in range(50, 100):
            twin.get(k)
    twin["new"] = 0
    for _ in range(10):
        twin.get("new")
    twin["next"] = 0
    assert twin._sketch() == (counters, door, additions)
    assert sorted(map(str, twin)) == sorted(map(str, cache))


def test_a_full_pending_list_is_flushed(policy_module, lfu):
    # The list holds the count of creation; after growing, more entries can be pending.
    cache = policy_module.Cache(4, policy=lfu)
    model = Eager(4)
    cache.count = 12  # the sketch keeps its width, the list its length
    model.sketch.sample = 10 * 12
    for k in range(12):
        cache[k] = k
        model.record(k)
    for k in range(12):
        assert cache.get(k) == k
        model.record(k)
    assert cache._sketch() == model.view()


def test_a_reset_takes_the_pending_reads_in_first(policy_module, lfu):
    # Reads pending while stores complete the reset's period are halved with the rest.
    count = 40
    cache = policy_module.Cache(count, policy=lfu)
    for k in range(20):
        cache[k] = k
    for _ in range(3):
        for k in range(20):
            cache.get(k)
    before = cache._sketch()
    for k in range(1000, 2000):
        cache[k] = k
        after = cache._sketch()
        if after[2] < before[2]:
            break
        before = after
    assert before[2] == 10 * count - 1 and after[2] == 10 * count // 2
    assert max(after[0]) <= 7


def test_engines_agree_on_a_long_mixed_run(lfu):
    from fastlru import _policy_c

    for count in (7, 64, 300):
        runs = []
        for module in (_policy_c, _policy_py):
            cache = module.Cache(count, policy=lfu)
            rng = random.Random(count)
            hits = 0
            for i in range(20000):
                k = int(rng.paretovariate(0.9)) if rng.random() < 0.7 else rng.randrange(3 * count)
                if cache.get(k) is None:
                    cache[k] = k
                else:
                    hits += 1
                if i % 997 == 0:
                    cache.pop(rng.randrange(3 * count), None)
                if i == 9000:
                    cache.count = max(1, count // 3)
                if i == 14000:
                    cache.count = count
            runs.append((hits, sorted(cache.keys()), cache._sketch()))
        assert runs[0] == runs[1], count
