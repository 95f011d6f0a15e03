"""Expression keys read attributes as the key lambda does, whatever the attribute is (issue #19,
item 1): the compiled hit path caches, per attribute of a key plan, what the last object's type
does for that name (a slot, the instance dict, a property or another descriptor, a class
attribute), valid while the type's version tag is unchanged. Every kind, every change of a
class after the first call, every error: the same values and errors as the lambda, on both hit
paths and both engines. The method returns its own key (the lambda's values): a call served
under a wrong key would return another key's value.
"""
import sys
import sysconfig

import pytest

from ormcache import ormcache
from ormcache.keys import compile_key


def _outcome(fn, *args):
    try:
        return ("value", fn(*args))
    except Exception as exc:  # the error's type and text, as the lambda raises it
        return ("error", type(exc), str(exc))


class Checker:
    """A model whose ``get(obj)`` is cached on ``exprs`` (expressions on ``obj``)."""

    def __init__(self, registry, exprs=("obj.a",)):
        def get(self, obj):
            calls.append(obj)
            return key(self, obj)

        calls = []
        key = compile_key(get, exprs).function
        assert compile_key(get, exprs).plan is not None  # the key plan's path, not the lambda's
        self.model = type("Model", (), {"__slots__": (), "_name": "test.hit19.attrs", "pool": registry,
                                        "get": ormcache(*exprs)(get)})()
        self.key = key
        self.calls = calls
        self.lru = registry.caches["default"]

    def __call__(self, obj, times=3):
        """The cached call gives what the lambda gives (value or error), several times over."""
        for _ in range(times):
            size = len(self.lru)
            expected = _outcome(self.key, self.model, obj)
            assert _outcome(self.model.get, obj) == expected
            if expected[0] == "error":
                assert len(self.lru) == size  # nothing stored
        return expected


def test_a_slot_set_then_unset(registry):
    class Slotted:
        __slots__ = ("a",)

    check = Checker(registry)
    obj = Slotted()
    obj.a = 1
    assert check(obj) == ("value", (1,))
    del obj.a
    assert check(obj)[:2] == ("error", AttributeError)
    obj.a = 2
    assert check(obj) == ("value", (2,))


def test_the_instance_dict(registry):
    class Plain:
        pass

    check = Checker(registry)
    obj = Plain()
    assert check(obj)[:2] == ("error", AttributeError)  # no dict entry, no class attribute
    obj.a = 1
    assert check(obj) == ("value", (1,))
    obj.a = 5
    assert check(obj) == ("value", (5,))
    del obj.a
    assert check(obj)[:2] == ("error", AttributeError)
    other = Plain()
    other.a = 7
    assert check(other) == ("value", (7,))
    other.__dict__ = type("Sub", (dict,), {})(a=8)  # an instance dict of a dict subclass
    assert check(other) == ("value", (8,))


def test_a_property_and_its_errors(registry):
    class WithProperty:
        __slots__ = ("v",)

        @property
        def a(self):
            if isinstance(self.v, BaseException):
                raise self.v
            return self.v

    check = Checker(registry)
    obj = WithProperty()
    obj.v = 3
    assert check(obj) == ("value", (3,))
    obj.v = ValueError("no a today")
    assert check(obj) == ("error", ValueError, "no a today")
    obj.v = AttributeError("gone")
    assert check(obj) == ("error", AttributeError, "gone")
    obj.v = 4
    assert check(obj) == ("value", (4,))
    assert check.calls.count(obj) == 2


