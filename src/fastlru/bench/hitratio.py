"""``python -m fastlru.bench --hit-ratio``: replay workloads through every policy of
``fastlru.Cache`` and through peer caches, and print the hit ratios side by side.

Each request is a cache-aside read: ``get(key)``, and on a miss ``set(key, key)``. Built-in
workloads are seeded (the same requests on every run); trace files can be added with
``--trace PATH`` (repeatable): ARC ``.lis`` (``start count ...`` per line: keys start..start+count-1),
libCacheSim ``oracleGeneral`` binary (``.oracleGeneral``/``.bin``: 24-byte records
``<u32 time, u64 id, u32 size, i64 next>``), or any other text file, one key per line.

Targets (printed with ``--targets``, always in ``--json``):
- for every workload and size, some policy here is >= the best of theine and moka-py - 0.5 pt;
- the recommended default (``fastlru.DEFAULT_POLICY``) is never > 1 pt below LRU, and beats
  LRU on average.
"""
from __future__ import annotations

import argparse
import bisect
import functools
import heapq
import itertools
import json
import os
import random
import struct
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

# -- workloads ---------------------------------------------------------------------------


class Scale:
    def __init__(self, keys: int, requests: int, sizes: Sequence[int]) -> None:
        self.keys = keys
        self.requests = requests
        self.sizes = tuple(sizes)


FULL = Scale(50_000, 300_000, (250, 500, 1000, 2500, 5000))
QUICK = Scale(5_000, 30_000, (25, 50, 100, 250, 500))


def _zipf_sampler(n: int, s: float, rng: random.Random) -> Callable[[int], List[int]]:
    """Draws keys 0..n-1 with P(rank r) ~ 1/r**s; ranks are shuffled onto keys."""
    cum = list(itertools.accumulate(1.0 / (r ** s) for r in range(1, n + 1)))
    ids = list(range(n))
    rng.shuffle(ids)

    def draw(k: int) -> List[int]:
        total = cum[-1]
        return [ids[bisect.bisect_left(cum, rng.random() * total)] for _ in range(k)]

    return draw


def zipf(s: float) -> Callable[[Scale, int, int], List[int]]:
    def make(scale: Scale, size: int, seed: int) -> List[int]:
        return _zipf_sampler(scale.keys, s, random.Random(seed))(scale.requests)
    make.__doc__ = "Zipf s=%s over %%(keys)d keys" % s
    return make


def zipf_scans(scale: Scale, size: int, seed: int) -> List[int]:
    """Zipf s=1.0; after every 4x the cache's requests, a sequential scan of 2x the cache
    (always the same keys, none of them in the Zipf set: a table read in full)."""
    draw = _zipf_sampler(scale.keys, 1.0, random.Random(seed))
    scan = list(range(scale.keys, scale.keys + 2 * size))
    out: List[int] = []
    period = 4 * size
    while len(out) < scale.requests:
        out.extend(draw(period))
        out.extend(scan)
    return out[:scale.requests]


