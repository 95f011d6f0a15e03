"""W-TinyLFU's frequency sketch (issue #22's speed targets): Caffeine's ``FrequencySketch``
layout, a key's 4 counters in one 64-byte block, one in each pair of its 64-bit words. Both
engines must hold the very same counters (``Cache._sketch()``, a debug view: the counters, counter
``n`` of word ``w`` at ``16 * w + n``, the doorkeeper's bits and the additions since the last
reset), so their admissions, evictions and hit ratios are the same."""
import random
import sys

import pytest

from fastlru import _policy_c, _policy_py

BLOCK = 128  # counters in a 64-byte block: 8 words of 16


def sketch(cache):
    counters, door, additions = cache._sketch()
    return counters, door, additions


def touched(counters):
    return [i for i, c in enumerate(counters) if c]


def test_sketch_is_only_wtinylfus(policy_module):
    for policy in ("lru", "sieve", "s3fifo"):
        assert policy_module.Cache(10, policy=policy)._sketch() is None
    counters, door, additions = sketch(policy_module.Cache(10, policy="wtinylfu"))
    assert (counters, door, additions) == (bytes(128), bytes(32), 0)  # one block, at least


@pytest.mark.parametrize("key", [0, 1, 7, -1, -2, 12345, sys.maxsize, -sys.maxsize - 1, "k",
                                 (1, "a"), 2.5, 2 ** 80])
def test_a_keys_counters_share_one_block(policy_module, key):
    cache = policy_module.Cache(5000, policy="wtinylfu")
    cache[key] = 1  # the store: the doorkeeper takes the first occurrence
    counters, door, additions = sketch(cache)
    assert not any(counters) and sum(door) == 1 and additions == 1
    cache.get(key)
    counters, door, additions = sketch(cache)
    at = touched(counters)
    assert len(at) == 4 and all(counters[i] == 1 for i in at) and additions == 2
    assert len({i // BLOCK for i in at}) == 1, "one 64-byte block"
    assert [(i % BLOCK) // 32 for i in at] == [0, 1, 2, 3], "one counter in each pair of words"


def test_counters_saturate_at_15_without_touching_their_neighbours(policy_module):
    cache = policy_module.Cache(5000, policy="wtinylfu")
    cache["hot"] = 1
    for _ in range(40):
        cache.get("hot")
    counters, door, additions = sketch(cache)
    assert sorted(c for c in counters if c) == [15, 15, 15, 15], "no carry into the next counter"
    assert additions == 1 + 15, "an increment that adds nothing is no addition"
    cache.get("hot")
    assert sketch(cache) == (counters, door, additions)


def test_reset_halves_every_counter_and_clears_the_doorkeeper(policy_module):
    count = 40  # a reset every 10 * count = 400 additions
    cache = policy_module.Cache(count, policy="wtinylfu")
    for k in range(20):
        cache[k] = k
    for _ in range(20):
        for k in range(20):
            cache.get(k)
    before = sketch(cache)
    assert 15 in before[0] and 0 < before[2] < 400
    for k in range(1000, 2000):  # fresh keys, one addition each, until the reset
        cache[k] = k
        after = sketch(cache)
        if after[2] < before[2]:
            break
        before = after
    assert before[2] == 399 and after[2] == 200
    assert not any(after[1]), "the doorkeeper is cleared"
    assert max(after[0]) == 7, "15 halved"
    # every counter halved (the last addition's 4 may have gone up by one before)
    assert all(a in (b >> 1, (b + 1) >> 1) for a, b in zip(after[0], before[0]))
    assert sum(a != b >> 1 for a, b in zip(after[0], before[0])) <= 4


def test_engines_hold_the_same_counters_through_resets_resizes_and_clear():
    rng = random.Random(22)
    caches = [module.Cache(64, policy="wtinylfu") for module in (_policy_c, _policy_py)]
    keys = [rng.paretovariate(1.0) for _ in range(3000)]
    keys = [int(k * 10) if i % 3 else "s%d" % int(k) for i, k in enumerate(keys)]
    for step, key in enumerate(keys):
        for cache in caches:
            if step % 5 == 0:
                cache[key] = step
            else:
                cache.get(key)
            if step == 1500:
                cache.count = 32  # resize: the sketch keeps its counters
            if step == 2500:
                cache.clear()  # forgets the sketch
        if step % 97 == 0 or step in (1500, 2500):
            assert caches[0]._sketch() == caches[1]._sketch(), step
    assert caches[0]._sketch() == caches[1]._sketch()
    assert caches[0].items() == caches[1].items()


class Hash:
    """A key of a chosen hash, equal only to itself."""

    def __init__(self, h):
        self.h = h

    def __hash__(self):
        return self.h


HOSTILE = [0, -2, 1, 2 ** 32, 2 ** 32 + 1, 2 ** 61 - 1, 2 ** 63 - 1, -(2 ** 63), 2 ** 63 - 2 ** 32,
           0x9E3779B97F4A7C15 - 2 ** 64, 0xFFFFFFFF, -(2 ** 32)]


def test_hostile_hashes_give_the_same_counters_in_both_engines():
    keys = [Hash(h) for h in HOSTILE] + [Hash(h << 32) for h in range(64)] + [Hash(7)] * 10
    caches = [module.Cache(16, policy="wtinylfu") for module in (_policy_c, _policy_py)]
    for cache in caches:
        for _ in range(3):
            for k in keys:
                cache[k] = 1
                cache.get(k)
        cache._check()
    assert caches[0]._sketch() == caches[1]._sketch()
    assert [id(k) for k in caches[0]] == [id(k) for k in caches[1]]


def test_a_flood_of_one_hash_saturates_without_pinning_the_cache(policy_module):
    """Keys sharing a hash share counters: they saturate at 15, and admission's random
    tie-break (Caffeine's hash-flooding guard) still lets candidates in."""
    cache = policy_module.Cache(100, policy="wtinylfu")
    flood = [Hash(42) for _ in range(400)]
    for k in flood:
        cache[k] = 1
        cache.get(k)
    counters, door, additions = sketch(cache)
    assert sorted(c for c in counters if c) == [15, 15, 15, 15]
    assert len(cache) == 100
    assert any(k in cache for k in flood[-50:])
    cache._check()
