"""PostgreSQL signaling (imported only when used: it imports psycopg)."""
from __future__ import annotations

import os
import threading
from typing import Any, Dict, Iterable, List, Sequence, Tuple

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .base import ReadOnlyBackendError, SignalingBackend, SignalingError, SignalingUnavailable, Versions

__all__ = ["PostgresSignaling"]


class PostgresSignaling(SignalingBackend):
    """Counters as PostgreSQL sequences ``ormcache_signaling_<name>`` in the database of ``dsn``.

    Sequences are created on first use; all versions are read in one SELECT and bumped with one
    SELECT of ``nextval()`` (outside any transaction, so a bump is visible at once). The dsn
    names the database of the registry, so ``db_name`` is not part of the sequence names. The
    connection must be read-write: a hot standby or a read-only default transaction is refused
    with ``ReadOnlyBackendError``. After a lost connection the next call reconnects.

    One connection is shared by the threads of the process (calls are serialised). A forked
    child opens its own connection (the parent's socket is never written to from the child).
    """

    SEQUENCE_PREFIX = "ormcache_signaling_"

    def __init__(self, dsn: str, *, connect_timeout: int = 5) -> None:
        self._psycopg = psycopg
        self.dsn = dsn
        params = conninfo_to_dict(dsn)
        self._connect_kwargs: Dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in params:
            self._connect_kwargs["connect_timeout"] = connect_timeout
        self._where = "{}:{}/{}".format(
            params.get("host", "localhost"), params.get("port", 5432), params.get("dbname", "")
        )
        self._lock = threading.Lock()
        self._conn: Any = None
        self._pid = os.getpid()
        self._ensured: set = set()
        self._queries: Dict[Tuple[str, Tuple[str, ...]], str] = {}

    def __repr__(self) -> str:
        return f"PostgresSignaling({self._where!r})"

    def _sequence(self, name: str) -> Any:
        return self._psycopg.sql.Identifier(self.SEQUENCE_PREFIX + name)

    def _connect(self) -> Any:
        psycopg = self._psycopg
        try:
            conn = psycopg.connect(self.dsn, **self._connect_kwargs)
        except psycopg.OperationalError as exc:
            raise SignalingUnavailable(f"PostgreSQL signaling at {self._where} is unreachable: {exc}") from exc
        try:
            in_recovery, read_only = conn.execute(
                "SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'"
            ).fetchone()
        except psycopg.OperationalError as exc:
            conn.close()
            raise SignalingUnavailable(f"PostgreSQL signaling at {self._where} is unreachable: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        if in_recovery or read_only:
            conn.close()
            what = "a read-only replica (in recovery)" if in_recovery else "read-only (default_transaction_read_only)"
            raise ReadOnlyBackendError(
                f"PostgreSQL signaling at {self._where} is {what}; signaling needs the read-write primary"
            )
        return conn

    def _ensure(self, conn: Any, names: Iterable[str]) -> None:
        missing = [name for name in names if name not in self._ensured]
        if not missing:
            return
        sql = self._psycopg.sql
        # concurrent CREATE ... IF NOT EXISTS can still collide in the catalogs: serialise them
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('ormcache_signaling'))")
            for name in missing:
                conn.execute(sql.SQL("CREATE SEQUENCE IF NOT EXISTS {}").format(self._sequence(name)))
        self._ensured.update(missing)

    def _query(self, conn: Any, kind: str, names: Tuple[str, ...]) -> str:
        try:
            return self._queries[kind, names]
        except KeyError:
            pass
        sql = self._psycopg.sql
        if kind == "read":
            # one scalar subquery per sequence: no join to plan, one row back
            parts = [
                sql.SQL("(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {})").format(
                    self._sequence(name))
                for name in names
            ]
        else:
            parts = [
                sql.SQL("nextval({})").format(sql.Literal(self._sequence(name).as_string(conn)))
                for name in names
            ]
        query = self._queries[kind, names] = sql.SQL("SELECT {}").format(sql.SQL(", ").join(parts)).as_string(conn)
        return query

    def _run(self, kind: str, names: Tuple[str, ...]) -> Any:
        psycopg = self._psycopg
        if self._pid != os.getpid():
            self._after_fork()
        with self._lock:
            for attempt in (1, 2):
                fresh = self._conn is None or self._conn.closed
                if fresh:
                    self._conn = None
                    self._conn = self._connect()
                conn = self._conn
                try:
                    self._ensure(conn, names)
                    return conn.execute(self._query(conn, kind, names)).fetchone()
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    self._drop()
                    if fresh or attempt == 2:
                        raise SignalingUnavailable(
                            f"PostgreSQL signaling at {self._where} is unreachable: {exc}") from exc
                    # an old connection died (server restarted): one retry on a new one
                except psycopg.errors.ReadOnlySqlTransaction as exc:
                    self._drop()
                    raise ReadOnlyBackendError(
                        f"PostgreSQL signaling at {self._where} became read-only: {exc}") from exc
                except psycopg.errors.UndefinedTable as exc:
                    self._ensured.clear()  # someone dropped our sequences: create them again
                    if attempt == 2:
                        raise SignalingError(f"PostgreSQL signaling at {self._where}: {exc}") from exc
                except psycopg.Error as exc:
                    self._drop()
                    raise SignalingError(f"PostgreSQL signaling at {self._where}: {exc}") from exc
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _after_fork(self) -> None:
        # The parent's connection belongs to the parent: closing it here would end its session.
        # Keep it referenced (never closed, never collected) and connect anew.
        self._lock = threading.Lock()
        if self._conn is not None:
            _inherited_connections.append(self._conn)
            self._conn = None
        self._pid = os.getpid()

    def read_versions(self, db_name: str, names: Sequence[str]) -> Versions:
        return None, self._run("read", tuple(names))

    def bump(self, db_name: str, names: Iterable[str]) -> None:
        self._run("bump", tuple(names))

    def close(self) -> None:
        with self._lock:
            self._drop()


_inherited_connections: List[Any] = []  # a forked child's copies of its parent's connections
