"""``python -m fastlru.bench``: run the workloads, print the tables, optionally write JSON and a
PNG chart. ``--targets`` also prints the goals the project holds itself to (met or missed);
they are ours, not information for users, so they are not printed by default (the JSON always
records them). Always exits 0 once it has measured."""
from __future__ import annotations
import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from typing import Any, Dict, List, Optional

from . import extra, extra_sections, impls, plot, report, scaling
from .workloads import FULL, QUICK, RUNNERS, WORKLOADS, describe


#: the distributions of the peers (their versions go into the JSON)
PEER_DISTRIBUTIONS = ("lru-dict", "cachebox", "cachetools", "moka-py", "theine")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fastlru.bench",
        description="Compare fastlru.LRU with dict, its pure-Python twin, Odoo's LRU and peer "
                    "caches: ns/op and the ratio to dict measured in the same run.")
    p.add_argument("--quick", action="store_true",
                   help="reduced sizes and repeats (a smoke test, well under a minute)")
    p.add_argument("--json", metavar="PATH", help="write every result to PATH as JSON")
    p.add_argument("--plot", metavar="PATH", help="write a PNG bar chart to PATH (matplotlib)")
    p.add_argument("--import-time", action="store_true",
                   help="only measure the import of fastlru, ormcache and functools (python -X "
                        "importtime, the least of %d fresh interpreters each)" % IMPORT_RUNS)
    p.add_argument("--only", metavar="WORKLOAD", action="append", default=[],
                   help="run only these workloads (repeatable or comma-separated): %s, or a "
                        "workload of an extra section" % ", ".join(WORKLOADS))
    p.add_argument("--repeats", type=_positive, metavar="N", help="timed passes per contender (1 or more)")
    p.add_argument("--scaling", action="store_true",
                   help="also measure one shared cache's throughput with 1 and 2 threads (on by "
                        "default on a free-threaded interpreter; --only scaling: that alone)")
    p.add_argument("--targets", action="store_true",
                   help="also print the project's own performance targets, met or missed")
    p.add_argument("--hit-ratio", action="store_true",
                   help="measure hit ratios of fastlru.Cache's policies and peers instead "
                        "(see --hit-ratio --help)")
    return p


#: fresh interpreters per module for --import-time
IMPORT_RUNS = 10


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an integer" % text) from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more, not %d" % value)
    return value


