"""PostgreSQL signaling through insert-only tables (imported only when used: it imports psycopg).

Odoo 18.1's layout: one table ``orm_signaling_<name>`` per name, one row per signal, written by
the transaction that made the change, so that the signal commits or rolls back with the data.

The version of a name is ``sum(weight)`` of its table, not ``max(id)``: ids are taken at INSERT
time, not at COMMIT, so with ``max(id)`` a transaction that took id 5 and commits after another
that took id 6 (already read as the version) would never be seen. Every committed signal adds 1
to the sum, in every reader's snapshot. Pruning deletes all rows but the newest and adds their
weights to it, in one transaction: the sum never changes, the table stays small.
"""
from __future__ import annotations

import logging
import os
import select
import threading
import time
import uuid
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

import psycopg
from psycopg import generators, sql
from psycopg.conninfo import conninfo_to_dict

from .base import (
    ReadOnlyBackendError,
    SignalingBackend,
    SignalingConfigurationError,
    SignalingError,
    SignalingUnavailable,
    Versions,
)

__all__ = ["PostgresSignaling"]

_logger = logging.getLogger("ormcache.signaling")

#: the table of the epoch: one random token, set when the signaling tables are first created
#: (a dot cannot appear in a signaled name, so no ``orm_signaling_<name>`` can collide with it)
EPOCH_TABLE = "orm_signaling.epoch"
#: raised by the views that replace the sequences of older ormcache versions
_MOVED_FUNCTION = "orm_signaling.moved"
_MOVED_MESSAGE = ("ormcache signaling moved from the sequences ormcache_signaling_* to the tables "
                  "orm_signaling_*: this process runs an older ormcache and must be upgraded")


class _Expired(psycopg.OperationalError):
    """A call to the signaling backend ran past its deadline (the connection is abandoned)."""


def _drive(gen: Any, fileno: Optional[int], deadline: float) -> Any:
    """Consume a psycopg generator, waiting on its socket until ``deadline`` at most
    (psycopg has no socket read timeout; libpq's connect_timeout has a floor of 2 s).
    ``fileno`` None: a connection generator, which yields ``(fileno, wait)`` pairs."""
    poller = select.poll()
    registered = None
    try:
        state = next(gen)
        while True:
            if fileno is None:
                fd, state = state
            else:
                fd = fileno
            events = ((select.POLLIN if state & 1 else 0) | (select.POLLOUT if state & 2 else 0))
            if fd != registered:
                if registered is not None:
                    poller.unregister(registered)
                poller.register(fd, events)
                registered = fd
            else:
                poller.modify(fd, events)
            remaining = deadline - time.monotonic()
            got = poller.poll(max(remaining, 0) * 1000) if remaining > 0 else ()
            if not got:
                raise _Expired("no answer within the deadline")
            mask = got[0][1]
            ready = ((1 if mask & select.POLLIN else 0) | (2 if mask & select.POLLOUT else 0)
                     or state)  # an error or a hang-up: let the generator read it
            state = gen.send(ready)
    except StopIteration as stop:
        return stop.value


class _DeadlineConnection(psycopg.Connection):
    """A psycopg connection whose waits end at ``deadline`` (time.monotonic()), when set."""

    deadline: Optional[float] = None
    #: what makes the server refuse writes (a text), or False: set when connecting
    ormcache_read_only: Union[str, bool]

    def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
        deadline = self.deadline
        if deadline is None:
            return super().wait(gen, *args, **kwargs)
        return _drive(gen, self.pgconn.socket, deadline)


