"""``OrmCache.install(bind)`` / ``OrmCache.ddl(dialect)``: the capture triggers of an OrmCache.

The SQL lives in ``ormcache.signaling.capture``; this module knows which tables an OrmCache
depends on (its policies' tables, the full-table caches' tables, and every table of its
metadata when a callable policy, whose tables are unknown, is registered) and which tables record
caches read (``RecordCache.register()``), runs the DDL through
SQLAlchemy and checks that the registry's signaling reads the database the triggers write to.
"""
from __future__ import annotations

import logging
import os
import weakref
from contextlib import nullcontext
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from sqlalchemy.engine import Connection, Engine

from ormcache.signaling import REGISTRY, SignalingConfigurationError
from ormcache.signaling import capture

from ._bridge import await_, in_greenlet
from ._changes import FULL_TABLE_MODELS, RECORD_MODELS
from ._session import table_key

__all__ = ["captured_tables", "check_bind", "check_capturable", "ddl_statements", "install", "warn_uncaptured", "read_snapshot",
           "fully_captured", "publish_members", "member_signal", "record_tables_uncovered"]

_logger = logging.getLogger("ormcache.sqlalchemy")


#: bare table name -> the (schema, table) install() put a capture trigger on, in this process:
#: record caches read their transaction-local markers (``written_probe()``)
MARKED: Dict[str, Tuple[Optional[str], str]] = {}
#: the same for SQLite, by the file's absolute path (a counter's table exists in its file only):
#: record caches read the triggers' counters (``counted_probe()``)
COUNTED: Dict[str, Dict[str, Tuple[Optional[str], str]]] = {}


def sqlite_file(bind: Any) -> Optional[str]:
    """The absolute path of the SQLite file of ``bind`` (an Engine or Connection), None for
    an in-memory database."""
    database: Optional[str] = bind.engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return os.path.abspath(database)

#: the OrmCaches install() equipped (a record-cache table declared or read later is warned about)
_INSTALLED: "weakref.WeakSet[Any]" = weakref.WeakSet()


def _dependencies(orm_cache: Any, records: bool = False) -> Dict[Tuple[Optional[str], str], Set[str]]:
    """(schema, table) -> the names the OrmCache knows it by (policy tables, full-table caches'
    tables, and every table of its metadata when a callable policy, whose tables are unknown,
    is registered); ``records``: the tables of ``RecordCache.register()``'s models instead."""
    metadata = orm_cache.metadata
    tables = {} if metadata is None else dict(metadata.tables)
    by_bare = {table.name: table for table in tables.values()}
    # every FullTableCache (RecordCache model) of the process: those of this database
    full = set(RECORD_MODELS if records else FULL_TABLE_MODELS)
    if metadata is not None:
        full &= set(tables) | set(by_bare)
    if records:
        names: Set[str] = full
    else:
        names = set(orm_cache._by_table) | full
        if orm_cache._callables:  # a callable policy may depend on any table
            names |= set(tables)
    found: Dict[Tuple[Optional[str], str], Set[str]] = {}
    for name in names:
        table = tables.get(name)
        if table is None:
            table = by_bare.get(name)
        where = (table.schema, table.name) if table is not None else (None, name)
        found.setdefault(where, set()).add(name)
    return found


def captured_tables(orm_cache: Any, records: bool = False) -> List[Tuple[Optional[str], str]]:
    """The tables whose changes invalidate values of ``orm_cache``, as (schema, name) (with
    ``records``, also the tables of the record caches' registered models)."""
    tables = set(_dependencies(orm_cache))
    if records:
        tables |= set(_dependencies(orm_cache, records=True))
    return sorted(tables, key=lambda t: (t[0] or "", t[1]))


def check_capturable(orm_cache: Any, descriptors: Any = None) -> None:
    """ValueError when the capture cannot cover what the values depend on: a callable policy
    may depend on any table, which only the OrmCache's metadata names (without it, no trigger
    would signal its tables and commits would be taken for captured)."""
    callables = [d for d in (orm_cache._callables if descriptors is None else descriptors) if d.tables is None]
    if callables and orm_cache.metadata is None:
        raise ValueError(
            f"OrmCache {orm_cache.registry.db_name!r}: the capture cannot cover the callable "
            f"policy of {', '.join(sorted(str(d.name) for d in callables))}, which may depend on "
            "any table: give OrmCache the metadata (OrmCache(registry, Base.metadata)) so that "
            "install() puts triggers on every table")


