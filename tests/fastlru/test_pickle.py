"""Copy and pickling of ``LRU`` and ``fastlru.Cache`` (every policy), each on the compiled
engine and its twin (the ``make_any`` fixture): ``copy()``, ``copy.copy``, ``copy.deepcopy`` and
pickle keep the type, count, policy, options and entries. ``LRU``-only tests assert its exact
orders after a clone; subclasses of ``Cache`` keep their attributes (``LRU``'s:
``test_lru_subclass.py``); a crafted pickle builds a valid cache of either type."""
import copy
import importlib
import pickle
import time

import pytest

import fastlru
from support.twins import Clock


class Recorder:
    """An on_evict callback that records its calls (picklable through the module)."""

    def __init__(self):
        self.calls = []

    def __call__(self, key, value):
        self.calls.append((key, value))


EVICTED = []


def record_evicted(key, value):
    """Module-level (so picklable) on_evict."""
    EVICTED.append((key, value))


def weigh_len(value):
    return len(value)


def clones(cache):
    yield "copy()", cache.copy()
    yield "copy.copy", copy.copy(cache)
    yield "copy.deepcopy", copy.deepcopy(cache)
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        yield "pickle %d" % proto, pickle.loads(pickle.dumps(cache, proto))


def test_clones_keep_entries_and_options(make_any):
    rec = Recorder()
    c = make_any(3, [("a", "x"), ("b", "yy")], on_evict=rec, maxweight=5, getsizeof=weigh_len)
    c["a"]
    c.get("zz")
    before = (c.items(), c.info())
    for how, again in clones(c):
        assert type(again) is type(c), how
        assert again is not c
        assert dict(again.items()) == {"a": "x", "b": "yy"}, how
        assert again.count == 3
        if make_any.kind == "Cache":
            assert again.policy == make_any.policy
        assert again.maxweight == 5 and again.weight == 3
        assert again.ttl is None and again.timer is time.monotonic
        assert again.info() == fastlru.CacheInfo(0, 0, 0, 2, 3), how
        again._check()
        # the options work: a 3-weight value must push out 1 of weight, count 3 holds
        again["ccc"] = "ccc"
        assert again.weight <= 5 and "ccc" in again
        with pytest.raises(ValueError):
            again["big"] = "123456"
        again._check()
    assert (c.items(), c.info()) == before  # the original is untouched
    c._check()


def test_clones_share_on_evict_only_when_copied_shallow(make_any):
    rec = Recorder()
    c = make_any(1, [("a", 1)], on_evict=rec)
    again = c.copy()
    again["b"] = 2
    assert rec.calls == [("a", 1)]
    assert c.items() == [("a", 1)]  # independent of the original


def test_a_full_cache_survives_whole(make_any):
    c = make_any(50, maxweight=200, getsizeof=weigh_len)
    for i in range(500):
        c[i % 97] = "x" * (i % 5)
        c.get((i * 7) % 97)
    for how, again in clones(c):
        assert dict(again.items()) == dict(c.items()), how
        if make_any.kind == "LRU":
            assert again.items() == c.items(), how
        assert again.weight == c.weight and len(again) == len(c)
        again._check()


def test_plain_and_empty(make_any):
    c = make_any(4)
    for how, again in clones(c):
        assert again.items() == [] and again.count == 4 and again.maxweight is None


def test_ttl_and_timer_survive(make_any):
    clock = Clock()
    c = make_any(5, [("a", 1)], ttl=10, timer=clock, maxweight=9)
    clock.now += 5
    c["b"] = 2
    for how, again in [("copy()", c.copy()), ("copy.copy", copy.copy(c))]:
        assert again.ttl == 10 and again.maxweight == 9 and again.timer is clock
        assert dict(again.items()) == {"a": 1, "b": 2}
        clock.now += 10  # the copy's entries were stored when it was made
        assert again.items() == []
        clock.now -= 10
    again = pickle.loads(pickle.dumps(c))
    assert again.ttl == 10 and again.timer is not clock and again.timer.now == clock.now
    assert dict(again.items()) == {"a": 1, "b": 2}
    again.timer.now += 10
    assert again.items() == []
    plain = pickle.loads(pickle.dumps(make_any(5, [("a", 1)], ttl=3)))
    assert plain.ttl == 3 and plain.timer is time.monotonic


def test_subclass_copy_and_pickle_keep_type_and_attributes(policy_module, policy):
    s = Sub[policy_module.__name__](3, [("a", 1), ("b", 2)], policy=policy)
    s.label = "mine"
    s.me = s  # a subclass attribute may refer to the cache itself
    for how, clone in [("copy.copy", copy.copy(s)), ("copy.deepcopy", copy.deepcopy(s)),
                       ("pickle", pickle.loads(pickle.dumps(s)))]:
        assert type(clone) is type(s), how
        assert dict(clone.items()) == dict(s.items())
        assert clone.label == "mine" and clone.policy == policy
        assert clone.me is clone or clone.me is s, how
        clone["c"] = 3
        clone._check()
    c = s.copy()
    assert type(c) is type(s) and dict(c.items()) == dict(s.items())


def test_subclass_with_slots_and_its_own_init(policy_module, policy):
    class Named(policy_module.Cache):
        __slots__ = ("name",)

        def __init__(self, name, count):
            super().__init__(count, policy=policy)
            self.name = name

    n = Named("x", 2)
    n[1] = 1
    n[2] = 2
    c = copy.copy(n)
    assert type(c) is Named and c.name == "x" and dict(c.items()) == {1: 1, 2: 2}
    assert c.policy == policy


