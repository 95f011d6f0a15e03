"""Random operation sequences through the LRU and a tiny OrderedDict model.

Every return value, every exception, the full order ``lru.items()``, ``info()``, ``weight``
and the on_evict calls are compared after each step, and ``_check()`` must pass. Keys come
from a small domain so that hits, replacements and evictions happen all the time.
"""
from collections import OrderedDict

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

import fastlru

SMALL_KEYS = st.sampled_from([0, 1, 2, 3, 4, 5, "a", "b", (1, "t")])
STR_KEYS = st.sampled_from(["a", "b", "c"])
VALUES = st.integers(min_value=0, max_value=12)
SMALL_COUNTS = st.integers(min_value=-1, max_value=7)
MISSING = object()

SETTINGS = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class Collide:
    """A key whose hash collides with a third of the others: long probe chains, deletions in
    the middle of clusters, table growth."""

    __slots__ = ("n",)

    def __init__(self, n):
        self.n = n

    def __hash__(self):
        return self.n % 3

    def __eq__(self, other):
        return isinstance(other, Collide) and other.n == self.n

    def __repr__(self):
        return f"Collide({self.n})"


COLLIDING_KEYS = st.builds(Collide, st.integers(min_value=0, max_value=40))
BIG_COUNTS = st.integers(min_value=-1, max_value=30)


def weigh_value(value):
    """getsizeof of the weighted variant: an int value weighs itself."""
    return value


class Model:
    """The reference: an OrderedDict, least recent first."""

    def __init__(self, count, maxweight, getsizeof):
        self.od = OrderedDict()
        self.count = max(1, count)
        self.maxweight = maxweight
        self.getsizeof = getsizeof
        self.hits = self.misses = self.evictions = 0
        self.evicted = []

    def weigh(self, value):
        if self.maxweight is None:
            return 0
        return 1 if self.getsizeof is None else self.getsizeof(value)

    @property
    def weight(self):
        if self.maxweight is None:
            return len(self.od)
        return sum(self.weigh(v) for v in self.od.values())

    def items(self):
        return list(reversed(self.od.items()))

    def shrink(self):
        while len(self.od) > self.count or (self.maxweight is not None and self.weight > self.maxweight):
            self.evicted.append(self.od.popitem(last=False))
            self.evictions += 1

    def set(self, key, value):
        if self.maxweight is not None and self.weigh(value) > self.maxweight:
            raise ValueError
        self.od[key] = value
        self.od.move_to_end(key)
        self.shrink()

    def lookup(self, key, count_stats):
        if key in self.od:
            self.od.move_to_end(key)
            if count_stats:
                self.hits += 1
            return self.od[key]
        if count_stats:
            self.misses += 1
        return MISSING

    def info(self):
        return fastlru.CacheInfo(self.hits, self.misses, self.evictions, len(self.od), self.count)


def outcome(fn, *args, **kwargs):
    """("ok", result) or ("raise", exception type, args) of a call, for comparing both sides."""
    try:
        return ("ok", fn(*args, **kwargs))
    except (KeyError, ValueError, TypeError) as exc:
        return ("raise", type(exc))


