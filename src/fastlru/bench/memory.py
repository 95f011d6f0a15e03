"""Bytes per entry, measured in a fresh interpreter per contender and per method.

The child creates keys and values first, then reads the resident set size (``/proc/self/statm``)
or starts ``tracemalloc``, fills one container of capacity n with n entries, and reads again:
(after - before) / n. RSS sees every allocator but has page granularity and can reuse memory
freed earlier; tracemalloc is exact but blind to allocations made outside ``PyMem`` (a Rust or
C library using its own allocator).

Run by hand: ``python -m fastlru.bench.memory fastlru 100000 rss``
"""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any, Callable, Dict, List

if TYPE_CHECKING:
    from .impls import Impl

MODES = ("rss", "tracemalloc")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_here(name: str, n: int, mode: str) -> Dict[str, Any]:
    """In this process: bytes used by one contender holding n entries."""
    from . import impls

    impl = impls.get(name)
    keys = [10**12 + i for i in range(n)]  # ints outside the small-int cache: real objects
    values = [2 * 10**12 + i for i in range(n)]
    gc.collect()
    gc.disable()
    if mode == "tracemalloc":
        import tracemalloc

        tracemalloc.start()
        read: Callable[[], int] = lambda: tracemalloc.get_traced_memory()[0]  # noqa: E731
    else:
        read = _rss_bytes
    before = read()
    c: Any = impl.make(n)
    if impl.kind == "function":
        for k in keys:
            c(k)  # a cached identity: the key is the value
    else:
        store = c.set if impl.kind == "methods" else c.__setitem__
        for k, v in zip(keys, values):
            store(k, v)
    size = impl.entries(c)
    after = read()
    return {"impl": name, "mode": mode, "n": n, "size": size, "bytes": after - before}


def _child(name: str, n: int, mode: str) -> Dict[str, Any]:
    # The package root must be importable by the child however the parent found it.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "fastlru.bench.memory", name, str(n), mode],
        capture_output=True, text=True, env=env, timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError("child for %s/%s failed: %s" % (name, mode, proc.stderr.strip()[-500:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]  # a row


def rows(impls: List[Impl], n: int, tick: Callable[[str], None] = lambda s: None) -> List[Dict[str, Any]]:
    """One row per contender: ``bytes_per_entry`` (RSS), ``tracemalloc_bytes_per_entry``, and
    ``ratio`` to dict's RSS figure."""
    found = {}
    for impl in impls:
        tick(impl.name)
        result: Dict[str, Any] = {"rss": None, "tracemalloc": None, "error": ""}
        for mode in MODES:
            try:
                got = _child(impl.name, n, mode)
            except Exception as exc:
                result["error"] = str(exc)
                break
            if got["size"] != n:
                result["error"] = "holds %d entries, not %d" % (got["size"], n)
            result[mode] = got["bytes"] / n
        found[impl.name] = result
    base = (found.get("dict") or {}).get("rss")
    out = []
    for impl in impls:
        r = found[impl.name]
        notes = [impl.note]
        if r["error"]:
            notes.append("ERROR: " + r["error"])
        elif r["rss"] and r["tracemalloc"] is not None and r["tracemalloc"] < 0.5 * r["rss"]:
            notes.append("tracemalloc sees %d%% (allocations outside PyMem)"
                         % (100 * r["tracemalloc"] / r["rss"]))
        out.append({
            "workload": "memory",
            "impl": impl.name,
            "ns": None,
            "baseline": "dict",
            "ratio": (r["rss"] / base) if (r["rss"] is not None and base) else float("nan"),
            "note": "; ".join(x for x in notes if x),
            "bytes_per_entry": r["rss"],
            "tracemalloc_bytes_per_entry": r["tracemalloc"],
            "entries": n,
        })
    return out


if __name__ == "__main__":
    name, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if mode not in MODES:
        sys.exit("mode must be one of %s" % ", ".join(MODES))
    print(json.dumps(measure_here(name, n, mode)))
