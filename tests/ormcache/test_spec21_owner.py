"""One owner rule (issue #21): owner -> (pool, model key) is ``_cold.owner_keys``; every hit
path (compiled, twin, async, multi) and ``key_of`` give its answers, on ordinary owners and
odd ones: no ``pool``, ``pool`` None, ``_name`` None, a non-string ``_name``, a class as owner,
``__slots__`` owners, instance attributes, properties that raise."""
import asyncio

import pytest

from ormcache import default_registry, ormcache, ormcache_multi
from ormcache._cold import model_name, owner_keys, registry_of


class PoolError(Exception):
    pass


class NameError_(Exception):
    pass


def owners(registry):
    """(id, owner) pairs: each owner's class has a fresh ``f(self, x)`` added by the caller."""

    class NoPool:
        _name = "spec21.nopool"

    class PoolNone:
        _name = "spec21.poolnone"
        pool = None

    class NameNone:
        _name = None
        pool = registry

    class NoName:
        pool = registry

    class NameNotStr:
        _name = 5
        pool = registry

    class Slotted:
        __slots__ = ()
        _name = "spec21.slotted"
        pool = registry

    class InstanceAttrs:
        _name = "spec21.class"
        pool = None

    inst = InstanceAttrs()
    inst.pool, inst._name = registry, "spec21.instance"

    class PoolRaises:
        _name = "spec21.poolraises"

        @property
        def pool(self):
            raise PoolError("pool")

    class NameRaises:
        pool = registry

        @property
        def _name(self):
            raise NameError_("_name")

    class BothRaise:
        @property
        def pool(self):
            raise PoolError("pool")

        @property
        def _name(self):
            raise NameError_("_name")

    class NamedByProperty:  # a property that answers: getattr, on every path
        @property
        def pool(self):
            return registry

        @property
        def _name(self):
            return "spec21.property"

    return [
        ("no-pool", NoPool()), ("pool-none", PoolNone()), ("name-none", NameNone()),
        ("no-name", NoName()), ("name-not-str", NameNotStr()), ("slotted", Slotted()),
        ("instance-attrs", inst), ("pool-raises", PoolRaises()), ("name-raises", NameRaises()),
        ("both-raise", BothRaise()), ("named-by-property", NamedByProperty()),
    ]


CASES = ["no-pool", "pool-none", "name-none", "no-name", "name-not-str", "slotted", "instance-attrs",
         "pool-raises", "name-raises", "both-raise", "named-by-property"]


def expected_of(owner):
    """What ``owner_keys`` says: ("raises", type, args) or ("ok", registry, model name)."""
    try:
        pool, mkey = owner_keys(owner)
    except Exception as exc:  # noqa: BLE001
        return ("raises", type(exc), exc.args)
    return ("ok", registry_of(pool), model_name(mkey))


