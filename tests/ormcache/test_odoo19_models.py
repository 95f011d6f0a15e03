"""Issue #19, item 2: an inherited method (defined on a mixin or ``BaseModel``) called
round-robin over many models, as Odoo calls its mixin methods. Each model keeps its own values,
its own invalidation and its own statistics, and after a warm-up no call resolves its (pool,
model) again: the compiled hit path used to remember 8 (pool, model) pairs and re-resolve every
call beyond that (a cliff from ~115 ns to ~1,400 ns per hit).

Both engines and both hit paths (``registry`` fixture). Resolutions are counted through
``_cold.cache_of``, which every resolution calls (``_cold.resolve``, used by both hit paths).
"""
import itertools

import pytest

from ormcache import Registry, ormcache, stats
from ormcache import _cold

MODELS = 64


class BaseModel:
    """Odoo's record shape: slots only, ``pool`` and ``_name`` on the class."""

    __slots__ = ("env", "_ids", "_prefetch_ids")


class OrdinaryBase:
    """An ordinary class: instances have a ``__dict__``, ``pool`` and ``_name`` on the class."""


def mixin(base, computed):
    """A class whose ``f(x)`` is cached, inherited by every model, and counts its computations."""

    class Mixin(base):
        __slots__ = ()

        @ormcache("x")
        def f(self, x):
            computed.append((self._name, x))
            return (self._name, x, len(computed))

    return Mixin


def models(registry, base, computed, n=MODELS):
    """``n`` records, each of a model class of its own inheriting ``f``."""
    parent = mixin(base, computed)
    attrs = {"__slots__": ()} if base is BaseModel else {}
    classes = [type(f"Model{i}", (parent,), {**attrs, "_name": f"test.model.{i}", "pool": registry}) for i in range(n)]
    return parent, [cls() for cls in classes]


@pytest.mark.parametrize("base", [BaseModel, OrdinaryBase], ids=["slotted", "dict"])
def test_round_robin_over_64_models_never_resolves_again(registry, base, monkeypatch):
    computed = []
    _, records = models(registry, base, computed)
    for record in records:  # warm-up: one miss per (model, x)
        for x in range(3):
            assert record.f(x) == (record._name, x, len(computed))
    assert len(computed) == 3 * MODELS
    seen = []
    original = _cold.cache_of
    monkeypatch.setattr(_cold, "cache_of", lambda reg, name: seen.append(name) or original(reg, name))
    for _ in range(5):
        for x in range(3):
            for record in records:  # round robin: a different model on every call
                value = record.f(x)
                assert value[:2] == (record._name, x)
    assert seen == [], f"{len(seen)} resolutions after the warm-up"
    assert len(computed) == 3 * MODELS  # every call a hit
    rows = {row["model"]: row for row in stats(registry) if row["method"].endswith("Mixin.f")}
    assert len(rows) == MODELS
    for record in records:
        row = rows[record._name]
        assert (row["hit"], row["miss"], row["entries"]) == (15, 3, 3)


@pytest.mark.parametrize("base", [BaseModel, OrdinaryBase], ids=["slotted", "dict"])
def test_each_model_its_own_values_and_invalidation(registry, base):
    computed = []
    parent, records = models(registry, base, computed)
    first = {record._name: record.f(1) for record in records}
    assert len(set(first.values())) == MODELS  # one value per model
    # drop one model's entry: that model recomputes, the 63 others still hit
    victim = records[17]
    registry.caches["default"].pop(parent.f.__cache__.key_of(victim, 1))
    before = len(computed)
    for record in itertools.chain(records, records):
        value = record.f(1)
        if record is victim:
            assert value[:2] == (victim._name, 1) and value != first[victim._name]
        else:
            assert value == first[record._name]
    assert computed[before:] == [(victim._name, 1)]
    # a cleared cache: every model recomputes, once
    registry.clear_cache("default")
    before = len(computed)
    for record in itertools.chain(records, records):
        assert record.f(1)[:2] == (record._name, 1)
    assert sorted(computed[before:]) == sorted((record._name, 1) for record in records)


@pytest.mark.parametrize("base", [BaseModel, OrdinaryBase], ids=["slotted", "dict"])
def test_models_over_two_registries_and_a_deleted_one(LRU, hit_path, base):
    """64 models in each of two registries, one method: each (registry, model) its own values;
    deleting one registry forgets it (its caches can be freed) and the other keeps serving."""
    names = [f"test-odoo19-models-{i}" for i in range(2)]
    registries = [Registry(name, lru_factory=LRU) for name in names]
    try:
        computed = []
        parent = mixin(base, computed)
        attrs = {"__slots__": ()} if base is BaseModel else {}
        records = [
            type(f"Model{i}", (parent,), {**attrs, "_name": f"test.model.{i}", "pool": reg})()
            for reg in registries for i in range(MODELS)
        ]
        for record in records:
            record.f(0)
        assert len(computed) == 2 * MODELS  # the same model name in two registries: two entries
        for record in records:
            assert record.f(0)[:2] == (record._name, 0)
        assert len(computed) == 2 * MODELS
        assert all(len(reg.caches["default"]) == MODELS for reg in registries)
        Registry.delete(names[0])
        survivors = records[MODELS:]
        for record in survivors:
            record.f(0)
        assert len(computed) == 2 * MODELS  # the survivor's entries are still hits
        assert all(row["hit"] == 2 for row in stats(registries[1]) if row["method"].endswith("Mixin.f"))
    finally:
        for name in names:
            Registry.delete(name)


def test_many_more_types_than_models_stay_correct(registry):
    """Classes made and dropped by the thousand (as a registry reload makes new model classes):
    every call still answers from its own model, whatever the method remembers."""
    computed = []
    parent = mixin(BaseModel, computed)
    for i in range(3000):
        cls = type(f"Model{i}", (parent,), {"__slots__": (), "_name": f"test.model.{i % 100}", "pool": registry})
        assert cls().f(i % 7)[:2] == (f"test.model.{i % 100}", i % 7)
    assert len(computed) == 700
