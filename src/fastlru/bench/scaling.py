"""Scaling: throughput of one shared cache with 1 and 2 threads (``python -m fastlru.bench
--scaling``, on by default on a free-threaded interpreter).

Each thread runs the same number of operations on the same cache (its own order of the keys),
so with ``n`` threads the work is ``n`` times one thread's; throughput is the work over the wall
time from the threads' common start to the last join (min over interleaved passes). On a GIL
build the threads take turns and 2 threads deliver about 1x; on free-threaded CPython with 2
free cores, a cache whose reads do not contend delivers close to 2x. The project's target:
fastlru's get-hit with 2 threads >= 1.8x one thread's (``--targets``). A control row
(``scaling-control``: a loop of additions, no cache, nothing shared) shows what the machine
itself allows: when it is near 1x, two cores were not free and no cache can do better; ``dict``
is the control of a container.

Each thread calls its own bound method (``c.get``, ``c.__setitem__``, ``f.__call__``), not
``c[k]``: on free-threaded 3.13 a thread that loads an object it does not own adds to its shared
reference count (biased reference counting), so ``c[k]`` in a loop makes both threads write the
cache object's header line on every operation (dict: 0.53x measured). In ``get-hit`` and
``zipf`` the keys and the values stay objects both threads share, and that caps every contender
on a 2-vCPU VM: each read writes their shared reference counts, a line both cores write.

``get-hit-own`` is the shape of a server: a request's keys are its own objects, so each thread
makes its own keys (equal to the cached ones, other objects, made in the thread), and the values
are ``None``, immortal on 3.12+, whose reference count nobody writes (a hot value every thread
reads bounces whatever the container: that cost is the value's, not the cache's). Each thread
reads each of its keys once before the clock starts, as a long-lived thread would have. Its
hits go through ``c.__getitem__``: on free-threaded 3.13 ``dict.get`` takes the dict's critical
section (by our reading of its source), ``dict.__getitem__`` reads without a lock.

The clock runs from the first thread's start to the last one's end, each read in its thread.

>>> [w for w in WORKLOADS]
['get-hit', 'get-hit-own', 'zipf']
"""
from __future__ import annotations

import functools
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import data, loops
from .impls import CACHEBOX, DICT, FASTLRU, FUNCTOOLS, MOKA, Impl, cache_name
from .timing import Prepare, interleaved, made, run_together
from .workloads import Sizes, _fill, _warm_cache, _zipf_sequence

WORKLOADS = ["get-hit", "get-hit-own", "zipf"]
SIEVE = cache_name("sieve")  # its hits write nothing: lock-free on free-threaded builds
CONTENDERS = (DICT, FASTLRU, SIEVE, FUNCTOOLS, CACHEBOX, MOKA)
THREADS = (1, 2)
TARGET = 1.8  # fastlru's get-hit: 2 threads' throughput over one thread's, 2 free cores


def free_threaded() -> bool:
    """True on a free-threaded interpreter whose GIL is off."""
    return hasattr(sys, "_is_gil_enabled") and not sys._is_gil_enabled()


CONTROL_OPS = 1_000_000  # additions per thread and pass in the control row


def _additions(n: int) -> None:
    total = 0
    for i in range(n):
        total += i


def _control() -> Dict[int, Prepare]:
    def control(n: int) -> Prepare:
        def prepare() -> Callable[[], Optional[int]]:
            run = functools.partial(_additions, CONTROL_OPS)
            return lambda: run_together([lambda: run] * n)

        return prepare

    return {n: control(n) for n in THREADS}


def _nothing(key: Any) -> None:
    return None


def _fill_immortal(impl: Impl, capacity: int, keys: Sequence[Any]) -> Any:
    """A cache of ``keys``, each holding ``None`` (a value no reader writes the count of)."""
    if impl.kind == "function":
        f = functools.lru_cache(maxsize=capacity)(_nothing)  # as impls' functools, value None
        loops.call_each(f, keys)
        return f
    c = impl.make(capacity)
    for k in keys:
        if impl.kind == "methods":
            c.set(k, None)
        else:
            c[k] = None
    return c


