"""Per-session record cache with Odoo-style prefetch: N records x M fields in one SELECT.

Example::

    cache = RecordCache.of(session)
    cache.prefetch(User, user_ids, ["name", "email"])      # one SELECT for every missing pair
    [cache.get(User, uid, "name") for uid in user_ids]      # no SQL
    cache.get(Group, 7, "label")   # a miss loads the field for the whole prefetch group of 7

    records = RecordCache.of(async_session)                  # an AsyncSession: the same, awaited
    await records.prefetch(User, user_ids, ["name", "email"])

The cache is ``{model: {id: {field: value}}}``; a field is loaded when it is a key of the record's
dict. It lives in ``session.info`` and ends with the session's transaction (commit, rollback or close), as
the session's own identity map expires then. Inserts, updates and deletes flushed by the session
drop the records they touch; ORM bulk ``insert()/update()/delete()`` statements drop the model;
``session.execute(text(...))`` SQL other than a read drops everything, and so do writes on the
session's connection that bypass the session (Core, ``text()``, ``exec_driver_sql()``). A raw
DBAPI cursor is seen only with ``OrmCache.install()``'s triggers on the table
(``RecordCache.register()``), at the cache's next SELECT, which reads the triggers'
transaction-local markers (PostgreSQL) or counters (SQLite); another process's commits are read
by the next transaction.
"""
from __future__ import annotations

import weakref
from typing import (AbstractSet, Any, Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple, Union,
                    overload)

from sqlalchemy import TextClause, bindparam, event, inspect, literal_column, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session
from sqlalchemy.orm import Mapper, Session, scoped_session

from ._bridge import MISS, is_async, run, sync_session
from ._changes import ALL_TABLES, RECORD_MODELS, changed_instances, is_single_read, statement_tables
from ._session import listen_once
from .capture import COUNTED, MARKED, counted_probe, record_tables_uncovered, sqlite_file, written_probe

__all__ = ["RecordCache", "AsyncRecordCache", "MissingRecord"]

_INFO_KEY = "ormcache.sqlalchemy.records"
_ASYNC_INFO_KEY = "ormcache.sqlalchemy.async_records"
_EMPTY: Dict[Any, Any] = {}


class MissingRecord(KeyError):
    """The record does not exist in the database (as Odoo's MissingError)."""


class _Group:
    """Records prefetched together: a miss on one loads the same fields for all of them."""

    __slots__ = ("ids", "fields")

    def __init__(self, ids: Tuple[Any, ...], fields: Set[str]) -> None:
        self.ids = ids
        self.fields = fields


class _Model:
    """What the cache knows about one mapped class: its key column and its loadable fields."""

    __slots__ = ("cls", "mapper", "pk", "pk_name", "columns", "statements")

    def __init__(self, cls: type) -> None:
        mapper: Optional[Mapper[Any]] = inspect(cls, raiseerr=False)
        if not isinstance(mapper, Mapper):
            raise TypeError(f"RecordCache: {cls!r} is not a mapped class")
        if len(mapper.primary_key) != 1:
            raise ValueError(
                f"RecordCache: {cls.__name__} has a composite primary key; only single-column keys are supported"
            )
        self.cls = cls
        self.mapper = mapper
        pk_column = mapper.primary_key[0]
        self.pk_name = mapper.get_property_by_column(pk_column).key
        self.pk = getattr(cls, self.pk_name)
        self.columns: Dict[str, Any] = {prop.key: getattr(cls, prop.key) for prop in mapper.column_attrs}
        #: by the fields' names, and by (names, probe) for the probed form
        self.statements: Dict[Any, Any] = {}

    def select(self, names: Tuple[str, ...]) -> Any:
        """``SELECT pk, <names> WHERE pk IN :ids``, built once per set of fields."""
        statement = self.statements.get(names)
        if statement is None:
            statement = select(self.pk, *(self.columns[n] for n in names)).where(
                self.pk.in_(bindparam("ids", expanding=True)))
            self.statements[names] = statement
        return statement

    def probed_select(self, names: Tuple[str, ...], probe: str) -> Any:
        """``select(names)`` that also answers ``probe`` (``capture.written_probe()``) in its
        first column, evaluated once: an outer join from the probe's one row, so that it is
        answered even when no record matches (the records' columns are then NULL)."""
        key = (names, probe)
        statement = self.statements.get(key)
        if statement is None:
            marks = select(literal_column(probe).label("written")).subquery("orm_signaling_written")
            statement = (select(marks.c.written, self.pk, *(self.columns[n] for n in names))
                         .select_from(marks)
                         .outerjoin(self.cls, self.pk.in_(bindparam("ids", expanding=True))))
            self.statements[key] = statement
        return statement

    def check_fields(self, fields: Iterable[str]) -> FrozenSet[str]:
        if isinstance(fields, str):
            fields = (fields,)
        fields = frozenset(fields)
        unknown = fields - self.columns.keys()
        if unknown:
            raise ValueError(
                f"RecordCache: {self.cls.__name__} has no column attribute {sorted(unknown)}; "
                f"known: {sorted(self.columns)}"
            )
        return fields


