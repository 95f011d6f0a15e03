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

import asyncio
import logging
import os
import select
import socket
import threading
import time
import uuid
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

import psycopg
from psycopg import generators, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .base import (
    ReadOnlyBackendError,
    SignalingBackend,
    SignalingConfigurationError,
    SignalingError,
    SignalingUnavailable,
    Step,
    Steps,
    Versions,
    PerLoop,
    arun_steps,
    run_steps,
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


async def _adrive(gen: Any, fileno: Optional[int], deadline: float) -> Any:
    """``_drive()`` for the event loop: waits on the socket with the loop's reader/writer
    callbacks, so other tasks run meanwhile. psycopg's own async wait is never used: on a
    cancellation it sends a blocking cancel request and waits for the server once more."""
    loop = asyncio.get_running_loop()
    try:
        state = next(gen)
        while True:
            if fileno is None:
                fd, state = state
            else:
                fd = fileno
            remaining = deadline - time.monotonic()
            ready = await _ready(loop, fd, state, remaining) if remaining > 0 else 0
            if not ready:
                raise _Expired("no answer within the deadline")
            state = gen.send(ready)
    except StopIteration as stop:
        return stop.value


async def _aresolved(dsn: str, deadline: float) -> str:
    """``dsn`` with the addresses of its host names resolved by the event loop (``getaddrinfo``
    in the loop's executor, within ``deadline``): given a name, libpq resolves it itself while
    it starts connecting, blocking the loop. Each address of a name becomes one more host to try,
    in order (as libpq tries them); the names stay as ``host`` (TLS checks them). Unchanged when
    ``hostaddr`` is given or no host is a name (addresses, socket directories, the default)."""
    params = conninfo_to_dict(dsn)
    host = str(params.get("host") or os.environ.get("PGHOST", ""))
    if not host or params.get("hostaddr") or os.environ.get("PGHOSTADDR"):
        return dsn
    hosts = host.split(",")
    ports = str(params.get("port") or os.environ.get("PGPORT") or "5432").split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    if len(ports) != len(hosts):
        return dsn  # libpq refuses it, and says why
    loop = asyncio.get_running_loop()
    names, addresses, numbers = [], [], []
    for name, port in zip(hosts, ports):
        if not name or name.startswith("/") or name[1:2] == ":" or _is_address(name):
            found = [name if _is_address(name) else ""]  # "": libpq uses ``host`` (a socket directory)
        else:
            remaining = deadline - time.monotonic()
            try:
                infos = await asyncio.wait_for(
                    loop.getaddrinfo(name, port or "5432", type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP),
                    max(remaining, 0))
            except asyncio.TimeoutError:
                raise _Expired(f"host name {name!r} not resolved within the deadline") from None
            except OSError as exc:
                raise psycopg.OperationalError(f"failed to resolve host {name!r}: {exc}") from exc
            found = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in found:
            names.append(name)
            addresses.append(address)
            numbers.append(port)
    return make_conninfo(dsn, host=",".join(names), hostaddr=",".join(addresses), port=",".join(numbers))


def _is_address(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return True
    return False


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, wait: int, timeout: float) -> int:
    """1 (readable) or 2 (writable) as soon as ``fd`` is, for the ``wait`` mask; 0 after
    ``timeout`` seconds."""
    future = loop.create_future()

    def ready(flag: int) -> None:
        if not future.done():
            future.set_result(flag)

    if wait & 1:
        loop.add_reader(fd, ready, 1)
    if wait & 2:
        loop.add_writer(fd, ready, 2)
    timer = loop.call_later(timeout, ready, 0)
    try:
        return await future  # type: ignore[no-any-return]
    finally:
        timer.cancel()
        if wait & 1:
            loop.remove_reader(fd)
        if wait & 2:
            loop.remove_writer(fd)


class _DeadlineAsyncConnection(psycopg.AsyncConnection):
    """An async psycopg connection whose waits end at ``deadline`` (time.monotonic())."""

    deadline: float = 0.0

    async def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
        return await _adrive(gen, self.pgconn.socket, self.deadline)


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


def _execute(query: Any, params: Any = None) -> Step:
    """A statement without rows back, as a step of the protocols below."""
    return lambda db: db.execute(query, params)


def _one(query: Any, params: Any = None) -> Step:
    """A statement's first row, as a step."""
    return lambda db: db.one(query, params)


def _all(query: Any, params: Any = None) -> Step:
    """A statement's rows, as a step."""
    return lambda db: db.all(query, params)


def _transaction(body: Steps[Any]) -> Steps[Any]:
    """``body`` in a transaction (the connections are in autocommit): committed, or rolled
    back on an SQL error (a lost connection is dropped instead)."""
    yield _execute("BEGIN")
    try:
        result = yield from body
    except psycopg.Error as exc:
        if not isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            yield _execute("ROLLBACK")
        raise
    yield _execute("COMMIT")
    return result


class _BlockingSQL:
    """The steps' I/O on a psycopg ``Connection``."""

    __slots__ = ("conn",)

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, query: Any, params: Any) -> None:
        self.conn.execute(query, params)

    def one(self, query: Any, params: Any) -> Any:
        return self.conn.execute(query, params).fetchone()

    def all(self, query: Any, params: Any) -> List[Any]:
        return self.conn.execute(query, params).fetchall()  # type: ignore[no-any-return]


