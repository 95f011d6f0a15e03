"""The workloads: what each one times, with which sizes, and how its samples become rows.

A row is a dict: ``workload``, ``impl``, ``ns`` (min ns/op), ``ns_median``, ``baseline``
(``"dict"``), ``ratio`` (``ns`` / dict's ``ns`` from the same run), ``note``, and per-workload
extras (``hit_ratio`` for the Zipf mixes, ``bytes_per_entry`` for memory).
"""
from __future__ import annotations

import functools
import threading
from typing import Any, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import data, loops, memory
from .impls import DICT, ODOO, Impl
from .timing import Prepare, Samples, interleaved, made, run_together

Tick = Callable[[str], None]  # progress: called with a short label

VALUE = object()  # the value stored by the set workload


@dataclass(frozen=True)
class Sizes:
    repeats: int
    get_keys: int  # keys in the pre-filled cache (capacity too)
    get_lookups: int  # timed lookups per pass
    capacity: int  # capacity of the set and Zipf caches
    set_keys: int  # distinct keys cycled through, one cycle per pass (each store evicts)
    zipf_space: int
    zipf_s: float
    zipf_warm: int  # untimed accesses that bring the cache to steady state
    zipf_ops: int  # timed accesses per pass (split over the threads when threaded)
    threads: int
    memory_entries: int


FULL = Sizes(repeats=7, get_keys=8192, get_lookups=200_000, capacity=8192, set_keys=100_000,
             zipf_space=100_000, zipf_s=1.1, zipf_warm=100_000, zipf_ops=300_000, threads=4,
             memory_entries=100_000)
QUICK = Sizes(repeats=3, get_keys=8192, get_lookups=30_000, capacity=8192, set_keys=30_000,
              zipf_space=100_000, zipf_s=1.1, zipf_warm=30_000, zipf_ops=30_000, threads=4,
              memory_entries=100_000)

WORKLOADS = ["get-hit-int", "get-hit-tuple", "set-evict", "zipf", "threads", "memory"]


def describe(name: str, sz: Sizes) -> str:
    return {
        "get-hit-int": "get-hit, int keys: %s lookups of %s pre-filled keys, `c[k]`"
        % (f"{sz.get_lookups:,}", f"{sz.get_keys:,}"),
        "get-hit-tuple": "get-hit, (model, method, id) keys: %s lookups of %s pre-filled keys, `c[k]`"
        % (f"{sz.get_lookups:,}", f"{sz.get_keys:,}"),
        "set-evict": "set with eviction: capacity %s, cycling over %s distinct keys, `c[k] = v`"
        % (f"{sz.capacity:,}", f"{sz.set_keys:,}"),
        "zipf": "Zipf(s=%s) get-or-set over %s keys, capacity %s, %s ops after %s warm-up"
        % (sz.zipf_s, f"{sz.zipf_space:,}", f"{sz.capacity:,}", f"{sz.zipf_ops:,}",
           f"{sz.zipf_warm:,}"),
        "threads": "%d threads on one cache, the Zipf mix: wall time / %s total ops"
        % (sz.threads, f"{sz.zipf_ops:,}"),
        "memory": "bytes per entry, %s entries, fresh subprocess each (RSS delta; tracemalloc)"
        % f"{sz.memory_entries:,}",
    }[name]


def _fill(impl: Impl, c: Any, keys: Sequence[Any]) -> None:
    if impl.kind == "function":
        loops.call_each(c, keys)
    elif impl.kind == "methods":
        loops.set_call_each(c.set, keys, VALUE)
    else:
        for k in keys:
            c[k] = k


def _size(impl: Impl, c: Any) -> int:
    return impl.entries(c)


def _get_loop(impl: Impl, c: Any, keys: Sequence[Any]) -> Callable[[], Any]:
    """The timed lookups of ``keys`` in ``c``."""
    if impl.kind == "function":
        return functools.partial(loops.call_each, c, keys)
    if impl.kind == "methods":
        return functools.partial(loops.call_each, c.get, keys)
    return functools.partial(loops.get_each, c, keys)


def _set_loop(impl: Impl, c: Any, keys: Sequence[Any]) -> Callable[[], Any]:
    """The timed stores of ``keys`` into ``c``."""
    if impl.kind == "function":
        return functools.partial(loops.call_each, c, keys)
    if impl.kind == "methods":
        return functools.partial(loops.set_call_each, c.set, keys, VALUE)
    return functools.partial(loops.set_each, c, keys, VALUE)


