"""Issue #19, item 1: ``ormcache_context`` on Odoo's record shape. A record has the slots
``env``, ``_ids``, ``_prefetch_ids``; ``pool`` and ``_name`` are class attributes; ``env`` is an
instance attribute whose ``context`` is a ``frozendict`` (a ``dict`` subclass) or a dict. The
compiled hit path reads ``env`` at its slot's offset, ``env.context`` from the env's instance
dict and the context's values from the dict's storage (remembering them while the dicts are
unchanged); whatever it does, each call's key must hold ``context.get(key)`` as the call sees it.

Both engines and both hit paths (``registry`` fixture).
"""
import pytest

from ormcache import ormcache_context
from ormcache._bench_odoo import BaseModel, Environment, frozendict
from support.models import make_model


def model(registry, calls, name="test.odoo.ctx", keys=("lang",)):
    @ormcache_context("x", keys=keys)
    def f(self, x):
        calls.append(x)
        env = getattr(self, "env", None)
        context = getattr(env, "context", None) or {}
        return (x, *(context.get(k) for k in keys))

    return make_model(registry, name, (BaseModel,), __slots__=(), f=f)


def test_each_context_its_own_entry(registry):
    calls = []
    Model = model(registry, calls)
    fr = Model(Environment(1, frozendict(lang="fr_FR")), (1,))
    nl = Model(Environment(1, frozendict(lang="nl_BE")), (1,))
    plain = Model(Environment(1, {"lang": "de_DE"}), (1,))
    for _ in range(3):
        assert fr.f(1) == (1, "fr_FR")
        assert nl.f(1) == (1, "nl_BE")
        assert plain.f(1) == (1, "de_DE")
    assert calls == [1, 1, 1]


def test_a_changed_context_is_seen(registry):
    calls = []
    Model = model(registry, calls)
    env = Environment(1, frozendict(lang="fr_FR"))
    record = Model(env, (1,))
    assert record.f(1) == (1, "fr_FR") and record.f(1) == (1, "fr_FR")
    env.context = frozendict(lang="es_ES")  # the env's dict changes: a new context
    assert record.f(1) == (1, "es_ES")
    dict.__setitem__(env.context, "lang", "it_IT")  # a frozendict mutated through dict's own API
    assert record.f(1) == (1, "it_IT")
    plain = {"lang": "pt_PT"}
    env.context = plain
    assert record.f(1) == (1, "pt_PT")
    plain["lang"] = "pl_PL"  # the same dict, mutated in place
    assert record.f(1) == (1, "pl_PL")
    record.env = Environment(1, frozendict(lang="fr_FR"))  # another env in the record's slot
    assert record.f(1) == (1, "fr_FR")
    assert calls == [1, 1, 1, 1, 1]


def test_no_env_and_unusual_envs(registry):
    calls = []
    Model = model(registry, calls)
    record = Model(Environment(1, frozendict(lang="fr_FR")), (1,))
    assert record.f(1) == (1, "fr_FR")
    empty = Model.__new__(Model)  # the env slot unset: getattr's default, then no context
    assert empty.f(1) == (1, None) and empty.f(1) == (1, None)
    assert Model(None, (1,)).f(1) == (1, None)

    class PropertyEnv:  # context a property: read through getattr
        @property
        def context(self):
            return frozendict(lang="ja_JP")

    class SlottedEnv:
        __slots__ = ("context",)

        def __init__(self, context):
            self.context = context

    class OwnGet(frozendict):  # a subclass whose get is its own: called
        def get(self, key, default=None):
            return "own-" + str(dict.get(self, key, default))

    assert Model(PropertyEnv(), (1,)).f(3) == (3, "ja_JP")
    assert Model(SlottedEnv(frozendict(lang="ko_KR")), (1,)).f(3) == (3, "ko_KR")
    assert Model(Environment(1, OwnGet(lang="zh_CN")), (1,)).f(3) == (3, "own-zh_CN")
    # back to the first env: still its own entry
    assert record.f(3) == (3, "fr_FR")
    assert record.f(1) == (1, "fr_FR")


def test_a_changed_class_is_seen(registry):
    calls = []
    Model = model(registry, calls)
    record = Model(Environment(1, frozendict(lang="fr_FR")), (1,))
    assert record.f(1) == (1, "fr_FR") and record.f(1) == (1, "fr_FR")
    # the env's class grows a context property: read from now on
    Environment_ = type(record.env)
    try:
        Environment_.context = property(lambda self: frozendict(lang="fi_FI"))
        assert record.f(1) == (1, "fi_FI")
    finally:
        del Environment_.context
    assert record.f(1) == (1, "fr_FR")
    assert calls.count(1) == 2


@pytest.mark.parametrize("context", [frozendict(lang="fr_FR", tz="UTC"), {"lang": "fr_FR", "tz": "UTC"}],
                         ids=["frozendict", "dict"])
def test_several_keys_and_stats(registry, context):
    calls = []
    Model = model(registry, calls, keys=("lang", "tz", "missing"))
    record = Model(Environment(1, context), (1,))
    for x in range(5):
        assert record.f(x) == (x, "fr_FR", "UTC", None)
        assert record.f(x) == (x, "fr_FR", "UTC", None)
    assert calls == list(range(5))
    counter = registry.counters[("test.odoo.ctx", Model.f.__wrapped__)]
    assert (counter.hit, counter.miss) == (5, 5)