class RecordCache:
    """Field values of records read through one session, loaded in batches."""

    #: ids per SELECT; far below SQLite's and PostgreSQL's bound-parameter limits.
    chunk_size = 5000

    def __init__(self, session: Session) -> None:
        if isinstance(session, (AsyncSession, async_scoped_session)):
            raise TypeError(f"RecordCache needs a Session, not {type(session).__name__}: use "
                            "RecordCache.of(session), which also takes an AsyncSession")
        _install_listeners()
        self.session = session
        self._data: Dict[type, Dict[Any, Dict[str, Any]]] = {}
        self._missing: Dict[type, Set[Any]] = {}
        self._groups: Dict[type, Dict[Any, _Group]] = {}
        self._models: Dict[type, _Model] = {}
        #: table -> the capture triggers' counter the last SELECT read (SQLite)
        self._counters: Dict[str, str] = {}
        #: SELECT statements this cache issued (for tests and statistics).
        self.queries = 0

    @overload
    @classmethod
    def of(cls, session: Session) -> "RecordCache": ...

    @overload
    @classmethod
    def of(cls, session: AsyncSession) -> "AsyncRecordCache": ...

    @classmethod
    def of(cls, session: Any) -> Union["RecordCache", "AsyncRecordCache"]:
        """The record cache of ``session`` (created on first use); for an AsyncSession, the
        record cache of the Session it wraps, with awaitable methods. A scoped_session or
        async_scoped_session: that of its current session."""
        if isinstance(session, (scoped_session, async_scoped_session)):
            session = session()
        if is_async(session):
            sync = session.sync_session
            facade: Optional[AsyncRecordCache] = sync.info.get(_ASYNC_INFO_KEY)
            if facade is None:
                facade = sync.info[_ASYNC_INFO_KEY] = AsyncRecordCache(cls.of(sync))
            return facade
        session = sync_session(session, "RecordCache.of")
        cache: Optional[RecordCache] = session.info.get(_INFO_KEY)
        if cache is None:
            cache = session.info[_INFO_KEY] = cls(session)
        return cache

    @classmethod
    def register(cls, *models: type) -> None:
        """Declare the mapped classes record caches read: ``OrmCache.install()`` (``ddl()``)
        then puts capture triggers on their tables too, so that a write to them by any path
        or program records its table's signal in the writer's transaction. Declare them
        before ``install()``; one declared (or first read undeclared) after an ``install()``
        is warned about once, and covered by the next ``install()`` once declared."""
        if not models:
            raise TypeError("RecordCache.register() takes at least one mapped class")
        checked = [_Model(model) for model in models]  # raises before anything changes
        added = set()
        for model in checked:
            for table in model.mapper.tables:
                owners = RECORD_MODELS.setdefault(table.name, set())
                if model.cls not in owners:
                    owners.add(model.cls)
                    added.add(table.name)
        if added:
            record_tables_uncovered(added, "declared")

    # -- reading -----------------------------------------------------------------------------

    def _model(self, cls: type) -> _Model:
        model = self._models.get(cls)
        if model is None:
            model = self._models[cls] = _Model(cls)
            undeclared = {table.name for table in model.mapper.tables} - RECORD_MODELS.keys()
            if undeclared:  # (once per model and session: a set difference)
                record_tables_uncovered(undeclared, "read")
        return model

    def prefetch(self, cls: type, ids: Iterable[Any], fields: Optional[Iterable[str]] = None) -> None:
        """Load every missing (id, field) pair in one SELECT; ``fields=None`` means every column.

        The ids form a prefetch group: a later miss on one of them loads the missing fields of all.
        """
        model = self._model(cls)
        wanted = model.check_fields(model.columns if fields is None else fields)
        ids = tuple(dict.fromkeys(ids))
        group = _Group(ids, set(wanted))
        groups = self._groups.setdefault(cls, {})
        for id_ in ids:
            groups[id_] = group
        self.session.flush()  # pending writes invalidate what they touch before we look
        if self._load(model, ids, wanted):
            self._load(model, ids, wanted)  # what the probe dropped

    def get(self, cls: type, id: Any, field: str) -> Any:
        """The value of ``field`` of record ``id``; a miss loads its prefetch group in one SELECT."""
        self.session.flush()  # never serve a value the session's unflushed changes made stale
        value = self.loaded(cls, id, field)
        if value is not MISS:
            return value
        model = self._model(cls)
        model.check_fields((field,))
        group = self._groups.get(cls, {}).get(id)
        if group is None:
            group = _Group((id,), {field})
            self._groups.setdefault(cls, {})[id] = group
        else:
            group.fields.add(field)
        ids = group.ids if id in group.ids else (id,)
        if self._load(model, ids, group.fields):
            self._load(model, ids, group.fields)  # what the probe dropped
        try:
            return self._data[cls][id][field]
        except KeyError:
            raise MissingRecord(f"{cls.__name__} {id!r} does not exist") from None

    def loaded(self, cls: type, id: Any, field: str) -> Any:
        """The value of ``field`` of record ``id`` if it is loaded, else ``MISS`` (no SQL, no
        flush)."""
        record = self._data.get(cls, _EMPTY).get(id)
        return MISS if record is None else record.get(field, MISS)

    def read(self, cls: type, ids: Sequence[Any], fields: Iterable[str]) -> List[Dict[str, Any]]:
        """Prefetch, then return ``[{field: value}]`` in the order of ``ids`` (missing ids raise)."""
        fields = tuple(fields)
        self.prefetch(cls, ids, fields)
        return [{field: self.get(cls, id_, field) for field in fields} for id_ in ids]

    def _probe(self, model: _Model) -> Tuple[str, Tuple[str, ...], str]:
        """The dialect, the tables held or being loaded whose capture markers (PostgreSQL) or
        counters (SQLite) the next SELECT reads (those with ``OrmCache.install()``'s triggers
        on them; none: no probe), and the probe's SQL."""
        if not (MARKED or COUNTED):
            return "", (), ""
        bind = self.session.get_bind(mapper=model.mapper)
        dialect = bind.dialect.name
        marked: Optional[Dict[str, Any]] = None
        if dialect == "postgresql":
            marked = MARKED  # (a marker no trigger sets reads NULL: any database will do)
        elif dialect == "sqlite" and COUNTED:
            path = sqlite_file(bind)  # a counter's table is in its file only
            marked = None if path is None else COUNTED.get(path)
        if not marked:
            return "", (), ""
        classes = set(self._data) | set(self._missing)
        classes.add(model.cls)
        names = tuple(sorted({table.name for c in classes for table in self._model(c).mapper.tables
                              if table.name in marked}))
        if not names:
            return "", (), ""
        return dialect, names, written_probe(names) if dialect == "postgresql" else counted_probe(names, marked)

    def _written(self, dialect: str, names: Tuple[str, ...], answer: Any) -> Set[str]:
        """The tables of ``names`` the probe's ``answer`` says were written since this cache's
        previous SELECT."""
        if dialect == "postgresql":  # markers set since the last probe (which reset them)
            return {name for name, flag in zip(names, answer or ()) if flag is not None}
        written = set()  # SQLite: counters moved since the last probe
        for name, count in zip(names, ("" if answer is None else str(answer)).split(",")):  # (one: an int)
            before = self._counters.get(name)
            self._counters[name] = count
            if before is not None and before != count:
                written.add(name)
        return written

    def _load(self, model: _Model, ids: Sequence[Any], fields: Iterable[str]) -> bool:
        """Load the absent (id, field) pairs; True when the SELECT's probe found tables written
        in this transaction by a path the cache did not see, and dropped what it held of them
        (the records it just loaded are kept: they were read after the write)."""
        cls = model.cls
        data = self._data.setdefault(cls, {})
        missing_ids = self._missing.setdefault(cls, set())
        todo: List[Any] = []
        columns: Set[str] = set()
        for id_ in ids:
            if id_ in missing_ids:
                continue
            record = data.get(id_)
            absent = [f for f in fields if record is None or f not in record]
            if absent:
                todo.append(id_)
                columns.update(absent)
        if not todo:
            return False
        names = tuple(sorted(columns))
        statement = model.select(names)
        dialect, probed, probe = self._probe(model)
        dropped = False
        for start in range(0, len(todo), self.chunk_size):
            chunk = todo[start:start + self.chunk_size]
            # through the session: the application's do_orm_execute hooks (tenant criteria...) apply
            if start == 0 and probed:
                # piggy-backed on this SELECT: was a table held written by a raw DBAPI cursor?
                probed_rows = self.session.execute(model.probed_select(names, probe), {"ids": chunk}).all()
                written = self._written(dialect, probed, probed_rows[0][0])
                rows: Sequence[Any] = [row[1:] for row in probed_rows if row[1] is not None]
                if written:
                    self._invalidate_tables(written)
                    dropped = True
                    data = self._data.setdefault(cls, {})
                    missing_ids = self._missing.setdefault(cls, set())
            else:
                rows = self.session.execute(statement, {"ids": chunk}).all()
            self.queries += 1
            if start == 0:
                _watch_connection(self, self.session.connection(bind_arguments={"mapper": model.mapper}))
            found = set()
            for row in rows:
                id_ = row[0]
                found.add(id_)
                record = data.get(id_)
                if record is None:
                    record = data[id_] = {}
                record.update(zip(names, row[1:]))
            missing_ids.update(id_ for id_ in chunk if id_ not in found)
        return dropped

    def __contains__(self, item: Tuple[type, Any, str]) -> bool:
        """``(Model, id, field) in cache``: whether the value is loaded (no SQL)."""
        cls, id_, field = item
        return field in self._data.get(cls, {}).get(id_, ())

    # -- invalidation ------------------------------------------------------------------------

    def invalidate(self, cls: Optional[type] = None, id: Any = None) -> None:
        """Forget record ``id`` of ``cls`` (every record when ``id`` is None; everything when
        ``cls`` is None). Classes sharing tables through inheritance are forgotten together."""
        if cls is None:
            self.clear()
            return
        base: Mapper[Any] = inspect(cls).base_mapper
        for known in [c for c in self._data.keys() | self._missing.keys() if inspect(c).base_mapper is base]:
            if id is None:
                self._data.pop(known, None)
                self._missing.pop(known, None)
                self._groups.pop(known, None)
            else:
                self._data.get(known, {}).pop(id, None)
                self._missing.get(known, set()).discard(id)

    def _invalidate_tables(self, tables: Set[str]) -> None:
        for cls in list(self._data.keys() | self._missing.keys()):
            if any(table.name in tables for table in inspect(cls).tables):  # type: ignore[var-annotated]
                self.invalidate(cls)

    def clear(self) -> None:
        """Forget everything (the end of the unit of work)."""
        self._counters.clear()
        self._data.clear()
        self._missing.clear()
        self._groups.clear()


