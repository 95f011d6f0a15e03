"""An ``@ormcache`` miss hashes its key at most twice (issue 11): once for the lookup that
missed, at most once more for the flight table, the store and the flight removal together
(one caller: ``test_ormcache_hitpath.test_a_miss_hashes_the_key_at_most_twice``). Here, a caller
that waits for another's flight. Both hit paths (``registry`` runs each on both engines)."""
import threading

from ormcache import _lookup, ormcache


class Counted:
    """An argument whose ``__hash__`` counts its calls."""

    def __init__(self, value):
        self.value = value
        self.hashes = 0

    def __hash__(self):
        self.hashes += 1
        return hash(self.value)

    def __eq__(self, other):
        return isinstance(other, Counted) and other.value == self.value

    def __repr__(self):
        return f"Counted({self.value!r})"


def test_a_miss_another_thread_waited_for_hashes_the_key_at_most_twice_per_caller(registry):
    """A caller that waits for another's flight hashes its own key for its lookup and for the
    flight table (twice), and takes the value the flight stored without hashing it again."""
    started, release = threading.Event(), threading.Event()
    calls = []

    class Model:
        _name = "hashes.wait"
        pool = registry

        @ormcache("key")
        def get(self, key):
            calls.append(key)
            started.set()
            assert release.wait(10)
            return key.value * 2

    first, second = Counted(3), Counted(3)
    got = []
    thread = threading.Thread(target=lambda: got.append(Model().get(first)))
    thread.start()
    assert started.wait(10)
    waiter = threading.Thread(target=lambda: got.append(Model().get(second)))
    waiter.start()
    for _ in range(1000):  # until the waiter is waiting for the flight
        if _lookup._waiting:
            break
        threading.Event().wait(0.01)
    assert _lookup._waiting, "the second caller never waited"
    release.set()
    thread.join(10)
    waiter.join(10)
    assert got == [6, 6] and calls == [first]
    assert first.hashes <= 2 and second.hashes <= 2, (first.hashes, second.hashes)
