"""``ormcache_context`` keys built by the hit paths (issue #11): the compiled path and its twin
build the context's share of the key themselves, without the key function; every key must be
exactly the key function's (``key_of``), for every kind of context and call.

Every test runs on both engines and both hit paths (``registry`` fixture).
"""
import pytest

from ormcache import default_registry, ormcache_context


class Env:
    def __init__(self, context):
        self.context = context


class LangFirst(dict):
    """A dict subclass whose get differs from dict's: the key function calls it."""

    def get(self, key, default=None):
        return "overridden" if key == "lang" else super().get(key, default)


class Falsy:
    """A mapping that is false (so ``context or {}`` drops it) but answers get."""

    def __bool__(self):
        return False

    def get(self, key, default=None):
        return "never read"


class Truthy:
    def get(self, key, default=None):
        return f"got {key}"


CONTEXTS = [None, {}, {"lang": "fr_FR"}, {"lang": "fr_FR", "tz": "UTC"}, {"tz": "UTC"}, LangFirst(tz="x"),
            Falsy(), Truthy()]


def calls_of(registry, model, method):
    counter = registry.counters[(model, method.__wrapped__)]
    return counter.hit, counter.miss, counter.err


def assert_keyed_as_the_key_function(registry, decorator, call, *args, **kwargs):
    """``call(*args[1:], **kwargs)`` twice (``args[0]``: the owner, or None for a function): the
    first stores (or finds) exactly the key function's key, the second finds it."""
    expected = decorator.key_of(*(args[1:] if args[0] is None else args), **kwargs)
    first = call(*args[1:], **kwargs)
    assert expected in registry.caches["default"].keys(), (expected, list(registry.caches["default"].keys()))
    assert registry.caches["default"][expected] == first
    assert call(*args[1:], **kwargs) == first


def test_context_argument(registry):
    class Model:
        _name = "m"
        pool = registry

        @ormcache_context("x", keys=("lang", "tz"))
        def f(self, x, context=None):
            return (x, repr(context))

        @ormcache_context("x", keys=())
        def no_keys(self, x, context=None):
            return x

    m = Model()
    for context in CONTEXTS:
        assert_keyed_as_the_key_function(registry, Model.no_keys.__cache__, m.no_keys, m, 1, context)
    spec = Model.f.__cache__
    for context in CONTEXTS:
        assert_keyed_as_the_key_function(registry, spec, m.f, m, 1, context)
        assert_keyed_as_the_key_function(registry, spec, m.f, m, 2, context=context)
    assert_keyed_as_the_key_function(registry, spec, m.f, m, 3)
    context = {"lang": "a"}  # one dict, changed in place between calls
    for change in ({"lang": "b"}, {"tz": "UTC"}, {"lang": "a"}):
        assert_keyed_as_the_key_function(registry, spec, m.f, m, 4, context)
        context.update(change)
        assert_keyed_as_the_key_function(registry, spec, m.f, m, 4, context)
    del context["lang"]
    assert_keyed_as_the_key_function(registry, spec, m.f, m, 4, context)
    hit, miss, err = calls_of(registry, "m", Model.f)
    assert err == 0 and hit >= len(CONTEXTS) * 2 + 1


def test_context_of_the_owner(registry):
    class Model:
        _name = "m"
        pool = registry

        @ormcache_context("x", keys=("lang",))
        def g(self, x):
            return (x, id(self))

    spec = Model.g.__cache__
    owners = []
    for context in CONTEXTS:
        with_env = Model()
        with_env.env = Env(context)  # env.context, unless None: then _context
        with_private = Model()
        with_private._context = context
        owners += [with_env, with_private]
    no_context_env = Model()
    no_context_env.env = object()  # an env without context
    none_env = Model()
    none_env.env = None
    owners += [no_context_env, none_env, Model()]
    for owner in owners:
        assert_keyed_as_the_key_function(registry, spec, owner.g, owner, 1)
    Model._context = {"lang": "class"}  # a class attribute, then changed
    assert_keyed_as_the_key_function(registry, spec, owners[-1].g, owners[-1], 1)
    Model._context = {"lang": "other"}
    assert_keyed_as_the_key_function(registry, spec, owners[-1].g, owners[-1], 1)


def test_slotted_records_with_env(registry):
    """Odoo's shape: env in a slot, the context on the env."""

    class Model:
        __slots__ = ("env",)
        _name = "m"
        pool = registry

        def __init__(self, env):
            self.env = env

        @ormcache_context("x", keys=("lang", "tz"))
        def g(self, x):
            return x

    spec = Model.g.__cache__
    for context in CONTEXTS:
        record = Model(Env(context))
        assert_keyed_as_the_key_function(registry, spec, record.g, record, 1)


def test_a_function_without_owner(registry):
    @ormcache_context("x", keys=("lang",))
    def h(x, context):
        return x

    spec = h.__cache__
    default_registry.clear_all_caches()
    try:
        for context in CONTEXTS:  # h is cached in default_registry
            assert_keyed_as_the_key_function(default_registry, spec, h, None, 1, context)
    finally:
        default_registry.clear_all_caches()


def test_errors_of_the_context_propagate_and_cache_nothing(registry):
    class Broken:
        def __init__(self, on):
            self.on = on

        def __bool__(self):
            if self.on == "bool":
                raise LookupError("from bool")
            return True

        def get(self, key, default=None):
            raise LookupError("from get")

    class Model:
        _name = "m"
        pool = registry

        @ormcache_context("x", keys=("lang",))
        def f(self, x, context=None):
            return x

        @ormcache_context("x", keys=("lang",))
        def g(self, x):
            return x

        @property
        def env(self):
            raise LookupError("from env")

    m = Model()
    for on in ("bool", "get"):
        with pytest.raises(LookupError, match=f"from {on}"):
            m.f(1, Broken(on))
    with pytest.raises(LookupError, match="from env"):
        m.g(1)
    assert len(registry.caches["default"]) == 0