class AsyncRecordCache:
    """The record cache of an AsyncSession: ``RecordCache``'s methods, awaited. The work is
    done by the ``RecordCache`` of the Session it wraps (``records``), through the greenlet
    bridge; a loaded value is returned without it (no I/O).

    Example::

        records = RecordCache.of(async_session)
        await records.prefetch(User, ids, ["name", "email"])    # one SELECT
        [await records.get(User, uid, "name") for uid in ids]   # no SQL
    """

    __slots__ = ("records",)

    def __init__(self, records: RecordCache) -> None:
        self.records = records

    @property
    def queries(self) -> int:
        """SELECT statements this cache issued."""
        return self.records.queries

    async def prefetch(self, cls: type, ids: Iterable[Any], fields: Optional[Iterable[str]] = None) -> None:
        """``RecordCache.prefetch``, awaited."""
        await run(self.records.prefetch, cls, ids, fields)

    async def get(self, cls: type, id: Any, field: str) -> Any:
        """``RecordCache.get``, awaited."""
        records = self.records
        if records.session._is_clean():  # nothing to flush: a loaded value needs no I/O
            value = records.loaded(cls, id, field)
            if value is not MISS:
                return value
        return await run(records.get, cls, id, field)

    async def read(self, cls: type, ids: Sequence[Any], fields: Iterable[str]) -> List[Dict[str, Any]]:
        """``RecordCache.read``, awaited."""
        return await run(self.records.read, cls, ids, fields)

    def __contains__(self, item: Tuple[type, Any, str]) -> bool:
        return item in self.records

    def invalidate(self, cls: Optional[type] = None, id: Any = None) -> None:
        """``RecordCache.invalidate`` (no I/O)."""
        self.records.invalidate(cls, id)

    def clear(self) -> None:
        self.records.clear()