def _get_or_set_loop(impl: Impl, c: Any, keys: Sequence[Any]) -> Callable[[], Any]:
    """The timed get-or-set of ``keys`` on ``c`` (a thread-safe cache: no lock)."""
    if impl.kind == "function":
        return functools.partial(loops.call_each, c, keys)
    if impl.kind == "methods":
        loop = loops.get_or_set_pair_each if impl.pairs else loops.get_or_set_call_each
        return functools.partial(loop, c.get, c.set, keys)
    return functools.partial(loops.get_or_set_each, c, keys)


def _consistency(impl: Impl, c: Any, capacity: int) -> str:
    """Untimed sanity check of a cache after a workload: '' or what is wrong."""
    if impl.name == DICT:
        return ""
    size = _size(impl, c)
    if size > capacity:
        return "BUG: %d entries > capacity %d" % (size, capacity)
    check = getattr(c, "_check", None)
    if check is not None:
        try:
            check()
        except AssertionError as exc:
            return "BUG: _check() failed: %s" % exc
    return ""


def _rows(workload: str, impls: List[Impl], samples: Dict[str, Samples], ops: int, sizes: Sizes,
          notes: Optional[Dict[str, List[str]]] = None,
          extra: Optional[Dict[str, Dict[str, Any]]] = None) -> List[Dict[str, Any]]:
    base = samples[DICT].min() if DICT in samples and not samples[DICT].error else float("nan")
    rows = []
    for impl in impls:
        s = samples[impl.name]
        note = [impl.note] + ([s.error] if s.error else []) + (notes or {}).get(impl.name, [])
        row = {
            "workload": workload,
            "impl": impl.name,
            "ns": s.min() / ops,
            "ns_median": s.median() / ops,
            "baseline": DICT,
            "ratio": (s.min() / ops) / (base / ops),
            "note": "; ".join(n for n in note if n),
            "ops": ops,
            "repeats": len(s.ns),
        }
        row.update((extra or {}).get(impl.name, {}))
        rows.append(row)
    return rows


# --- get-hit --------------------------------------------------------------------------------

def _get_hit(workload: str, impls: List[Impl], sz: Sizes, tick: Tick, keys: Sequence[Any]) -> List[Dict[str, Any]]:
    lookups = data.uniform_sequence(keys, sz.get_lookups)

    def case(impl: Impl) -> Prepare:
        ready: List[Callable[[], Optional[int]]] = []

        def prepare() -> Callable[[], Optional[int]]:  # fill once: hits do not change which keys are cached
            if not ready:
                c = impl.make(len(keys))
                _fill(impl, c, keys)
                ready.append(_get_loop(impl, c, lookups))
            return ready[0]

        return prepare

    samples = interleaved({i.name: case(i) for i in impls}, sz.repeats, tick=tick)
    return _rows(workload, impls, samples, len(lookups), sz)


def get_hit_int(impls: List[Impl], sz: Sizes, tick: Tick) -> List[Dict[str, Any]]:
    return _get_hit("get-hit-int", impls, sz, tick, data.int_keys(sz.get_keys))


def get_hit_tuple(impls: List[Impl], sz: Sizes, tick: Tick) -> List[Dict[str, Any]]:
    return _get_hit("get-hit-tuple", impls, sz, tick, data.tuple_keys(sz.get_keys))


# --- set with eviction ----------------------------------------------------------------------

def set_evict(impls: List[Impl], sz: Sizes, tick: Tick) -> List[Dict[str, Any]]:
    keys = data.int_keys(sz.set_keys)
    caches = {}

    def case(impl: Impl) -> Prepare:
        ready: List[Callable[[], Optional[int]]] = []

        def prepare() -> Callable[[], Optional[int]]:
            if not ready:
                c = impl.make(sz.capacity)
                # One untimed cycle: steady state. From then on every store into an LRU misses
                # and evicts (the key left the cache 100k - 8192 stores ago), and every store
                # into the dict replaces a value (no resizing mid-pass to blur the baseline).
                _set_loop(impl, c, keys)()
                caches[impl.name] = c
                ready.append(_set_loop(impl, c, keys))
            return ready[0]

        return prepare

    samples = interleaved({i.name: case(i) for i in impls}, sz.repeats, tick=tick)
    notes = {DICT: ["replaces values: holds every key after the first cycle"]}
    for impl in impls:
        if impl.name in caches and impl.name != DICT and not samples[impl.name].error:
            c = caches[impl.name]
            problem = _consistency(impl, c, sz.capacity)
            if not problem and impl.exact_lru and _size(impl, c) != sz.capacity:
                problem = "BUG: %d entries, expected %d" % (_size(impl, c), sz.capacity)
            notes[impl.name] = [problem]
    return _rows("set-evict", impls, samples, len(keys), sz, notes)


