"""Registry signaling: the cost of a check when nothing changed, and the invalidation latency.

Run from the checkout (it starts a private PostgreSQL and redis-server, as the tests do)::

    PYTHONPATH=src:tests python bench/bench_signaling.py [--quick]

1. ``check_signaling()`` when nothing changed, per backend, for registries that signal 1 and 50
   cache names: one round trip whatever the number of names, and beyond the backend's read
   (shown beside it) one tuple comparison. What grows with the names is inside that one query:
   the server reads more sequences/keys, and redis-py packs and parses more values in pure
   Python (~2 us per key here; installing ``hiredis`` moves the parsing to C).
2. Latency from ``signal_changes()`` in one process to the cleared cache in another, measured
   on the system-wide monotonic clock: the other process either polls ``check_signaling()`` in
   a loop (the best a polling worker can do; a real one checks at its next request), or, with
   Redis pub/sub, only watches its cache while the listener thread clears it.
"""
import argparse
import multiprocessing
import os
import signal
import statistics
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
for path in (os.path.join(HERE, "..", "src"), os.path.join(HERE, "..", "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)

from ormcache.registry import Registry  # noqa: E402
from ormcache.signaling import REGISTRY, LocalSignaling, PostgresSignaling, RedisSignaling  # noqa: E402
from servers import PostgresServer, RedisServer  # noqa: E402


class NamedRegistry(Registry):
    """A registry whose signaling covers ``count`` cache names (the default registry has 8)."""

    count = 8

    def _signaling_names(self):
        return (REGISTRY, *(f"cache{i}" for i in range(self.count)))


def make_backend(kind, target):
    if kind == "local":
        return LocalSignaling()
    if kind == "postgres":
        return PostgresSignaling(target)
    return RedisSignaling(target, key_prefix=f"bench:{uuid.uuid4().hex[:8]}:", pubsub=kind == "redis-pubsub")


def per_call(func, number, repeat=5):
    """Best of ``repeat`` runs of ``number`` calls, in microseconds per call."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            func()
        best = min(best, (time.perf_counter() - start) / number)
    return best * 1e6


def bench_check(kinds, targets, number):
    print("check_signaling() with nothing changed (best of 5, us per call)")
    print(f"{'backend':<14}{'names':>6}{'check':>10}{'read alone':>12}")
    rows = []
    for kind in kinds:
        for count in (1, 50):
            cls = type(f"Registry{count}", (NamedRegistry,), {"count": count})
            registry = cls(f"bench-{kind}-{count}-{uuid.uuid4().hex[:6]}")
            registry.signaling = backend = make_backend(kind, targets.get(kind))
            try:
                registry.check_signaling()
                names = registry._signaling_names()
                calls = number * (50 if kind == "local" else 1)
                check = per_call(registry.check_signaling, calls)
                read = per_call(lambda: backend.read(registry.db_name, names), calls)
            finally:
                backend.close()
                Registry.delete(registry.db_name)
            rows.append((kind, count, check, read))
            print(f"{kind:<14}{count:>6}{check:>10.1f}{read:>12.1f}")
    return rows


def watcher(kind, target, db_name, prefix, conn):
    """The other process: warm the cache on request, then report when it is cleared."""
    registry = Registry(db_name)
    registry.signaling = backend = (
        PostgresSignaling(target) if kind == "postgres"
        else RedisSignaling(target, key_prefix=prefix, pubsub=kind == "redis-pubsub"))
    cache = registry.caches["default"]
    registry.check_signaling()
    if kind == "redis-pubsub":
        backend._listener.ready.wait(10)
    try:
        while conn.recv() == "arm":
            registry.check_signaling()
            cache["param"] = 1
            conn.send("armed")
            deadline = time.perf_counter() + 10
            while len(cache) and time.perf_counter() < deadline:
                if kind == "redis-pubsub":
                    time.sleep(0.00002)  # lets the listener thread run
                else:
                    registry.check_signaling()
            conn.send(time.perf_counter() if not len(cache) else None)
    finally:
        backend.close()


def bench_latency(kinds, targets, rounds):
    print(f"\ninvalidation latency, signal_changes() -> cleared in another process ({rounds} rounds, us)")
    print(f"{'backend':<14}{'median':>10}{'p95':>10}{'max':>10}   the other process")
    ctx = multiprocessing.get_context("spawn")
    rows = []
    for kind in kinds:
        db_name = f"latency-{uuid.uuid4().hex[:8]}"
        prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        ours, theirs = ctx.Pipe()
        process = ctx.Process(target=watcher, args=(kind, targets[kind], db_name, prefix, theirs))
        process.start()
        registry = Registry(db_name)
        registry.signaling = (PostgresSignaling(targets[kind]) if kind == "postgres"
                              else RedisSignaling(targets[kind], key_prefix=prefix, pubsub=kind == "redis-pubsub"))
        latencies = []
        try:
            registry.check_signaling()
            for _ in range(rounds):
                ours.send("arm")
                assert ours.recv() == "armed"
                time.sleep(0.002)
                start = time.perf_counter()
                registry.clear_cache("default")
                registry.signal_changes()
                cleared_at = ours.recv()
                if cleared_at is None:
                    raise RuntimeError(f"{kind}: the other process's cache was not cleared within 10s")
                latencies.append((cleared_at - start) * 1e6)
            ours.send("stop")
            process.join(30)
        finally:
            registry.signaling.close()
            Registry.delete(db_name)
            if process.is_alive():
                process.kill()
                process.join()
            ours.close()
            theirs.close()
        latencies.sort()
        row = (kind, statistics.median(latencies), latencies[int(len(latencies) * 0.95) - 1], latencies[-1])
        rows.append(row)
        how = "listener thread (pub/sub), no check" if kind == "redis-pubsub" else "polls check_signaling()"
        print(f"{kind:<14}{row[1]:>10.0f}{row[2]:>10.0f}{row[3]:>10.0f}   {how}")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and rounds (a smoke run)")
    args = parser.parse_args(argv)
    # a SIGTERM (timeout, CI) unwinds the with-blocks below: the servers are stopped
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    number, rounds = (200, 30) if args.quick else (2000, 300)
    with PostgresServer() as pg, RedisServer() as redis_server:
        dsn = pg.create_database("bench")
        targets = {"postgres": dsn, "redis": redis_server.url, "redis-pubsub": redis_server.url}
        bench_check(["local", "postgres", "redis", "redis-pubsub"], targets, number)
        bench_latency(["postgres", "redis", "redis-pubsub"], targets, rounds)


if __name__ == "__main__":
    main()
