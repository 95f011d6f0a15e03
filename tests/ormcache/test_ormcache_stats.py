"""ormcache statistics (rows, logged table, signals) and the benchmark section."""
import logging
import os
import signal

import pytest

import ormcache
from ormcache import ormcache as cached, stats
from ormcache import _bench, decorators
from ormcache import statistics as stats_module


@pytest.fixture
def model(registry):
    class Params:
        _name = "ir.config_parameter"
        pool = registry

        @cached("key")
        def get_param(self, key):
            return key * 3

        @cached("key", cache="assets")
        def bundle(self, key):
            if key == "boom":
                raise ValueError(key)
            return key

    return Params()


def test_stats_rows_per_database_model_and_method(registry, model):
    for key in ("a", "b", "a", "a"):
        model.get_param(key)
    model.get_param(["unhashable"])
    model.bundle("x")
    with pytest.raises(ValueError):
        model.bundle("boom")
    rows = {row["method"]: row for row in stats(registry)}
    qualname = type(model).get_param.__qualname__
    row = rows[qualname]
    assert (row["db"], row["model"], row["cache"]) == (registry.db_name, "ir.config_parameter", "default")
    assert (row["hit"], row["miss"], row["err"], row["entries"]) == (2, 2, 1, 2)
    assert row["ratio"] == pytest.approx(50.0)
    assert row["gen_time"] > 0
    bundle = rows[type(model).bundle.__qualname__]
    assert (bundle["cache"], bundle["miss"], bundle["hit"], bundle["entries"]) == ("assets", 2, 0, 1)
    assert sorted(rows) == sorted([qualname, type(model).bundle.__qualname__])
    # stats() without a registry covers every registry, this one included
    assert any(r["db"] == registry.db_name and r["method"] == qualname for r in stats())


def test_counter_ratio_and_repr(hit_path):
    counter = hit_path.Counter("default")
    assert counter.ratio == 0.0 and counter.cache_name == "default"
    counter.hit, counter.miss, counter.err, counter.gen_time = 3, 1, 2, 0.5
    assert counter.ratio == 75.0
    assert "hit=3" in repr(counter) and "miss=1" in repr(counter)


def test_log_ormcache_stats_table(registry, model, caplog):
    model.get_param("a")
    model.get_param("a")
    with caplog.at_level(logging.INFO, logger="ormcache"):
        ormcache.log_ormcache_stats()
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "ormcache")
    assert f"Database {registry.db_name}:" in text
    assert " * default: 1/8192" in text and " * assets: 0/512" in text
    assert "bytes" not in text
    line = next(line for line in text.splitlines() if line.endswith("ir.config_parameter." + type(model).get_param.__qualname__))
    assert [cell.strip() for cell in line.split(",")[:4]] == ["default", "1", "1", "1"]


def test_sizes_estimate_bytes_per_cache(registry, model, caplog):
    model.get_param("x" * 1000)
    usage = dict((name, (entries, count, size)) for name, entries, count, size in stats_module.cache_usage(registry, True))
    entries, count, size = usage["default"]
    assert (entries, count) == (1, 8192) and size > 3000  # the 3000-character value at least
    assert usage["assets"] == (0, 512, 0)
    with caplog.at_level(logging.INFO, logger="ormcache"):
        ormcache.log_ormcache_stats(sizes=True)
    assert "bytes)" in caplog.text


def test_signal_handlers_log_from_a_thread(registry, model, caplog):
    model.get_param("a")
    previous = ormcache.enable_signal_handlers()
    try:
        assert signal.getsignal(signal.SIGUSR1) is ormcache.log_ormcache_stats
        assert signal.getsignal(signal.SIGUSR2) is ormcache.log_ormcache_stats
        with caplog.at_level(logging.INFO, logger="ormcache"):
            os.kill(os.getpid(), signal.SIGUSR2)
            thread = stats_module.last_log_thread
            assert thread is not None
            thread.join(10)
        assert f"Database {registry.db_name}:" in caplog.text and "bytes)" in caplog.text
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def test_get_cache_key_counter_matches_the_calls(registry, model):
    lru, key, counter = ormcache.get_cache_key_counter(model.get_param, "k")
    assert lru is registry.caches["default"] and key not in lru
    assert key == ("ir.config_parameter", type(model).get_param.__wrapped__, "k")
    model.get_param("k")
    model.get_param(key="k")
    assert key in lru and (counter.hit, counter.miss) == (1, 1)