def _get_loop(impl: Impl, c: Any, keys: Sequence[Any]) -> Callable[[], Any]:
    """One thread's lookups, through a bound method of its own (see the module's docstring)."""
    if impl.kind == "function":
        return functools.partial(loops.call_each, c.__call__, keys)
    return functools.partial(loops.call_each, c.get, keys)  # a vectorcall, dict's as ours


def _hit_loop(impl: Impl, c: Any, keys: Sequence[Any]) -> Callable[[], Any]:
    """One thread's hits through ``c.__getitem__`` (``c.get`` for "methods"): on 3.13t
    ``dict.get`` takes the dict's critical section, its ``__getitem__`` reads without a lock."""
    if impl.kind == "mapping":
        return functools.partial(loops.call_each, c.__getitem__, keys)
    return _get_loop(impl, c, keys)


def _get_or_set_loop(impl: Impl, c: Any, keys: Sequence[Any]) -> Callable[[], Any]:
    """One thread's get-or-set, through bound methods of its own."""
    if impl.kind == "function":
        return functools.partial(loops.call_each, c.__call__, keys)
    if impl.kind == "methods":
        loop = loops.get_or_set_pair_each if impl.pairs else loops.get_or_set_call_each
        return functools.partial(loop, c.get, c.set, keys)
    return functools.partial(loops.get_or_set_call_each, c.get, c.__setitem__, keys)


