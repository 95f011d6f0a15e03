"""How a hit finds its registry and model on every class shape (issue #11): the compiled hit path
reads ``pool`` and ``_name`` per type (slotted classes) or from the instance dict (ordinary
classes) instead of calling getattr; whatever it does, the answer must be getattr's.

Each cached method here returns where it was computed: ``(registry name, model name, x)``, as
getattr sees them from inside the call. ``check(obj, x)`` calls it twice (a miss or a hit, then
a hit) and compares with what getattr says now: a hit path that served a call from the wrong
registry or model returns a value computed elsewhere, and the check fails. Every test runs on
both engines and both hit paths (``registry`` fixture); the cases that could crash run in a
subprocess.
"""
import subprocess
import sys
import textwrap

import pytest

from ormcache import Registry, default_registry, ormcache as cached

_counter = iter(range(10 ** 9))


@pytest.fixture
def pools(registry, LRU):
    """Three registries on the fixture's engine (the first is ``registry``), and a clean default."""
    others = [Registry(f"test-owners-{next(_counter)}", lru_factory=LRU) for _ in range(2)]
    default_registry.clear_all_caches()
    yield [registry, *others]
    for other in others:
        Registry.delete(other.db_name)
    default_registry.clear_all_caches()


def where(obj):
    """(registry name, model name) of ``obj`` as the owner protocol reads it: with getattr."""
    pool = getattr(obj, "pool", None)
    registry = pool if isinstance(pool, Registry) else default_registry
    name = getattr(obj, "_name", None)
    if name is None:
        name = (obj if isinstance(obj, type) else type(obj)).__qualname__
    return registry.db_name, name


def located(cls):
    """Give ``cls`` the cached method ``f(x) -> (*where(self), x)``."""

    @cached("x")
    def f(self, x):
        return (*where(self), x)

    cls.f = f
    return cls


def m_model(pool):
    """A ``located`` class ``Model`` of the model "m" whose class attribute ``pool`` is ``pool``."""

    class Model:
        _name = "m"

    Model.pool = pool
    return located(Model)


def check(*objs, x=1):
    for _ in range(2):
        for obj in objs:
            assert obj.f(x) == (*where(obj), x), (obj, obj.f(x), where(obj))


def stored(registry):
    """The (model, x) of every entry of ``registry``'s default cache."""
    return sorted((key[0], key[2]) for key in registry.caches["default"].keys())


# -- the instance dict ----------------------------------------------------------------------------


def test_instance_attributes_shadow_the_class_attributes(pools):
    r1, r2, r3 = pools

    Model = m_model(r1)
    a, b = Model(), Model()
    check(a, b)
    a.pool = r2
    check(a, b)
    a._name = "mine"
    check(a, b)
    assert stored(r2) == [("m", 1), ("mine", 1)]
    del a.pool
    check(a, b)
    assert stored(r1) == [("m", 1), ("mine", 1)]
    a.__dict__.clear()
    check(a, b)
    a.__dict__["pool"] = r3  # the same dict object, changed
    check(a, b)
    a.__dict__ = {"pool": r2, "_name": "replaced"}  # another dict object
    check(a, b)
    a._name = None  # as getattr: no name, the class's qualified name
    check(a, b)
    assert ("m", 1) in stored(r3) and (Model.__qualname__, 1) in stored(r2)


def test_a_dict_subclass_as_instance_dict(pools):
    r1, r2, _ = pools

    class Attributes(dict):
        def __getitem__(self, key):  # getattr reads the dict directly, never through this
            raise AssertionError("not called by getattr")

    Model = m_model(r1)
    a = Model()
    check(a)
    a.__dict__ = Attributes(pool=r2)
    check(a)
    assert stored(r2) == [("m", 1)]


def test_pool_set_in_init_one_registry_per_instance(pools):
    r1, r2, r3 = pools

    @located
    class Service:
        _name = "service"

        def __init__(self, pool=None):
            if pool is not None:
                self.pool = pool

    a, b, c, none = Service(r1), Service(r2), Service(r3), Service()
    for _ in range(3):  # alternating instances of one type, each with its own registry
        check(a, b, none, c, a, a, b)
    assert stored(r1) == stored(r2) == stored(r3) == stored(default_registry) == [("service", 1)]
    b.pool, c.pool = r3, r1
    check(a, b, c, none)
    none.pool = r2
    check(none, a)


def test_many_dicts_at_reused_addresses(pools):
    """A fresh instance dict may sit where a freed one was: the hit path must not take it for the
    one it read before (a dict's address alone proves nothing)."""
    r1, r2, r3 = pools

    Model = m_model(r1)
    a = Model()
    for i in range(200):
        a.__dict__ = {"pool": (r2, r3, r1)[i % 3]} if i % 4 else {}
        check(a, x=i % 5)


def test_a_str_subclass_key_equal_to_pool(pools):
    r1, r2, _ = pools

    class Name(str):
        pass

    Model = m_model(r1)
    a = Model()
    check(a)
    a.__dict__[Name("pool")] = r2  # equal to "pool", so getattr finds it
    check(a)
    assert stored(r2) == [("m", 1)]


def test_an_instance_dict_key_whose_eq_raises(pools):
    """getattr raises what a colliding key's __eq__ raises: so does the call; nothing cached."""
    r1, _, _ = pools

    class Hostile(str):
        __hash__ = str.__hash__

        def __eq__(self, other):
            raise LookupError("from __eq__")

    Model = m_model(r1)
    a = Model()
    check(a)
    before = stored(r1)
    a.__dict__[Hostile("pool")] = "not a registry"
    with pytest.raises(LookupError, match="from __eq__"):
        getattr(a, "pool")
    with pytest.raises(LookupError, match="from __eq__"):
        a.f(2)
    assert stored(r1) == before


