"""Per-method invalidation across processes (odoo/odoo#35012, issue #19 item 4).

With ``registry.method_signals`` on, ``Model.method.clear_cache(model)`` drops only that method's
entries (of that model; of every model with ``all_models=True``), here and, through the method's
fine-grained signal, in every other process at its next ``check_signaling()`` (still one round
trip). Two real processes over PostgreSQL and Redis signaling; both hit paths in-process.
"""
import importlib
import multiprocessing
import uuid

import pytest

from ormcache import ormcache
from ormcache.registry import Registry, method_signal
from ormcache.signaling import LocalSignaling

KEYS = 200
OTHERS = ("b", "c", "d")


def make_models(registry):
    """Two models inheriting the cached methods ``a``..``d`` from one mixin."""

    class Mixin:
        pool = registry

        @ormcache("key")
        def a(self, key):
            return ("a", self._name, key)

        @ormcache("key")
        def b(self, key):
            return ("b", self._name, key)

        @ormcache("key")
        def c(self, key):
            return ("c", self._name, key)

        @ormcache("key")
        def d(self, key):
            return ("d", self._name, key)

    class Partner(Mixin):
        _name = "res.partner"

    class Users(Mixin):
        _name = "res.users"

    return Partner(), Users()


def fill(records):
    for record in records:
        for name in ("a", *OTHERS):
            for key in range(KEYS):
                getattr(record, name)(key)


def counters(registry, records):
    """method name -> (hits, misses) over both models."""
    result = {}
    for name in ("a", *OTHERS):
        func = getattr(type(records[0]), name).__cache__.func
        found = [registry.counters[(r._name, func)] for r in records]
        result[name] = (sum(c.hit for c in found), sum(c.miss for c in found))
    return result


@pytest.fixture
def method_registry(registry):
    registry.method_signals = True
    yield registry
    registry.method_signals = False


def test_clear_cache_drops_one_method_of_one_model(method_registry):
    registry = method_registry
    partner, users = make_models(registry)
    fill([partner, users])
    before = counters(registry, [partner, users])
    type(partner).a.clear_cache(partner)
    assert registry.cache_invalidated == set()  # nothing for signal_changes() to clear wholesale
    fill([partner, users])
    after = counters(registry, [partner, users])
    # only res.partner's a() computed again
    assert after["a"] == (before["a"][0] + KEYS, before["a"][1] + KEYS)
    for name in OTHERS:
        assert after[name] == (before[name][0] + 2 * KEYS, before[name][1])


def test_clear_cache_all_models(method_registry):
    registry = method_registry
    partner, users = make_models(registry)
    fill([partner, users])
    before = counters(registry, [partner, users])
    type(partner).a.clear_cache(partner, all_models=True)
    fill([partner, users])
    after = counters(registry, [partner, users])
    assert after["a"] == (before["a"][0], before["a"][1] + 2 * KEYS)
    for name in OTHERS:
        assert after[name][1] == before[name][1]


def test_off_by_default_clears_the_named_cache(registry):
    partner, users = make_models(registry)
    fill([partner])
    assert registry.method_signals is False
    type(partner).a.clear_cache(partner)
    assert registry.cache_invalidated == {"default"}
    assert len(registry.caches["default"]) == 0
    with pytest.raises(TypeError, match="method_signals"):
        registry.method_signals = 1


def short():
    """A function with a short name."""


def test_signal_name():
    assert method_signal(short) == f"o.{__name__}.short"
    long = type("X" * 80, (), {"m": lambda self: None}).m
    name = method_signal(long)
    assert name.startswith("o.") and len("orm_signaling_" + name) <= 63
    assert name == method_signal(long)  # the same in every process


