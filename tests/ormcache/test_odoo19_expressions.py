"""Issue #19, item 1: expression keys (``'self.id'``, ``'self.env.uid'``, ``'frozenset(ids)'``)
on the compiled hit path probe the engine with the method's own refilled key tuple and a folded
hash (as plain parameter names do). Whatever it does, it must answer as the generic lookup:
each key its own entry, unhashable values computed uncached, equal but distinct values compared
with ``__eq__``, a ``BaseException`` from ``__hash__`` propagated.

Both engines and both hit paths (``registry`` fixture).
"""
import pytest

from ormcache import ormcache
from ormcache._bench_odoo import BaseModel, Environment, frozendict
from support.models import make_model


def model(registry, calls, *exprs):
    @ormcache(*exprs)
    def f(self, key, ids=(1, 2)):
        calls.append((key, self.env.uid, tuple(ids)))
        return (key, self.id, self.env.uid, frozenset(ids))

    return make_model(registry, "test.odoo.expr", (BaseModel,), __slots__=(), f=f)


@pytest.mark.parametrize("exprs", [("key", "self.id"), ("key", "self.env.uid"), ("key", "frozenset(ids)"),
                                   ("self.id", "self.env.uid", "key", "frozenset(ids)")])
def test_each_key_its_own_entry(registry, exprs):
    calls = []
    Model = model(registry, calls, *exprs)
    records = [Model(Environment(uid, frozendict(lang="fr_FR")), (rid,)) for uid in (1, 2) for rid in (7, 8)]
    first = {}  # key values -> what the first call computed (every later call must return it)
    for _ in range(3):
        for record in records:
            for key in ("a", "b"):
                for ids in ((1, 2), (2, 1), (3,)):
                    values = tuple(eval(e, {}, {"self": record, "key": key, "ids": ids}) for e in exprs)  # noqa: S307
                    got = record.f(key, ids)
                    expected = first.setdefault(values, got)
                    assert got is expected, (values, got, expected)
    assert len(calls) == len(first)


def test_unhashable_values_are_computed_uncached(registry):
    calls = []
    Model = model(registry, calls, "key", "self.env.uid")
    record = Model(Environment([1], frozendict()), (7,))  # a list: unhashable
    assert record.f("a")[0] == "a" and record.f("a")[0] == "a"
    assert len(calls) == 2
    counter = registry.counters[("test.odoo.expr", Model.f.__wrapped__)]
    assert counter.err == 2
    ok = Model(Environment(1, frozendict()), (7,))
    assert ok.f("a") == ok.f("a") and len(calls) == 3  # the probe still works afterwards


class Keeper:
    """Equal to ``Keeper``s of the same tag, hashed by it: distinct but equal keys."""

    def __init__(self, tag):
        self.tag = tag

    def __hash__(self):
        return hash(self.tag)

    def __eq__(self, other):
        if isinstance(other, Keeper):
            return self.tag == other.tag
        return NotImplemented


def test_equal_keys_compared_with_eq(registry):
    calls = []

    class Model(BaseModel):
        __slots__ = ()
        _name = "test.odoo.keeper"
        pool = registry

        @ormcache("key", "self.env.uid")
        def f(self, key):
            calls.append(key)
            return key.tag

    record = Model(Environment(1, frozendict()), (7,))
    # two distinct but equal keys: the lookup compares them with __eq__ (which could keep things)
    assert record.f(Keeper("x")) == "x"
    assert record.f(Keeper("x")) == "x"
    assert record.f(Keeper("y")) == "y"
    assert calls and len(calls) == 2


class Interrupting:
    def __hash__(self):
        raise KeyboardInterrupt


def test_a_base_exception_from_hash_propagates(registry):
    calls = []
    Model = model(registry, calls, "key", "self.env.uid")
    record = Model(Environment(1, frozendict()), (7,))
    with pytest.raises(KeyboardInterrupt):
        record.f(Interrupting())
    assert calls == []
    assert record.f("a") == record.f("a") and len(calls) == 1
