"""What a session changed: the instances of a flush and the tables of a bulk statement."""
from __future__ import annotations

from itertools import chain
from typing import Any, Dict, Iterator, Set

from sqlalchemy import inspect
from sqlalchemy.orm import Session

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


def statement_tables(orm_execute_state: Any) -> Set[str]:
    """Names of the tables an insert/update/delete statement writes; empty for a SELECT."""
    if not (orm_execute_state.is_update or orm_execute_state.is_delete or orm_execute_state.is_insert):
        return set()
    tables = set()
    table = getattr(orm_execute_state.statement, "table", None)
    name = getattr(table, "name", None)
    if name is not None:
        tables.add(name)
    for mapper in orm_execute_state.all_mappers:
        tables.update(t.name for t in mapper.tables)
    return tables
