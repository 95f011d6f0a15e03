"""The benchmark command (``python -m fastlru.bench``) runs, writes JSON, and reports failures of
extra sections without dying."""
import json
import os
import subprocess
import sys

import fastlru
from fastlru.bench import extra


def _run(*args, timeout=300):
    # The child must import the same fastlru as this test run.
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastlru.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "fastlru.bench", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


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
    assert result["meta"]["fastlru_implementation"] == fastlru.IMPLEMENTATION
    assert {r["workload"] for r in result["rows"]} == {"get-hit-int"}
    assert "get-hit-int" in proc.stdout and "Targets for fastlru.LRU" in proc.stdout


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
