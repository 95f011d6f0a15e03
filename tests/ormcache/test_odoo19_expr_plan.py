"""Expression keys evaluated without the key lambda (issue #19, item 1): a parameter, an
attribute chain on one (``'self.env.uid'``, ``'self.id'``) or a builtin called on either
(``'frozenset(ids)'``) is compiled into ``KeyFunction.plan``, which the compiled hit path
evaluates in C for a positional call; anything else keeps the lambda. Either way a call's key
is what the lambda returns. Both engines and both hit paths.
"""
import pytest

from ormcache import get_cache_key_counter, ormcache
from ormcache._bench_odoo import BaseModel, Environment, frozendict
from ormcache.keys import compile_key

IDS = (7, 11, 13)


def f(self, key, ids=IDS):
    """A method's signature."""


@pytest.mark.parametrize("exprs, plan", [
    (("self.env.uid",), ((0, "empty", ("env", "uid"), None),)),
    (("key", "self.id"), ((1, "empty", (), None), (0, "empty", ("id",), None))),
    (("frozenset(ids)",), ((2, IDS, (), frozenset),)),
    (("frozenset(self._ids)", "key"), ((0, "empty", ("_ids",), frozenset), (1, "empty", (), None))),
])
def test_plans(exprs, plan):
    import inspect

    got = compile_key(f, exprs).plan
    assert [(p, "empty" if d is inspect.Parameter.empty else d, a, c) for p, d, a, c in got] == list(plan)


@pytest.mark.parametrize("exprs", [
    ("key",),  # plain parameters: the fast path's indices, no plan
    ("self.env.uid + 1",), ("ids[0]",), ("frozenset(ids, key)",), ("sorted(ids)",),
    ("frozenset(*ids)",), ("frozenset(iterable=ids)",), ("self.env.uid()",),
])
def test_no_plan(exprs):
    assert compile_key(f, exprs).plan is None


def test_a_parameter_named_like_the_builtin_is_no_builtin():
    def g(self, frozenset, ids):
        """``frozenset`` is a parameter here."""

    assert compile_key(g, ("frozenset(ids)",)).plan is None


def test_bad_expressions_still_fail_at_decoration():
    with pytest.raises(ValueError, match="invalid key expression"):
        compile_key(f, ("self.env.",))
    with pytest.raises(ValueError, match="neither a parameter nor a builtin"):
        compile_key(f, ("frozenset(other)",))


class Record(BaseModel):
    __slots__ = ()


def make(registry, calls):
    class Model(Record):
        __slots__ = ()
        _name = "test.expr.plan"
        pool = registry

        @ormcache("key", "self.env.uid")
        def by_uid(self, key):
            calls.append(("uid", key))
            return (key, self.env.uid)

        @ormcache("self.id", "frozenset(ids)")
        def by_ids(self, key, ids=IDS):
            calls.append(("ids", key, ids))
            return (self.id, sorted(ids))

    return Model


def test_keys_are_the_lambdas(registry):
    calls = []
    Model = make(registry, calls)
    env = Environment(2, frozendict(lang="fr_FR"))
    record = Model(env, (42,))
    for _ in range(3):
        assert record.by_uid("a") == ("a", 2)
        assert record.by_uid(key="a") == ("a", 2)  # keywords: the lambda, the same key
        assert record.by_ids("k") == (42, [7, 11, 13])  # the default of ids
        assert record.by_ids("k", [13, 11, 7]) == (42, [7, 11, 13])  # the same frozenset
        assert record.by_ids("k", ids=(1,)) == (42, [1])
    assert calls == [("uid", "a"), ("ids", "k", IDS), ("ids", "k", (1,))]
    env.uid = 3  # the chain is read at every call
    assert record.by_uid("a") == ("a", 3)
    _, key, counter = get_cache_key_counter(record.by_ids, "k")
    assert key == ("test.expr.plan", type(record).by_ids.__cache__.func, 42, frozenset(IDS))
    assert counter.hit == 7 and counter.miss == 2


def test_errors_in_expressions_propagate(registry):
    calls = []
    Model = make(registry, calls)
    record = Model(object(), (42,))  # an env without uid
    with pytest.raises(AttributeError, match="uid"):
        record.by_uid("a")
    with pytest.raises(TypeError):
        record.by_ids("k", 5)  # frozenset(5)
    assert calls == []
    unhashable = Model(Environment([1], {}), (42,))  # uid a list: the key cannot be cached
    assert unhashable.by_uid("a") == ("a", [1]) and unhashable.by_uid("a") == ("a", [1])
    assert len(calls) == 2