# --- Zipf get-or-set, one thread and several --------------------------------------------------

def _zipf_sequence(sz: Sizes) -> Tuple[List[int], List[int]]:
    seq = data.zipf_sequence(sz.zipf_space, sz.zipf_s, sz.zipf_warm + sz.zipf_ops)
    return seq[: sz.zipf_warm], seq[sz.zipf_warm:]


def _warm_cache(impl: Impl, sz: Sizes, warm: List[int]) -> Any:
    c = impl.make(sz.capacity)
    _get_or_set_loop(impl, c, warm)()
    return c


def _hit_ratio(impl: Impl, sz: Sizes, warm: List[int], timed: List[int]) -> float:
    c = _warm_cache(impl, sz, warm)
    if impl.kind == "function":
        before = c.cache_info()
        loops.call_each(c, timed)
        after = c.cache_info()
        hits: int = after.hits - before.hits
        return hits / len(timed)
    if impl.kind == "methods":
        return 1 - loops.count_misses(c.get, c.set, timed, impl.pairs) / len(timed)
    return 1 - loops.count_misses(c.get, c.__setitem__, timed) / len(timed)


def zipf(impls: List[Impl], sz: Sizes, tick: Tick) -> List[Dict[str, Any]]:
    warm, timed = _zipf_sequence(sz)

    def case(impl: Impl) -> Prepare:
        def prepare() -> Callable[[], Optional[int]]:
            c = _warm_cache(impl, sz, warm)
            return _get_or_set_loop(impl, c, timed)

        return prepare

    samples = interleaved({i.name: case(i) for i in impls}, sz.repeats, tick=tick)
    extra, notes = {}, {}
    for impl in impls:
        if not samples[impl.name].error:
            ratio = _hit_ratio(impl, sz, warm, timed)
            extra[impl.name] = {"hit_ratio": ratio}
            notes[impl.name] = ["hit %.1f%%" % (100 * ratio)]
    # Every exact LRU must see the same hits as the code being replaced.
    reference = extra.get(ODOO, {}).get("hit_ratio")
    exact = {impl.name for impl in impls if impl.exact_lru}
    for name, values in extra.items():
        if name not in (DICT, ODOO) and name in exact and reference is not None:
            if abs(values["hit_ratio"] - reference) > 1e-9:
                notes[name].append("hit ratio differs from %s" % ODOO)
    return _rows("zipf", impls, samples, len(timed), sz, notes, extra)


def _threaded_run(impl: Impl, c: Any, chunks: Sequence[Sequence[Any]]) -> int:
    if impl.thread_safe:
        runs = [_get_or_set_loop(impl, c, chunk) for chunk in chunks]
    else:
        lock = threading.Lock()
        runs = [functools.partial(loops.get_or_set_each_locked, c, chunk, lock) for chunk in chunks]
    return run_together([made(run) for run in runs])


def threads(impls: List[Impl], sz: Sizes, tick: Tick) -> List[Dict[str, Any]]:
    warm, timed = _zipf_sequence(sz)
    chunks = [timed[i:: sz.threads] for i in range(sz.threads)]
    last = {}

    def case(impl: Impl) -> Prepare:
        def prepare() -> Callable[[], Optional[int]]:
            c = _warm_cache(impl, sz, warm)
            last[impl.name] = c
            return functools.partial(_threaded_run, impl, c, chunks)

        return prepare

    samples = interleaved({i.name: case(i) for i in impls}, sz.repeats, tick=tick)
    notes = {}
    for impl in impls:
        n = []
        if not impl.thread_safe:
            n.append("each access under an external threading.Lock (not thread-safe)")
        if impl.name in last and not samples[impl.name].error:
            n.append(_consistency(impl, last[impl.name], sz.capacity))
        notes[impl.name] = n
    return _rows("threads", impls, samples, len(timed), sz, notes)


def memory_rows(impls: List[Impl], sz: Sizes, tick: Tick) -> List[Dict[str, Any]]:
    return memory.rows(impls, sz.memory_entries, tick)


RUNNERS = {
    "get-hit-int": get_hit_int,
    "get-hit-tuple": get_hit_tuple,
    "set-evict": set_evict,
    "zipf": zipf,
    "threads": threads,
    "memory": memory_rows,
}
assert list(RUNNERS) == WORKLOADS
