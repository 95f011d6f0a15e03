"""The benchmark command (``python -m fastlru.bench``) runs, writes JSON, and reports failures of
extra sections without dying."""
import collections
import dataclasses
import importlib.metadata
import json
import os
import platform
import re

import pytest

import fastlru
from fastlru.bench import extra, impls, plot, workloads
from support.bench import run_bench as _run


def test_quick_get_hit_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = _run("--quick", "--only", "get-hit-int", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    rows = {r["impl"]: r for r in result["rows"] if r["workload"] == "get-hit-int"}
    for impl in ("dict", "fastlru"):
        assert rows[impl]["ns"] > 0, rows[impl]
        assert rows[impl]["ratio"] > 0
        assert rows[impl]["baseline"] == "dict"
    assert rows["dict"]["ratio"] == 1.0
    meta = result["meta"]
    assert meta["fastlru_implementation"] == fastlru.IMPLEMENTATION
    # what a reader of the JSON needs to compare runs: the versions, the interpreter, the machine
    assert meta["fastlru_version"] == importlib.metadata.version("fastlru")
    assert (meta["python"], meta["python_implementation"]) == (platform.python_version(), platform.python_implementation())
    assert (meta["machine"], meta["platform"], meta["cpus"]) == (platform.machine(), platform.platform(), os.cpu_count())
    assert {"moka-py", "theine", "lru-dict", "cachebox", "cachetools"} <= set(meta["versions"])
    assert {r["workload"] for r in result["rows"]} == {"get-hit-int"}
    assert "get-hit-int" in proc.stdout
    assert f"fastlru {meta['fastlru_version']} benchmark" in proc.stdout
    assert result["targets"]  # the JSON records the targets, the output does not (below)


def test_targets_are_printed_only_with_the_targets_flag():
    # the engine's workload and the ormcache section, each with targets of its own
    default = _run("--quick", "--repeats", "2", "--only", "get-hit-int,ormcache-hit")
    assert default.returncode == 0, default.stderr
    assert "ormcache-hit" in default.stdout and "get-hit-int" in default.stdout
    for internal in ("Targets", "target", "MISSED", "<= 1.3x dict", "SUSPECT"):
        assert internal not in default.stdout, (internal, default.stdout)
    assert not re.search(r"\bmet\b", default.stdout), default.stdout
    flagged = _run("--quick", "--repeats", "2", "--only", "get-hit-int,ormcache-hit,ormcache-hit-async", "--targets")
    assert flagged.returncode == 0, flagged.stderr
    assert "Targets (the project's own goals" in flagged.stdout
    assert "get-hit-int <= 1.3x dict" in flagged.stdout
    assert "ormcache-hit: ormcache (c) <= 2.0x undecorated" in flagged.stdout or \
        "ormcache-hit: ormcache (python) <= 2.0x undecorated" in flagged.stdout
    # the async def hit (issue 13): its own table, against the undecorated await and lru_cache's
    assert re.search(r"ormcache-hit-async: ormcache \((c|python)\) <= 2\.0x the undecorated await", flagged.stdout)
    assert re.search(r"ormcache-hit-async: ormcache \((c|python)\) <= 1\.0x lru_cache's async hit", flagged.stdout)


def test_the_async_hit_table_has_min_and_median_of_every_contender():
    from ormcache import _bench

    rows = [r for r in _bench.rows(quick=True, repeats=1) if r["workload"] == _bench.ASYNC]
    names = {r["impl"] for r in rows}
    assert {_bench.ASYNC_UNDECORATED, "ormcache (python twin)"} <= names
    assert any(n.startswith("fastlru.lru_cache") for n in names) and any(n.startswith("ormcache (c") for n in names)
    for row in rows:
        assert row["ns"] > 0 and row["ns_median"] > 0 and row["baseline"] == _bench.ASYNC_UNDECORATED, row


class MethodsCache:
    """A cache used through get()/set() methods, as moka-py and theine are (an exact LRU here)."""

    def __init__(self, capacity, pairs=False):
        self.data, self.capacity, self.pairs = collections.OrderedDict(), capacity, pairs

    def get(self, key):
        if key in self.data:
            self.data.move_to_end(key)
            return (self.data[key], True) if self.pairs else self.data[key]
        return (None, False) if self.pairs else None

    def set(self, key, value):
        self.data[key] = value
        self.data.move_to_end(key)
        if len(self.data) > self.capacity:
            self.data.popitem(last=False)

    def __len__(self):
        return len(self.data)


@pytest.mark.parametrize("pairs", [False, True], ids=["value-or-none", "value-found-pairs"])
def test_caches_used_through_methods_run_every_timed_workload(pairs):
    contenders = [impls.get(impls.DICT), impls.get(impls.ODOO),
                  impls.Impl("methods-cache", lambda n: MethodsCache(n, pairs), kind="methods", pairs=pairs)]
    sizes = dataclasses.replace(workloads.QUICK, repeats=1, get_keys=64, get_lookups=500, capacity=64,
                                set_keys=300, zipf_space=500, zipf_warm=500, zipf_ops=500, threads=2)
    for workload in ("get-hit-int", "get-hit-tuple", "set-evict", "zipf", "threads"):
        rows = {r["impl"]: r for r in workloads.RUNNERS[workload](contenders, sizes, lambda s: None)}
        row = rows["methods-cache"]
        assert row["ns"] > 0 and row["ratio"] > 0, (workload, row)
        assert "BUG" not in row["note"] and "differs" not in row["note"], (workload, row)
        if workload == "zipf":  # an exact LRU through methods: the same hits as Odoo's LRU
            assert row["hit_ratio"] == rows["odoo-lru"]["hit_ratio"] > 0


def test_moka_and_theine_are_contenders_when_installed():
    assert {impls.MOKA, impls.THEINE} <= set(impls.NAMES)
    found, skipped = impls.available()
    for name in (impls.MOKA, impls.THEINE):
        in_found = [i for i in found if i.name == name]
        assert in_found or name in dict(skipped)
        for impl in in_found:  # installed: used through its methods, an exact size reported
            assert impl.kind == "methods" and not impl.exact_lru
            cache = impl.make(10)
            for k in range(100):
                cache.set(k, k)
            assert 0 < impl.entries(cache) <= 10


def test_the_chart_legend_names_every_colour():
    rows = [{"impl": name} for name in ("dict", "fastlru", "fastlru-py", "odoo-lru", "moka-py", "theine",
                                       "undecorated", "ormcache (c)", "odoo classic ormcache", "cachebox")]
    entries = plot.legend(rows)
    assert [label for _, label in entries] == [label for _, label in plot.KINDS.values()]
    assert len({colour for colour, _ in entries}) == 4
    kinds = {row["impl"]: plot.kind_of(row["impl"]) for row in rows}
    assert kinds["fastlru-py"] == kinds["ormcache (c)"] == "ours"
    assert kinds["undecorated"] == kinds["dict"] == "baseline"
    assert kinds["odoo classic ormcache"] == "odoo" and kinds["theine"] == "peer"
    assert [label for _, label in plot.legend([{"impl": "dict"}, {"impl": "fastlru"}])] == [
        plot.KINDS["ours"][1], plot.KINDS["baseline"][1]]


def test_unknown_workload_exits_2():
    proc = _run("--quick", "--only", "no-such-workload")  # --quick: extra sections run briefly
    assert proc.returncode == 2
    assert "no-such-workload" in proc.stdout


def test_extra_sections(tmp_path, monkeypatch):
    (tmp_path / "bench_extra_ok.py").write_text(
        "def rows(quick):\n"
        "    return [dict(workload='w', impl='a', ns=1.5, baseline='b', ratio=1.0, note=''),\n"
        "            dict(workload='w', impl='bad')]\n")
    (tmp_path / "bench_extra_boom.py").write_text(
        "def rows(quick):\n    raise ValueError('boom')\n")
    (tmp_path / "bench_extra_broken_import.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rows, errors = extra.collect(
        ["bench_extra_missing", "bench_extra_ok", "bench_extra_boom", "bench_extra_broken_import"],
        quick=True)
    assert [(r["impl"], r["section"]) for r in rows] == [("a", "bench_extra_ok")]
    assert len(errors) == 3, errors  # the bad row, the raising rows(), the broken import
    assert any("boom" in e for e in errors)
    assert any("no_such_dependency_xyz" in e for e in errors)
    assert not any("bench_extra_missing" in e for e in errors)