def ddl_statements(orm_cache: Any, dialect: Any) -> List[str]:
    """The statements ``install()`` runs, for ``dialect`` (a name or a SQLAlchemy dialect)."""
    check_capturable(orm_cache)
    name = getattr(dialect, "name", dialect)
    return capture.table_ddl(name, captured_tables(orm_cache, records=True))


def install(orm_cache: Any, bind: Any, watched: Sequence[Engine] = ()) -> List[Tuple[Optional[str], str]]:
    """Create what is missing of the capture (tables, functions, triggers) in the database of
    ``bind`` (an Engine or a Connection), in one transaction; check that the registry's
    signaling reads that database, and that the ``watched`` engines write to it; then
    subscribe the registry to the tables' signals. Returns the tables newly equipped."""
    if not isinstance(bind, (Engine, Connection)):
        raise TypeError(f"OrmCache.install() takes an Engine or a Connection, not {bind!r}")
    dialect = bind.dialect.name
    if dialect not in capture.DIALECTS:
        raise ValueError(f"OrmCache.install(): capture supports {list(capture.DIALECTS)}, not {dialect!r}")
    check_capturable(orm_cache)
    dependencies = _dependencies(orm_cache)
    # a record cache's tables: triggers only (its values end with their transaction: no
    # subscription, and its tables' signals do not move the shared tier's version)
    records = set(_dependencies(orm_cache, records=True))
    pairs = [(table, capture.table_signal(table)) for table in set(dependencies) | records]
    transaction, created = _transaction(bind), False
    with transaction as connection:
        rows = connection.exec_driver_sql(capture.triggers_query(dialect)).fetchall()
        missing = capture.missing_pairs(dialect, pairs, [tuple(row) for row in rows])
        epoch = _epoch(connection)
        if missing or epoch is None:
            for statement in capture.pairs_ddl(dialect, missing):
                connection.exec_driver_sql(statement)
            created = True
            epoch = _epoch(connection)
    if not (created and isinstance(transaction, nullcontext)):
        # (DDL run in the caller's open transaction holds its lock and is not visible to the
        # backend's own connection yet: the check waits for the next install(), at the next start)
        _check_reader(orm_cache, epoch, bind)
        bound = bind if isinstance(bind, Engine) else bind.engine
        for engine in watched:
            if engine is not bound:
                _check_bind(engine, epoch, orm_cache)
    orm_cache._installed_epoch = epoch
    _subscribe(orm_cache, {capture.table_signal(table): names for table, names in dependencies.items()})
    orm_cache._captured = True
    orm_cache._captured_tables = (_signature(orm_cache), set(dependencies))
    orm_cache._record_tables_installed = {name for _, name in set(dependencies) | records}
    equipped = {name: (schema, name) for schema, name in set(dependencies) | records}
    if dialect == "postgresql":
        MARKED.update(equipped)
    else:
        path = sqlite_file(bind)
        if path is not None:
            COUNTED.setdefault(path, {}).update(equipped)
    _INSTALLED.add(orm_cache)
    return sorted((table for table, _ in missing), key=lambda t: (t[0] or "", t[1]))


def written_probe(names: Sequence[str]) -> str:
    """An SQL expression (PostgreSQL) reading, for each table of ``names`` (bare names of
    ``MARKED``), whether the transaction wrote it since the last probe, by any path: the
    capture trigger's transaction-local marker is '1' after a write; the probe then sets it to
    '0' (so the next write records and marks again) and answers '0', else NULL. A ``CASE``
    reads before it writes. A text[] in the order of ``names``."""
    key = tuple(MARKED[name] for name in names)
    probe = _PROBES.get(key)
    if probe is None:
        probe = _PROBES[key] = _written_probe(names)
    return probe


def counted_probe(names: Sequence[str], counted: Dict[str, Tuple[Optional[str], str]]) -> str:
    """An SQL expression (SQLite) reading the capture triggers' counter of each table of
    ``names`` (bare names of ``counted``, one file's ``COUNTED``; one more per row written, by
    any path, in the file): the counters, comma-separated, in the order of ``names``."""
    key = ("sqlite",) + tuple(counted[name] for name in names)
    probe = _PROBES.get(key)
    if probe is None:
        parts = [f"coalesce((SELECT weight FROM {capture.quote(capture.TABLE_PREFIX + capture.table_signal(counted[name]))} "
                 "WHERE id = 0), '')" for name in names]
        probe = _PROBES[key] = " || ',' || ".join(parts)
    return probe