# -- session events: one set of listeners on Session serves every record cache -----------------

def _install_listeners() -> None:
    listen_once(Session, (
        ("after_flush", _after_flush),
        ("do_orm_execute", _do_orm_execute),
        ("after_commit", _end_of_transaction),
        ("after_rollback", _end_of_transaction),
        # close() (and a rollback with no SQL to undo) end the transaction without either event:
        # the next transaction must read what others committed meanwhile
        ("after_transaction_end", _after_transaction_end),
    ))


def _after_flush(session: Session, flush_context: Any) -> None:
    cache = session.info.get(_INFO_KEY)
    if cache is None or not (cache._data or cache._missing):
        return
    for obj in changed_instances(session):
        state = inspect(obj)
        try:
            mapper_pk = state.mapper.primary_key_from_instance(obj)
        except Exception:  # noqa: BLE001 - an object without a usable key: forget its model
            cache.invalidate(type(obj))
            continue
        if len(mapper_pk) == 1:
            cache.invalidate(type(obj), mapper_pk[0])
        else:
            cache.invalidate(type(obj))


def _do_orm_execute(orm_execute_state: Any) -> None:
    cache = orm_execute_state.session.info.get(_INFO_KEY)
    if cache is None:
        return
    tables = statement_tables(orm_execute_state)
    if tables is ALL_TABLES:
        cache.clear()
    elif tables:
        cache._invalidate_tables(tables)


