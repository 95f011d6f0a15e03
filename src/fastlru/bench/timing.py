"""Interleaved, GC-free timing (timeit-style: keep every pass, report the min and the median).

Each repeat runs every contender once, in a rotated order, so slow drifts of a noisy machine
(frequency scaling, a neighbour's burst) spread over all contenders instead of biasing one.
"""
import gc
import statistics
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Hashable, List, Mapping, Optional, Sequence, Tuple, TypeVar

_N = TypeVar("_N", bound=Hashable)  # a case's name

# prepare() does the untimed setup (fresh or pre-filled cache) and returns run(); run() does one
# timed pass and returns None (timed here) or its own elapsed ns (when only part of it counts,
# as with threads that must be started first).
Prepare = Callable[[], Callable[[], Optional[int]]]


@dataclass
class Samples:
    ns: List[int] = field(default_factory=list)  # elapsed ns of each pass
    error: str = ""

    def min(self) -> float:
        return min(self.ns) if self.ns else float("nan")

    def median(self) -> float:
        return statistics.median(self.ns) if self.ns else float("nan")


def _one_pass(prepare: Prepare) -> int:
    run = prepare()
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        own = run()
        elapsed = time.perf_counter_ns() - start
    finally:
        if enabled:
            gc.enable()
    return elapsed if own is None else own


def interleaved(cases: Mapping[_N, Prepare], repeats: int, warmup: int = 1,
                tick: Callable[[str], None] = lambda s: None) -> Dict[_N, Samples]:
    """Time every case ``repeats`` times (after ``warmup`` untimed passes), interleaved.

    A case that raises is dropped from the remaining passes; its error is kept in the result.
    """
    names = list(cases)
    result = {name: Samples() for name in names}
    for r in range(-warmup, repeats):
        tick("w" if r < 0 else str(r + 1))
        gc.collect()  # start each round with no garbage left by the previous one's setups
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            samples = result[name]
            if samples.error:
                continue
            try:
                elapsed = _one_pass(cases[name])
            except Exception as exc:  # an engine bug must not kill the whole comparison
                samples.error = "%s: %s" % (type(exc).__name__, exc)
                samples.ns.clear()
                traceback.print_exc()
                continue
            if r >= 0:
                samples.ns.append(elapsed)
    return result


def run_together(makers: Sequence[Callable[[], Callable[[], Any]]]) -> int:
    """Runs each maker in its own thread, then what it returned, all released together (the
    scaling and threads workloads' timed pass); ns from the first start to the last end, each
    read in its thread (a thread that a busy machine schedules late does not make the others
    look faster). What a maker makes belongs to its thread (on a free-threaded build, objects
    made by the thread that uses them). The first error is raised."""
    barrier = threading.Barrier(len(makers))
    errors: List[BaseException] = []
    spans: List[Tuple[int, int]] = []

    def worker(make: Callable[[], Callable[[], Any]]) -> None:
        try:
            run = make()
        except BaseException as exc:  # noqa: BLE001 - raised in the timing thread below
            errors.append(exc)
            barrier.abort()
            return
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return
        start = time.perf_counter_ns()
        try:
            run()
        except BaseException as exc:  # noqa: BLE001 - raised in the timing thread below
            errors.append(exc)
        spans.append((start, time.perf_counter_ns()))

    threads = [threading.Thread(target=worker, args=(make,)) for make in makers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return max(end for _, end in spans) - min(start for start, _ in spans)


def made(run: Callable[[], Any]) -> Callable[[], Callable[[], Any]]:
    """A maker for ``run_together`` of a loop built in advance."""
    return lambda: run
