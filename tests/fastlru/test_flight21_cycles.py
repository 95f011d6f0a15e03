"""``lru_cache(single_flight=True)`` follows the one single-flight module (``fastlru._flight``),
so it sees a cycle of threads, not only its own recursion: thread A computes "a", which needs
"b"; thread B computes "b", which needs "a". Each waiting on the other's flight is a deadlock;
the second to arrive computes without a flight instead (before: both waited for ever)."""
import importlib
import sys
import threading

import pytest

from support.flights import WAIT, until

LRU_CACHES = [
    pytest.param("fastlru._functools_c", id="c-extension", marks=pytest.mark.c_extension),
    pytest.param("fastlru._functools_py", id="pure-python"),
]


def blocked(ident):
    """Whether thread ``ident`` waits for a flight."""
    waiting = getattr(sys.modules.get("fastlru._flight"), "waiting", None)
    if waiting is not None:
        return ident in waiting
    frame = sys._current_frames().get(ident)  # (an implementation without the module)
    return frame is not None and frame.f_code.co_name == "wait"


@pytest.mark.parametrize("module", LRU_CACHES)
def test_a_cycle_of_two_threads_does_not_deadlock(module):
    lru_cache = importlib.import_module(module).lru_cache
    computed = []
    b_leads = threading.Event()
    threads = {}

    @lru_cache(maxsize=None, single_flight=True)
    def f(key):
        first = key not in computed
        computed.append(key)
        if key == "a" and first:
            b_leads.wait(WAIT)
            return "a" + f("b")  # B computes "b": wait for it
        if key == "b" and first:
            b_leads.set()
            until(lambda: blocked(threads["a"].ident))  # A waits on our flight
            return "b" + f("a")  # A's flight, which waits on ours: a cycle
        return key

    out = {}
    threads["a"] = threading.Thread(target=lambda: out.setdefault("a", f("a")), daemon=True)
    threads["b"] = threading.Thread(target=lambda: out.setdefault("b", f("b")), daemon=True)
    threads["a"].start()
    threads["b"].start()
    for thread in threads.values():
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads.values()), "deadlock"
    assert out == {"a": "aba", "b": "ba"} and sorted(computed) == ["a", "a", "b"]
    # B computed "a" without a flight and stored it first: the first stored value wins (functools)
    assert f("a") == "a" and f("b") == "ba"
