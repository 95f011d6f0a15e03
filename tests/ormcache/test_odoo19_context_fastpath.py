"""The context hit's fast path on Odoo's record shape (issue #19, item 1): the compiled hit path
serves the last context part when the env's instance dict and the context dict are the very
ones it saw, unchanged, with borrowed pointers only. Whatever changes between calls, each call's
key must hold ``context.get(key)`` as the call sees it. Both engines and both hit paths.
"""
from ormcache import ormcache_context
from ormcache._bench_odoo import BaseModel, Environment, frozendict


def make(registry, calls, name="test.odoo.fast"):
    class Model(BaseModel):
        __slots__ = ()
        _name = name
        pool = registry

        @ormcache_context("x", keys=("lang",))
        def f(self, x):
            calls.append(x)
            context = getattr(getattr(self, "env", None), "context", None) or {}
            return (x, context.get("lang"))

    return Model


def test_env_dict_changes_are_seen(registry):
    calls = []
    Model = make(registry, calls)
    env = Environment(1, frozendict(lang="fr_FR"))
    record = Model(env, (1,))
    assert record.f(1) == (1, "fr_FR") and record.f(1) == (1, "fr_FR")
    env.uid = 3  # another entry of the env's dict: a new version, the same context
    assert record.f(1) == (1, "fr_FR")
    env.__dict__["context"] = {"lang": "de_DE"}  # the entry replaced behind the attribute
    assert record.f(1) == (1, "de_DE")
    env.__dict__ = {"uid": 1, "context": {"lang": "sv_SE"}}  # the whole dict replaced
    assert record.f(1) == (1, "sv_SE")
    del env.context  # no entry: the class's (none here), then no context
    assert record.f(1) == (1, None)
    Environment.context = frozendict(lang="da_DK")
    try:
        assert record.f(1) == (1, "da_DK")
    finally:
        del Environment.context
    assert record.f(1) == (1, None)
    assert calls == [1] * 5


def test_envs_sharing_one_context_and_records_alternating(registry):
    calls = []
    Model = make(registry, calls)
    Other = make(registry, calls, name="test.odoo.fast.other")
    shared = {"lang": "fr_FR"}
    first = Model(Environment(1, shared), (1,))
    second = Model(Environment(2, shared), (2,))
    third = Other(Environment(1, frozendict(lang="nl_BE")), (3,))
    for _ in range(3):
        assert first.f(1) == (1, "fr_FR")
        assert second.f(1) == (1, "fr_FR")
        assert third.f(1) == (1, "nl_BE")
    shared["lang"] = "es_ES"  # mutated in place: both envs see it
    assert second.f(1) == (1, "es_ES")
    assert first.f(1) == (1, "es_ES")
    assert third.f(1) == (1, "nl_BE")
    assert calls == [1, 1, 1]
