"""``@ormcache`` and ``lru_cache(single_flight=True)`` follow one single-flight module
(``fastlru._flight``), with one record of who waits for what: a cycle that runs through both
layers is seen as one. Thread A computes an ormcache method that needs an ``lru_cache`` value;
thread B computes that value, which needs the method's: before, each layer saw only its own
waits and both threads waited for ever; now the second to arrive computes without a flight."""
import importlib
import threading

import pytest

from support.flights import WAIT, until

from ormcache import _cold
from ormcache import ormcache as cached

LRU_CACHES = [
    pytest.param("fastlru._functools_c", id="c-lru_cache", marks=pytest.mark.c_extension),
    pytest.param("fastlru._functools_py", id="py-lru_cache"),
]


@pytest.mark.parametrize("module", LRU_CACHES)
def test_a_cycle_through_ormcache_and_lru_cache_does_not_deadlock(registry, module):
    lru_cache_of = importlib.import_module(module).lru_cache
    computed = []
    b_leads = threading.Event()
    threads = {}

    @lru_cache_of(maxsize=None, single_flight=True)
    def setting(key):
        computed.append(("setting", key))
        if len(computed) == 2:  # thread B, first: needs the method's value, which A computes
            b_leads.set()
            return "setting:" + Model().param(key)
        return "setting"

    class Model:
        _name = "m"
        pool = registry

        @cached("key")
        def param(self, key):
            computed.append(("param", key))
            if len(computed) == 1:  # thread A, first: needs B's value once B waits on us
                b_leads.wait(WAIT)
                until(lambda: threads["b"].ident in _cold._waiting)
                return "param:" + setting(key)
            return "param"

    out = {}
    threads["a"] = threading.Thread(target=lambda: out.setdefault("a", Model().param("k")), daemon=True)
    threads["a"].start()
    assert until(lambda: len(computed) == 1)
    threads["b"] = threading.Thread(target=lambda: out.setdefault("b", setting("k")), daemon=True)
    threads["b"].start()
    for thread in threads.values():
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads.values()), "deadlock"
    # A computed B's value itself (waiting would close the cycle), B took A's shared value
    assert computed == [("param", "k"), ("setting", "k"), ("setting", "k")]
    assert out == {"a": "param:setting", "b": "setting:param:setting"}
    assert Model.__dict__["param"].flights == {} and _cold._waiting == {}