def make_machine(LRU, variant):
    # The rules below draw keys and counts from the variant's domain.
    KEYS = COLLIDING_KEYS if variant == "colliding" else SMALL_KEYS  # noqa: N806
    COUNTS = BIG_COUNTS if variant == "colliding" else SMALL_COUNTS  # noqa: N806

    class LRUMachine(RuleBasedStateMachine):
        @initialize(count=COUNTS, pairs=st.lists(st.tuples(KEYS, VALUES), max_size=40 if variant == "colliding" else 8))
        def start(self, count, pairs):
            if variant == "weighted":
                maxweight, getsizeof = 10, weigh_value
                pairs = [(k, v) for k, v in pairs if v <= maxweight]
            elif variant == "maxweight-only":
                maxweight, getsizeof = 3, None
            else:
                maxweight, getsizeof = None, None
            self.model = Model(count, maxweight, getsizeof)
            self.evicted = []
            kw = {"on_evict": lambda k, v: self.evicted.append((k, v))}
            if maxweight is not None:
                kw["maxweight"] = maxweight
            if getsizeof is not None:
                kw["getsizeof"] = getsizeof
            self.lru = LRU(count, pairs, **kw)
            for k, v in pairs:
                self.model.set(k, v)
            assert self.lru.count == self.model.count
            assert self.lru.maxweight == maxweight

        def same(self, got, want):
            assert got == want, (got, want)

        # -- reads

        @rule(key=KEYS)
        def getitem(self, key):
            want = self.model.lookup(key, True)
            got = outcome(self.lru.__getitem__, key)
            self.same(got, ("raise", KeyError) if want is MISSING else ("ok", want))

        @rule(key=KEYS, default=st.sampled_from([None, -1]), pass_default=st.booleans())
        def get(self, key, default, pass_default):
            want = self.model.lookup(key, True)
            if pass_default:
                got = self.lru.get(key, default)
            else:
                got = self.lru.get(key)
                default = None
            self.same(got, default if want is MISSING else want)

        @rule(key=KEYS)
        def peek(self, key):
            want = self.model.od.get(key, -7)
            self.same(self.lru.peek(key, -7), want)

        @rule(key=KEYS)
        def contains(self, key):
            self.same(key in self.lru, key in self.model.od)

        @rule()
        def iterate(self):
            keys = [k for k, _ in self.model.items()]
            self.same(list(self.lru), keys)
            self.same(list(reversed(self.lru)), keys[::-1])
            self.same(self.lru.keys(), keys)
            self.same(self.lru.values(), [v for _, v in self.model.items()])

        @rule()
        def copy_and_compare(self):
            c = self.lru.copy()
            self.same(c.items(), self.model.items())
            assert c == self.lru
            assert self.lru == dict(self.model.od)
            self.same(c.info(), fastlru.CacheInfo(0, 0, 0, len(self.model.od), self.model.count))

        # -- writes

        @rule(key=KEYS, value=VALUES)
        def setitem(self, key, value):
            want = outcome(self.model.set, key, value)
            got = outcome(self.lru.__setitem__, key, value)
            self.same(got, want)

        @rule(key=KEYS)
        def delitem(self, key):
            want = outcome(self.model.od.__delitem__, key)
            self.same(outcome(self.lru.__delitem__, key), want)

        @rule(key=KEYS, use_default=st.booleans())
        def pop(self, key, use_default):
            if use_default:
                self.same(self.lru.pop(key, "d"), self.model.od.pop(key, "d"))
            else:
                self.same(outcome(self.lru.pop, key), outcome(self.model.od.pop, key))

        @rule()
        def popitem(self):
            self.same(outcome(self.lru.popitem), outcome(self.model.od.popitem, last=False))

        @rule(key=KEYS, value=VALUES)
        def setdefault(self, key, value):
            if key in self.model.od:
                want = ("ok", self.model.lookup(key, False))
            else:
                want = outcome(self.model.set, key, value)
                if want[0] == "ok":
                    want = ("ok", value)
            self.same(outcome(self.lru.setdefault, key, value), want)

        @rule(count=COUNTS)
        def resize(self, count):
            self.lru.count = count
            self.model.count = max(1, count)
            self.model.shrink()
            self.same(self.lru.count, self.model.count)

        @rule()
        def clear(self):
            self.lru.clear()
            self.model.od.clear()

        @rule(
            pairs=st.lists(st.tuples(KEYS, VALUES), max_size=5),
            kwargs=st.dictionaries(STR_KEYS, VALUES, max_size=2),
            as_dict=st.booleans(),
        )
        def update(self, pairs, kwargs, as_dict):
            if self.model.maxweight is not None and self.model.getsizeof is not None:
                pairs = [(k, v) for k, v in pairs if v <= self.model.maxweight]
                kwargs = {k: v for k, v in kwargs.items() if v <= self.model.maxweight}
            if as_dict:
                pairs = list(dict(pairs).items())
                self.lru.update(dict(pairs), **kwargs)
            else:
                self.lru.update(pairs, **kwargs)
            for k, v in pairs:
                self.model.set(k, v)
            for k, v in kwargs.items():
                self.model.set(k, v)

        @precondition(lambda self: len(self.model.od) > 0)
        @rule(data=st.data())
        def promote_existing(self, data):
            key = data.draw(st.sampled_from(sorted(self.model.od, key=repr)))
            self.same(self.lru[key], self.model.lookup(key, True))

        # -- after every step

        @invariant()
        def agrees(self):
            self.same(self.lru.items(), self.model.items())
            self.same(len(self.lru), len(self.model.od))
            self.same(len(list(self.lru)), len(self.lru))
            self.same(self.lru.weight, self.model.weight)
            self.same(self.lru.info(), self.model.info())
            self.same(self.evicted, self.model.evicted)
            assert self.lru._check() is None

    LRUMachine.__name__ = f"LRUMachine_{variant}"
    return LRUMachine


@pytest.mark.parametrize("variant", ["plain", "weighted", "maxweight-only", "colliding"])
def test_stateful_against_model(LRU, variant):
    run_state_machine_as_test(make_machine(LRU, variant), settings=SETTINGS)


class Hash97:
    """Keys colliding modulo 97: large clusters in a large table."""

    __slots__ = ("n",)

    def __init__(self, n):
        self.n = n

    def __hash__(self):
        return self.n % 97

    def __eq__(self, other):
        return isinstance(other, Hash97) and other.n == self.n

    def __repr__(self):
        return f"Hash97({self.n})"


@pytest.mark.parametrize("variant", ["plain", "weighted", "colliding"])
def test_long_random_sequence_against_model(LRU, variant):
    """Thousands of entries (table growth, long probe runs, deletions inside clusters, count
    changes both ways), compared with the model at checkpoints."""
    import random

    rnd = random.Random(20261122)
    make_key = Hash97 if variant == "colliding" else int
    maxweight, getsizeof = (3_000, weigh_value) if variant == "weighted" else (None, None)
    kw = {"maxweight": maxweight, "getsizeof": getsizeof} if maxweight is not None else {}
    evicted = []
    lru = LRU(3000, on_evict=lambda k, v: evicted.append((k, v)), **kw)
    model = Model(3000, maxweight, getsizeof)
    for step in range(30_000):
        k = make_key(rnd.randrange(5000))
        r = rnd.random()
        if r < 0.45:
            v = rnd.randrange(20)
            lru[k] = v
            model.set(k, v)
        elif r < 0.65:
            assert lru.get(k, MISSING) == model.lookup(k, True)
        elif r < 0.8:
            assert lru.pop(k, MISSING) == model.od.pop(k, MISSING)
        elif r < 0.85:
            assert (k in lru) == (k in model.od)
        elif r < 0.9:
            if model.od:
                assert lru.popitem() == model.od.popitem(last=False)
        elif r < 0.9995:
            assert lru.setdefault(k, 7) == (model.lookup(k, False) if k in model.od else (model.set(k, 7) or 7))
        else:
            new = rnd.choice([1, 10, 500, 3000, 6000])
            lru.count = new
            model.count = new
            model.shrink()
        if step % 2000 == 0:
            assert lru.items() == model.items()
            assert lru._check() is None
    assert lru.items() == model.items()
    assert lru.weight == model.weight
    assert lru.info() == model.info()
    assert evicted == model.evicted
    assert lru._check() is None
    assert model.evictions > 0