TYPES = [
    pytest.param(("fastlru._lru_c", "LRU"), id="LRU-c-extension", marks=pytest.mark.c_extension),
    pytest.param(("fastlru._lru_py", "LRU"), id="LRU-pure-python"),
    pytest.param(("fastlru._policy_c", "Cache"), id="Cache-c-extension",
                 marks=pytest.mark.c_extension),
    pytest.param(("fastlru._policy_py", "Cache"), id="Cache-pure-python"),
]


@pytest.mark.parametrize("where", TYPES)
def test_a_crafted_pickle_builds_a_valid_cache(where):
    module_name, name = where
    cls = getattr(importlib.import_module(module_name), name)
    # GLOBAL <cls>, EMPTY_TUPLE, NEWOBJ (cls.__new__, never __init__), SETITEMS {1: "a", 2: "b"}
    crafted = (b"\x80\x02c" + f"{cls.__module__}\n{name}\n".encode() + b")\x81"
               + b"(K\x01X\x01\x00\x00\x00aK\x02X\x01\x00\x00\x00bu.")
    c = pickle.loads(crafted)
    assert type(c) is cls
    assert c.items() == [(2, "b")]
    with pytest.raises(RuntimeError):
        c.__init__(10, maxweight=100, getsizeof=len)
    assert c.items() == [(2, "b")] and c.maxweight is None and c.count == 1
    c[3] = "c"
    assert c.items() == [(3, "c")]
    c._check()


# ---------------------------------------------------------------- LRU only: exact orders


def filled(LRU, count, keys, **kw):
    """A cache holding ``key -> key * 10`` for ``keys`` inserted in order (last most recent)."""
    return LRU(count, [(k, k * 10) for k in keys], **kw)


def test_copy(LRU):
    rec = Recorder()
    lru = LRU(3, [("a", "x"), ("b", "yy")], on_evict=rec, maxweight=5, getsizeof=weigh_len)
    lru["a"]
    lru.get("zz")
    before_info = lru.info()
    c = lru.copy()
    assert type(c) is type(lru)
    assert c is not lru
    assert c.items() == [("a", "x"), ("b", "yy")]
    assert c.count == 3
    assert c.maxweight == 5
    assert c.weight == 3
    assert c.info() == fastlru.CacheInfo(0, 0, 0, 2, 3)
    # The original is untouched by copying: same order, same statistics.
    assert lru.items() == [("a", "x"), ("b", "yy")]
    assert lru.info() == before_info
    # Same getsizeof/maxweight: "cc" (2) + "x" (1) + "yy" (2) = 5 fits, "ddd" evicts by weight.
    c["cc"] = "cc"
    assert c.items() == [("cc", "cc"), ("a", "x"), ("b", "yy")]
    c["ddd"] = "ddd"
    assert c.items() == [("ddd", "ddd"), ("cc", "cc")]
    # Same on_evict.
    assert rec.calls == [("b", "yy"), ("a", "x")]
    # Independent of the original.
    assert lru.items() == [("a", "x"), ("b", "yy")]
    c._check()
    lru._check()


def test_copy_plain_and_empty(LRU):
    lru = LRU(4)
    c = lru.copy()
    assert c.items() == [] and c.count == 4 and c.maxweight is None
    lru = filled(LRU, 4, [1, 2, 3, 4])
    c = lru.copy()
    assert c == lru
    c[5] = 50
    assert c.keys() == [5, 4, 3, 2]
    assert lru.keys() == [4, 3, 2, 1]


def test_pickle_round_trip(LRU):
    EVICTED.clear()
    lru = LRU(3, [("a", "x"), ("b", "yy"), ("c", "z")], on_evict=record_evicted, maxweight=6, getsizeof=weigh_len)
    lru["a"]
    lru.get("nope")
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        again = pickle.loads(pickle.dumps(lru, proto))
        assert type(again) is type(lru)
        assert again.items() == lru.items() == [("a", "x"), ("c", "z"), ("b", "yy")]
        assert again.count == 3
        assert again.maxweight == 6
        assert again.weight == 4
        assert again.info() == fastlru.CacheInfo(0, 0, 0, 3, 3)
        # getsizeof and on_evict survived: a 3-weight value pushes out "b" (count) and "c" (weight).
        EVICTED.clear()
        again["d"] = "ddd"
        assert again.items() == [("d", "ddd"), ("a", "x"), ("c", "z")]
        again["e"] = "eee"
        assert again.items() == [("e", "eee"), ("d", "ddd")]
        assert EVICTED == [("b", "yy"), ("c", "z"), ("a", "x")]
        assert again.info().evictions == 3
        with pytest.raises(ValueError):
            again["big"] = "1234567"
    assert lru.info().hits == 1  # the original is unaffected


def test_pickle_plain(LRU):
    lru = LRU(2, [(1, 2), (3, 4)])
    again = pickle.loads(pickle.dumps(lru))
    assert again.items() == [(3, 4), (1, 2)]
    assert again.maxweight is None
    again[5] = 6
    assert again.items() == [(5, 6), (3, 4)]


def _subclasses():
    out = {}
    for name in ("fastlru._policy_c", "fastlru._policy_py"):
        try:
            module = importlib.import_module(name)
        except ImportError:  # pragma: no cover - the compiled engine is missing
            continue
        out[name] = type("Sub" + name.rsplit("_", 1)[1].capitalize(), (module.Cache,),
                         {"__module__": __name__})
    return out


Sub = _subclasses()
SubC = Sub.get("fastlru._policy_c")
SubPy = Sub.get("fastlru._policy_py")
