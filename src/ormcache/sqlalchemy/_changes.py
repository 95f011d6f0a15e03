"""What a session changed: the instances of a flush and the tables of a bulk statement."""
from __future__ import annotations

from itertools import chain
from typing import Any, Dict, Iterator, Set

from sqlalchemy import inspect
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause

#: first element of every key this package puts in a registry cache (shared with ormcache).
KEY_PREFIX = "ormcache.sqlalchemy"

#: table name -> model class using the full-table cache (filled by ``FullTableCache``).
FULL_TABLE_MODELS: Dict[str, type] = {}


def changed_instances(session: Session) -> Iterator[Any]:
    """Instances inserted, updated or deleted by the flush in progress (call from after_flush)."""
    return chain(session.new, session.dirty, session.deleted)


def instance_tables(obj: Any) -> Set[str]:
    """Names of the tables an instance is stored in (several with joined inheritance)."""
    return {table.name for table in inspect(obj).mapper.tables}


class _AllTables(frozenset):
    """Every table: what a textual statement that may write can have changed (empty, so test
    it with ``is ALL_TABLES`` first)."""

    def __repr__(self) -> str:
        return "ALL_TABLES"


#: ``statement_tables()`` of a ``text()`` statement that is not a plain read.
ALL_TABLES: Set[str] = _AllTables()

_READS = ("select", "show", "explain", "values", "pragma", "set ", "begin", "commit", "rollback",
          "savepoint", "release")


def statement_tables(orm_execute_state: Any) -> Set[str]:
    """Names of the tables an insert/update/delete statement writes; empty for a SELECT;
    ``ALL_TABLES`` for ``text()`` SQL other than a read (its tables cannot be known)."""
    if not (orm_execute_state.is_update or orm_execute_state.is_delete or orm_execute_state.is_insert):
        statement = orm_execute_state.statement
        if isinstance(statement, TextClause) and not statement.text.lstrip().lower().startswith(_READS):
            return ALL_TABLES
        return set()
    tables = set()
    table = getattr(orm_execute_state.statement, "table", None)
    name = getattr(table, "name", None)
    if name is not None:
        tables.add(name)
    for mapper in orm_execute_state.all_mappers:
        tables.update(t.name for t in mapper.tables)
    return tables