class _AsyncSQL:
    """The same on a psycopg ``AsyncConnection``: the event loop runs other tasks meanwhile."""

    __slots__ = ("conn",)

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def execute(self, query: Any, params: Any) -> None:
        await self.conn.execute(query, params)

    async def one(self, query: Any, params: Any) -> Any:
        return await (await self.conn.execute(query, params)).fetchone()

    async def all(self, query: Any, params: Any) -> List[Any]:
        return await (await self.conn.execute(query, params)).fetchall()  # type: ignore[no-any-return]


class _LoopConnection:
    """The async connection of one event loop, and the lock its tasks take turns with (one
    statement at a time on a connection)."""

    __slots__ = ("lock", "conn", "failures", "__weakref__")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.conn: Any = None
        self.failures = 0  # calls that failed on the network (a waiting call fails with them)


async def _aclose(conn: Any) -> None:
    if conn is not None and not conn.closed:
        await conn.close()


async def _aclose_state(state: _LoopConnection) -> None:
    conn, state.conn = state.conn, None
    await _aclose(conn)


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
    (and after a check read ``prune_every`` more signals of a name than when it last pruned it:
    the capture triggers of ``OrmCache.install()`` write signals that no process counts)
    (one short transaction on its own connection, skipped if another process is pruning it).

    Async: ``aread_versions()``/``abump()`` run the same statements on a psycopg
    ``AsyncConnection`` of the running event loop (one per loop; its tasks take turns with an
    ``asyncio.Lock``), within the same deadline; ``await aclose()`` closes the running loop's.
    """

    TABLE_PREFIX = "orm_signaling_"
    #: the sequences of ormcache < 0.9 (replaced by views that make old processes fail loudly)
    OLD_SEQUENCE_PREFIX = "ormcache_signaling_"

    def __init__(self, dsn: str, *, timeout: float = 0.5, connect_timeout: Optional[float] = None,
                 record_in_transaction: bool = True, prune_every: int = 64) -> None:
        if not isinstance(record_in_transaction, bool):  # "no" would mean yes
            raise TypeError(f"record_in_transaction must be True or False, not {record_in_transaction!r}")
        if isinstance(prune_every, bool) or not isinstance(prune_every, int):
            raise TypeError(f"prune_every must be an int (signals of a name between prunes), not {prune_every!r}")
        if prune_every < 1:
            raise ValueError(f"prune_every must be at least 1 signal, not {prune_every!r}")
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
        self._pruned_at: Dict[str, int] = {}  # name -> its version when this process last pruned it
        #: event loop -> its async connection (a connection belongs to the loop that made it)
        self._loop_connections: PerLoop[_LoopConnection] = PerLoop(_LoopConnection, _aclose_state)

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
            conn.prepare_threshold = None  # no server-side statements: PgBouncer transaction pooling
        except psycopg.OperationalError as exc:
            if conn is not None:
                conn.close()
            raise self._connect_failed(exc) from exc
        try:
            conn.ormcache_read_only = run_steps(self._probing(), _BlockingSQL(conn))
        except BaseException:
            conn.close()
            raise
        return conn

    async def _aconnect(self, deadline: float) -> Any:
        """``_connect()`` with an ``AsyncConnection``."""
        conn = None
        try:
            pgconn = await _adrive(generators.connect(await _aresolved(self.dsn, deadline)), None, deadline)
            conn = _DeadlineAsyncConnection(pgconn)
            conn.deadline = deadline
            await conn.set_autocommit(True)
            conn.prepare_threshold = None  # no server-side statements: PgBouncer transaction pooling
        except psycopg.OperationalError as exc:
            await _aclose(conn)
            raise self._connect_failed(exc) from exc
        try:
            conn.ormcache_read_only = await arun_steps(self._probing(), _AsyncSQL(conn))  # type: ignore[attr-defined]
        except BaseException:
            await _aclose(conn)
            raise
        return conn

    def _connect_failed(self, exc: psycopg.OperationalError) -> SignalingError:
        if getattr(exc, "sqlstate", None) in ("28P01", "28000") or "authentication failed" in str(exc):
            return SignalingConfigurationError(
                f"PostgreSQL signaling at {self._where}: authentication failed (check the user "
                f"and password of the DSN): {exc}")
        return self._unavailable(exc)

    def _probing(self) -> Steps[Any]:
        """The read-only state of a new connection: False, or why it is read-only."""
        try:
            in_recovery, read_only = yield _one(
                "SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'")
        except psycopg.OperationalError as exc:
            raise self._unavailable(exc) from exc
        return ("a read-only replica (in recovery)" if in_recovery
                else "read-only (default_transaction_read_only)" if read_only else False)

    def _refuse_writes(self, read_only: Any) -> None:
        if read_only:
            raise ReadOnlyBackendError(
                f"PostgreSQL signaling at {self._where} is {read_only}; writing signals needs "
                "the read-write primary (reading them works)")

    def _ensuring(self, names: Iterable[str], read_only: Any) -> Steps[None]:
        missing = [name for name in names if name not in self._ensured]
        if not missing and (self._token is not None or EPOCH_TABLE in self._absent):
            return  # (a replica without the tables reads them through _read_part until they exist)
        if read_only:
            # A replica cannot create anything. A table that does not exist yet has no signal:
            # it is read as 0 through dynamic SQL until it appears (see _read_part).
            found = {row[0] for row in (yield _all(
                "SELECT relname FROM pg_class WHERE relname = ANY(%s) AND relkind IN ('r', 'p')",
                [[self.TABLE_PREFIX + name for name in missing] + [EPOCH_TABLE]]))}
            self._absent |= {name for name in missing if self.TABLE_PREFIX + name not in found}
            if EPOCH_TABLE not in found:
                self._absent.add(EPOCH_TABLE)
                self._ensured.update(missing)
                return
        else:
            # concurrent CREATE ... IF NOT EXISTS can still collide in the catalogs: serialise them
            yield from _transaction(self._creating(missing))
        row = yield _one(sql.SQL("SELECT token FROM {}").format(sql.Identifier(EPOCH_TABLE)))
        self._token = row[0]
        self._ensured.update(missing)

    def _creating(self, missing: Sequence[str]) -> Steps[None]:
        """The epoch's table and the signaling tables of ``missing`` (run in a transaction)."""
        yield _execute("SELECT pg_advisory_xact_lock(hashtext('orm_signaling'))")
        yield _execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (token text NOT NULL)").format(
            sql.Identifier(EPOCH_TABLE)))
        yield _execute(sql.SQL("INSERT INTO {0} (token) SELECT %s WHERE NOT EXISTS (SELECT FROM {0})")
                       .format(sql.Identifier(EPOCH_TABLE)), [uuid.uuid4().hex])
        yield _execute(sql.SQL(
            "CREATE OR REPLACE FUNCTION {}() RETURNS bigint LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION {}; END $$").format(
                sql.Identifier(_MOVED_FUNCTION), sql.Literal(_MOVED_MESSAGE)))
        for name in missing:
            yield _execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                "date timestamptz NOT NULL DEFAULT now(), weight bigint NOT NULL DEFAULT 1)"
            ).format(self._table(name)))
            # a process of an older version reading or bumping this name fails loudly
            # (its checks then clear every cache, its signals raise) instead of missing
            # our signals in silence
            old = sql.Identifier(self.OLD_SEQUENCE_PREFIX + name)
            kind = yield _one("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)",
                              [old.as_string(None)])
            if kind is not None and kind[0] == "S":
                yield _execute(sql.SQL("DROP SEQUENCE {}").format(old))
            yield _execute(sql.SQL(
                "CREATE OR REPLACE VIEW {} AS SELECT {}() AS last_value, true AS is_called"
            ).format(old, sql.Identifier(_MOVED_FUNCTION)))

    def _query(self, kind: str, names: Tuple[str, ...]) -> str:
        try:
            return self._queries[kind, names]  # type: ignore[no-any-return]  # read/ensure: str
        except KeyError:
            pass
        if kind == "read":
            # one scalar subquery per table: no join to plan, one row back
            parts = [self._read_part(EPOCH_TABLE, "token")] + [
                self._read_part(self.TABLE_PREFIX + name, "coalesce(sum(weight), 0)::bigint", name)
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
                        self._adopt()
                conn.deadline = deadline
                try:
                    return run_steps(self._working(kind, names, write, self._read_only), _BlockingSQL(conn))
                except psycopg.Error as exc:
                    drop, error = self._failure(exc, fresh, attempt == 2, self._read_only)
                    if drop:
                        self._drop()
                    if error is not None:
                        if isinstance(error, SignalingUnavailable):
                            self._failures += 1
                        raise error from exc
                    # an old connection died (server restarted), or our tables were dropped:
                    # once more
                finally:
                    conn.deadline = None
            finally:
                lock.release()
        raise AssertionError("unreachable")

    def _adopt(self) -> None:
        """A new connection is in use: look again for the tables a replica did not have."""
        if self._absent:
            self._absent = set()
            self._ensured.clear()
            self._queries.clear()

    def _working(self, kind: str, names: Tuple[str, ...], write: bool, read_only: Any) -> Steps[Any]:
        """What a call does on a connection, once connected."""
        if write:
            self._refuse_writes(read_only)
        yield from self._ensuring(names, read_only)
        if kind == "ensure":
            return self._token
        if kind == "prune":
            return (yield from self._pruning(names))
        if kind.startswith("gc:"):  # "gc:<keep>:<older_than seconds>"
            _, keep, older_than = kind.split(":")
            return (yield from self._collecting(names, int(keep), float(older_than)))
        return (yield _one(self._query(kind, names)))

    def _failure(self, exc: psycopg.Error, fresh: bool, last: bool,
                 read_only: Any) -> Tuple[bool, Optional[SignalingError]]:
        """What a psycopg error of a call means: (drop the connection?, the error to raise, or
        None to try once more)."""
        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            # an old connection that died (server restarted) gets one retry on a new one
            if fresh or last or isinstance(exc, _Expired):
                return True, self._unavailable(exc)
            return True, None
        if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
            return True, ReadOnlyBackendError(f"PostgreSQL signaling at {self._where} became read-only: {exc}")
        if isinstance(exc, psycopg.errors.UndefinedTable):
            self._ensured.clear()  # someone dropped our tables: create them again
            self._token = None
            self._queries.clear()
            if last or read_only:
                return False, SignalingError(f"PostgreSQL signaling at {self._where}: {exc}")
            return False, None
        return True, SignalingError(f"PostgreSQL signaling at {self._where}: {exc}")

    async def _arun(self, kind: str, names: Tuple[str, ...], write: bool = False) -> Any:
        """``_run()`` on the running loop's async connection, within the same deadline."""
        state = await self._loop_connections.get()
        deadline = time.monotonic() + self.timeout
        failures = state.failures
        try:
            if state.lock.locked():  # (else acquired at once, without a task for wait_for)
                await asyncio.wait_for(state.lock.acquire(), max(deadline - time.monotonic(), 0))
            else:
                await state.lock.acquire()
        except asyncio.TimeoutError:
            raise SignalingUnavailable(
                f"PostgreSQL signaling at {self._where} is unreachable: no answer to another "
                f"task's call within {self.timeout}s") from None
        try:
            if state.failures != failures:  # failed for another task meanwhile: no network
                raise SignalingUnavailable(
                    f"PostgreSQL signaling at {self._where} is unreachable: another task's call "
                    "failed meanwhile")
            for attempt in (1, 2):
                conn = state.conn
                fresh = conn is None or conn.closed
                if fresh:
                    try:
                        conn = state.conn = await self._aconnect(deadline)
                    except SignalingUnavailable:
                        state.failures += 1
                        raise
                    self._adopt()
                conn.deadline = deadline
                try:
                    return await arun_steps(self._working(kind, names, write, conn.ormcache_read_only),
                                            _AsyncSQL(conn))
                except psycopg.Error as exc:
                    drop, error = self._failure(exc, fresh, attempt == 2, conn.ormcache_read_only)
                    if drop:
                        state.conn = None
                        await _aclose(conn)
                    if error is not None:
                        if isinstance(error, SignalingUnavailable):
                            state.failures += 1
                        raise error from exc
                except asyncio.CancelledError:  # the task was cancelled mid-statement
                    state.conn = None
                    await _aclose(conn)
                    raise
            raise AssertionError("unreachable")
        finally:
            state.lock.release()

    async def aclose(self) -> None:
        await self._loop_connections.aclose()

    def _pruning(self, names: Sequence[str]) -> Steps[None]:
        for name in names:
            yield from _transaction(self._pruning_one(name))

    def _pruning_one(self, name: str) -> Steps[None]:
        table = self._table(name)
        locked = yield _one("SELECT pg_try_advisory_xact_lock(hashtext(%s))", [self.TABLE_PREFIX + name])
        if not locked[0]:
            return  # another process is pruning it
        # the snapshot of this statement is taken after the lock: no other pruner runs
        yield _execute(sql.SQL(
            "WITH top AS (SELECT max(id) AS id FROM {0}), "
            "gone AS (DELETE FROM {0} WHERE id < (SELECT id FROM top) RETURNING weight) "
            "UPDATE {0} SET weight = weight + (SELECT coalesce(sum(weight), 0) FROM gone) "
            "WHERE id = (SELECT id FROM top)").format(table))

    def gc(self, names: Iterable[str], *, keep: int = 10, older_than: float = 3600.0) -> int:
        """Odoo's garbage collection of the signaling tables (``ir.autovacuum``'s
        ``_gc_orm_signaling``), for a scheduled job: delete the rows of each name's table that
        are older than ``older_than`` seconds and not among its ``keep`` newest. Their weights
        go to the newest row, in the same transaction: every version (``sum(weight)``) stays
        what it was, in every reader's snapshot. Returns the number of rows deleted."""
        keep = int(keep)
        older_than = float(older_than)
        if keep < 1:
            raise ValueError(f"keep must be at least 1 (the newest row carries the version), not {keep!r}")
        if not older_than >= 0:
            raise ValueError(f"older_than must be a number of seconds >= 0, not {older_than!r}")
        return self._run(f"gc:{keep}:{older_than!r}", tuple(names), write=True)  # type: ignore[no-any-return]

    def _collecting(self, names: Sequence[str], keep: int, older_than: float) -> Steps[int]:
        deleted = 0
        for name in names:
            deleted += yield from _transaction(self._collecting_one(name, keep, older_than))
        return deleted

    def _collecting_one(self, name: str, keep: int, older_than: float) -> Steps[int]:
        table = self._table(name)
        locked = yield _one("SELECT pg_try_advisory_xact_lock(hashtext(%s))", [self.TABLE_PREFIX + name])
        if not locked[0]:
            return 0  # another process is pruning or collecting it
        row = yield _one(sql.SQL(
            "WITH kept AS (SELECT id FROM {0} ORDER BY id DESC LIMIT %s), "
            "gone AS (DELETE FROM {0} WHERE date < now() - make_interval(secs => %s) "
            "AND id NOT IN (SELECT id FROM kept) RETURNING weight), "
            "moved AS (UPDATE {0} SET weight = weight + (SELECT coalesce(sum(weight), 0) FROM gone) "
            "WHERE id = (SELECT max(id) FROM kept)) "
            "SELECT count(*) FROM gone").format(table), [keep, older_than])
        return int(row[0])

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

    def _pruning_due(self, names: Sequence[str]) -> Steps[None]:
        # the steps here are calls of the backend (``_run`` or ``_arun``)
        due = tuple(self._due(names))
        if due:
            try:
                yield lambda run: run("prune", due, True)
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
        return run_steps(self._reading(tuple(names)), self._run)

    async def aread_versions(self, db_name: str, names: Sequence[str]) -> Versions:
        return await arun_steps(self._reading(tuple(names)), self._arun)

    def _reading(self, names: Tuple[str, ...]) -> Steps[Versions]:
        row = yield lambda run: run("read", names)
        token = row[0]
        if token != self._token and token is not None:
            self._token = token  # tables created again elsewhere: record statements follow
        versions = tuple(row[1:])
        yield from self._pruning_read(names, versions)
        return token, versions

    def _pruning_read(self, names: Sequence[str], versions: Sequence[int]) -> Steps[None]:
        """Prune the names read ``prune_every`` versions past this process's last prune of them
        (signals written by triggers, which no process counts in ``_due``)."""
        if self._read_only:
            return
        marks = self._pruned_at
        due = []
        for name, version in zip(names, versions):
            mark = marks.setdefault(name, version)
            if version - mark >= self.prune_every or version < mark:
                marks[name] = version
                if version >= mark:
                    due.append(name)
        if due:
            try:
                yield lambda run: run("prune", tuple(due), True)
            except SignalingError as exc:  # the next prune of these names will catch up
                _logger.debug("Signaling: pruning %s failed: %s", due, exc)

    def bump(self, db_name: str, names: Iterable[str]) -> None:
        run_steps(self._bumping(tuple(names)), self._run)

    async def abump(self, db_name: str, names: Iterable[str]) -> None:
        await arun_steps(self._bumping(tuple(names)), self._arun)

    def _bumping(self, names: Tuple[str, ...]) -> Steps[None]:
        yield lambda run: run("bump", names, True)
        yield from self._pruning_due(names)

    def record_statement(self, db_name: str, names: Iterable[str]) -> str:
        """The one SQL statement that records signals of ``names`` inside a writer's own
        transaction (see ``Registry.record_changes()``). It needs the epoch token: the first
        call of a process may read it through the backend's connection. Pruning that is due
        is done first, on the backend's connection (never inside the writer's transaction)."""
        return run_steps(self._recording(tuple(names)), self._run)

    async def arecord_statement(self, db_name: str, names: Iterable[str]) -> str:
        """``record_statement()`` whose round trips (if any) use the running loop's async
        connection: the event loop is never blocked."""
        return await arun_steps(self._recording(tuple(names)), self._arun)

    def _recording(self, names: Tuple[str, ...]) -> Steps[str]:
        # the steps here are calls of the backend (``_run`` or ``_arun``)
        token = self._token
        if token is None or not self._ensured.issuperset(names):
            token = yield lambda run: run("ensure", names)
            if token is None:
                raise SignalingError(f"PostgreSQL signaling at {self._where} has no tables yet")
        # no round trip once known: a writer whose path to the backend is cut still records
        statement: str
        try:
            cached_token, statement = self._queries["record", names]
        except KeyError:
            cached_token = None
        if cached_token != token:
            statement = self._insert(names, token).as_string(None)
            self._queries["record", names] = (token, statement)
        yield from self._pruning_due(names)
        return statement

    def close(self) -> None:
        """Close the connection of the threads, and end the sessions of the async connections
        (``await aclose()`` in each loop is the clean way; their sockets are closed here)."""
        with self._lock:
            self._drop()
        for state in self._loop_connections.clear():
            conn, state.conn = state.conn, None
            if conn is not None and not conn.closed:
                conn.pgconn.finish()  # no loop to await close() in: libpq's close is immediate


_inherited_connections: List[Any] = []  # a forked child's copies of its parent's connections
