"""Helpers of the single-flight tests (tests/*/test_flight21_*.py)."""
import time

WAIT = 10  # seconds: only reached when something is broken


def until(predicate):
    """Polls ``predicate()`` until it holds (True) or ``WAIT`` seconds have passed (False)."""
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def colliding_keys():
    """-> (a, b, arm): two keys of one hash; after ``arm()``, the next comparison of two
    distinct keys raises ValueError (a hostile ``__eq__``, issue #20), once."""
    armed = [False]

    class Key:
        def __hash__(self):
            return 42

        def __eq__(self, other):
            if self is other:
                return True
            if armed[0]:
                armed[0] = False
                raise ValueError("hostile __eq__")
            return False

    def arm():
        armed[0] = True

    return Key(), Key(), arm
