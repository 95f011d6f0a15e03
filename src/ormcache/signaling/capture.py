"""Capture changes in the database: triggers that record a signal inside the writer's transaction.

An ORM event sees only the writes that go through the ORM; a trigger sees them all (raw SQL,
``COPY``, cascades, other triggers, functions, migrations, other programs), inside the writer's
own transaction: the signal commits or rolls back with the data. The rows go to the tables the
signaling backend reads (``orm_signaling_<name>``, one row per signal, ``sum(weight)`` is the
version), so ``check_signaling()`` needs nothing new.

- PostgreSQL: one statement-level trigger per table (INSERT, UPDATE, DELETE, and TRUNCATE), and
  a transaction-local marker (``set_config(..., true)``, read by the trigger's ``WHEN``) so that
  a transaction records a name at most once, whatever the number of statements. Rows are inserted, never updated: no hot row for
  writers to queue on.
- SQLite: row-level triggers (SQLite has no statement-level ones nor transaction-local
  variables) adding one to a single counter row per name: SQLite serialises every writer of a
  file anyway, so that row costs no concurrency; the tables live in the application's file.

This module only builds SQL text (no driver, no SQLAlchemy): ``ddl(dialect, names, tables)``
returns the statements, for ``OrmCache.install(bind)`` to run and ``OrmCache.ddl()`` to hand to
a migration tool.

>>> print(ddl("postgresql", ["default"], [(None, "users")])[-1])  # doctest: +ELLIPSIS
CREATE OR REPLACE TRIGGER "orm_signaling_capture_default" BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON "users" ...
"""
from __future__ import annotations

import hashlib
from typing import Iterable, List, Optional, Sequence, Tuple

__all__ = ["EPOCH_TABLE", "TABLE_PREFIX", "CAPTURE_FUNCTION", "TRIGGER_PREFIX", "DIALECTS", "ddl",
           "trigger_name", "capture_function", "marker", "quote", "versions_query", "table_signal", "table_ddl", "pairs_ddl",
           "triggers_query", "missing_pairs", "sqlite_trigger_name"]

#: the epoch's table and the signals' tables: those of the PostgreSQL backend
EPOCH_TABLE = "orm_signaling.epoch"
TABLE_PREFIX = "orm_signaling_"
#: the PostgreSQL trigger function (a dot cannot appear in a signaled name: no collision)
CAPTURE_FUNCTION = "orm_signaling.capture"
TRIGGER_PREFIX = "orm_signaling_capture_"
DIALECTS = ("postgresql", "sqlite")

#: one name, one table: (schema or None, table name)
Table = Tuple[Optional[str], str]


def quote(identifier: str) -> str:
    """``identifier`` as a quoted SQL identifier (PostgreSQL and SQLite alike)."""
    if "\x00" in identifier:
        raise ValueError(f"an SQL identifier cannot contain NUL: {identifier!r}")
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    if "\x00" in text:
        raise ValueError(f"an SQL string cannot contain NUL: {text!r}")
    return "'" + text.replace("'", "''") + "'"


def _qualified(table: Table) -> str:
    schema, name = table
    return name if schema is None else f"{schema}.{name}"


def _quoted(table: Table) -> str:
    schema, name = table
    return quote(name) if schema is None else f"{quote(schema)}.{quote(name)}"


def _short(prefix: str, name: str) -> str:
    """``prefix + name``, or a hash of ``name`` where that is longer than PostgreSQL keeps (63
    bytes: a truncated name could collide with another's)."""
    full = prefix + name
    if len(full.encode("utf-8")) <= 63:
        return full
    return prefix + hashlib.md5(name.encode("utf-8")).hexdigest()


def capture_function(name: str) -> str:
    """The PostgreSQL function recording ``name``."""
    return _short(CAPTURE_FUNCTION + ".", name)