def test_signal_from_elsewhere_drops_only_the_method(method_registry):
    """Another process's clear, as it reaches this one: the method's signal moved (in-process,
    both hit paths and engines)."""
    registry = method_registry
    registry.signaling = backend = LocalSignaling()
    assert registry.check_signaling() == []
    records = make_models(registry)
    fill(records)
    registry.check_signaling()  # the first read of each method's signal counts as moved
    fill(records)
    before = counters(registry, records)
    backend.bump(registry.db_name, [method_signal(type(records[0]).a.__cache__.func)])
    calls = []
    read = backend.read_versions
    backend.read_versions = lambda *args: calls.append(args) or read(*args)
    assert registry.check_signaling() == []  # no cache cleared
    assert len(calls) == 1  # one round trip
    fill(records)
    after = counters(registry, records)
    assert after["a"] == (before["a"][0], before["a"][1] + 2 * KEYS)  # every model's
    for name in OTHERS:
        assert after[name] == (before[name][0] + 2 * KEYS, before[name][1])


def _backend(kind, target, prefix):
    if kind == "postgres":
        from ormcache.signaling import PostgresSignaling

        return PostgresSignaling(target)
    from ormcache.signaling import RedisSignaling

    return RedisSignaling(target, key_prefix=prefix)


def other_process(impl, kind, target, prefix, db_name, conn):
    """The other worker: fill, wait for the clear, check once, fill again, report."""
    from ormcache import decorators

    decorators._impl = importlib.import_module(impl)  # the parent's hit path
    registry = Registry(db_name)
    registry.signaling = _backend(kind, target, prefix)
    registry.signaling_background_retry = False
    registry.method_signals = True
    try:
        assert registry.check_signaling() == []
        records = make_models(registry)
        fill(records)
        registry.check_signaling()  # the first read of each method's signal counts as moved
        fill(records)
        conn.send("filled")
        assert conn.recv() == "check"
        before = counters(registry, records)
        calls = []
        read = registry.signaling.read_versions
        registry.signaling.read_versions = lambda *args: calls.append(args) or read(*args)
        cleared = registry.check_signaling()
        fill(records)
        after = counters(registry, records)
        conn.send({"cleared": cleared, "round_trips": len(calls), "before": before, "after": after})
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        conn.send(repr(exc))
    finally:
        registry.signaling.close()


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_two_processes_drop_only_the_cleared_method(kind, request, pg_dsn, hit_path):
    if kind == "postgres":
        target, prefix = pg_dsn, None
    else:
        target, prefix = request.getfixturevalue("redis_server").url, request.getfixturevalue("redis_prefix")
    db_name = f"methods-{uuid.uuid4().hex[:8]}"
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    process = ctx.Process(target=other_process, args=(hit_path.__name__, kind, target, prefix, db_name, there), daemon=True)
    process.start()
    registry = Registry(db_name)
    try:
        registry.signaling = _backend(kind, target, prefix)
        registry.signaling_background_retry = False
        registry.method_signals = True
        assert registry.check_signaling() == []
        partner, users = make_models(registry)
        assert here.poll(120), "the other process did not fill its caches"
        assert here.recv() == "filled"
        partner.a(0)  # this process knows a() (subscribed): clear it for one model
        type(partner).a.clear_cache(partner)
        here.send("check")
        assert here.poll(120), "the other process did not report"
        report = here.recv()
        assert isinstance(report, dict), report
    finally:
        process.join(60)
        if registry.signaling is not None:
            registry.signaling.close()
        Registry.delete(db_name)
    assert report["cleared"] == []  # no whole cache cleared
    assert report["round_trips"] == 1
    before, after = report["before"], report["after"]
    # a() computed again for every key of both models over there (its signal is per method)
    assert after["a"][1] - before["a"][1] == 2 * KEYS
    # the other methods' entries stay: >= 99% of their lookups hit (here: all of them)
    lookups = sum(after[n][0] + after[n][1] - before[n][0] - before[n][1] for n in OTHERS)
    hits = sum(after[n][0] - before[n][0] for n in OTHERS)
    assert lookups == len(OTHERS) * 2 * KEYS
    assert hits >= 0.99 * lookups
    assert hits == lookups
