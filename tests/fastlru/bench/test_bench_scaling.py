"""``python -m fastlru.bench --only scaling``: 1- and 2-thread throughput of one shared cache, a
table and JSON rows."""
import json

from fastlru.bench import impls, scaling
from support.bench import run_bench


def _run(*args, timeout=600):
    return run_bench(*args, timeout=timeout)


def test_scaling_rows_table_and_target(tmp_path):
    out = tmp_path / "scaling.json"
    proc = _run("--quick", "--repeats", "1", "--only", "scaling", "--targets", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["meta"]["free_threaded"] is scaling.free_threaded()
    rows = {(r["workload"], r["impl"]): r for r in result["rows"]}
    for workload in ("scaling-get-hit", "scaling-get-hit-own", "scaling-zipf"):
        for impl in ("fastlru", "fastlru.Cache[sieve]", "functools.lru_cache"):
            row = rows[(workload, impl)]
            assert set(row["mops"]) == {"1", "2"} and all(v > 0 for v in row["mops"].values()), row
            assert abs(row["speedup"] - row["mops"]["2"] / row["mops"]["1"]) < 1e-9
    assert {r["workload"] for r in result["rows"]} == {"scaling-control", "scaling-get-hit",
                                                      "scaling-get-hit-own", "scaling-zipf"}
    control = rows[("scaling-control", "no cache")]
    assert set(control["mops"]) == {"1", "2"} and control["speedup"] > 0
    assert "scaling — Mops/s of one shared cache" in proc.stdout
    assert "scaling get-hit: 2 threads >= 1.8x one thread" in proc.stdout  # --targets
    assert [t["target"] for t in result["targets"]] == [
        "scaling get-hit: 2 threads >= 1.8x one thread",
        "scaling get-hit, fastlru.Cache[sieve]: 2 threads >= 1.8x one thread",
        "scaling get-hit-own: 2 threads >= 1.8x one thread",
        "scaling get-hit-own, fastlru.Cache[sieve]: 2 threads >= 1.8x one thread"]


def test_only_other_workloads_leaves_scaling_out(tmp_path):
    out = tmp_path / "default.json"
    proc = _run("--quick", "--repeats", "1", "--only", "get-hit-int", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    workloads = {r["workload"] for r in json.loads(out.read_text())["rows"]}
    assert workloads == {"get-hit-int"}  # --only names what runs, scaling included
    assert "scaling" not in proc.stdout


def test_a_peer_that_keeps_the_gil_off_is_not_skipped():
    # on a free-threaded interpreter a peer whose import would enable the GIL is skipped (asked
    # of a child); a module that declares free-threading support (or any, under the GIL) is not
    assert impls._enables_gil("json") is False
    assert impls._enables_gil("no_such_module_here") is False  # missing: the import says so
