"""Odoo 19's transaction statistics: ``tx_hit`` / ``tx_miss`` / ``tx_err``.

Odoo 19 counts, beside every hit and miss, the *first* lookup of each key inside a transaction
(``tx_hit`` if it was served by the cache, ``tx_miss`` if it had to be computed): how well the
shared cache serves a transaction's distinct keys. In ormcache a transaction is a
``registry.cursor_scope()`` (per thread; a nested scope is the outer one's transaction), and the
counting is off unless ``registry.tx_stats = True`` (it costs a set lookup per call: the hit path
is otherwise untouched). Both hit paths (compiled and twin) run every test.
"""
import logging
import threading

import pytest

from ormcache import get_cache_key_counter, ormcache_context, stats
from ormcache import statistics as stats_module


@pytest.fixture
def tx_registry(registry):
    registry.tx_stats = True
    yield registry
    registry.tx_stats = False


def test_ormcache_19(tx_registry, IMD):
    """Odoo 19's ``test_ormcache``: the transaction counters move on the first lookup only."""
    registry = tx_registry
    XMLID = "base.group_no_one"
    cache, key, counter = get_cache_key_counter(IMD._xmlid_lookup, XMLID)
    hit, miss = counter.hit, counter.miss
    tx_hit, tx_miss = counter.tx_hit, counter.tx_miss

    # cleared before the transaction: a scope that cleared stores nothing more (snapshot-safe
    # stores), where Odoo's test clears inside its transaction
    registry.clear_cache()
    assert key not in cache

    with registry.cursor_scope():
        IMD._xmlid_lookup(XMLID)
        assert (counter.hit, counter.miss) == (hit, miss + 1)
        assert (counter.tx_hit, counter.tx_miss) == (tx_hit, tx_miss + 1)
        assert key in cache

        IMD._xmlid_lookup(XMLID)
        assert (counter.hit, counter.miss) == (hit + 1, miss + 1)
        assert (counter.tx_hit, counter.tx_miss) == (tx_hit, tx_miss + 1)
        assert key in cache

        IMD._xmlid_lookup(XMLID)
        assert (counter.hit, counter.miss) == (hit + 2, miss + 1)
        assert (counter.tx_hit, counter.tx_miss) == (tx_hit, tx_miss + 1)
        assert key in cache


def test_next_transaction_counts_its_first_hit(tx_registry, IMD):
    registry = tx_registry
    with registry.cursor_scope():
        IMD._xmlid_lookup("a")
        IMD._xmlid_lookup("a")
    _, _, counter = get_cache_key_counter(IMD._xmlid_lookup, "a")
    with registry.cursor_scope():
        IMD._xmlid_lookup("a")
        IMD._xmlid_lookup("a")
        with registry.cursor_scope():  # a nested scope is the same transaction
            IMD._xmlid_lookup("a")
        IMD._xmlid_lookup("b")
    assert (counter.hit, counter.miss) == (4, 2)
    assert (counter.tx_hit, counter.tx_miss) == (1, 2)
    assert counter.tx_calls == 3
    assert counter.tx_ratio == pytest.approx(100.0 / 3)


def test_outside_a_transaction_nothing_is_counted(tx_registry, IMD):
    IMD._xmlid_lookup("a")
    IMD._xmlid_lookup("a")
    _, _, counter = get_cache_key_counter(IMD._xmlid_lookup, "a")
    assert (counter.hit, counter.miss) == (1, 1)
    assert (counter.tx_hit, counter.tx_miss, counter.tx_err) == (0, 0, 0)


def test_off_by_default_and_switchable(registry, IMD):
    assert registry.tx_stats is False
    _, _, counter = get_cache_key_counter(IMD._xmlid_lookup, "a")
    with registry.cursor_scope():
        IMD._xmlid_lookup("a")  # a wrapper that already resolved its slot...
    assert (counter.tx_hit, counter.tx_miss) == (0, 0)
    registry.tx_stats = True  # ...counts once the flag is on
    with registry.cursor_scope():
        IMD._xmlid_lookup("a")
    assert (counter.tx_hit, counter.tx_miss) == (1, 0)
    registry.tx_stats = False
    with registry.cursor_scope():
        IMD._xmlid_lookup("a")
    assert (counter.hit, counter.miss, counter.tx_hit, counter.tx_miss) == (2, 1, 1, 0)
    with pytest.raises(TypeError, match="tx_stats"):
        registry.tx_stats = "yes"
    assert registry.tx_stats is False


def test_unhashable_key_counts_tx_err(tx_registry, IMD, caplog):
    with caplog.at_level(logging.WARNING, logger="ormcache"):
        with tx_registry.cursor_scope():
            assert IMD.unhashable(["x"]) == ["x"]
    _, _, counter = get_cache_key_counter(IMD.unhashable, "x")
    assert (counter.err, counter.tx_err, counter.tx_hit, counter.tx_miss) == (1, 1, 0, 0)


def test_transactions_are_per_thread(tx_registry, IMD):
    registry = tx_registry
    inside, done = threading.Event(), threading.Event()

    def other():
        with registry.cursor_scope():
            inside.set()
            done.wait(10)
            IMD._xmlid_lookup("k")  # this thread's first lookup of "k": counted

    thread = threading.Thread(target=other)
    thread.start()
    assert inside.wait(10)
    with registry.cursor_scope():
        IMD._xmlid_lookup("k")
    done.set()
    thread.join(10)
    _, _, counter = get_cache_key_counter(IMD._xmlid_lookup, "k")
    assert (counter.hit, counter.miss, counter.tx_hit, counter.tx_miss) == (1, 1, 1, 1)


def test_context_method_counts_too(tx_registry):
    class Env:
        __slots__ = ("context",)

    class Model:
        __slots__ = ("env",)
        _name = "res.lang"
        pool = tx_registry

        @ormcache_context("key", keys=("lang",))
        def label(self, key):
            return key

    record = Model()
    record.env = Env()
    record.env.context = {"lang": "fr_FR"}
    with tx_registry.cursor_scope():
        for _ in range(3):
            record.label("k")
    row = next(r for r in stats(tx_registry) if r["method"].endswith("label"))
    assert (row["hit"], row["miss"], row["tx_hit"], row["tx_miss"]) == (2, 1, 0, 1)


def test_stats_rows_and_logged_table(tx_registry, IMD, caplog):
    with tx_registry.cursor_scope():
        IMD._xmlid_lookup("a")
    with tx_registry.cursor_scope():
        IMD._xmlid_lookup("a")
        IMD._xmlid_lookup("a")
    row = next(r for r in stats(tx_registry) if r["method"].endswith("_xmlid_lookup"))
    assert (row["hit"], row["miss"], row["tx_hit"], row["tx_miss"], row["tx_err"]) == (2, 1, 1, 1, 0)
    assert row["tx_ratio"] == pytest.approx(50.0)
    assert row["tx_calls"] == 2
    table = stats_module.format_stats()
    header = next(line for line in table.splitlines() if "Cache Name" in line)
    # Odoo 19's columns, after the hit ratio
    assert header.endswith("Hit Ratio, TX Hit Ratio, TX Call,  Model.Method")
    line = next(line for line in table.splitlines() if line.endswith("ir.model.data." + row["method"]))
    assert line.split(",")[-3:-1] == [f"{50.0:12.1f}%", f"{2:8d}"]
    with caplog.at_level(logging.INFO, logger="ormcache"):
        stats_module.log_ormcache_stats()
    assert "TX Hit Ratio" in caplog.records[-1].getMessage()
