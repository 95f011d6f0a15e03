"""The hit-ratio harness (``python -m fastlru.bench --hit-ratio``): trace readers, seeded
workloads, the targets' logic, and a small run of the whole command (speed is not checked)."""
import json
import struct

import pytest

from fastlru.bench import cli, hitratio


def test_workloads_are_seeded_and_shaped():
    scale = hitratio.Scale(1000, 4000, (10, 20))
    for name, make in hitratio.WORKLOADS.items():
        a = make(scale, 20, 1)
        assert a == make(scale, 20, 1), name
        assert len(a) == 4000, name
    assert hitratio.loop(scale, 20, 0)[:23] == list(range(22)) + [0]
    twice = hitratio.twice(scale, 20, 3)
    counts = {}
    for k in twice:
        counts[k] = counts.get(k, 0) + 1
    assert max(counts.values()) == 2
    scans = hitratio.zipf_scans(scale, 20, 3)
    assert scans[80:120] == list(range(1000, 1040))  # after 4x the cache, a scan of 2x


def test_trace_formats(tmp_path):
    lis = tmp_path / "t.lis"
    lis.write_text("5 3 0 1\n100 1 0 1\n")
    assert hitratio.read_trace(str(lis)) == [5, 6, 7, 100]
    bad = tmp_path / "bad.lis"
    bad.write_text("x y\n")
    with pytest.raises(ValueError, match="not an ARC .lis line"):
        hitratio.read_trace(str(bad))
    og = tmp_path / "t.oracleGeneral"
    og.write_bytes(b"".join(struct.pack("<IQIq", t, obj, 10, -1)
                            for t, obj in [(1, 7), (2, 8), (3, 7)]))
    assert hitratio.read_trace(str(og)) == [7, 8, 7]
    assert hitratio.read_trace(str(og), limit=2) == [7, 8]
    (tmp_path / "cut.bin").write_bytes(b"\0" * 25)
    with pytest.raises(ValueError, match="whole number"):
        hitratio.read_trace(str(tmp_path / "cut.bin"))
    txt = tmp_path / "keys.txt"
    txt.write_text("a\nb\n\na\n")
    assert hitratio.read_trace(str(txt)) == ["a", "b", "a"]


def _row(workload, size, **ratios):
    return {"workload": workload, "size": size, "requests": 1, "ratios": ratios}


def test_targets_logic():
    policies = ("lru", "sieve")
    rows = [_row("zipf-1.0", 10, lru=50.0, sieve=60.0, theine=60.4),
            _row("loop-1.1x", 10, lru=0.0, sieve=0.5, theine=1.0, **{"moka-py": 0.9})]
    found = {what: (measured, met) for what, measured, met in
             hitratio.check_targets(rows, policies, "sieve", ["zipf-1.0", "loop-1.1x"])}
    assert len(found) == 3 and all(met for _, met in found.values())
    rows.append(_row("twice", 10, lru=30.0, sieve=28.5, theine=40.0))
    found = hitratio.check_targets(rows, policies, "sieve", ["zipf-1.0", "loop-1.1x", "twice"])
    met = [ok for _, _, ok in found]
    assert met == [False, False, True]
    assert "-10.00 pt (twice, 10 entries)" in found[0][1]
    assert "-1.50 pt (twice" in found[1][1]
    # traces are replayed but not held to the targets; without peers the first is not checked
    assert len(hitratio.check_targets([_row("my.lis", 5, lru=1.0, sieve=0.0)], policies,
                                      "sieve", ["zipf-1.0"])) == 0


def test_small_run_of_the_command(tmp_path, capsys):
    trace = tmp_path / "keys.txt"
    trace.write_text("\n".join(str(i % 7) for i in range(50)))
    out_json = tmp_path / "r.json"
    assert cli.main(["--hit-ratio", "--requests", "600", "--sizes", "8,16", "--targets",
                     "--trace", str(trace), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    for name in list(hitratio.WORKLOADS) + ["keys.txt", "mean"]:
        assert name in out
    result = json.loads(out_json.read_text())
    assert len(result["rows"]) == 2 * (len(hitratio.WORKLOADS) + 1)
    for row in result["rows"]:
        assert set(row["ratios"]) >= {"lru", "sieve", "s3fifo", "wtinylfu", "functools"}
        assert all(0.0 <= v <= 100.0 for v in row["ratios"].values())
        # functools.lru_cache and our LRU policy are the same policy
        assert row["ratios"]["functools"] == pytest.approx(row["ratios"]["lru"])
    assert {t["target"].split(" ")[0] for t in result["targets"]} <= {"some", "default"}
    with pytest.raises(SystemExit):
        cli.main(["--hit-ratio", "--only", "nope"])
