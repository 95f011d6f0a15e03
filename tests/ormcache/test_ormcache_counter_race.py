"""Threads that resolve one method for the first time at once share one statistics counter.

``resolve()`` looked the counter up, then stored a new one when there was none: two threads
between the lookup and the store each made their own, and the counts of all but the last were
lost (seen on free-threaded 3.13 in CI: 16 threads, ``miss=0 hit=10`` where 1 and 15 were
counted). The interleaving is forced here with a counters mapping whose lookup waits for the
other thread, so the test does not depend on the scheduler.
"""
import threading

from ormcache import _cold
from ormcache.registry import Registry


class _BothLookFirst(dict):
    """``get`` returns only once both threads have looked (and found nothing)."""

    def __init__(self):
        super().__init__()
        self.barrier = threading.Barrier(2, timeout=30)

    def get(self, key, default=None):
        found = super().get(key, default)
        if found is None:
            self.barrier.wait()
        return found


def test_threads_resolving_at_once_share_one_counter(hit_path):
    registry = Registry("counter-race")
    try:
        registry.counters = _BothLookFirst()

        def method(self):
            return 1

        counters = [None, None]

        def resolve(i):
            counters[i] = _cold.resolve(registry, "m", method, "default", hit_path.Counter)[3]

        threads = [threading.Thread(target=resolve, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert counters[0] is not None and counters[0] is counters[1]
        assert registry.counters[("m", method)] is counters[0]
    finally:
        Registry.delete("counter-race")