def _cases(workload: str, impl: Impl, sz: Sizes) -> Tuple[Dict[int, Prepare], int]:
    """{threads: prepare} for one contender, and the operations of one thread per pass."""
    if workload == "get-hit":
        keys = data.int_keys(sz.get_keys)
        orders = [data.uniform_sequence(keys, sz.get_lookups, seed=data.SEED + t) for t in range(max(THREADS))]
        cache: List[Any] = []

        def get_hit(n: int) -> Prepare:
            def prepare() -> Callable[[], Optional[int]]:
                if not cache:  # filled once: hits do not change which keys are cached
                    c = impl.make(len(keys))
                    _fill(impl, c, keys)
                    cache.append(c)
                runs = [_get_loop(impl, cache[0], orders[t]) for t in range(n)]
                return lambda: run_together([made(r) for r in runs])

            return prepare

        return {n: get_hit(n) for n in THREADS}, sz.get_lookups
    if workload == "get-hit-own":
        keys = data.int_keys(sz.get_keys)
        where = {k: i for i, k in enumerate(keys)}
        positions = [[where[k] for k in data.uniform_sequence(keys, sz.get_lookups, seed=data.SEED + t)]
                     for t in range(max(THREADS))]
        filled: List[Any] = []

        def own_keys(t: int) -> Callable[[], Any]:
            """In thread t: its own key objects, each read once, and its timed lookups."""
            c = filled[0]
            mine = [int(repr(k)) for k in keys]  # equal to the cached keys, made in this thread
            _hit_loop(impl, c, mine)()
            return _hit_loop(impl, c, [mine[i] for i in positions[t]])

        def get_hit_own(n: int) -> Prepare:
            def prepare() -> Callable[[], Optional[int]]:
                if not filled:
                    filled.append(_fill_immortal(impl, len(keys), keys))
                return lambda: run_together([functools.partial(own_keys, t) for t in range(n)])

            return prepare

        return {n: get_hit_own(n) for n in THREADS}, sz.get_lookups
    warm, timed = _zipf_sequence(sz)
    # each thread its own rotation of the timed sequence: same popularity, other order
    orders = [timed[t * len(timed) // 2:] + timed[: t * len(timed) // 2] for t in range(max(THREADS))]

    def zipf(n: int) -> Prepare:
        def prepare() -> Callable[[], Optional[int]]:
            c = _warm_cache(impl, sz, warm)
            runs = [_get_or_set_loop(impl, c, orders[t]) for t in range(n)]
            return lambda: run_together([made(r) for r in runs])

        return prepare

    return {n: zipf(n) for n in THREADS}, len(timed)


def rows(contenders: List[Impl], sz: Sizes, tick: Callable[[str], None]) -> List[Dict[str, Any]]:
    """One row per (workload, contender): ``mops`` per thread count and ``speedup`` (2 over 1)."""
    chosen = [impl for impl in contenders if impl.name in CONTENDERS and impl.thread_safe]
    out = []
    tick("control")
    samples = interleaved({("control", n): prepare for n, prepare in _control().items()},
                          sz.repeats, tick=tick)
    control = {str(n): n * CONTROL_OPS / samples[("control", n)].min() * 1e3 for n in THREADS}
    out.append({"workload": "scaling-control", "impl": "no cache", "mops": control,
                "speedup": control["2"] / control["1"], "free_threaded": free_threaded(),
                "note": "a loop of additions, nothing shared: what the machine allows"})
    for workload in WORKLOADS:
        tick(workload)
        cases: Dict[Tuple[str, int], Prepare] = {}
        ops: Dict[str, int] = {}
        for impl in chosen:
            per_thread, ops[impl.name] = _cases(workload, impl, sz)
            for n, prepare in per_thread.items():
                cases[(impl.name, n)] = prepare
        samples = interleaved(cases, sz.repeats, tick=tick)
        for impl in chosen:
            mops: Dict[int, float] = {}
            notes = [impl.note]
            for n in THREADS:
                s = samples[(impl.name, n)]
                if s.error:
                    notes.append("%d threads: %s" % (n, s.error))
                    continue
                mops[n] = n * ops[impl.name] / s.min() * 1e3  # million operations per second
            speedup = mops[2] / mops[1] if 1 in mops and 2 in mops else float("nan")
            row: Dict[str, Any] = {
                "workload": "scaling-" + workload, "impl": impl.name,
                "mops": {str(n): v for n, v in mops.items()}, "speedup": speedup,
                "free_threaded": free_threaded(), "note": "; ".join(n for n in notes if n),
            }
            if workload in ("get-hit", "get-hit-own") and impl.name in (FASTLRU, SIEVE):
                row["targets"] = [("scaling %s%s: 2 threads >= %.1fx one thread"
                                   % (workload, "" if impl.name == FASTLRU else ", " + impl.name, TARGET),
                                   "%.2fx" % speedup, speedup >= TARGET if speedup == speedup else None)]
            out.append(row)
    return out


def table(found: List[Dict[str, Any]], sz: Sizes) -> str:
    """The scaling rows as one fixed-width table."""
    head = ("workload", "impl", "1 thread", "2 threads", "2/1", "note")
    cells = []
    for r in found:
        m = r["mops"]
        cells.append((r["workload"], r["impl"],
                      "%.2f" % m["1"] if "1" in m else "-", "%.2f" % m["2"] if "2" in m else "-",
                      "%.2fx" % r["speedup"] if r["speedup"] == r["speedup"] else "-", r["note"]))
    widths = [max(len(c[i]) for c in [head] + cells) for i in range(len(head) - 1)]
    gil = ("free-threaded, GIL off" if free_threaded() else
           "GIL build (or GIL on): threads take turns, ~1x is expected")
    lines = ["scaling — Mops/s of one shared cache, each thread %s get-hit lookups of %s keys / %s "
             "Zipf get-or-set ops; %s" % (f"{sz.get_lookups:,}", f"{sz.get_keys:,}",
                                          f"{sz.zipf_ops:,}", gil)]
    for c in [head] + cells:
        left = "  ".join(c[i].ljust(widths[i]) if i < 2 else c[i].rjust(widths[i])
                         for i in range(len(head) - 1))
        lines.append(("  " + left + "  " + c[-1]).rstrip())
    return "\n".join(lines)