def test_bench_rows_and_the_classic_baseline():
    class Model:
        _name = "m"
        pool = _bench.OdooRegistry("bench-test")
        calls = []

        @_bench.odoo_ormcache("key")
        def get_param(self, key, default=None):
            self.calls.append(key)
            return key

    m = Model()
    assert m.get_param("a") == m.get_param(key="a") == m.get_param("a", None) == "a"
    assert Model.calls == ["a"]
    counter = _bench.STAT[("bench-test", "m", Model.get_param.__wrapped__)]
    assert (counter.hit, counter.miss) == (2, 1)

    rows = _bench.rows(quick=True)
    impls = {row["impl"] for row in rows}
    assert {"undecorated", "odoo classic ormcache", "functools.lru_cache", "ormcache (python twin)"} <= impls
    assert any(i.startswith("ormcache (c)") or i.startswith("ormcache (python)") for i in impls)
    # issue 11: a table per class shape (workload), each with its own undecorated baseline, and
    # the median next to the minimum
    # (and, issue 11 too, the miss table of the compiled hit path: a miss with and without its
    # flight bookkeeping, the ratio to the full miss)
    misses = [row for row in rows if row["workload"] == _bench.MISS]
    assert {row["impl"] for row in misses} == ({_bench.MISS_OURS, _bench.MISS_BARE} if misses else set())
    assert bool(misses) == (decorators.IMPLEMENTATION == "c")
    assert all(row["baseline"] == _bench.MISS_OURS for row in misses)
    assert all("flight bookkeeping" in row["note"] for row in misses if row["impl"] == _bench.MISS_OURS)
    # (issue 13: the async def hit's table, against the undecorated await)
    asyncs = [row for row in rows if row["workload"] == _bench.ASYNC]
    assert asyncs and {row["baseline"] for row in asyncs} == {_bench.ASYNC_UNDECORATED}
    rows = [row for row in rows if row["workload"] not in (_bench.MISS, _bench.ASYNC)]
    assert {row["workload"] for row in rows} == set(_bench.SHAPES)
    for row in [*rows, *misses, *asyncs]:
        # issue 12: the section's targets are a key of their own (printed with --targets only)
        assert set(row) == {"workload", "impl", "ns", "ns_median", "baseline", "ratio", "note", "targets"}
        assert row["ns"] > 0 and row["ns_median"] > 0 and row["ratio"] > 0 and isinstance(row["note"], str)
        assert "target" not in row["note"] and "MISSED" not in row["note"]
        assert all(isinstance(target, str) and isinstance(met, bool) for target, _, met in row["targets"])
    for row in rows:
        assert row["workload"] in _bench.SHAPES and row["baseline"] == "undecorated"
    by_impl = {row["impl"]: row for row in rows if row["workload"] == "ormcache-hit"}
    assert by_impl["undecorated"]["ratio"] == 1.0
    assert any(i.startswith("ormcache_context (") for i in by_impl)
    assert any(i.startswith("ormcache_multi (") for i in by_impl)
    ours = next(row for impl, row in by_impl.items() if impl.startswith("ormcache ("))
    assert [target for target, _, _ in ours["targets"]][0].endswith("<= 2.0x undecorated")
    for workload in _bench.SHAPES:
        shape = {row["impl"]: row for row in rows if row["workload"] == workload}
        assert shape["undecorated"]["ratio"] == 1.0 and "functools.lru_cache" in shape
        assert any(i.startswith("ormcache (") for i in shape)


def test_stats_lists_counters_other_layers_add(registry, hit_path):
    """Other layers (SQLAlchemy integration) keep counters in registry.counters too."""

    def loader():
        pass

    counter = hit_path.Counter("default")
    counter.hit, counter.miss = 3, 1
    registry.counters[("orm", loader)] = counter
    registry.counters[("orm", "request_cached", "app.views.menu")] = hit_path.Counter("default")
    registry.caches["default"][("orm", loader, 1)] = "v"
    registry.caches["default"][("orm", "request_cached", "app.views.menu", "k")] = "w"
    rows = {(row["model"], row["method"]): row for row in stats(registry)}
    assert rows[("orm", loader.__qualname__)]["hit"] == 3
    assert rows[("orm", loader.__qualname__)]["entries"] == 1
    assert rows[("orm", "request_cached.app.views.menu")]["entries"] == 1
