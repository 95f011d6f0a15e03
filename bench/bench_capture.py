"""The commit overhead of capture in the database (``OrmCache.install()``'s triggers).

Run from the checkout (it starts a private PostgreSQL, as the tests do)::

    PYTHONPATH=src:tests python bench/bench_capture.py [--quick]

Two identical tables, ``plain`` and ``captured``; only ``captured`` carries the capture trigger
(statement-level, INSERT/UPDATE/DELETE/TRUNCATE, recording ``default`` once per transaction).
Timed on one psycopg connection, the two tables alternating batch by batch so that a loaded
machine weighs on both alike; the ratio is the median of the rounds' ratios:

1. a commit of one single-row UPDATE (``UPDATE ...; COMMIT``): targets <= 1.15x;
2. 1,000 single-row UPDATEs in one transaction, then COMMIT: target <= 1.10x.

The private server runs without fsync: a commit is cheaper than on a durable server, so the
ratio of the first case is an upper bound of what a production server shows.
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
for path in (os.path.join(HERE, "..", "src"), os.path.join(HERE, "..", "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)

import psycopg  # noqa: E402

from ormcache.signaling import capture  # noqa: E402
from support.servers import PostgresServer  # noqa: E402

ROWS = 1000


def setup(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in ("plain", "captured"):
            conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text NOT NULL)")
            conn.execute(f"INSERT INTO {table} SELECT i, 'x' FROM generate_series(0, {ROWS - 1}) i")
        with conn.transaction():
            for statement in capture.ddl("postgresql", ["default"], [(None, "captured")]):
                conn.execute(statement)
        conn.execute("VACUUM ANALYZE")


def one_update_commits(conn, table, count, start):
    began = time.perf_counter()
    for i in range(start, start + count):
        conn.execute(f"UPDATE {table} SET name = %s WHERE id = %s", [str(i), i % ROWS])
        conn.commit()
    return (time.perf_counter() - began) / count


def thousand_updates_commit(conn, table, value):
    began = time.perf_counter()
    for i in range(ROWS):
        conn.execute(f"UPDATE {table} SET name = %s WHERE id = %s", [value, i])
    conn.commit()
    return time.perf_counter() - began


def run(dsn, rounds, batch):
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT 1")  # warm-up: plans, caches
        conn.commit()
        single = {"plain": [], "captured": []}
        bulk = {"plain": [], "captured": []}
        for r in range(rounds):
            order = ("plain", "captured") if r % 2 == 0 else ("captured", "plain")
            for table in order:
                single[table].append(one_update_commits(conn, table, batch, r * batch))
            for table in order:
                bulk[table].append(thousand_updates_commit(conn, table, str(r)))
        with conn.cursor() as cur:
            rows = cur.execute('SELECT count(*) FROM "orm_signaling_default"').fetchone()[0]
    return single, bulk, rows


def report(name, times, target, unit, scale):
    plain, captured = statistics.median(times["plain"]), statistics.median(times["captured"])
    # the median of the rounds' ratios: each round times both tables back to back, so a load
    # that drifts during the run weighs on both sides of a ratio alike
    ratio = statistics.median(c / p for p, c in zip(times["plain"], times["captured"]))
    print(f"{name}: without capture {plain * scale:.1f} {unit}, with capture {captured * scale:.1f} {unit}: "
          f"{ratio:.3f}x (target <= {target}x) {'ok' if ratio <= target else 'OVER TARGET'}")
    return ratio


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    args = parser.parse_args(argv)
    rounds, batch = (6, 50) if args.quick else (20, 200)
    with PostgresServer() as pg:
        dsn = pg.create_database("bench_capture")
        setup(dsn)
        single, bulk, rows = run(dsn, rounds, batch)
    print(f"PostgreSQL, {rounds} rounds alternating the tables, medians; {rows} signal rows written")
    report("1. commit of one single-row UPDATE", single, 1.15, "us", 1e6)
    report("2. 1,000 single-row UPDATEs in one transaction + COMMIT", bulk, 1.10, "ms", 1e3)


if __name__ == "__main__":
    main()
