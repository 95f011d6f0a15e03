"""SQLite signaling: counters in the application's own database file.

For an application on SQLite whose processes share one file: the capture triggers of
``OrmCache.install(engine)`` add to the counters inside the writer's transaction, and every
process reads them from the file in one SELECT at ``check_signaling()``. The tables are those of
the PostgreSQL backend (``orm_signaling_<name>`` and ``"orm_signaling.epoch"``); SQLite
serialises every writer of a file, so each name keeps a single counter row (id 0) that
``bump()`` and the triggers add to: no table to prune.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any, Iterable, Optional, Sequence, Set

from . import capture
from .base import SignalingBackend, SignalingError, SignalingUnavailable, Versions

__all__ = ["SqliteSignaling"]


class SqliteSignaling(SignalingBackend):
    """Signals as counters in the SQLite file at ``path`` (the application's database).

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "app.sqlite")
    >>> backend = SqliteSignaling(path)
    >>> backend.bump("db", ["default"])
    >>> backend.read("db", ["default", "assets"])[1]
    {'default': 1, 'assets': 0}
    >>> backend.close()

    ``timeout``: seconds a call waits for a writer that holds the file's lock (SQLite's busy
    timeout), then raises ``SignalingUnavailable``. One connection per process, shared by its
    threads (calls are serialised); a forked child opens its own.
    """

    def __init__(self, path: str, *, timeout: float = 5.0) -> None:
        if not isinstance(path, (str, os.PathLike)) or not str(path) or str(path) == ":memory:":
            raise ValueError(f"SqliteSignaling needs the path of a database file, not {path!r}")
        self.path = os.fspath(path)
        self.timeout = float(timeout)
        if not self.timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self._lock = threading.Lock()
        self._conn: Optional[sqlite3.Connection] = None
        self._pid = os.getpid()
        self._ensured: Set[str] = set()

    def __repr__(self) -> str:
        return f"SqliteSignaling({self.path!r})"

    def _connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # a forked child: the parent's connection is the parent's
            self._conn, self._pid, self._ensured = None, os.getpid(), set()
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                         check_same_thread=False)
        return self._conn

    def _call(self, work: Any) -> Any:
        with self._lock:
            try:
                return work(self._connection())
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc) or "unable to open" in str(exc):
                    raise SignalingUnavailable(f"SQLite signaling at {self.path}: {exc}") from exc
                self._ensured.clear()  # e.g. our tables dropped: created again next time
                raise SignalingError(f"SQLite signaling at {self.path}: {exc}") from exc
            except sqlite3.Error as exc:
                raise SignalingError(f"SQLite signaling at {self.path}: {exc}") from exc

    def _ensure(self, conn: sqlite3.Connection, names: Sequence[str]) -> None:
        missing = [name for name in names if name not in self._ensured]
        if not missing and self._ensured:
            return
        statements = capture.ddl("sqlite", missing, [])
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements:
                conn.execute(statement)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self._ensured.update(missing)
        self._ensured.add(capture.EPOCH_TABLE)

    def read_versions(self, db_name: str, names: Sequence[str]) -> Versions:
        names = tuple(names)

        def read(conn: sqlite3.Connection) -> Versions:
            self._ensure(conn, names)
            parts = [f"(SELECT token FROM {capture.quote(capture.EPOCH_TABLE)})"] + [
                f"(SELECT coalesce(sum(weight), 0) FROM {capture.quote(capture.TABLE_PREFIX + name)})"
                for name in names]
            row = conn.execute("SELECT " + ", ".join(parts)).fetchone()
            return row[0], tuple(row[1:])

        return self._call(read)  # type: ignore[no-any-return]

    def bump(self, db_name: str, names: Iterable[str]) -> None:
        names = tuple(sorted(set(names)))

        def bump(conn: sqlite3.Connection) -> None:
            self._ensure(conn, names)
            conn.execute("BEGIN IMMEDIATE")
            try:
                for name in names:
                    conn.execute(f"UPDATE {capture.quote(capture.TABLE_PREFIX + name)} "
                                 "SET weight = weight + 1 WHERE id = 0")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        self._call(bump)

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                conn.close()
