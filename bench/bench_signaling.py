"""Registry signaling: the cost of a check when nothing changed, and the invalidation latency.

Run from the checkout (it starts a private PostgreSQL and redis-server, as the tests do)::

    PYTHONPATH=src:tests python bench/bench_signaling.py [--quick]

1. ``check_signaling()`` when nothing changed, per backend, for registries that signal 1 and 50
   cache names: one round trip whatever the number of names, and beyond the backend's read
   (shown beside it) one tuple comparison. What grows with the names is inside that one query:
   the server reads more tables/keys, and redis-py packs and parses more values in pure
   Python (~2 us per key here; installing ``hiredis`` moves the parsing to C).
2. The cost of a commit with signaling on PostgreSQL: without signaling, publishing after the
   COMMIT (``signal_changes()``: one more round trip on the backend's connection), and recording
   in the transaction (``record_changes()``: one more statement before the COMMIT, then
   ``changes_committed()`` which sends nothing).
3. Redis unreachable at the commit: how long after it answers again the kept invalidation is
   published by the background thread (nothing else runs in the writer), with the default
   ``signaling_retry_interval``.
4. Latency from ``signal_changes()`` in one process to the cleared cache in another, measured
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
from ormcache.signaling import REGISTRY, LocalSignaling, PostgresSignaling, RedisSignaling, SignalingUnavailable  # noqa: E402
from support.servers import PostgresServer, RedisServer, TcpProxy  # noqa: E402


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


def load_before(path):
    """The signaling module of an older checkout, e.g. the sequences of ormcache before issue #8:
    ``git show 84c5006:src/ormcache/signaling.py > /tmp/before.py``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("signaling_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_before_after(before, dsn_before, dsn, number, rounds=3):
    """PostgreSQL read and bump, before (``before.PostgresSignaling``, on a database of its own:
    the new tables turn the old sequences into views that fail) and after, interleaved in the
    same run so that a loaded machine weighs on both alike."""
    print("\nPostgreSQL read (a check's round trip) and bump, before vs after "
          f"(best of {rounds} interleaved rounds, us per call)")
    print(f"{'names':>6}{'read before':>13}{'read after':>12}{'bump before':>13}{'bump after':>12}")
    rows = []
    for count in (1, 50):
        names = tuple(["registry"] + [f"cache{i}" for i in range(count - 1)]) if count > 1 else ("registry",)
        old, new = before.PostgresSignaling(dsn_before), PostgresSignaling(dsn)  # prunes every 64
        best = {}
        try:
            for _ in range(rounds):
                for label, backend in (("before", old), ("after", new)):
                    for kind, func in (("read", lambda: backend.read("db", names)),
                                       ("bump", lambda: backend.bump("db", names))):
                        for _ in range(10):
                            func()
                        value = per_call(func, number, repeat=1)
                        best[kind, label] = min(best.get((kind, label), value), value)
        finally:
            old.close()
            new.close()
        rows.append((count, best))
        print(f"{count:>6}{best['read', 'before']:>13.1f}{best['read', 'after']:>12.1f}"
              f"{best['bump', 'before']:>13.1f}{best['bump', 'after']:>12.1f}")
    return rows


def bench_commit(dsn, number):
    """A commit of one UPDATE: alone, then published after the COMMIT, then recorded in it."""
    import psycopg

    print(f"\ncommit of one UPDATE with signaling on PostgreSQL (best of 5, us per commit)")
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_config (id int PRIMARY KEY, value bigint)")
        conn.execute("INSERT INTO bench_config VALUES (1, 0) ON CONFLICT DO NOTHING")
        conn.commit()
        registry = Registry(f"bench-commit-{uuid.uuid4().hex[:6]}")
        registry.signaling = backend = PostgresSignaling(dsn)
        registry.check_signaling()
        update = "UPDATE bench_config SET value = value + 1 WHERE id = 1"

        def plain():
            conn.execute(update)
            conn.commit()

        def published():
            conn.execute(update)
            registry.clear_cache("default")
            conn.commit()
            registry.signal_changes()

        def recorded():
            conn.execute(update)
            registry.clear_cache("default")
            assert registry.record_changes(registry.cache_invalidated, conn.execute)
            conn.commit()
            registry.changes_committed(registry.cache_invalidated)
            registry.cache_invalidated.clear()

        rows = []
        try:
            for label, func in (("no signaling", plain), ("publish after COMMIT", published),
                                ("record in the transaction", recorded)):
                for _ in range(20):  # let psycopg prepare the statements
                    func()
                rows.append((label, per_call(func, number)))
                print(f"{label:<28}{rows[-1][1]:>10.1f}")
        finally:
            backend.close()
            Registry.delete(registry.db_name)
    return rows


def bench_redis_retry(redis_server, rounds):
    """Redis cut at the commit, back later: delay until the background thread published."""
    print(f"\nRedis unreachable at the commit, back later ({rounds} rounds, ms from back to published)")
    delays = []
    with TcpProxy(redis_server.port) as proxy:
        prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        writer = Registry(f"bench-retry-{uuid.uuid4().hex[:6]}")
        writer.signaling = RedisSignaling(f"redis://127.0.0.1:{proxy.port}/0", key_prefix=prefix, socket_timeout=1.0)
        reader = RedisSignaling(redis_server.url, key_prefix=prefix)
        try:
            writer.check_signaling()
            for count in range(1, rounds + 1):
                proxy.stop()
                writer.clear_cache("default")
                try:
                    writer.signal_changes()
                except SignalingUnavailable:  # expected: kept for the background thread
                    pass
                else:
                    raise RuntimeError("published through a stopped proxy")
                time.sleep(0.3)
                proxy.start()
                back = time.perf_counter()
                while reader.read(writer.db_name, ["default"])[1]["default"] < count:
                    if time.perf_counter() - back > 10:
                        raise RuntimeError("not published within 10 s")
                    time.sleep(0.001)
                delays.append((time.perf_counter() - back) * 1e3)
        finally:
            writer.signaling.close()
            reader.close()
            Registry.delete(writer.db_name)
    delays.sort()
    print(f"median {statistics.median(delays):.0f} ms, max {delays[-1]:.0f} ms "
          f"(signaling_retry_interval {Registry.signaling_retry_interval} s, poll {0.05 * 1e3:.0f} ms)")
    return delays


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
    parser.add_argument("--before", metavar="PATH",
                        help="an older signaling module to compare PostgreSQL with (see load_before)")
    args = parser.parse_args(argv)
    # a SIGTERM (timeout, CI) unwinds the with-blocks below: the servers are stopped
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    number, rounds = (200, 30) if args.quick else (2000, 300)
    with PostgresServer() as pg, RedisServer() as redis_server:
        dsn = pg.create_database("bench")
        targets = {"postgres": dsn, "redis": redis_server.url, "redis-pubsub": redis_server.url}
        bench_check(["local", "postgres", "redis", "redis-pubsub"], targets, number)
        if args.before:
            bench_before_after(load_before(args.before), pg.create_database("bench_before"), dsn, number // 2)
        bench_commit(dsn, number // 4)
        bench_redis_retry(redis_server, 3 if args.quick else 10)
        bench_latency(["postgres", "redis", "redis-pubsub"], targets, rounds)


if __name__ == "__main__":
    main()
