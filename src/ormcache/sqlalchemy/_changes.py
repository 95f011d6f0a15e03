"""What a session changed: the instances of a flush (with the association tables of their
relationships), the tables of a bulk statement, and whether ``text()`` SQL may write."""
from __future__ import annotations

import re
from itertools import chain
from typing import AbstractSet, Any, Dict, Iterator, List, Optional, Set, cast

from sqlalchemy import inspect
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause

#: first element of every key this package puts in a registry cache (shared with ormcache).
KEY_PREFIX = "ormcache.sqlalchemy"

#: table name -> the model classes whose full-table cache holds rows of it (filled by
#: ``FullTableCache``: a class is listed under its tables and those of its subclasses).
FULL_TABLE_MODELS: Dict[str, Set[type]] = {}

#: table name -> the model classes declared with ``RecordCache.register()``: ``OrmCache.install()``
#: puts capture triggers on their tables too.
RECORD_MODELS: Dict[str, Set[type]] = {}


def changed_instances(session: Session) -> Iterator[Any]:
    """Instances inserted, updated or deleted by the flush in progress (call from after_flush)."""
    return chain(session.new, session.dirty, session.deleted)


def instance_tables(obj: Any) -> Set[str]:
    """Names of the tables an instance is stored in (several with joined inheritance)."""
    return {table.name for table in inspect(obj).mapper.tables}


def association_tables(session: Session, obj: Any) -> Set[str]:
    """Names of the association (``secondary``) tables the flush of ``obj`` writes: those of its
    many-to-many relationships whose collection changed, all of them when it is deleted."""
    state = inspect(obj)
    tables = set()
    deleted = obj in session.deleted
    for relationship in state.mapper.relationships:
        secondary = relationship.secondary
        if secondary is None or relationship.viewonly:
            continue
        if deleted or state.attrs[relationship.key].history.has_changes():
            tables.add(getattr(secondary, "name", None) or str(secondary))
    return tables