def marker(name: str) -> str:
    """The transaction-local setting saying ``name`` is recorded (a setting's name takes
    letters and digits only: a hash of the name)."""
    return "orm_signaling.n" + hashlib.md5(name.encode("utf-8")).hexdigest()


def trigger_name(name: str) -> str:
    """The trigger recording ``name`` (one per name on each table)."""
    return _short(TRIGGER_PREFIX, name)


def table_signal(table: Table) -> str:
    """The fine-grained signal of ``table``'s changes: ``t.<schema.>name``."""
    return "t." + _qualified(table)


def _check(dialect: str, names: Sequence[str]) -> None:
    if dialect not in DIALECTS:
        raise ValueError(f"capture supports the dialects {list(DIALECTS)}, not {dialect!r}")
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a signaled name is a non-empty string, not {name!r}")


def ddl(dialect: str, names: Sequence[str], tables: Iterable[Table]) -> List[str]:
    """The statements creating, idempotently, the signaling tables of ``names`` and, on each
    of ``tables``, the triggers recording them (``dialect``: ``"postgresql"`` or ``"sqlite"``).
    Run them in one transaction."""
    tables = list(tables)
    return pairs_ddl(dialect, [(table, name) for table in tables for name in names], extra=names)


def table_ddl(dialect: str, tables: Iterable[Table]) -> List[str]:
    """``ddl()`` where each table records its own signal (``table_signal()``): invalidation per
    table."""
    return pairs_ddl(dialect, [(table, table_signal(table)) for table in tables])


def pairs_ddl(dialect: str, pairs: Iterable[Tuple[Table, str]], extra: Sequence[str] = ()) -> List[str]:
    """The statements putting, on each (table, name) of ``pairs``, the trigger recording
    ``name`` (and the signaling tables of those names and of ``extra``)."""
    pairs = sorted(set(pairs), key=lambda pair: (pair[0][0] or "", pair[0][1], pair[1]))
    names = sorted({name for _, name in pairs} | set(extra))
    _check(dialect, names)
    if dialect == "postgresql":
        return _postgres(names, pairs)
    return _sqlite(names, pairs)


def _postgres(names: Sequence[str], pairs: Sequence[Tuple[Table, str]]) -> List[str]:
    statements = [
        # concurrent CREATE ... IF NOT EXISTS can still collide in the catalogs: serialise
        # (the lock the PostgreSQL backend takes when it creates its tables)
        "SELECT pg_advisory_xact_lock(hashtext('orm_signaling'))",
        f"CREATE TABLE IF NOT EXISTS {quote(EPOCH_TABLE)} (token text NOT NULL)",
        f"INSERT INTO {quote(EPOCH_TABLE)} (token) SELECT md5(random()::text || clock_timestamp()::text) "
        f"WHERE NOT EXISTS (SELECT FROM {quote(EPOCH_TABLE)})",
    ]
    for name in names:
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {quote(TABLE_PREFIX + name)} (id bigint GENERATED ALWAYS AS "
            "IDENTITY PRIMARY KEY, date timestamptz NOT NULL DEFAULT now(), weight bigint NOT NULL DEFAULT 1)")
    for name in names:
        # One function per name, its INSERT static (PL/pgSQL keeps its plan). The trigger's WHEN
        # reads the marker, a custom setting local to the transaction (a rolled back savepoint
        # takes it back with its row): once it is set, no function call at all. BEFORE: no event
        # to queue; a statement that fails rolls its signal back with it.
        statements.append(
            f"CREATE OR REPLACE FUNCTION {quote(capture_function(name))}() RETURNS trigger LANGUAGE plpgsql "
            f"AS $body$ BEGIN INSERT INTO {quote(TABLE_PREFIX + name)} (weight) VALUES (1); "
            f"PERFORM set_config({_literal(marker(name))}, '1', true); RETURN NULL; END $body$")
    for table, name in pairs:
        statements.append(
            f"CREATE OR REPLACE TRIGGER {quote(trigger_name(name))} BEFORE INSERT OR UPDATE OR DELETE "
            f"OR TRUNCATE ON {_quoted(table)} FOR EACH STATEMENT "
            f"WHEN (current_setting({_literal(marker(name))}, true) IS DISTINCT FROM '1') "
            f"EXECUTE FUNCTION {quote(capture_function(name))}()")
    return statements