class PostgresSignaling(SignalingBackend):
    """Signals as rows of ``orm_signaling_<name>`` in the database of ``dsn``.

    Tables are created on first use (by a read-write connection). All versions are read in one
    SELECT; ``bump()`` inserts one row per name in one statement on the backend's own
    connection. ``record_statement(names)`` returns the one SQL statement a writer runs inside
    its own transaction instead (``Registry.record_changes()``): it fails that transaction if the
    connection is not on this backend's database (it compares the epoch token). Set
    ``record_in_transaction=False`` when the writers' database is not the signaling one: the
    registry then publishes after the commit, as with Redis.

    A read-only connection (hot standby, ``default_transaction_read_only``) can read signals;
    writing them is refused with ``ReadOnlyBackendError``. After a lost connection the next call
    reconnects. One connection is shared by the threads of the process (round trips are
    serialised; connecting is not: a thread connects on its own, outside the lock); a forked
    child opens its own.

    Deadline: each call (connect plus round trips, and the wait for the connection another
    thread is using) ends within ``timeout`` seconds (default 0.5), or raises
    ``SignalingUnavailable`` and abandons (closes) the connection: a server that hangs or a path
    that goes silent costs one deadline, never a blocked request. A call that was waiting when
    another thread's call failed fails at once, without network. ``connect_timeout=`` (older
    versions, whole seconds) is an alias of ``timeout``; a ``connect_timeout`` in the DSN is not
    used (libpq's has a floor of 2 s).

    Pruning: after this process wrote ``prune_every`` signals of a name, it prunes that table
    (one short transaction on its own connection, skipped if another process is pruning it).
    """

    TABLE_PREFIX = "orm_signaling_"
    #: the sequences of ormcache < 0.9 (replaced by views that make old processes fail loudly)
    OLD_SEQUENCE_PREFIX = "ormcache_signaling_"

    def __init__(self, dsn: str, *, timeout: float = 0.5, connect_timeout: Optional[float] = None,
                 record_in_transaction: bool = True, prune_every: int = 64) -> None:
        self.dsn = dsn
        params = conninfo_to_dict(dsn)
        self.timeout = float(timeout if connect_timeout is None else connect_timeout)
        if not self.timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {self.timeout!r}")
        self._failures = 0  # calls that failed on the network (a waiting call fails with them)
        self._where = "{}:{}/{}".format(
            params.get("host", "localhost"), params.get("port", 5432), params.get("dbname", "")
        )
        self.record_in_transaction = record_in_transaction
        self.prune_every = prune_every
        self._lock = threading.Lock()
        self._conn: Any = None
        self._read_only = False
        self._pid = os.getpid()
        self._ensured: Set[str] = set()
        self._token: Any = None  # the epoch token, once read
        self._queries: Dict[Tuple[str, Tuple[str, ...]], Any] = {}
        self._absent: Set[str] = set()  # names (or EPOCH_TABLE) a read-only connection did not find
        self._unpruned: Dict[str, int] = {}  # name -> signals written since this process pruned it

    def __repr__(self) -> str:
        return f"PostgresSignaling({self._where!r})"

    def _table(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.TABLE_PREFIX + name)

    def _unavailable(self, exc: BaseException) -> SignalingUnavailable:
        return SignalingUnavailable(f"PostgreSQL signaling at {self._where} is unreachable: {exc}")

    def _connect(self, deadline: float) -> Any:
        """A new connection (no lock held), its read-only state in ``conn.ormcache_read_only``."""
        conn = None
        try:
            pgconn = _drive(generators.connect(self.dsn), None, deadline)
            conn = _DeadlineConnection(pgconn)
            conn.deadline = deadline
            conn.autocommit = True
        except psycopg.OperationalError as exc:
            if conn is not None:
                conn.close()
            if getattr(exc, "sqlstate", None) in ("28P01", "28000") or "authentication failed" in str(exc):
                raise SignalingConfigurationError(
                    f"PostgreSQL signaling at {self._where}: authentication failed (check the user "
                    f"and password of the DSN): {exc}") from exc
            raise self._unavailable(exc) from exc
        try:
            in_recovery, read_only = conn.execute(  # type: ignore[misc]  # one row, always
                "SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'"
            ).fetchone()
        except psycopg.OperationalError as exc:
            conn.close()
            raise self._unavailable(exc) from exc
        except BaseException:
            conn.close()
            raise
        conn.ormcache_read_only = ("a read-only replica (in recovery)" if in_recovery
                                   else "read-only (default_transaction_read_only)" if read_only else False)
        return conn

    def _refuse_writes(self) -> None:
        if self._read_only:
            raise ReadOnlyBackendError(
                f"PostgreSQL signaling at {self._where} is {self._read_only}; writing signals needs "
                "the read-write primary (reading them works)")

    def _ensure(self, conn: Any, names: Iterable[str]) -> None:
        missing = [name for name in names if name not in self._ensured]
        if not missing and (self._token is not None or EPOCH_TABLE in self._absent):
            return  # (a replica without the tables reads them through _read_part until they exist)
        if self._read_only:
            # A replica cannot create anything. A table that does not exist yet has no signal:
            # it is read as 0 through dynamic SQL until it appears (see _read_part).
            found = {row[0] for row in conn.execute(
                "SELECT relname FROM pg_class WHERE relname = ANY(%s) AND relkind IN ('r', 'p')",
                [[self.TABLE_PREFIX + name for name in missing] + [EPOCH_TABLE]])}
            self._absent |= {name for name in missing if self.TABLE_PREFIX + name not in found}
            if EPOCH_TABLE not in found:
                self._absent.add(EPOCH_TABLE)
                self._ensured.update(missing)
                return
        else:
            # concurrent CREATE ... IF NOT EXISTS can still collide in the catalogs: serialise them
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('orm_signaling'))")
                conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (token text NOT NULL)").format(
                    sql.Identifier(EPOCH_TABLE)))
                conn.execute(sql.SQL("INSERT INTO {0} (token) SELECT %s WHERE NOT EXISTS (SELECT FROM {0})")
                             .format(sql.Identifier(EPOCH_TABLE)), [uuid.uuid4().hex])
                conn.execute(sql.SQL(
                    "CREATE OR REPLACE FUNCTION {}() RETURNS bigint LANGUAGE plpgsql AS $$ "
                    "BEGIN RAISE EXCEPTION {}; END $$").format(
                        sql.Identifier(_MOVED_FUNCTION), sql.Literal(_MOVED_MESSAGE)))
                for name in missing:
                    conn.execute(sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                        "date timestamptz NOT NULL DEFAULT now(), weight bigint NOT NULL DEFAULT 1)"
                    ).format(self._table(name)))
                    # a process of an older version reading or bumping this name fails loudly
                    # (its checks then clear every cache, its signals raise) instead of missing
                    # our signals in silence
                    old = sql.Identifier(self.OLD_SEQUENCE_PREFIX + name)
                    kind = conn.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)",
                                        [old.as_string(None)]).fetchone()
                    if kind is not None and kind[0] == "S":
                        conn.execute(sql.SQL("DROP SEQUENCE {}").format(old))
                    conn.execute(sql.SQL(
                        "CREATE OR REPLACE VIEW {} AS SELECT {}() AS last_value, true AS is_called"
                    ).format(old, sql.Identifier(_MOVED_FUNCTION)))
        self._token = conn.execute(sql.SQL("SELECT token FROM {}").format(sql.Identifier(EPOCH_TABLE))).fetchone()[0]
        self._ensured.update(missing)

    def _query(self, kind: str, names: Tuple[str, ...]) -> str:
        try:
            return self._queries[kind, names]  # type: ignore[no-any-return]  # read/ensure: str
        except KeyError:
            pass
        if kind == "read":
            # one scalar subquery per table: no join to plan, one row back
            parts = [self._read_part(EPOCH_TABLE, "token")] + [
                self._read_part(self.TABLE_PREFIX + name, "coalesce(sum(weight), 0)", name)
                for name in names
            ]
            query: sql.Composable = sql.SQL("SELECT {}").format(sql.SQL(", ").join(parts))
        else:
            query = self._insert(names, None)
        text = self._queries[kind, names] = query.as_string(None)
        return text

    def _read_part(self, table: str, column: str, name: str = EPOCH_TABLE) -> sql.Composable:
        direct = sql.SQL("(SELECT {} FROM {})").format(sql.SQL(column), sql.Identifier(table))
        if name not in self._absent:
            return direct
        # a read-only connection and a table not created yet: read it only once it exists
        inner = sql.SQL("SELECT {} AS v FROM {}").format(sql.SQL(column), sql.Identifier(table))
        value = sql.SQL(
            "substring(query_to_xml({}, false, true, '')::text FROM '<v>(.*)</v>')").format(
                sql.Literal(inner.as_string(None)))
        if name != EPOCH_TABLE:
            value = sql.SQL("coalesce({}::bigint, 0)").format(value)
        return sql.SQL("(CASE WHEN to_regclass({}) IS NULL THEN {} ELSE {} END)").format(
            sql.Literal(sql.Identifier(table).as_string(None)),
            sql.SQL("NULL" if name == EPOCH_TABLE else "0"), value)

    def _insert(self, names: Sequence[str], token: Any) -> sql.Composable:
        """One statement inserting one row into the table of each name; with ``token``, it
        first checks that it runs in the database of that epoch token (else it fails)."""
        if token is None:
            weight: sql.Composable = sql.SQL("SELECT 1 AS weight")
        else:
            weight = sql.SQL(
                "SELECT CASE WHEN (SELECT token FROM {}) = {} THEN 1 ELSE CAST("
                "'ormcache: signals recorded in database ' || current_database() || "
                "{} AS int) END AS weight").format(
                    sql.Identifier(EPOCH_TABLE), sql.Literal(token),
                    sql.Literal(f", not in the signaling database {self._where}"))
        inserts = [
            sql.SQL("{} AS (INSERT INTO {} (weight) SELECT weight FROM w)").format(
                sql.Identifier(f"i{index}"), self._table(name))
            for index, name in enumerate(names)
        ]
        return sql.SQL("WITH w AS MATERIALIZED ({}), {} SELECT count(*) FROM w").format(
            weight, sql.SQL(", ").join(inserts))

    def _run(self, kind: str, names: Tuple[str, ...], write: bool = False) -> Any:
        if self._pid != os.getpid():
            self._after_fork()
        deadline = time.monotonic() + self.timeout
        failures = self._failures
        for attempt in (1, 2):
            conn = self._conn
            fresh = conn is None or conn.closed
            if fresh:
                try:  # outside the lock: threads connect in parallel, each within its deadline
                    conn = self._connect(deadline)
                except SignalingUnavailable:
                    self._failures += 1
                    raise
            lock = self._lock
            if not lock.acquire(timeout=max(deadline - time.monotonic(), 0)):
                if fresh:
                    conn.close()
                raise SignalingUnavailable(
                    f"PostgreSQL signaling at {self._where} is unreachable: no answer to another "
                    f"thread's call within {self.timeout}s")
            try:
                if self._failures != failures:  # failed for another thread meanwhile: no network
                    if fresh:
                        conn.close()
                    raise SignalingUnavailable(
                        f"PostgreSQL signaling at {self._where} is unreachable: another thread's "
                        "call failed meanwhile")
                if fresh:
                    if self._conn is not None and not self._conn.closed:
                        conn.close()  # another thread connected first: use its connection
                        conn, fresh = self._conn, False
                    else:
                        self._conn = conn
                        self._read_only = conn.ormcache_read_only
                        if self._absent:  # look again for the tables a replica did not have
                            self._absent = set()
                            self._ensured.clear()
                            self._queries.clear()
                conn.deadline = deadline
                try:
                    if write:
                        self._refuse_writes()
                    self._ensure(conn, names)
                    if kind == "ensure":
                        return self._token
                    if kind == "prune":
                        return self._prune(conn, names)
                    return conn.execute(self._query(kind, names)).fetchone()
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    self._drop()
                    if fresh or attempt == 2 or isinstance(exc, _Expired):
                        self._failures += 1
                        raise self._unavailable(exc) from exc
                    # an old connection died (server restarted): one retry on a new one
                except psycopg.errors.ReadOnlySqlTransaction as exc:
                    self._drop()
                    raise ReadOnlyBackendError(
                        f"PostgreSQL signaling at {self._where} became read-only: {exc}") from exc
                except psycopg.errors.UndefinedTable as exc:
                    self._ensured.clear()  # someone dropped our tables: create them again
                    self._token = None
                    self._queries.clear()
                    if attempt == 2 or self._read_only:
                        raise SignalingError(f"PostgreSQL signaling at {self._where}: {exc}") from exc
                except psycopg.Error as exc:
                    self._drop()
                    raise SignalingError(f"PostgreSQL signaling at {self._where}: {exc}") from exc
                finally:
                    conn.deadline = None
            finally:
                lock.release()
        raise AssertionError("unreachable")

    def _prune(self, conn: Any, names: Sequence[str]) -> None:
        for name in names:
            table = self._table(name)
            with conn.transaction():
                locked = conn.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s))",
                                      [self.TABLE_PREFIX + name]).fetchone()[0]
                if not locked:
                    continue  # another process is pruning it
                # the snapshot of this statement is taken after the lock: no other pruner runs
                conn.execute(sql.SQL(
                    "WITH top AS (SELECT max(id) AS id FROM {0}), "
                    "gone AS (DELETE FROM {0} WHERE id < (SELECT id FROM top) RETURNING weight) "
                    "UPDATE {0} SET weight = weight + (SELECT coalesce(sum(weight), 0) FROM gone) "
                    "WHERE id = (SELECT id FROM top)").format(table))

    def _due(self, names: Sequence[str]) -> List[str]:
        """Count signals written by this process; the names whose table is due for pruning."""
        due = []
        unpruned = self._unpruned
        for name in names:
            count = unpruned[name] = unpruned.get(name, 0) + 1
            if count >= self.prune_every:
                unpruned[name] = 0
                due.append(name)
        return due

    def prune(self, names: Iterable[str]) -> None:
        """Prune the tables of ``names`` now (normally done every ``prune_every`` signals)."""
        self._run("prune", tuple(names), write=True)

    def _prune_due(self, names: Sequence[str]) -> None:
        due = self._due(names)
        if due:
            try:
                self.prune(due)
            except SignalingError as exc:  # the next prune of these names will catch up
                _logger.debug("Signaling: pruning %s failed: %s", due, exc)

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
        row = self._run("read", tuple(names))
        token = row[0]
        if token != self._token and token is not None:
            self._token = token  # tables created again elsewhere: record statements follow
        return token, tuple(row[1:])

    def bump(self, db_name: str, names: Iterable[str]) -> None:
        names = tuple(names)
        self._run("bump", names, write=True)
        self._prune_due(names)

    def record_statement(self, db_name: str, names: Iterable[str]) -> str:
        """The one SQL statement that records signals of ``names`` inside a writer's own
        transaction (see ``Registry.record_changes()``). It needs the epoch token: the first
        call of a process may read it through the backend's connection. Pruning that is due
        is done first, on the backend's connection (never inside the writer's transaction)."""
        names = tuple(names)
        token = self._token
        if token is None or not self._ensured.issuperset(names):
            token = self._run("ensure", names)
            if token is None:
                raise SignalingError(f"PostgreSQL signaling at {self._where} has no tables yet")
        # no round trip once known: a writer whose path to the backend is cut still records
        try:
            cached_token, statement = self._queries["record", names]
        except KeyError:
            cached_token = None
        if cached_token != token:
            statement = self._insert(names, token).as_string(None)
            self._queries["record", names] = (token, statement)
        self._prune_due(names)
        return statement  # type: ignore[no-any-return]  # the statement's text

    def close(self) -> None:
        with self._lock:
            self._drop()


_inherited_connections: List[Any] = []  # a forked child's copies of its parent's connections
