"""``python -m fastlru.bench`` checks its arguments before measuring (issue #21, small things):
an unwritable ``--json``/``--plot`` path and ``--repeats 0`` fail at once (they ran the whole
benchmark, then lost it, or took 0 as the default 7); the extra sections come from the
``fastlru.bench`` entry points (fastlru names no upper layer); ``--import-time`` measures the
imports."""
import json
import pathlib

import pytest

import fastlru
import fastlru.bench
from support.bench import run_bench as _run


@pytest.mark.parametrize("option", ["--json", "--plot"])
@pytest.mark.parametrize("where", ["no-directory", "a-directory"])
def test_an_unwritable_output_fails_before_measuring(tmp_path, option, where):
    path = tmp_path / "missing" / "out" if where == "no-directory" else tmp_path
    proc = _run("--quick", "--only", "get-hit-int", option, str(path))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert f"{option} {path}" in proc.stderr
    assert "benchmark" not in proc.stdout and proc.stdout == ""  # nothing measured
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("repeats", ["0", "-3", "two"])
def test_repeats_below_one_is_refused(repeats):
    proc = _run("--quick", "--only", "get-hit-int", "--repeats", repeats)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "--repeats" in proc.stderr and proc.stdout == ""


def test_repeats_one_is_taken(tmp_path):
    out = tmp_path / "bench.json"
    proc = _run("--quick", "--only", "get-hit-int", "--repeats", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["meta"]["sizes"]["repeats"] == 1
    assert "min of 1 interleaved passes" in proc.stdout


def test_extra_sections_come_from_entry_points():
    assert "ormcache._bench" in fastlru.bench.extra_sections()
    package = pathlib.Path(fastlru.__file__).parent
    naming = [path.name for path in package.rglob("*.py") if "ormcache._bench" in path.read_text()]
    assert naming == []  # a lower layer names no upper one, not even in a string


def test_import_time_writes_json(tmp_path):
    out = tmp_path / "imports.json"
    proc = _run("--import-time", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    times = json.loads(out.read_text())["import_ms"]
    assert set(times) == {"functools", "fastlru", "ormcache"} and all(t > 0 for t in times.values())
    assert "import time" in proc.stdout and "fastlru" in proc.stdout
