"""The policy hit-ratio tests' helpers: replay one of the harness's seeded workloads
(``fastlru.bench.hitratio``) through ``Cache(policy=...)`` of an engine module, compiled or twin."""
import functools

from fastlru.bench import hitratio


def hits(module, policy, keys, size):
    """Hits of ``module.Cache(size, policy=policy)`` over ``keys`` (cache-aside get/set)."""
    replay = hitratio._mapping_replay(functools.partial(module.Cache, policy=policy))
    return replay(keys, size)


def ratio(module, policy, keys, size):
    """The hit ratio of ``hits``, in %."""
    return 100.0 * hits(module, policy, keys, size) / len(keys)


@functools.lru_cache(maxsize=None)
def workload_keys(workload, keys, requests, size, seed=22):
    """The keys of the harness's ``workload`` at this scale and cache size, seeded (a tuple, kept)."""
    return tuple(hitratio.WORKLOADS[workload](hitratio.Scale(keys, requests, (size,)), size, seed))
