"""fastlru.Cache's copy and pickling (issue #22: the same API as LRU): ``copy()``,
``copy.copy``, ``copy.deepcopy`` and pickle keep the type, count, policy, options and entries,
for every policy of both implementations; subclasses keep their attributes."""
import copy
import importlib
import pickle
import time

import pytest

import fastlru

class Recorder:
    """An on_evict callback that records its calls (picklable through the module)."""

    def __init__(self):
        self.calls = []

    def __call__(self, key, value):
        self.calls.append((key, value))


def weigh_len(value):
    return len(value)


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def clones(cache):
    yield "copy()", cache.copy()
    yield "copy.copy", copy.copy(cache)
    yield "copy.deepcopy", copy.deepcopy(cache)
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        yield "pickle %d" % proto, pickle.loads(pickle.dumps(cache, proto))


def test_clones_keep_entries_and_options(make, policy):
    rec = Recorder()
    c = make(3, [("a", "x"), ("b", "yy")], on_evict=rec, maxweight=5, getsizeof=weigh_len)
    c["a"]
    c.get("zz")
    before = (c.items(), c.info())
    for how, again in clones(c):
        assert type(again) is type(c), how
        assert again is not c
        assert dict(again.items()) == {"a": "x", "b": "yy"}, how
        assert again.count == 3 and again.policy == policy
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


def test_clones_share_on_evict_only_when_copied_shallow(make):
    rec = Recorder()
    c = make(1, [("a", 1)], on_evict=rec)
    again = c.copy()
    again["b"] = 2
    assert rec.calls == [("a", 1)]
    assert c.items() == [("a", 1)]  # independent of the original


def test_a_full_cache_survives_whole(make):
    c = make(50, maxweight=200, getsizeof=weigh_len)
    for i in range(500):
        c[i % 97] = "x" * (i % 5)
        c.get((i * 7) % 97)
    for how, again in clones(c):
        assert dict(again.items()) == dict(c.items()), how
        assert again.weight == c.weight and len(again) == len(c)
        again._check()


def test_plain_and_empty(make):
    c = make(4)
    for how, again in clones(c):
        assert again.items() == [] and again.count == 4 and again.maxweight is None


def test_ttl_and_timer_survive(make):
    clock = Clock()
    c = make(5, [("a", 1)], ttl=10, timer=clock, maxweight=9)
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
    plain = pickle.loads(pickle.dumps(make(5, [("a", 1)], ttl=3)))
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


def test_a_crafted_pickle_builds_a_valid_cache(policy_module):
    Cache = policy_module.Cache
    # GLOBAL Cache, EMPTY_TUPLE, NEWOBJ (Cache.__new__, never __init__), SETITEMS {1: "a", 2: "b"}
    crafted = (b"\x80\x02c" + f"{Cache.__module__}\nCache\n".encode() + b")\x81"
               + b"(K\x01X\x01\x00\x00\x00aK\x02X\x01\x00\x00\x00bu.")
    c = pickle.loads(crafted)
    assert type(c) is Cache
    assert c.items() == [(2, "b")]
    with pytest.raises(RuntimeError):
        c.__init__(10, maxweight=100, getsizeof=len)
    assert c.items() == [(2, "b")] and c.maxweight is None and c.count == 1
    c[3] = "c"
    assert c.items() == [(3, "c")]
    c._check()


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