def test_class_attributes_and_descriptors(registry):
    class NonData:
        def __get__(self, obj, owner):
            return ("non-data", type(obj).__name__)

    class Data:
        def __get__(self, obj, owner):
            return ("data", type(obj).__name__)

        def __set__(self, obj, value):
            raise AttributeError("read-only")

    class Plain:
        a = 10

    class Shadowed:
        a = NonData()

    class Winning:
        a = Data()

    class SlottedNonData:
        __slots__ = ()
        a = NonData()

    class SlottedPlain:
        __slots__ = ()
        a = 11

    check = Checker(registry)
    plain = Plain()
    assert check(plain) == ("value", (10,))
    plain.a = 12  # the instance's entry first
    assert check(plain) == ("value", (12,))
    shadowed = Shadowed()
    assert check(shadowed) == ("value", (("non-data", "Shadowed"),))
    shadowed.__dict__["a"] = 13  # a non-data descriptor loses to the instance dict
    assert check(shadowed) == ("value", (13,))
    winning = Winning()
    winning.__dict__["a"] = 14  # a data descriptor wins over it
    assert check(winning) == ("value", (("data", "Winning"),))
    assert check(SlottedNonData()) == ("value", (("non-data", "SlottedNonData"),))
    assert check(SlottedPlain()) == ("value", (11,))


def test_methods_getattr_and_getattribute(registry):
    class WithMethod:
        def a(self):
            """A bound method is the key (equal for the same object and function)."""

    class Fallback:
        def __getattr__(self, name):
            if name == "a":
                return "from __getattr__"
            raise AttributeError(name)

    class Counting:
        seen = 0

        def __getattribute__(self, name):
            type(self).seen += 1
            return ("counted", name)

    check = Checker(registry)
    obj = WithMethod()
    assert check(obj) == ("value", (obj.a,))
    fallback = Fallback()
    assert check(fallback) == ("value", ("from __getattr__",))
    fallback.a = "own"  # found normally: __getattr__ not called
    assert check(fallback) == ("value", ("own",))
    counting = Counting()
    assert check(counting) == ("value", (("counted", "a"),))
    # every read asked it: the lambda's 3, the cached call's 3 and the miss's own key
    assert Counting.seen == 7


def test_a_class_changed_after_the_first_calls(registry):
    class Base:
        a = 1

    class Child(Base):
        pass

    check = Checker(registry)
    obj = Child()
    assert check(obj) == ("value", (1,))
    Base.a = 2  # a base changed: the subclass's version tag changes too
    assert check(obj) == ("value", (2,))
    Child.a = property(lambda self: 3)
    obj.__dict__["a"] = 30  # a property wins over the instance's entry
    assert check(obj) == ("value", (3,))
    del Child.a
    assert check(obj) == ("value", (30,))
    del obj.__dict__["a"], Base.a
    assert check(obj)[:2] == ("error", AttributeError)
    Base.a = 4
    assert check(obj) == ("value", (4,))

    class Other:
        @property
        def a(self):
            return self.__dict__.get("b", "no b")

    obj.__class__ = Other  # the same object, another type
    assert check(obj) == ("value", ("no b",))
    obj.b = 5
    assert check(obj) == ("value", (5,))


def test_a_chain_over_alternating_types(registry):
    class Env:
        def __init__(self, uid):
            self.uid = uid

    class SlotEnv:
        __slots__ = ("uid",)

        def __init__(self, uid):
            self.uid = uid

    class Record:
        __slots__ = ("env",)

        def __init__(self, env):
            self.env = env

    class PropertyRecord:
        def __init__(self, env):
            self._env = env

        @property
        def env(self):
            return self._env

    check = Checker(registry, ("obj.env.uid",))
    objs = [Record(Env(1)), PropertyRecord(SlotEnv(2)), Record(SlotEnv(3)), PropertyRecord(Env(4)), Record(object())]
    for _ in range(3):
        for obj, expected in zip(objs, [1, 2, 3, 4, None]):
            got = check(obj, times=1)
            assert got == ("value", (expected,)) if expected is not None else got[:2] == ("error", AttributeError)


def test_a_property_that_calls_the_method_again(registry):
    check = Checker(registry)

    class Inner:
        pass

    class Reentrant:
        depth = 0

        @property
        def a(self):
            if Reentrant.depth < 2:  # the same method, on the same plan step, while it reads this
                Reentrant.depth += 1
                inner = Inner() if Reentrant.depth == 1 else Reentrant()
                inner.__dict__["a"] = Reentrant.depth
                assert check.model.get(inner) == (Reentrant.depth if Reentrant.depth == 1 else "outer",)
            return "outer"

    obj = Reentrant()
    assert check.model.get(obj) == ("outer",)
    assert check.model.get(obj) == ("outer",)
    assert check(obj) == ("value", ("outer",))