class LoadedState:
    """A read-only view of an instance as it was loaded: each attribute changed since shows its
    old value. ``isinstance(view, Model)`` holds, so a callable policy can be shown both the old
    and the new state of an updated object (demoting an admin invalidates ``admins``)."""

    __slots__ = ("_obj", "_attrs")

    def __init__(self, obj: Any) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_attrs", inspect(obj).attrs)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # noqa: D105 - isinstance() looks here
        return type(self._obj)

    def __getattr__(self, name: str) -> Any:
        attr = self._attrs.get(name)
        if attr is not None:
            history = attr.history
            if history.deleted:
                if history.unchanged or len(history.deleted) > 1 or isinstance(attr.value, (list, set)):
                    return [*history.unchanged, *history.deleted]  # a collection as loaded
                return history.deleted[0]
        return getattr(self._obj, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a LoadedState is read-only")

    def __repr__(self) -> str:
        return f"<LoadedState of {self._obj!r}>"


def loaded_state(session: Session, obj: Any) -> Optional[LoadedState]:
    """The view of ``obj`` as loaded, when the flush changes it (None for a new object)."""
    state = inspect(obj)
    if state.key is None or obj in session.new:
        return None
    return LoadedState(obj) if state.modified else None


class _AllTables(frozenset[str]):
    """Every table: what a textual statement that may write can have changed (empty, so test
    it with ``is ALL_TABLES`` first)."""

    def __repr__(self) -> str:
        return "ALL_TABLES"


#: ``statement_tables()`` of a ``text()`` statement that is not a plain read.
ALL_TABLES: AbstractSet[str] = _AllTables()

# -- text(): is it provably one read-only statement? -------------------------------------------

#: first words of a statement that reads (anything else may write)
_READ_STARTS = frozenset({"select", "values", "table", "show", "explain", "with"})
#: words that make a statement starting like a read write (or lock) something
_WRITE_WORDS = frozenset({
    "insert", "update", "delete", "merge", "upsert", "replace", "truncate", "create", "drop",
    "alter", "grant", "revoke", "copy", "call", "do", "into", "lock", "refresh", "reindex",
    "cluster", "vacuum", "comment", "notify", "listen", "prepare", "execute", "set", "reset",
    "discard", "load", "import", "attach", "detach", "pragma",
})
#: words that may precede "(" in a read: SQL keywords and functions known not to write
_SAFE_BEFORE_PAREN = frozenset("""
    select from where and or not in exists any all some as on join using values having by when
    then else case is like ilike similar between over filter within lateral union intersect except
    distinct limit offset fetch with recursive cast array row interval explain table materialized
    count sum min max avg coalesce nullif greatest least lower upper length char_length
    character_length octet_length abs round floor ceil ceiling trunc mod power sqrt exp ln log
    sign trim ltrim rtrim btrim substring substr concat concat_ws replace position strpos left
    right lpad rpad split_part reverse repeat initcap date_trunc date_part extract to_char to_date
    to_timestamp to_number now age array_agg string_agg json_agg jsonb_agg json_build_object
    jsonb_build_object json_build_array jsonb_build_array json_object_agg jsonb_object_agg
    row_number rank dense_rank percent_rank cume_dist lag lead first_value last_value nth_value
    ntile bool_and bool_or every unnest generate_series array_length cardinality ifnull iif
    typeof printf format group_concat total julianday strftime date datetime time timestamp
    varchar char character numeric decimal float real double int integer bigint smallint text
    boolean md5 random
""".split())
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<line_comment>--[^\n]*)
  | (?P<block_comment>/\*)
  | (?P<string>[eE]?')
  | (?P<dollar>\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$)
  | (?P<quoted>"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\])
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<semicolon>;)
  | (?P<paren>\()
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


def _statements(sql: str) -> Optional[List[List[str]]]:
    """The statements of ``sql`` as lists of tokens (lower-cased words, ``"("``, ``'"'`` for a
    quoted identifier and ``'?'`` for a literal or anything else), comments skipped; None when it cannot be tokenised with
    certainty (an unterminated literal or comment)."""
    statements: List[List[str]] = [[]]
    position, end = 0, len(sql)
    while position < end:
        match = cast("re.Match[str]", _TOKEN.match(sql, position))  # _TOKEN matches anything
        kind = match.lastgroup
        position = match.end()
        if kind in ("space", "line_comment"):
            continue
        if kind == "block_comment":
            close = sql.find("*/", position)
            if close < 0 or "/*" in sql[position:close]:
                return None  # unterminated, or nested (PostgreSQL nests them, SQLite does not)
            position = close + 2
        elif kind == "string":
            backslashes = match.group().lower().startswith("e")
            while True:
                if position >= end:
                    return None
                char = sql[position]
                if backslashes and char == "\\":
                    position += 2
                elif char == "'":
                    if sql.startswith("''", position):
                        position += 2
                    else:
                        position += 1
                        break
                else:
                    position += 1
            statements[-1].append("?")
        elif kind == "dollar":
            close = sql.find(match.group(), position)
            if close < 0:
                return None
            position = close + len(match.group())
            statements[-1].append("?")
        elif kind == "semicolon":
            statements.append([])
        elif kind == "word":
            statements[-1].append(match.group().lower())
        elif kind == "quoted":
            statements[-1].append('"')  # an identifier: never a known function
        elif kind == "paren":
            statements[-1].append("(")
        else:
            statements[-1].append("?")
    return [statement for statement in statements if statement]


def is_single_read(sql: str) -> bool:
    """Whether ``sql`` is provably one read-only statement: a single statement (comments and
    literals understood) starting like a read, with no writing word anywhere (``EXPLAIN ANALYZE
    UPDATE``, ``WITH x AS (UPDATE ...) SELECT``, ``SELECT ... INTO``, ``FOR UPDATE``) and no call
    of a function not known to be read-only. When in doubt, it writes."""
    statements = _statements(sql)
    if statements is None or len(statements) != 1:
        return False
    tokens = statements[0]
    if tokens[0] not in _READ_STARTS:
        return False
    previous = "?"
    for token in tokens:
        if token in _WRITE_WORDS:
            return False
        if token == "(" and previous not in _SAFE_BEFORE_PAREN and previous not in ("(", "?"):
            return False
        previous = token
    return True
def statement_tables(orm_execute_state: Any) -> AbstractSet[str]:
    """Names of the tables an insert/update/delete statement writes; empty for a SELECT;
    ``ALL_TABLES`` for ``text()`` SQL other than a read (its tables cannot be known)."""
    if not (orm_execute_state.is_update or orm_execute_state.is_delete or orm_execute_state.is_insert):
        statement = orm_execute_state.statement
        text = getattr(statement, "element", statement)  # text().columns() wraps its TextClause
        if isinstance(text, TextClause) and not is_single_read(text.text):
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
