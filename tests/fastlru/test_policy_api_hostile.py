"""fastlru.Cache's weights, ttl and count under hostile input (issue #22), for every policy of
both implementations: references released, cycles through the new callbacks collected, and a
differential fuzz with colliding keys whose ``__eq__`` changes the cache being searched."""
import gc
import sys
import weakref

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastlru
from support.twins import Clock


class Value:
    def __init__(self, size):
        self.size = size


def test_weight_and_count_evictions_release_their_references(make):
    value = Value(3)
    key = ("k", 1)
    before = (sys.getrefcount(key), sys.getrefcount(value))
    c = make(50, maxweight=10, getsizeof=lambda v: v.size)
    for i in range(200):
        c[key] = value
        c[i] = Value(i % 4)  # weight evictions
        c[key] = Value(2)  # a replacement that may evict
        c.setdefault(key, value)
    c.count = 1
    c.count = 50
    c[key] = value
    c.pop(key)
    c.clear()
    assert (sys.getrefcount(key), sys.getrefcount(value)) == before
    c._check()


@pytest.mark.parametrize("through", ["getsizeof", "timer", "on_evict"])
def test_cycles_through_the_new_callbacks_are_collected(make, through):
    holder = []

    def callback(*args):
        holder  # a closure over a list that will hold the cache
        return 1.0 if through == "timer" else 1

    kwargs = {"on_evict": callback} if through == "on_evict" else (
        {"maxweight": 5, "getsizeof": callback} if through == "getsizeof"
        else {"ttl": 10, "timer": callback})
    c = make(3, **kwargs)
    c["a"] = 1
    holder.append(c)
    ref = weakref.ref(c)
    del c, callback, holder
    gc.collect()
    assert ref() is None


# ---------------------------------------------------------------- compiled vs twin, hostile keys


class Key:
    """Equal to a Key of the same name; several names share a hash. With ``meddle`` its
    ``__eq__`` first stores a plain int key in the cache it belongs to."""

    def __init__(self, world, name, meddle):
        self.world, self.name, self.meddle = world, name, meddle

    def __hash__(self):
        return self.name % 3 - 2

    def __eq__(self, other):
        if self.meddle and self.world.cache is not None:
            self.world.cache[1000 + self.name] = "m" * (self.name % 4)
        return isinstance(other, Key) and other.name == self.name


def _plain(x):
    return ("Key", x.name) if isinstance(x, Key) else x


class World:
    def __init__(self, module, policy, count, options):
        self.cache = None
        self.evicted = []
        self.keys = {}
        self.clock = Clock()
        kwargs = dict(options)
        if "ttl" in kwargs:
            kwargs["timer"] = self.clock
        self.cache = module.Cache(count, policy=policy,
                                  on_evict=lambda k, v: self.evicted.append((_plain(k), v)),
                                  **kwargs)

    def key(self, spec):
        kind, n = spec
        if kind == "int":
            return n
        if (kind, n) not in self.keys:
            self.keys[(kind, n)] = Key(self, n, kind == "meddle")
        return self.keys[(kind, n)]


def _apply(world, op):
    c = world.cache
    name, spec, n = op
    try:
        if name == "get":
            return ("ok", c.get(world.key(spec), "default"))
        if name == "set":
            c[world.key(spec)] = "v" * n
            return ("ok", None)
        if name == "setdefault":
            return ("ok", c.setdefault(world.key(spec), "d" * n))
        if name == "pop":
            return ("ok", c.pop(world.key(spec), "none"))
        if name == "contains":
            return ("ok", world.key(spec) in c)
        if name == "popitem":
            k, v = c.popitem()
            return ("ok", (_plain(k), v))
        if name == "tick":
            world.clock.now += n
            return ("ok", None)
        if name == "count":
            c.count = n + 1
            return ("ok", None)
    except Exception as exc:  # noqa: BLE001 - compared between the engines
        return ("raised", type(exc).__name__)
    raise AssertionError(name)


keys = st.one_of(
    st.tuples(st.just("int"), st.integers(0, 20)),
    st.tuples(st.just("collide"), st.integers(0, 8)),
    st.tuples(st.just("meddle"), st.integers(0, 3)),
)
ops = st.tuples(
    st.sampled_from(["get", "get", "set", "set", "set", "setdefault", "pop", "contains",
                     "popitem", "tick", "count"]),
    keys, st.integers(0, 6))
OPTIONS = [{"maxweight": 12, "getsizeof": len}, {"ttl": 5.0},
           {"ttl": 5.0, "maxweight": 12, "getsizeof": len}]


@pytest.mark.c_extension
@pytest.mark.parametrize("policy", fastlru.POLICIES)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(1, 10), options=st.sampled_from(OPTIONS),
       sequence=st.lists(ops, max_size=100))
def test_compiled_matches_twin_with_hostile_keys(policy, count, options, sequence):
    from fastlru import _policy_c, _policy_py

    c_world = World(_policy_c, policy, count, options)
    py_world = World(_policy_py, policy, count, options)
    for step, op in enumerate(sequence):
        where = "step %d %r" % (step, op)
        assert _apply(c_world, op) == _apply(py_world, op), where
        assert c_world.evicted == py_world.evicted, where
        assert [(_plain(k), v) for k, v in c_world.cache.items()] == \
               [(_plain(k), v) for k, v in py_world.cache.items()], where
        assert c_world.cache.info() == py_world.cache.info(), where
        assert c_world.cache.weight == py_world.cache.weight, where
    c_world.cache._check()
    py_world.cache._check()