@pytest.mark.skipif(sys.version_info < (3, 10), reason="AttributeError.name and .obj are 3.10's")
def test_a_missing_attribute_names_itself(registry):
    class Slotted:
        __slots__ = ("a",)

    class Plain:
        pass

    check = Checker(registry)
    for obj in (Slotted(), Plain()):
        for _ in range(3):
            with pytest.raises(AttributeError) as info:
                check.model.get(obj)
            assert info.value.name == "a" and info.value.obj is obj


def test_instance_dicts_come_and_go(registry):
    """The last instance dict read is remembered at its version (CPython 3.9-3.12): a changed
    entry, another object sharing the dict, dicts freed and new ones made at the same address."""

    class Plain:
        pass

    check = Checker(registry)
    first = Plain()
    first.a = 1
    assert check(first) == ("value", (1,))
    first.__dict__.update(a=2)
    assert check(first) == ("value", (2,))
    twin = Plain()
    twin.__dict__ = first.__dict__  # one dict, two objects
    assert check(twin) == ("value", (2,))
    twin.a = 3
    assert check(first) == ("value", (3,))
    for i in range(200):  # objects (and their dicts) freed and made again, at reused addresses
        obj = Plain()
        obj.a = i
        assert check(obj, times=2) == ("value", (i,))
        del obj


def test_frozenset_of_a_tuple(registry):
    """``frozenset(t)`` of the same tuple of str/int/float/bool/None items is reused (a tuple never
    changes); any other argument is made into a frozenset at every call, as the lambda does."""
    check = Checker(registry, ("frozenset(obj)",))
    atoms = (1, "a", 2.5, None, True)
    for _ in range(2):
        assert check(atoms) == ("value", (frozenset(atoms),))
        assert check(tuple(list(atoms))) == ("value", (frozenset(atoms),))  # equal, another tuple
        assert check(list(atoms)) == ("value", (frozenset(atoms),))
    assert len(check.calls) == 1

    class Counted:
        hashed = 0

        def __hash__(self):
            Counted.hashed += 1
            return 1

    item = Counted()
    objects = (item, 1)
    for _ in range(3):
        hashed = Counted.hashed
        assert check.model.get(objects) == (frozenset(objects),)
        assert Counted.hashed > hashed + 1  # made at this call too (and once in the assert)
    assert check(("x", [1]))[:2] == ("error", TypeError)  # unhashable item: the lambda's error
    assert check(5)[:2] == ("error", TypeError)


def test_frozenset_memo_lets_go(registry, hit_path):
    atoms = tuple(str(i) for i in range(3))
    before = sys.getrefcount(atoms)
    check = Checker(registry, ("frozenset(obj)",))
    check.model.get(atoms)
    check.model.get(atoms)
    check.calls.clear()
    kept = sys.getrefcount(atoms) - before
    # the compiled path's memo (not on free-threaded builds)
    memo = hit_path.__name__ == "ormcache._cache_c" and not sysconfig.get_config_var("Py_GIL_DISABLED")
    assert kept == (1 if memo else 0)
    check.model.get(("other",))  # the memo moves on: the last tuple is let go
    check.calls.clear()
    assert sys.getrefcount(atoms) == before


def test_properties_changed_in_place(registry):
    """A property's getter is read at every call (``property.__init__`` may run again); a
    property without getter and a property subclass raise and read as getattr does."""

    class Getter(property):
        def __get__(self, obj, owner=None):
            return ("subclass", super().__get__(obj, owner))

    class Model:
        a = property(lambda self: 1)

    check = Checker(registry)
    obj = Model()
    assert check(obj) == ("value", (1,))
    Model.__dict__["a"].__init__(lambda self: 2)  # the same property object, another getter
    assert check(obj) == ("value", (2,))
    Model.a = property()  # no getter
    assert check(obj)[:2] == ("error", AttributeError)
    Model.a = Getter(lambda self: 3)
    assert check(obj) == ("value", (("subclass", 3),))
