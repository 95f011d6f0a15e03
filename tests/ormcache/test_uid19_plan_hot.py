"""The key plan's reads taken without a call (issue #19, item 1, ``'self.env.uid'``): a set
``__slots__`` entry and an instance dict's entry at the dict's version are read in place, the
managed dict of 3.11/3.12 where CPython keeps it; exact str and one-digit int key items are
hashed in place. Whatever the shortcut, a call's key is what the key lambda returns: each case
here changes what a shortcut remembers and checks that the next call sees the change, and that
a key stored by a miss is found again by the hit (the hit's hash equals the stored key's).
Both engines, both hit paths.
"""
import sys

import pytest

from ormcache import get_cache_key_counter, ormcache
from ormcache._bench_odoo import BaseModel, Environment, frozendict

# around the one-digit bounds of CPython's ints (2**30 per digit), -1 (hashed -2), 0, bools and
# an int subclass (not exact: hashed by the call), big ints and strs (cached or not yet hashed)
EDGE = [0, 1, -1, -2, 2, 2**30 - 1, 2**30, -(2**30 - 1), -(2**30), 2**62, -(2**63), 10**30,
        True, False, "", "uid", "é" * 3, "\U0001f600", 1.5, None, (1, -1)]


class MyInt(int):
    """An int subclass: equal and hashed as its value, never hashed in place."""


class Record(BaseModel):
    __slots__ = ()


def make(registry, calls, *exprs):
    class Model(Record):
        __slots__ = ()
        _name = "test.plan.hot"
        pool = registry

        @ormcache(*exprs)
        def method(self, key):
            calls.append((key, self.env.uid))
            return (key, self.env.uid)

    return Model


@pytest.mark.parametrize("exprs", [("key",), ("key", "self.env.uid")], ids=["param", "plan"])
@pytest.mark.parametrize("value", EDGE + [MyInt(5), MyInt(-1)], ids=repr)
def test_a_stored_key_is_found_again_by_the_hit(registry, value, exprs):
    calls = []
    Model = make(registry, calls, *exprs)
    record = Model(Environment(value, frozendict(lang="fr_FR")), (1,))
    assert record.method(value) == (value, value)
    assert record.method(value) == (value, value)
    assert record.method(key=value) == (value, value)  # the key lambda's path: the same key
    assert calls == [(value, value)]
    _, key, counter = get_cache_key_counter(record.method, value)
    assert (counter.hit, counter.miss) == (2, 1)
    assert hash(key) == hash(("test.plan.hot", type(record).method.__cache__.func, value, value)[:len(exprs) + 2])


def test_an_entry_changed_in_the_dict_is_seen(registry):
    calls = []
    Model = make(registry, calls, "key", "self.env.uid")
    env = Environment(1, {})
    record = Model(env, (1,))
    assert [record.method("k") for _ in range(3)] == [("k", 1)] * 3
    env.uid = 2  # the dict's version changes
    assert record.method("k") == ("k", 2)
    env.__dict__["uid"] = 3  # through the dict itself
    assert record.method("k") == ("k", 3)
    env.__dict__.update(other=1)  # another entry: a new version, the same uid
    assert record.method("k") == ("k", 3)
    assert calls == [("k", 1), ("k", 2), ("k", 3)]


def test_a_replaced_dict_is_read_anew(registry):
    calls = []
    Model = make(registry, calls, "key", "self.env.uid")
    env = Environment(1, {})
    record = Model(env, (1,))
    assert record.method("k") == record.method("k") == ("k", 1)
    env.__dict__ = {"uid": 4, "context": {}}
    assert record.method("k") == ("k", 4)
    env.__dict__ = {"context": {}}  # no uid any more: getattr's error, nothing cached
    with pytest.raises(AttributeError, match="uid"):
        record.method("k")
    assert calls == [("k", 1), ("k", 4)]


def test_another_object_with_an_equal_dict_is_read(registry):
    calls = []
    Model = make(registry, calls, "key", "self.env.uid")
    first, second = Environment(1, {}), Environment(2, {})
    a, b = Model(first, (1,)), Model(second, (1,))
    for _ in range(3):
        assert a.method("k") == ("k", 1)
        assert b.method("k") == ("k", 2)
    assert calls == [("k", 1), ("k", 2)]


def test_fresh_objects_whose_values_are_still_inline(registry):
    """Objects made after the first read: on 3.11+ their attributes start in the object's
    inline values, with no dict yet (the shortcut cannot answer; getattr's read does)."""
    calls = []
    Model = make(registry, calls, "key", "self.env.uid")
    for uid in range(5):
        record = Model(Environment(uid % 2, {}), (1,))
        assert record.method("k") == ("k", uid % 2)
    assert calls == [("k", 0), ("k", 1)]


def test_an_unset_slot_raises_as_getattr(registry):
    calls = []
    Model = make(registry, calls, "key", "self.env.uid")
    record = Model(Environment(1, {}), (1,))
    assert record.method("k") == ("k", 1)
    del record.env
    with pytest.raises(AttributeError, match="env"):
        record.method("k")
    record.env = Environment(7, {})
    assert record.method("k") == ("k", 7)
    assert calls == [("k", 1), ("k", 7)]


def test_a_changed_class_is_read_anew(registry):
    """A property put on the class over the instance attribute wins from then on (the type's
    version tag changes: no remembered read is used)."""
    calls = []
    Model = make(registry, calls, "key", "self.env.uid")

    class Env(Environment):
        pass

    env = Env(1, {})
    record = Model(env, (1,))
    assert record.method("k") == record.method("k") == ("k", 1)
    Env.uid = property(lambda self: 9)
    assert record.method("k") == ("k", 9)
    del Env.uid
    assert record.method("k") == ("k", 1)
    assert calls == [("k", 1), ("k", 9)]


def test_the_probe_does_not_keep_the_values(registry):
    """The read values are not kept by the method between calls (the probe is emptied)."""
    calls = []
    Model = make(registry, calls, "key", "self.env.uid")

    class Uid(int):
        pass

    uid = Uid(12345)
    env = Environment(uid, {})
    record = Model(env, (1,))
    record.method("k")
    record.method("k")
    before = sys.getrefcount(uid)
    for _ in range(10):
        record.method("k")
    assert sys.getrefcount(uid) == before