def _end_of_transaction(session: Session) -> None:
    cache = session.info.get(_INFO_KEY)
    if cache is not None:
        cache.clear()


# -- writes on the session's connection that bypass the session (Core, text(), driver SQL) ------

#: ``Connection.info`` key: the record caches whose session reads on that DBAPI connection
_CONNECTION_KEY = "ormcache.sqlalchemy.records.caches"
#: engines whose statements are watched (once each)
_watched_engines: "weakref.WeakSet[Engine]" = weakref.WeakSet()
#: first words of statements that change no table
_CONTROL = frozenset({"begin", "start", "commit", "end", "rollback", "savepoint", "release"})


def _watch_connection(cache: RecordCache, connection: Connection) -> None:
    """Have what is written on ``connection`` outside of the session's ORM events (Core on
    ``session.connection()``, ``text()``, ``exec_driver_sql()``) drop what ``cache`` holds of
    the tables written, so its transaction reads its own writes."""
    caches = connection.info.get(_CONNECTION_KEY)
    if caches is None:
        caches = connection.info[_CONNECTION_KEY] = weakref.WeakSet()
    caches.add(cache)
    engine = connection.engine
    if engine not in _watched_engines:
        _watched_engines.add(engine)
        event.listen(engine, "after_cursor_execute", _after_cursor_execute)


def _written_tables(statement: str, context: Any) -> AbstractSet[str]:
    """The tables a statement may have written: its table for compiled DML, nothing for a
    compiled read or transaction control, ``ALL_TABLES`` for SQL text that is not provably a
    read."""
    compiled = getattr(context, "compiled", None)
    if compiled is not None:
        if context.isinsert or context.isupdate or context.isdelete:
            name = getattr(getattr(compiled.statement, "table", None), "name", None)
            return ALL_TABLES if name is None else {name}
        if not isinstance(compiled.statement, TextClause):
            return frozenset()  # a select(), a savepoint clause, DDL
    words = statement.lstrip().split(None, 1)
    if not words or words[0].lower() in _CONTROL or is_single_read(statement):
        return frozenset()
    return ALL_TABLES


def _after_cursor_execute(connection: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                          executemany: bool) -> None:
    try:
        caches = connection.info.get(_CONNECTION_KEY)
    except Exception:  # noqa: BLE001 - an invalidated connection: nothing cached on it
        return
    if not caches:
        return
    # a flush's own statements: after_flush drops exactly the records they wrote
    holding = [c for c in caches if (c._data or c._missing) and not c.session._flushing]
    if not holding:
        return
    tables = _written_tables(statement, context)
    for cache in holding:
        if tables is ALL_TABLES:  # (empty: tested first)
            cache.clear()
        elif tables:
            cache._invalidate_tables(set(tables))


def _after_transaction_end(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        _end_of_transaction(session)
