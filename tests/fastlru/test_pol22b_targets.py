"""Issue #22's hit-ratio targets, second round: W-TinyLFU's climber checked by a sampled shadow
LRU (it jumps to a whole-cache window when recency is all that pays, and stops growing the
window when frequency pays), and the "tinylfu" policy (moka's design) for loops.

Hit ratios, not speed: the workloads are the harness's own, seeded, so every number here is
deterministic and the same for the compiled engine and its twin (checked too). The numbers in
the comments were measured on the twin before and after."""
import importlib

import pytest

from support.hitratios import ratio as _ratio, workload_keys as _keys




def test_twice_default_within_a_point_of_lru(policy_module):
    # before: 23.51% against LRU's 29.43% (the window grew 12.5% of the cache at a time);
    # after: 28.77% (the shadow LRU hits clearly more: the window goes to the whole cache)
    keys = _keys("twice", 25_000, 150_000, 1000)
    lru = _ratio(policy_module, "lru", keys, 1000)
    assert _ratio(policy_module, "wtinylfu", keys, 1000) >= lru - 1.0


def test_shifting_default_within_a_point_of_lru(policy_module):
    # before: 78.59% against LRU's 84.68%; after: 83.96%
    keys = _keys("shifting", 20_000, 120_000, 1000)
    lru = _ratio(policy_module, "lru", keys, 1000)
    assert _ratio(policy_module, "wtinylfu", keys, 1000) >= lru - 1.0


def test_zipf_scans_window_stays_small(policy_module):
    # before: 42.30% (the climber wandered, misled by the scans' period); after: 43.77% (the
    # shadow LRU, scanned too, hits clearly less: the window may not grow)
    keys = _keys("zipf+scans", 20_000, 100_000, 500)
    assert _ratio(policy_module, "wtinylfu", keys, 500) >= 43.5


def test_zipf_no_jump_while_the_sketch_is_cold(policy_module):
    # Zipf 0.6: right after the cache fills, the sketch is cold and LRU is a little ahead; with
    # the shadow's first version the window jumped to the whole cache there and stayed (15.75%,
    # LRU's 15.74%); the first sample now also needs a gap of 3% of the sampled reads: 20.41%
    keys = _keys("zipf-0.6", 50_000, 60_000, 2500)
    lru = _ratio(policy_module, "lru", keys, 2500)
    assert _ratio(policy_module, "wtinylfu", keys, 2500) >= lru + 3.0


def test_tinylfu_keeps_a_loop(policy_module):
    # a loop over 1.1x the cache: LRU never hits, the best possible is about 1/1.1 of the
    # requests; before: no such policy (ValueError); after: 89.29%
    keys = _keys("loop-1.1x", 20_000, 60_000, 500)
    assert _ratio(policy_module, "tinylfu", keys, 500) >= 89.0


def test_tinylfu_store_is_visible_and_bounded(policy_module):
    # the newest entry waits in a window of one: what was just stored can be read back, even
    # when the sketch would not admit it over the main's victim
    cache = policy_module.Cache(3, policy="tinylfu")
    for i in range(50):
        cache[i % 7] = i
        assert cache.peek(i % 7) == i
        assert len(cache) <= 3
    if hasattr(cache, "_check"):
        cache._check()


@pytest.mark.c_extension
@pytest.mark.parametrize("policy", ["wtinylfu", "tinylfu"])
@pytest.mark.parametrize("workload,size", [("twice", 1000), ("shifting", 1000),
                                           ("zipf+scans", 500), ("loop-1.1x", 500),
                                           ("zipf-0.8", 300)])
def test_compiled_as_the_twin(policy, workload, size):
    compiled = importlib.import_module("fastlru._policy_c")
    twin = importlib.import_module("fastlru._policy_py")
    keys = _keys(workload, 20_000, 60_000, size)
    assert _ratio(compiled, policy, keys, size) == _ratio(twin, policy, keys, size)


@pytest.mark.c_extension
def test_compiled_shadow_as_the_twin_across_count_changes():
    # the shadow restarts empty at a count change, at most as long as allocated at creation
    compiled = importlib.import_module("fastlru._policy_c")
    twin = importlib.import_module("fastlru._policy_py")
    keys = _keys("twice", 20_000, 60_000, 600)

    def run(module):
        cache = module.Cache(2000, policy="wtinylfu")
        hits = 0
        for i, k in enumerate(keys):
            if i == 10_000:
                cache.count = 600
            elif i == 30_000:
                cache.count = 5000
            if cache.get(k) is None:
                cache[k] = k
            else:
                hits += 1
        return hits

    assert run(compiled) == run(twin)