def answer_of(call, func, x):
    """What a call did: ("raises", type, args), or ("ok", the registry holding its key, model)."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001
        return ("raises", type(exc), exc.args)
    from ormcache import Registry

    found = [(reg, key[0]) for reg in Registry._registries.values() for key in reg.caches["default"].keys()
             if key[1] is func and key[-1] == x]
    assert len(found) == 1, found
    return ("ok", *found[0])


def decorate(owner, decorator, method):
    """Give ``owner``'s class the method ``f`` under ``decorator`` (decorated now: the hit path
    the test chose)."""
    wrapped = decorator(method)
    setattr(type(owner), "f", wrapped)
    return wrapped


@pytest.fixture
def owner_case(request, registry, clean_default):
    return dict(owners(registry))[request.param]


def sync_f(self, x):
    return x


async def async_f(self, x):
    return x


def multi_f(self, ids):
    return {i: i for i in ids}


async def async_multi_f(self, ids):
    return {i: i for i in ids}


@pytest.mark.parametrize("owner_case", CASES, indirect=True)
def test_sync_hit_paths_follow_owner_keys(owner_case, hit_path):
    owner = owner_case
    decorate(owner, ormcache("x"), sync_f)
    expected = expected_of(owner)
    assert answer_of(lambda: owner.f(7), sync_f, 7) == expected
    # and again: the slot the first call left (by type or by identities) gives the same answer
    assert answer_of(lambda: owner.f(7), sync_f, 7) == expected
    assert answer_of(lambda: owner.f(x=7), sync_f, 7) == expected  # the key function's path


@pytest.mark.parametrize("owner_case", CASES, indirect=True)
def test_async_hit_paths_follow_owner_keys(owner_case, hit_path):
    """The ``async def`` paths (``_async``, and the compiled one on 3.10+): before, ``owner_keys``
    read ``_name`` before ``pool``, so an owner whose both raise raised ``_name``'s error here,
    ``pool``'s on the sync paths."""
    owner = owner_case
    decorate(owner, ormcache("x"), async_f)
    expected = expected_of(owner)
    assert answer_of(lambda: asyncio.run(owner.f(8)), async_f, 8) == expected
    assert answer_of(lambda: asyncio.run(owner.f(8)), async_f, 8) == expected


@pytest.mark.parametrize("owner_case", CASES, indirect=True)
def test_multi_hit_paths_follow_owner_keys(owner_case, hit_path):
    owner = owner_case
    decorate(owner, ormcache_multi(multi="ids"), multi_f)
    expected = expected_of(owner)
    assert answer_of(lambda: owner.f([9]), multi_f, 9) == expected  # positional: the compiled path's own
    assert answer_of(lambda: owner.f(ids=[9]), multi_f, 9) == expected  # keywords: the Python wrapper


@pytest.mark.parametrize("owner_case", CASES, indirect=True)
def test_async_multi_follows_owner_keys(owner_case, hit_path):
    owner = owner_case
    decorate(owner, ormcache_multi(multi="ids"), async_multi_f)
    assert answer_of(lambda: asyncio.run(owner.f([10])), async_multi_f, 10) == expected_of(owner)


@pytest.mark.parametrize("owner_case", CASES, indirect=True)
def test_key_of_is_the_stored_key(owner_case, hit_path):
    """``key_of`` (and ``add_value``) name the key a call stores: before, a ``_name`` that is
    not a string (``5``) was the key's model as it is, where the hit paths store ``"5"``."""
    owner = owner_case
    spec = decorate(owner, ormcache("x"), sync_f).__cache__
    expected = expected_of(owner)
    if expected[0] == "raises":
        with pytest.raises(expected[1]):
            spec.key_of(owner, 11)
        return
    owner.f(11)
    assert spec.key_of(owner, 11) in expected[1].caches["default"].keys()


def test_a_class_as_owner_follows_owner_keys(registry, hit_path):
    """A classmethod: the owner is the class; no ``_name``: the model key is the class itself."""

    class Model:
        pool = registry

        @ormcache("x")
        @classmethod
        def f(cls, x):
            return x

    class Named(Model):
        _name = "spec21.named"

    assert owner_keys(Model) == (registry, Model) and owner_keys(Named) == (registry, "spec21.named")
    assert Model.f(1) == 1 and Named.f(1) == 1 and Model.f(1) == 1
    func = Model.f.__func__.__wrapped__
    assert set(registry.caches["default"].keys()) == {(Model.__qualname__, func, 1), ("spec21.named", func, 1)}
    assert Model.f.__func__.__cache__.key_of(Model, 1) == (Model.__qualname__, func, 1)


def test_owner_keys_reads_pool_first():
    seen = []

    class Owner:
        @property
        def pool(self):
            seen.append("pool")

        @property
        def _name(self):
            seen.append("_name")
            return "x"

    assert owner_keys(Owner()) == (None, "x") and seen == ["pool", "_name"]
    assert owner_keys(None) == (None, type(None)) and registry_of(None) is default_registry