# -- the class: descriptors, custom getattr, metaclasses, changes ----------------------------------


def test_descriptors_named_pool_or_name(pools):
    r1, r2, r3 = pools

    class DataDescriptor:  # wins over the instance dict
        def __get__(self, obj, owner):
            return r3 if obj is not None and obj.__dict__.get("flag") else r2

        def __set__(self, obj, value):
            raise AttributeError("read-only")

    class NonDataDescriptor:  # loses to the instance dict
        def __get__(self, obj, owner):
            return "from-descriptor"

    @located
    class WithProperty:
        _name = "p"

        @property
        def pool(self):
            return self.__dict__.get("registry", r1)

    @located
    class WithDataDescriptor:
        pool = DataDescriptor()
        _name = "d"

    @located
    class WithNonDataDescriptor:
        pool = r1
        _name = NonDataDescriptor()

    a, b = WithProperty(), WithProperty()
    b.registry = r2
    check(a, b)
    d = WithDataDescriptor()
    check(d)
    d.__dict__["pool"] = r1  # ignored: the data descriptor wins
    d.flag = True
    check(d)
    n = WithNonDataDescriptor()
    check(n)
    n._name = "shadowed"  # the instance dict wins over a non-data descriptor
    check(n)
    assert ("from-descriptor", 1) in stored(r1) and ("shadowed", 1) in stored(r1)


def test_custom_getattr_and_getattribute(pools):
    r1, r2, r3 = pools

    @located
    class WithGetattr:  # no class pool: __getattr__ supplies it
        _name = "g"

        def __getattr__(self, name):
            if name == "pool":
                return r2
            raise AttributeError(name)

    @located
    class WithGetattribute:
        pool = r1
        _name = "ga"

        def __getattribute__(self, name):
            if name == "pool":
                return r3
            return object.__getattribute__(self, name)

    check(WithGetattr(), WithGetattribute())
    assert stored(r2) == [("g", 1)] and stored(r3) == [("ga", 1)] and stored(r1) == []


def test_class_changes_after_the_first_calls(pools):
    r1, r2, r3 = pools

    class Base:
        pass

    @located
    class Model(Base):
        _name = "m"

    a = Model()
    check(a)  # no pool anywhere: the default registry
    Base.pool = r1  # a base class gains pool
    check(a)
    Model.pool = r2  # the class itself
    check(a)
    Model._name = "renamed"
    check(a)
    del Model.pool
    check(a)
    Model.pool = property(lambda self: r3)  # now a descriptor
    check(a)
    del Model.pool
    Model.__getattr__ = lambda self, name: r2 if name == "pool" else None  # a custom getattr, later
    del Base.pool
    check(a)
    Model.__getattribute__ = lambda self, name: r3 if name == "pool" else object.__getattribute__(self, name)
    check(a)
    assert ("renamed", 1) in stored(r3) and ("renamed", 1) in stored(r2) and ("m", 1) in stored(r1)


def test_a_metaclass_does_not_lend_attributes_to_instances(pools):
    r1, r2, _ = pools

    class Meta(type):
        pool = r1  # seen by the class (cls.pool), not by its instances

        @property
        def _name(cls):
            return "from-meta"

    class Model(metaclass=Meta):
        @cached("x")
        def f(self, x):
            return (*where(self), x)

        @classmethod
        @cached("x")
        def g(cls, x):
            return (*where(cls), x)

    m = Model()
    check(m)
    assert where(m) == (default_registry.db_name, Model.__qualname__)
    for _ in range(2):
        assert Model.g(1) == (r1.db_name, "from-meta", 1) == (*where(Model), 1)
    Model.pool = r2  # the class's own attribute: seen by both
    check(m)
    for _ in range(2):
        assert Model.g(1) == (r2.db_name, "from-meta", 1)


# -- crash safety -------------------------------------------------------------------------------


CRASH_TIMEOUT = 120


def test_a_key_eq_replacing_the_instance_dict_does_not_crash(hit_path, lru_module):
    """A colliding key's __eq__ replaces the instance dict (freeing it) while the hit path looks
    in it: the call completes with a value the method computed."""
    code = textwrap.dedent(
        f"""
        import importlib
        from ormcache import Registry, decorators, ormcache as cached
        decorators._impl = importlib.import_module({hit_path.__name__!r})
        LRU = importlib.import_module({lru_module.__name__!r}).LRU
        r1 = Registry("one", lru_factory=LRU)
        r2 = Registry("two", lru_factory=LRU)

        class Model:
            pool = r1
            _name = "m"

            @cached("x")
            def f(self, x):
                return (self.pool.db_name, x)

        a = Model()
        assert a.f(1) == a.f(1) == ("one", 1)

        class Hostile(str):
            __hash__ = str.__hash__

            def __eq__(self, other):
                a.__dict__ = {{"pool": r2}}
                return False

        for _ in range(3):
            a.__dict__ = {{Hostile("pool"): 1, Hostile("_name"): 2, "filler": [1] * 10}}
            assert a.f(1) in (("one", 1), ("two", 1))
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=CRASH_TIMEOUT)
    assert (out.returncode, out.stdout.strip()) == (0, "ok"), out.stderr[-3000:]