def loop(scale: Scale, size: int, seed: int) -> List[int]:
    """A loop over 1.1x the cache's entries (LRU's worst case: it never hits)."""
    n = size + max(1, size // 10)
    return [i % n for i in range(scale.requests)]


def shifting(scale: Scale, size: int, seed: int) -> List[int]:
    """Zipf s=1.0 over a working set of keys/10 keys that moves to new keys 8 times."""
    rng = random.Random(seed)
    ws = max(1, scale.keys // 10)
    draw = _zipf_sampler(ws, 1.0, rng)
    phase = scale.requests // 8
    out: List[int] = []
    base = 0
    while len(out) < scale.requests:
        out.extend(k + base for k in draw(phase))
        base += ws
    return out[:scale.requests]


def twice(scale: Scale, size: int, seed: int) -> List[int]:
    """Every key is read exactly twice, the second time 1 to 2x the cache's size requests
    later (TinyLFU's weak spot: a key is never more frequent than what it would replace)."""
    rng = random.Random(seed)
    due: List[Tuple[int, int]] = []
    out: List[int] = []
    new = itertools.count()
    for t in range(scale.requests):
        if due and due[0][0] <= t:
            out.append(heapq.heappop(due)[1])
        else:
            k = next(new)
            out.append(k)
            heapq.heappush(due, (t + rng.randint(1, 2 * size), k))
    return out


WORKLOADS: Dict[str, Callable[[Scale, int, int], List[int]]] = {
    "zipf-0.6": zipf(0.6),
    "zipf-0.8": zipf(0.8),
    "zipf-1.0": zipf(1.0),
    "zipf-1.2": zipf(1.2),
    "zipf+scans": zipf_scans,
    "loop-1.1x": loop,
    "shifting": shifting,
    "twice": twice,
}

# -- trace files -------------------------------------------------------------------------


def read_trace(path: str, limit: Optional[int] = None) -> List[Any]:
    """The keys of a trace file (format chosen by name, see the module docstring)."""
    keys: List[Any] = []
    if path.endswith((".oracleGeneral", ".bin")) or ".oracleGeneral" in path:
        record = struct.Struct("<IQIq")
        with open(path, "rb") as f:
            data = f.read()
        if len(data) % record.size:
            raise ValueError(f"{path}: not a whole number of oracleGeneral records")
        for _, obj, _, _ in record.iter_unpack(data):
            keys.append(obj)
            if limit is not None and len(keys) >= limit:
                break
        return keys
    with open(path) as f:
        lis = path.endswith(".lis")
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if lis:
                fields = line.split()
                try:
                    start, count = int(fields[0]), int(fields[1])
                except (IndexError, ValueError):
                    raise ValueError(f"{path}:{n}: not an ARC .lis line: {line!r}") from None
                keys.extend(range(start, start + count))
            else:
                keys.append(line)
            if limit is not None and len(keys) >= limit:
                return keys[:limit]
    return keys


# -- contenders --------------------------------------------------------------------------

Replay = Callable[[Iterable[Any], int], int]  # (keys, size) -> hits


def _mapping_replay(factory: Callable[[int], Any]) -> Replay:
    def replay(keys: Iterable[Any], size: int) -> int:
        cache = factory(size)
        get = cache.get
        hits = 0
        for k in keys:
            if get(k) is None:
                cache[k] = k
            else:
                hits += 1
        return hits
    return replay


def _functools_replay(keys: Iterable[Any], size: int) -> int:
    f = functools.lru_cache(maxsize=size)(lambda k: k)
    for k in keys:
        f(k)
    return f.cache_info().hits


def _theine_replay(keys: Iterable[Any], size: int) -> int:
    from theine import Cache as Theine

    cache: Any = Theine(size)
    hits = 0
    for k in keys:
        got = cache.get(k)
        # theine >= 0.5 returns (value, found); older ones the value or None
        found = got[1] if isinstance(got, tuple) else got is not None
        if found:
            hits += 1
        else:
            cache.set(k, k)
    return hits


def _moka_replay(keys: Iterable[Any], size: int) -> int:
    from moka_py import Moka

    cache: Any = Moka(size)
    hits = 0
    for k in keys:
        if cache.get(k) is None:
            cache.set(k, k)
            # moka evicts in batches and meanwhile holds more than `size` entries (on a loop
            # of 1.1x it would beat the optimal policy): settle, so all compete at one size
            cache.run_pending_tasks()
        else:
            hits += 1
    return hits


def contenders(policies: Sequence[str]) -> Tuple[Dict[str, Replay], List[Tuple[str, str]]]:
    """The replays available here, and the skipped ones with the reason."""
    from fastlru import Cache

    found: Dict[str, Replay] = {}
    skipped: List[Tuple[str, str]] = []
    for p in policies:
        found[p] = _mapping_replay(functools.partial(Cache, policy=p))
    found["functools"] = _functools_replay
    try:
        import cachetools

        found["cachetools-lru"] = _mapping_replay(cachetools.LRUCache)
        found["cachetools-lfu"] = _mapping_replay(cachetools.LFUCache)
    except ImportError as exc:
        skipped.append(("cachetools", str(exc)))
    for name, module, replay in (("theine", "theine", _theine_replay),
                                 ("moka-py", "moka_py", _moka_replay)):
        try:
            __import__(module)
            found[name] = replay
        except ImportError as exc:
            skipped.append((name, str(exc)))
    return found, skipped


# -- targets -----------------------------------------------------------------------------

PEERS = ("theine", "moka-py")


def check_targets(rows: List[Dict[str, Any]], policies: Sequence[str], default: str,
                  builtin: Iterable[str]) -> List[Tuple[str, str, bool]]:
    """The targets, each as (what, measured, met), on the rows of the built-in workloads."""
    builtin = set(builtin)
    rows = [r for r in rows if r["workload"] in builtin]
    found: List[Tuple[str, str, bool]] = []
    gaps = []
    for r in rows:
        peers = [r["ratios"][p] for p in PEERS if p in r["ratios"]]
        if not peers:
            continue
        best_here = max(r["ratios"][p] for p in policies)
        gaps.append((best_here - max(peers), r["workload"], r["size"]))
    if gaps:
        worst = min(gaps)
        found.append(("some policy here >= best of theine/moka-py - 0.5 pt, every workload and size",
                      "worst gap %+.2f pt (%s, %d entries)" % worst, worst[0] >= -0.5))
    if "lru" in policies and default in policies:
        diffs = [(r["ratios"][default] - r["ratios"]["lru"], r["workload"], r["size"])
                 for r in rows]
        if diffs:
            worst = min(diffs)
            found.append(("default %r never > 1 pt below LRU" % default,
                          "worst %+.2f pt (%s, %d entries)" % worst, worst[0] >= -1.0))
            mean = sum(d[0] for d in diffs) / len(diffs)
            found.append(("default %r beats LRU on average" % default,
                          "mean %+.2f pt" % mean, mean > 0))
    return found


# -- running -----------------------------------------------------------------------------


def run(workloads: Dict[str, Callable[[int], List[Any]]], sizes: Sequence[int],
        replays: Dict[str, Replay], progress: Callable[[str], None] = lambda s: None
        ) -> List[Dict[str, Any]]:
    """One row per (workload, size): the hit ratio in percent of every contender."""
    rows = []
    for name, make in workloads.items():
        for size in sizes:
            keys = make(size)
            ratios = {}
            for who, replay in replays.items():
                ratios[who] = 100.0 * replay(keys, size) / max(1, len(keys))
            rows.append({"workload": name, "size": size, "requests": len(keys),
                         "ratios": ratios})
            progress(".")
    return rows


def table(rows: List[Dict[str, Any]], names: Sequence[str]) -> str:
    width = max([10] + [len(n) for n in names])
    head = "%-12s %7s " % ("workload", "size") + " ".join("%*s" % (width, n) for n in names)
    lines = [head, "-" * len(head)]
    for r in rows:
        best = max(r["ratios"].values())
        cells = []
        for n in names:
            v = r["ratios"].get(n)
            cell = "-" if v is None else "%.2f%s" % (v, "*" if v == best else " ")
            cells.append("%*s" % (width, cell))
        lines.append("%-12s %7d " % (r["workload"], r["size"]) + " ".join(cells))
    means = []
    for n in names:
        vals = [r["ratios"][n] for r in rows if n in r["ratios"]]
        means.append("%*s" % (width, "%.2f " % (sum(vals) / len(vals)) if vals else "-"))
    lines.append("%-12s %7s " % ("mean", "") + " ".join(means))
    return "\n".join(lines)


def write_plot(path: str, rows: List[Dict[str, Any]], names: Sequence[str]) -> None:
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    cols = min(3, len(workloads))
    nrows = math.ceil(len(workloads) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.5 * cols, 4 * nrows), squeeze=False)
    for ax, w in zip(axes.flat, workloads):
        these = [r for r in rows if r["workload"] == w]
        for n in names:
            ax.plot([r["size"] for r in these], [r["ratios"].get(n, float("nan")) for r in these],
                    marker="o", label=n)
        ax.set_title(w)
        ax.set_xscale("log")
        ax.set_xlabel("entries")
        ax.set_ylabel("hit ratio %")
    for ax in list(axes.flat)[len(workloads):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)


def _builtin(make: Callable[[Scale, int, int], List[int]], scale: Scale, seed: int,
             size: int) -> List[Any]:
    return list(make(scale, size, seed))


def _same(keys: List[Any], size: int) -> List[Any]:
    return keys


def _progress(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fastlru.bench --hit-ratio",
                                description="Hit ratios of fastlru.Cache's policies and peers.")
    p.add_argument("--quick", action="store_true", help="small key space and traces")
    p.add_argument("--only", action="append", default=[], metavar="WORKLOAD",
                   help="built-in workloads to run (repeatable, comma-separated): %s"
                        % ", ".join(WORKLOADS))
    p.add_argument("--trace", action="append", default=[], metavar="PATH",
                   help="also replay this trace file (.lis, .oracleGeneral, or one key a line)")
    p.add_argument("--sizes", metavar="N,N,...", help="cache sizes (default: five sizes)")
    p.add_argument("--limit", type=int, metavar="N", help="read at most N requests of a trace")
    p.add_argument("--requests", type=int, metavar="N",
                   help="requests per built-in workload (and keys/requests kept as the scale's)")
    p.add_argument("--seed", type=int, default=22)
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--plot", metavar="PATH", help="PNG chart (needs matplotlib)")
    p.add_argument("--targets", action="store_true", help="print the project's targets")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    import fastlru

    args = _parser().parse_args(argv)
    scale = QUICK if args.quick else FULL
    if args.requests:
        n = max(10, args.requests)
        scale = Scale(max(10, scale.keys * n // scale.requests), n, scale.sizes)
    sizes = scale.sizes
    if args.sizes:
        sizes = tuple(int(s) for s in args.sizes.split(",") if s.strip())
    only = [w.strip() for item in args.only for w in item.split(",") if w.strip()]
    unknown = [w for w in only if w not in WORKLOADS]
    if unknown:
        raise SystemExit("unknown workload(s) %s: expected %s" % (", ".join(unknown),
                                                                   ", ".join(WORKLOADS)))
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise SystemExit("--plot needs matplotlib") from None
    chosen: Dict[str, Callable[[int], List[Any]]] = {}
    for name in only or list(WORKLOADS):
        chosen[name] = functools.partial(_builtin, WORKLOADS[name], scale, args.seed)
    for path in args.trace:
        chosen[os.path.basename(path)] = functools.partial(_same, read_trace(path, args.limit))
    replays, skipped = contenders(fastlru.POLICIES)
    names = list(replays)
    print("hit ratios in %% (cache-aside get/set), seed %d, %s; fastlru.Cache is %s, default "
          "policy %r" % (args.seed, "quick" if args.quick else "full", fastlru.IMPLEMENTATION,
                          fastlru.DEFAULT_POLICY))
    for name, why in skipped:
        print("skipped %s: %s" % (name, why))
    started = time.perf_counter()
    rows = run(chosen, sizes, replays, _progress)
    sys.stderr.write(" %.0fs\n" % (time.perf_counter() - started))
    print(table(rows, names))
    found = check_targets(rows, fastlru.POLICIES, fastlru.DEFAULT_POLICY, WORKLOADS)
    if args.targets:
        for what, measured, met in found:
            print("%s  %s: %s" % ("met   " if met else "MISSED", what, measured))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seed": args.seed, "quick": args.quick, "sizes": list(sizes),
                       "skipped": dict(skipped), "rows": rows,
                       "targets": [{"target": t, "measured": m, "met": ok}
                                   for t, m, ok in found]}, f, indent=1)
    if args.plot:
        write_plot(args.plot, rows, names)
    return 0