#: (schema, table) of the probed tables -> the probe's SQL (built once)
_PROBES: Dict[Tuple[Any, ...], str] = {}


def _written_probe(names: Sequence[str]) -> str:
    parts = []
    for name in names:
        mark = capture._literal(capture.marker(capture.table_signal(MARKED[name])))
        parts.append(f"CASE WHEN current_setting({mark}, true) = '1' THEN set_config({mark}, '0', true) END")
    return "ARRAY[" + ", ".join(parts) + "]::text[]"


def forget(orm_cache: Any) -> None:
    """``OrmCache.close()``: no more warnings about record-cache tables."""
    _INSTALLED.discard(orm_cache)


def record_tables_uncovered(names: Set[str], how: str) -> None:
    """Record caches declared or read tables ``names`` (bare names): each OrmCache installed
    before, whose database holds such a table and which put no trigger on it, warns once (its
    outside writes are not signalled until ``RecordCache.register()`` and ``install()``)."""
    for orm_cache in list(_INSTALLED):
        metadata = orm_cache.metadata
        known = None if metadata is None else {table.name for table in metadata.tables.values()}
        installed: Set[str] = getattr(orm_cache, "_record_tables_installed", set())
        warned: Set[str] = orm_cache.__dict__.setdefault("_record_tables_warned", set())
        missing = sorted(n for n in names if (known is None or n in known) and n not in installed and n not in warned)
        if missing:
            warned.update(missing)
            _logger.warning("OrmCache %r: record caches %s %s after install(), which put no capture trigger "
                            "on them: RecordCache.register() their models and call install() again (until "
                            "then their outside writes are not signalled)",
                            orm_cache.registry.db_name, how, ", ".join(missing))


def _signature(orm_cache: Any) -> Tuple[int, int, int]:
    """What changes when the OrmCache's dependencies may have (a register(), a FullTableCache)."""
    return len(orm_cache._counters), len(FULL_TABLE_MODELS), len(orm_cache._callables)


def fully_captured(orm_cache: Any) -> bool:
    """Whether the triggers cover every table the OrmCache depends on now (a member registered
    after ``install()`` may add tables: then its commits are signalled by name, as without
    capture, and one warning says to call ``install()`` again)."""
    if orm_cache._captured is not True:
        return False
    signature, tables = orm_cache._captured_tables
    if signature == _signature(orm_cache):
        return True
    missing = sorted(capture._qualified(t) for t in set(_dependencies(orm_cache)) - tables)
    if missing:
        _logger.warning("OrmCache %r: tables %s were registered after install(): call install() again "
                        "to capture their changes (until then commits signal the whole cache)",
                        orm_cache.registry.db_name, ", ".join(missing))
        orm_cache._captured = None  # warned: no capture assumed from now on
        return False
    orm_cache._captured_tables = (_signature(orm_cache), tables)
    return True


class _TablesMoved:
    """What a moved table signal drops, in this process: only the entries depending on that
    table (its policies' members, its full-table caches, and every callable policy's)."""

    def __init__(self, orm_cache: Any) -> None:
        self.orm_cache = orm_cache
        #: table signal -> the names the OrmCache knows that table by
        self.names_of: Dict[str, Set[str]] = {}

    def __call__(self, signals: List[str]) -> None:
        cache = self.orm_cache
        tables = {name for signal in signals for name in self.names_of.get(signal, ())}
        keys = {d.key for table in tables for d in cache._by_table.get(table, ())}
        keys.update(d.key for d in cache._callables)
        keys.update(table_key(model) for table in tables for model in FULL_TABLE_MODELS.get(table, ()))
        cache._drop(keys)


def member_signal(descriptor: Any) -> str:
    """The fine-grained signal of one ``orm_cached`` member's values: ``m.<module.Class.name>``."""
    return "m." + str(descriptor.name)


class _MembersMoved:
    """What a moved member signal drops, in this process: that member's values only."""

    def __init__(self, orm_cache: Any) -> None:
        self.orm_cache = orm_cache
        self.keys: Dict[str, Any] = {}  # member signal -> the member's cache key

    def __call__(self, signals: List[str]) -> None:
        self.orm_cache._drop([self.keys[signal] for signal in signals if signal in self.keys])