def _sqlite(names: Sequence[str], pairs: Sequence[Tuple[Table, str]]) -> List[str]:
    statements = [
        f"CREATE TABLE IF NOT EXISTS {quote(EPOCH_TABLE)} (token text NOT NULL)",
        f"INSERT INTO {quote(EPOCH_TABLE)} (token) SELECT lower(hex(randomblob(16))) "
        f"WHERE NOT EXISTS (SELECT 1 FROM {quote(EPOCH_TABLE)})",
    ]
    for name in names:
        table = quote(TABLE_PREFIX + name)
        statements.append(f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, "
                          "weight INTEGER NOT NULL DEFAULT 1)")
        # the counter row every trigger adds to (id 0: signals of the backend take ids from 1)
        statements.append(f"INSERT OR IGNORE INTO {table} (id, weight) VALUES (0, 0)")
    for (schema, bare), name in pairs:
        for event in ("INSERT", "UPDATE", "DELETE"):
            trigger = sqlite_trigger_name(name, event, bare)
            trigger = quote(trigger) if schema is None else f"{quote(schema)}.{quote(trigger)}"
            statements.append(
                f"CREATE TRIGGER IF NOT EXISTS {trigger} AFTER {event} ON {quote(bare)} BEGIN "
                f"UPDATE {quote(TABLE_PREFIX + name)} SET weight = weight + 1 WHERE id = 0; END")
    return statements


def sqlite_trigger_name(name: str, event: str, table: str) -> str:
    """The SQLite trigger recording ``name`` for ``event`` on ``table`` (one schema per file:
    the trigger's name holds the table's)."""
    return f"{trigger_name(name)}_{event.lower()}_{table}"


def versions_query(names: Sequence[str]) -> str:
    """One SELECT of the epoch token and the version of each of ``names``, as the backends read
    them, to run on a reader's own connection inside its transaction: its snapshot then covers
    the versions as well as the data (PostgreSQL and SQLite alike)."""
    _check("postgresql", names)
    parts = [f"(SELECT token FROM {quote(EPOCH_TABLE)})"] + [
        f"(SELECT coalesce(sum(weight), 0) FROM {quote(TABLE_PREFIX + name)})" for name in names]
    return "SELECT " + ", ".join(parts)


def triggers_query(dialect: str) -> str:
    """A query of the capture triggers in place: rows (schema, table, trigger name)."""
    _check(dialect, [])
    prefix = _literal(TRIGGER_PREFIX)  # (no percent sign: see the function above)
    if dialect == "postgresql":
        return ("SELECT n.nspname, c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                f"WHERE NOT t.tgisinternal AND starts_with(t.tgname, {prefix})")
    return ("SELECT NULL, tbl_name, name FROM sqlite_master WHERE type = 'trigger' "
            f"AND substr(name, 1, {len(TRIGGER_PREFIX)}) = {prefix}")


def missing_pairs(dialect: str, pairs: Iterable[Tuple[Table, str]],
                  rows: Iterable[Tuple[Optional[str], str, str]]) -> List[Tuple[Table, str]]:
    """The (table, name) of ``pairs`` whose trigger is not among ``rows`` (``triggers_query()``).
    A table given without a schema matches it in any schema."""
    found = set()
    for schema, table, trigger in rows:
        found.add((schema, table, trigger))
        found.add((None, table, trigger))
    missing = []
    for (schema, table), name in pairs:
        trigger = trigger_name(name) if dialect == "postgresql" else sqlite_trigger_name(name, "INSERT", table)
        if (schema, table, trigger) not in found:
            missing.append(((schema, table), name))
    return missing