def _check_writable(parser: argparse.ArgumentParser, option: str, path: str) -> None:
    """Fail before measuring, not after, when ``path`` cannot be written."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        parser.error("%s %s: is a directory" % (option, path))
    if not os.path.isdir(directory):
        parser.error("%s %s: no directory %s" % (option, path, directory))
    if not os.access(path if os.path.exists(path) else directory, os.W_OK):
        parser.error("%s %s: not writable" % (option, path))


def _import_ms(module: str) -> float:
    """The least cumulative ``-X importtime`` of ``import module`` over fresh interpreters, in ms."""
    import subprocess

    best = math.inf
    for _ in range(IMPORT_RUNS):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", "import " + module],
                             capture_output=True, text=True, check=True).stderr
        line = [row for row in err.splitlines() if row.split("|")[-1].strip() == module][-1]
        best = min(best, int(line.split("|")[1]) / 1000)
    return best


def _import_modules(module: str) -> int:
    """How many modules ``import module`` loads in a fresh interpreter (beyond its startup's)."""
    import subprocess

    code = "import sys; before = len(sys.modules); import %s; print(len(sys.modules) - before)" % module
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def _import_times(args: argparse.Namespace) -> int:
    names = ("functools", "fastlru", "ormcache")
    times = {module: _import_ms(module) for module in names}
    modules = {module: _import_modules(module) for module in names}
    print("import time (python -X importtime, least of %d fresh interpreters): %s" % (
        IMPORT_RUNS, ", ".join("%s %.1f ms (%d modules)" % (name, times[name], modules[name])
                               for name in names)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"import_ms": times, "import_modules": modules, "python": platform.python_version()},
                      f, indent=1)
    return 0


def _progress(text: str, end: str = "") -> None:
    sys.stderr.write(text + end)
    sys.stderr.flush()


def _version(name: str) -> Optional[str]:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


def _clean(value: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--hit-ratio" in argv:  # another benchmark: hit ratios, not speed (bench/hitratio.py)
        from . import hitratio

        return hitratio.main([a for a in argv if a != "--hit-ratio"])
    parser = _parser()
    args = parser.parse_args(argv)
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        if path:
            _check_writable(parser, option, path)
    if args.import_time:
        return _import_times(args)
    only = [w.strip() for item in args.only for w in item.split(",") if w.strip()]
    builtin = [w for w in WORKLOADS if not only or w in only]
    # names of extra-section workloads
    wanted_extra = [w for w in only if w not in WORKLOADS and w != "scaling"]
    run_extras = not only or bool(wanted_extra)
    run_scaling = "scaling" in only or (args.scaling or scaling.free_threaded()) and not only
    if args.plot:
        plot.require_matplotlib()
    sizes = QUICK if args.quick else FULL
    if args.repeats is not None:
        sizes = dataclasses.replace(sizes, repeats=args.repeats)

    import fastlru

    contenders, skipped = impls.available()
    implementation = ("compiled engine" if fastlru.IMPLEMENTATION == "c" else
                      "WARNING: NOT the compiled engine, fastlru.IMPLEMENTATION == %r"
                      % fastlru.IMPLEMENTATION)
    print("fastlru %s benchmark%s: Python %s (%s%s), %s, %s CPUs" % (
        _version("fastlru") or "(version unknown)", " (--quick)" if args.quick else "", platform.python_version(),
        platform.python_implementation(), ", free-threaded, GIL off" if scaling.free_threaded() else "",
        platform.machine(), os.cpu_count()))
    print("fastlru.LRU = %s.%s: %s" % (fastlru.LRU.__module__, fastlru.LRU.__qualname__,
                                        implementation))
    print("min of %d interleaved passes per contender, GC off while timed; ratios vs dict "
          "from the same run" % sizes.repeats)
    for name, why in skipped:
        print("skipped %s: %s" % (name, why))
    print(flush=True)

    rows, errors = [], []
    started = time.perf_counter()
    for workload in builtin:
        t0 = time.perf_counter()
        _progress("%-14s" % workload)
        try:
            got = RUNNERS[workload](contenders, sizes, lambda s: _progress(" " + s))
        except Exception as exc:
            import traceback

            traceback.print_exc()
            errors.append("%s: %s: %s" % (workload, type(exc).__name__, exc))
            _progress("  FAILED", "\n")
            continue
        _progress("  (%.1fs)" % (time.perf_counter() - t0), "\n")
        rows.extend(got)
        print(report.table("%s — %s" % (workload, describe(workload, sizes)), got))
        print(flush=True)

    scaling_rows: List[Dict[str, Any]] = []
    if run_scaling:
        t0 = time.perf_counter()
        _progress("%-14s" % "scaling")
        try:
            scaling_rows = scaling.rows(contenders, sizes, lambda s: _progress(" " + s))
        except Exception as exc:
            import traceback

            traceback.print_exc()
            errors.append("scaling: %s: %s" % (type(exc).__name__, exc))
        _progress("  (%.1fs)" % (time.perf_counter() - t0), "\n")
        if scaling_rows:
            print(scaling.table(scaling_rows, sizes))
            print(flush=True)

    extra_rows: List[Dict[str, Any]] = []
    sections = extra_sections() if run_extras else []
    if sections:
        _progress("%-14s" % "extra")
        extra_rows, extra_errors = extra.collect(sections, args.quick,
                                                 lambda s: _progress(" " + s))
        _progress("" if extra_rows or extra_errors else " (none installed)", "\n")
        if wanted_extra:
            extra_rows = [r for r in extra_rows if r["workload"] in wanted_extra]
        errors.extend(extra_errors)
        for key in dict.fromkeys((r["section"], r["workload"]) for r in extra_rows):
            these = [r for r in extra_rows if (r["section"], r["workload"]) == key]
            print(report.table("%s — from %s" % (key[1], key[0]), these))
            print(flush=True)
    for name in wanted_extra:
        if not any(r["workload"] == name for r in extra_rows):
            errors.append("--only %s: no such workload (built in: %s)"
                          % (name, ", ".join(WORKLOADS)))

    found = report.targets(rows) + report.section_targets(extra_rows + scaling_rows)
    if found and args.targets:
        print(report.targets_text(found, implementation))
    for error in errors:
        print("ERROR: " + error)
    _progress("done in %.1fs" % (time.perf_counter() - started), "\n")

    if args.json:
        result = {
            "meta": {
                "fastlru_version": _version("fastlru"),
                "python": platform.python_version(),
                "python_implementation": platform.python_implementation(),
                "python_build": " ".join(platform.python_build()),
                "platform": platform.platform(),
                "machine": platform.machine(),
                "processor": platform.processor() or None,
                "cpus": os.cpu_count(),
                "free_threaded": scaling.free_threaded(),
                "fastlru_implementation": fastlru.IMPLEMENTATION,
                "quick": args.quick,
                "sizes": dataclasses.asdict(sizes),
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "versions": {n: _version(n) for n in PEER_DISTRIBUTIONS},
                "skipped": dict(skipped),
            },
            "rows": [{k: v for k, v in row.items() if k != "targets"}
                     for row in rows + extra_rows + scaling_rows],
            "targets": [{"target": t, "measured": m, "met": ok} for t, m, ok in found],
            "errors": errors,
        }
        with open(args.json, "w") as f:
            json.dump(_clean(result), f, indent=1)
    if args.plot:
        plot.write(args.plot, rows + extra_rows, "fastlru.LRU (%s) vs peers, %s" % (
            fastlru.IMPLEMENTATION, "quick" if args.quick else "full run"))
    if only and not rows and not extra_rows and not scaling_rows:
        return 2  # asked for nothing that exists
    return 0