def publish_members(orm_cache: Any, descriptors: Any) -> bool:
    """``OrmCache.invalidate(*members)`` once installed: publish each member's own signal (the
    other processes drop only those members' values); False when a member has none (then the
    whole cache is signalled, as without capture)."""
    members = getattr(orm_cache, "_members_moved", None)
    if members is None or not fully_captured(orm_cache):
        return False
    signals = [member_signal(d) for d in descriptors]
    if not all(signal in members.keys for signal in signals):
        return False
    registry = orm_cache.registry
    if in_greenlet():
        await_(registry.apublish_signals(signals))
    else:
        registry.publish_signals(signals)
    return True


def _subscribe(orm_cache: Any, names_of: Dict[str, Set[str]]) -> None:
    """Subscribe the registry to the tables' signals and to the members' (once per OrmCache:
    one subscriber of each kind)."""
    moved = getattr(orm_cache, "_tables_moved", None)
    if moved is None:
        moved = orm_cache._tables_moved = _TablesMoved(orm_cache)
    moved.names_of.update(names_of)
    orm_cache.registry.subscribe_signals(sorted(names_of), moved)
    members = getattr(orm_cache, "_members_moved", None)
    if members is None:
        members = orm_cache._members_moved = _MembersMoved(orm_cache)
    members.keys.update((member_signal(d), d.key) for d in orm_cache._counters)
    orm_cache.registry.subscribe_signals(sorted(members.keys), members)
    # the shared tier's version and the snapshot's read cover the tables' signals
    orm_cache._signal_names = sorted(set(orm_cache._signal_names) | set(names_of))


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


def app_epoch(connection: Connection) -> Any:
    """The epoch token of the signaling tables in ``connection``'s database (None: none there)."""
    return _epoch(connection)


def check_bind(orm_cache: Any, engine: Engine) -> None:
    """``watch()`` of an installed OrmCache: ``engine`` must write to the database holding the
    capture triggers (one probe connection; when it cannot connect now, nothing is decided)."""
    _check_bind(engine, getattr(orm_cache, "_installed_epoch", None), orm_cache)


def _check_bind(engine: Engine, epoch: Any, orm_cache: Any) -> None:
    if epoch is None:  # installed in the caller's open transaction: checked at the next install()
        return
    try:
        with engine.connect() as connection:
            found = _epoch(connection)
    except Exception as exc:  # noqa: BLE001 - unreachable now: cannot tell
        _logger.debug("OrmCache %r: cannot probe %s (%s)", orm_cache.registry.db_name,
                      engine.url.render_as_string(hide_password=True), exc)
        return
    if found != epoch:
        raise SignalingConfigurationError(
            f"OrmCache {orm_cache.registry.db_name!r}: the sessions of "
            f"{engine.url.render_as_string(hide_password=True)} write to a database that does not "
            "hold the capture triggers of install(): their writes would never be signalled. "
            "Watch sessions of the installed database, or install() on theirs")


def _check_reader(orm_cache: Any, epoch: Any, bind: Any) -> None:
    """The triggers write signals next to the data: the registry must read them there."""
    registry = orm_cache.registry
    backend = registry.signaling
    seen = None
    if backend is not None:  # a backend reads its versions (contract.Backend)
        seen = backend.read_versions(registry.db_name, [orm_cache.cache_name])[0]
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
    """The versions of the signals, read on the transaction's own connection (PostgreSQL, or
    the application's SQLite file, where ``install()`` put the signals next to the data): when
    that snapshot is older than a signal this process applied (the connection's transaction
    began before it: REPEATABLE READ, SERIALIZABLE, a session joined to an external
    transaction, an SQLite WAL reader), the transaction stores nothing for others. One
    statement per transaction."""
    registry = orm_cache.registry
    if connection.dialect.name not in capture.DIALECTS or registry.signaling_version(orm_cache.cache_name) is None:
        return  # not synced yet: the tables may not exist, nothing to compare with
    names = [REGISTRY, *orm_cache._signal_names]  # the cache's names and the tables' signals
    row = connection.exec_driver_sql(capture.versions_query(names)).fetchone()
    if registry.signaling_behind(row[0], dict(zip(names, row[1:]))):
        txn.start = 0  # older than every invalidation: may_store() refuses every key
