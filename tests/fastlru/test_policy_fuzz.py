"""Differential fuzz of fastlru.Cache: hypothesis draws operation sequences, which run on the
compiled engine and on its pure-Python twin side by side, for every policy; every result
(value or exception type), every ``on_evict`` call, ``items()`` in the policy's order and
``info()`` must agree after each step. Keys include colliding hashes and keys whose ``__eq__``
changes the cache being searched."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastlru
from fastlru import _policy_c, _policy_py

pytestmark = pytest.mark.c_extension


class Key:
    """Equal to a Key of the same name; several names share a hash. With ``meddle`` its
    ``__eq__`` first stores a plain int key in the cache it belongs to."""

    def __init__(self, world, name, meddle):
        self.world, self.name, self.meddle = world, name, meddle

    def __hash__(self):
        return self.name % 3 - 2  # -2 (a hash no int has) .. 0

    def __eq__(self, other):
        if self.meddle and self.world.cache is not None:
            self.world.cache[1000 + self.name] = self.name
        return isinstance(other, Key) and other.name == self.name

    def __repr__(self):
        return "Key(%d)" % self.name


class World:
    def __init__(self, module, policy, count):
        self.cache = None
        self.evicted = []
        self.keys = {}
        self.cache = module.Cache(count, policy=policy,
                                  on_evict=lambda k, v: self.evicted.append((_plain(k), v)))

    def key(self, spec):
        kind, n = spec
        if kind == "int":
            return n
        if kind == "str":
            return "s%d" % n
        if (kind, n) not in self.keys:  # one object per name: identity shortcuts happen too
            self.keys[(kind, n)] = Key(self, n, kind == "meddle")
        return self.keys[(kind, n)]


def _plain(x):
    return ("Key", x.name) if isinstance(x, Key) else x


def _apply(world, op):
    c = world.cache
    name, spec, value = op
    try:
        if name == "get":
            return ("ok", c.get(world.key(spec), "default"))
        if name == "set":
            c[world.key(spec)] = value
            return ("ok", None)
        if name == "setdefault":
            return ("ok", c.setdefault(world.key(spec), value))
        if name == "pop":
            return ("ok", c.pop(world.key(spec), "none"))
        if name == "del":
            del c[world.key(spec)]
            return ("ok", None)
        if name == "peek":
            return ("ok", c.peek(world.key(spec)))
        if name == "contains":
            return ("ok", world.key(spec) in c)
        if name == "popitem":
            k, v = c.popitem()
            return ("ok", (_plain(k), v))
        if name == "clear":
            c.clear()
            return ("ok", None)
    except Exception as exc:  # noqa: BLE001 - compared between the engines
        return ("raised", type(exc).__name__)
    raise AssertionError(name)


keys = st.one_of(
    st.tuples(st.just("int"), st.integers(0, 30)),
    st.tuples(st.just("str"), st.integers(0, 10)),
    st.tuples(st.just("collide"), st.integers(0, 8)),
    st.tuples(st.just("meddle"), st.integers(0, 3)),
)
ops = st.tuples(
    st.sampled_from(["get", "get", "get", "set", "set", "setdefault", "pop", "del", "peek",
                     "contains", "popitem", "clear"]),
    keys, st.integers(0, 5))
ops_without_clear = st.tuples(
    st.sampled_from(["get", "get", "get", "set", "set", "setdefault", "pop", "peek",
                     "popitem"]),
    keys, st.integers(0, 5))


def _compare(policy, count, sequence):
    c_world = World(_policy_c, policy, count)
    py_world = World(_policy_py, policy, count)
    for step, op in enumerate(sequence):
        got_c = _apply(c_world, op)
        got_py = _apply(py_world, op)
        where = "step %d %r" % (step, op)
        assert got_c == got_py, where
        assert c_world.evicted == py_world.evicted, where
        assert [(_plain(k), v) for k, v in c_world.cache.items()] == \
               [(_plain(k), v) for k, v in py_world.cache.items()], where
        assert c_world.cache.info() == py_world.cache.info(), where
    c_world.cache._check()
    py_world.cache._check()


@pytest.mark.parametrize("policy", fastlru.POLICIES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(1, 12), sequence=st.lists(ops, max_size=120))
def test_compiled_matches_twin(policy, count, sequence):
    _compare(policy, count, sequence)


@pytest.mark.parametrize("policy", fastlru.POLICIES)
@pytest.mark.parametrize("count", [1, 7, 50])
def test_long_skewed_runs_match(policy, count):
    """Long enough for the sketch's reset, the hill climber and the ghost to matter."""
    import random

    rng = random.Random(count)
    sequence = []
    for _ in range(6000):
        k = int(rng.paretovariate(0.9)) % 300
        sequence.append(("get", ("int", k), 0))
        if rng.random() < 0.5:
            sequence.append(("set", ("int", k), k % 7))
        if rng.random() < 0.01:
            sequence.append(("pop", ("int", rng.randrange(300)), 0))
    c_world = World(_policy_c, policy, count)
    py_world = World(_policy_py, policy, count)
    for op in sequence:
        assert _apply(c_world, op) == _apply(py_world, op), op
    assert c_world.evicted == py_world.evicted
    assert c_world.cache.items() == py_world.cache.items()
    assert c_world.cache.info() == py_world.cache.info()
    c_world.cache._check()
