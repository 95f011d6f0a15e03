"""Four worker processes, each with its own registry on one signaling backend (real servers).

Workers read a "config parameter" row of PostgreSQL through their 'default' cache while some of
them change it; a reader must never return a value older than the last change whose
signal_changes() had returned before the reader's check_signaling() began. See
support/signaling_workers.py for the loop.
"""
import multiprocessing
import time
import uuid

import psycopg
import pytest

from ormcache.registry import CACHES_BY_KEY

from support import signaling_workers
from support.signaling import worker_reports

WORKERS = 4
KINDS = ["postgres", "redis", "redis-pubsub"]


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def target(kind, request, pg_dsn):
    """(dsn or url, key prefix) of the signaling backend of ``kind``."""
    if kind == "postgres":
        return pg_dsn, None
    return request.getfixturevalue("redis_server").url, request.getfixturevalue("redis_prefix")


@pytest.fixture
def config_table(pg_dsn):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(signaling_workers.CONFIG_DDL)
    return pg_dsn


class Run:
    """Start the workers, let the test act meanwhile, stop them, collect their stats."""

    def __init__(self, kind, target, data_dsn, *, min_iterations, write_ratio=0.15):
        self.ctx = multiprocessing.get_context("spawn")
        self.published = self.ctx.Value("q", 0)
        self.progress = self.ctx.Value("q", 0)
        self.stop = self.ctx.Event()
        self.barrier = self.ctx.Barrier(WORKERS)
        self.results = self.ctx.Queue()
        url, prefix = target
        db_name = f"workers-{uuid.uuid4().hex[:8]}"
        self.processes = [
            self.ctx.Process(
                target=signaling_workers.run_worker,
                args=(index, kind, url, prefix, data_dsn, db_name, self.published, self.progress,
                      self.stop, self.barrier, self.results, min_iterations, write_ratio),
                daemon=True,
            )
            for index in range(WORKERS)
        ]

    def __enter__(self):
        for process in self.processes:
            process.start()
        return self

    def wait_progress(self, count, timeout=60):
        deadline = time.monotonic() + timeout
        while self.progress.value < count:
            assert time.monotonic() < deadline, f"workers stuck at {self.progress.value} units"
            assert all(p.is_alive() or p.exitcode == 0 for p in self.processes), "a worker died"
            time.sleep(0.02)

    def finish(self, timeout=120):
        self.stop.set()
        stats = [self.results.get(timeout=timeout) for _ in self.processes]
        for process in self.processes:
            process.join(timeout)
            assert process.exitcode == 0
        return sorted(stats, key=lambda s: s["index"])

    def __exit__(self, *exc):
        self.stop.set()
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()
            process.close()
        self.results.close()
        self.results.join_thread()


def check_consistent(stats):
    for worker in stats:
        assert worker["stale"] == [], f"worker {worker['index']} returned old values"
        # after the final barrier every worker agrees with the database
        assert worker["final_cached"] == worker["final_db"], worker
    assert sum(w["reads"] for w in stats) >= 2000
    assert sum(w["writes"] for w in stats) >= 50
    assert sum(w["invalidations"] for w in stats) > 0


def test_workers_never_read_an_old_value(kind, target, config_table):
    with Run(kind, target, config_table, min_iterations=400) as run:
        stats = run.finish()
    check_consistent(stats)
    assert sum(w["signal_errors"] + w["db_errors"] for w in stats) == 0


def test_clearing_assets_leaves_default_warm_in_the_other_workers(kind, target):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
    url, prefix = target
    db_name = f"names-{uuid.uuid4().hex[:8]}"
    reports = worker_reports(ctx, signaling_workers.run_names_worker, WORKERS,
                             (kind, url, prefix, db_name, barrier, results), results, 60)
    assert reports[0] == dict(index=0, cleared=[], default="warm", assets=None)
    for report in reports[1:]:
        assert report == dict(index=report["index"], cleared=list(CACHES_BY_KEY["assets"]),
                              default="warm", assets=None)


@pytest.mark.parametrize("kind", ["redis", "redis-pubsub"], indirect=True)
def test_redis_killed_and_restarted_mid_run(kind, target, config_table, redis_server):
    with Run(kind, target, config_table, min_iterations=300) as run:
        run.wait_progress(150)
        redis_server.kill()
        try:
            time.sleep(0.5)  # the workers keep serving meanwhile
        finally:
            redis_server.start()
        time.sleep(1.5)  # the workers try the server again a second after their last failure
        start = run.progress.value
        run.wait_progress(start + 400)
        stats = run.finish()
    check_consistent(stats)
    assert sum(w["signal_errors"] for w in stats) > 0  # the outage was seen


@pytest.mark.parametrize("kind", ["postgres"], indirect=True)
def test_postgres_stopped_and_started_mid_run(kind, target, config_table, postgres_server):
    with Run(kind, target, config_table, min_iterations=300) as run:
        run.wait_progress(150)
        postgres_server.stop()
        try:
            time.sleep(0.5)
        finally:
            postgres_server.start()
        time.sleep(1.5)  # the workers try the server again a second after their last failure
        start = run.progress.value
        run.wait_progress(start + 400)
        stats = run.finish()
    check_consistent(stats)
    assert sum(w["signal_errors"] + w["db_errors"] for w in stats) > 0
