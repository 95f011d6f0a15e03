"""``OrmCache.install(bind)`` / ``OrmCache.ddl(dialect)``: the capture triggers of an OrmCache.

The SQL lives in ``ormcache.signaling.capture``; this module knows which tables an OrmCache
depends on (its policies' tables, the full-table caches' tables, and every table of its
metadata when a callable policy, whose tables are unknown, is registered), runs the DDL through
SQLAlchemy and checks that the registry's signaling reads the database the triggers write to.
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any, List, Optional, Set, Tuple

from sqlalchemy.engine import Connection, Engine

from ormcache.signaling import REGISTRY, SignalingConfigurationError
from ormcache.signaling import capture

from ._changes import FULL_TABLE_MODELS

__all__ = ["captured_tables", "ddl_statements", "install", "warn_uncaptured", "read_snapshot"]

_logger = logging.getLogger("ormcache.sqlalchemy")


def captured_tables(orm_cache: Any) -> List[Tuple[Optional[str], str]]:
    """The tables whose changes invalidate values of ``orm_cache``, as (schema, name)."""
    names: Set[str] = set(orm_cache._by_table) | set(FULL_TABLE_MODELS)
    metadata = orm_cache.metadata
    known = {} if metadata is None else {table.name: table for table in metadata.tables.values()}
    if orm_cache._callables:  # a callable policy may depend on any table
        names |= set(known)
    tables = []
    for name in sorted(names):
        table = known.get(name)
        tables.append((table.schema, table.name) if table is not None else (None, name))
    return tables


def ddl_statements(orm_cache: Any, dialect: Any) -> List[str]:
    """The statements ``install()`` runs, for ``dialect`` (a name or a SQLAlchemy dialect)."""
    name = getattr(dialect, "name", dialect)
    return capture.ddl(name, [orm_cache.cache_name], captured_tables(orm_cache))


def install(orm_cache: Any, bind: Any) -> List[Tuple[Optional[str], str]]:
    """Create what is missing of the capture (tables, function, triggers) in the database of
    ``bind`` (an Engine or a Connection), in one transaction; then check that the registry's
    signaling reads that database. Returns the tables newly equipped."""
    if not isinstance(bind, (Engine, Connection)):
        raise TypeError(f"OrmCache.install() takes an Engine or a Connection, not {bind!r}")
    dialect = bind.dialect.name
    if dialect not in capture.DIALECTS:
        raise ValueError(f"OrmCache.install(): capture supports {list(capture.DIALECTS)}, not {dialect!r}")
    tables = captured_tables(orm_cache)
    names = [orm_cache.cache_name]
    with _transaction(bind) as connection:
        done = {tuple(row) for row in connection.exec_driver_sql(
            capture.captured_tables_query(dialect, names)).fetchall()}
        done_names = {row[1] for row in done}
        missing = [table for table in tables
                   if (table if table[0] is not None else (None, table[1])) not in done
                   and not (table[0] is None and table[1] in done_names)]
        epoch = _epoch(connection)
        if missing or epoch is None:
            for statement in capture.ddl(dialect, names, tables):
                connection.exec_driver_sql(statement)
            epoch = _epoch(connection)
    _check_reader(orm_cache, epoch, bind)
    orm_cache._captured = True
    return missing


def _transaction(bind: Any) -> Any:
    if isinstance(bind, Engine):
        return bind.begin()
    if bind.in_transaction():  # the caller's transaction: it commits it
        return nullcontext(bind)
    return _begun(bind)


class _begun:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def __enter__(self) -> Connection:
        self.transaction = self.connection.begin()
        return self.connection

    def __exit__(self, kind: Any, *rest: Any) -> None:
        if kind is None:
            self.transaction.commit()
        else:
            self.transaction.rollback()


def _epoch(connection: Connection) -> Any:
    """The epoch token of the database, None when the capture's tables do not exist yet."""
    table = capture.quote(capture.EPOCH_TABLE)
    if connection.dialect.name == "postgresql":
        exists = connection.exec_driver_sql(
            "SELECT to_regclass('" + table.replace("'", "''") + "') IS NOT NULL").scalar()
    else:
        exists = connection.exec_driver_sql(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '"
            + capture.EPOCH_TABLE.replace("'", "''") + "'").scalar()
    if not exists:
        return None
    row = connection.exec_driver_sql(f"SELECT token FROM {table}").fetchone()
    return None if row is None else row[0]


def _check_reader(orm_cache: Any, epoch: Any, bind: Any) -> None:
    """The triggers write signals next to the data: the registry must read them there."""
    registry = orm_cache.registry
    backend = registry.signaling
    read = getattr(backend, "read_versions", None)
    seen = None
    if read is not None:
        seen = read(registry.db_name, [orm_cache.cache_name])[0]
    if seen is None or seen != epoch:
        raise SignalingConfigurationError(
            f"OrmCache.install(): the capture triggers record signals in the database of {bind!r}, "
            f"which the signaling of registry {registry.db_name!r} ({backend!r}) does not read: use a "
            "PostgresSignaling on that database (or a SqliteSignaling on that file)")


def warn_uncaptured(orm_cache: Any) -> None:
    """Once per OrmCache, when ``install()`` was not called: say which tables' outside writes
    (raw SQL, other programs...) are not seen."""
    orm_cache._captured = None  # warned
    tables = [capture._qualified(table) for table in captured_tables(orm_cache)]
    if tables:
        _logger.warning(
            "OrmCache %r: writes to %s that do not go through this process's watched sessions "
            "(raw SQL, COPY, cascades, triggers, other programs) are not seen; call "
            "OrmCache.install(engine) to capture them in the database",
            orm_cache.registry.db_name, ", ".join(tables))


def read_snapshot(orm_cache: Any, connection: Any, txn: Any) -> None:
    """The versions of the signals, read on the transaction's own connection (PostgreSQL, where
    ``install()`` put the signals next to the data): when that snapshot is older than a signal
    this process applied (the connection's transaction began before it: REPEATABLE READ,
    SERIALIZABLE, a session joined to an external transaction), the transaction stores nothing
    for others. One statement per transaction."""
    registry = orm_cache.registry
    if connection.dialect.name != "postgresql" or registry.signaling_version(orm_cache.cache_name) is None:
        return  # not synced yet: the tables may not exist, nothing to compare with
    names = [REGISTRY, *orm_cache._signal_names]
    row = connection.exec_driver_sql(capture.versions_query(names)).fetchone()
    if registry.signaling_behind(row[0], dict(zip(names, row[1:]))):
        txn.start = 0  # older than every invalidation: may_store() refuses every key
