"""The full-table cache: lookups from memory, fallback and creation, reset on any change."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import delete, insert, update
from sqlalchemy.orm import Session as PlainSession
from sqlalchemy.orm import sessionmaker

from ormcache.registry import Registry
from ormcache.sqlalchemy import OrmCache
from support.sqla import Base, Country, User, db, engine, queries  # noqa: F401


@pytest.fixture
def orm_cache(engine):
    registry = Registry(f"test-{uuid.uuid4().hex[:8]}")
    cache = OrmCache(registry, Base.metadata)
    yield cache
    cache.close()
    Registry.delete(registry.db_name)


@pytest.fixture
def Session(engine, orm_cache):
    factory = sessionmaker(engine)
    orm_cache.watch(factory)
    with factory() as session:
        session.add(Country(code="CH", name="Switzerland"))
        session.flush()
        session.add(Country(code="FR", name="France"))
        session.commit()
    return factory


def test_lookups_answer_from_memory(Session, queries):
    with Session() as session:
        with queries.counting():
            ch = Country.by_key(session, "CH")
        assert queries.count == 1  # the whole table, once
        assert ch.name == "Switzerland" and ch in session
        with queries.counting():
            assert Country.by_id(session, 2).code == "FR"
            assert Country.by_key(session, "CH") is ch
            assert sorted(c.code for c in Country.cached_rows(session)) == ["CH", "FR"]
        assert queries.count == 0
        session.commit()
    with Session() as other:
        with queries.counting():
            fr = Country.by_id(other, 2)
            assert fr in other and fr.name == "France"
        assert queries.count == 0  # another session, same memory


def test_returned_objects_belong_to_the_callers_session(Session):
    with Session() as session:
        mine = session.get(Country, 1)
        mine.name = "changed, not flushed"
        with session.no_autoflush:
            pass
        # the caller's own instance comes back, with its change (flushed first, so the table
        # is changed in this transaction and the lookup asks the database)
        assert Country.by_id(session, 1) is mine
        session.rollback()
        assert Country.by_id(session, 1).name == "Switzerland"


def test_miss_falls_back_to_the_database_and_is_kept(Session, engine, queries):
    with Session() as session:
        assert Country.by_key(session, "CH") is not None
        session.commit()
        # a row written behind the cache's back (no session event): found by the fallback
        with engine.begin() as conn:
            conn.execute(insert(Country.__table__).values(id=3, code="IT", name="Italy"))
        with queries.counting():
            assert Country.by_key(session, "IT").name == "Italy"
        assert queries.count == 1
        with queries.counting():
            assert Country.by_id(session, 3).code == "IT"
            assert Country.by_key(session, "IT").name == "Italy"
        assert queries.count == 0
        assert Country.by_key(session, "XX") is None
        assert Country.by_id(session, 99) is None


def test_create_hook(Session):
    with Session() as session:
        de = Country.by_key(session, "DE", create=True)
        assert de.name == "created DE" and de.id is not None and de in session
        assert Country.by_key(session, "DE") is de
        session.commit()
    with Session() as session:
        assert Country.by_key(session, "DE").name == "created DE"


@pytest.mark.parametrize("change", ["flush", "bulk"])
def test_any_change_resets_the_cache(Session, queries, change):
    with Session() as session:
        assert Country.by_key(session, "CH").name == "Switzerland"
        if change == "flush":
            session.get(Country, 1).name = "Schweiz"
            session.add(Country(id=4, code="AT", name="Austria"))
            session.delete(session.get(Country, 2))
        else:
            session.execute(update(Country).where(Country.id == 1).values(name="Schweiz"))
            session.execute(insert(Country).values(id=4, code="AT", name="Austria"))
            session.execute(delete(Country).where(Country.id == 2))
        # inside the changing transaction: answered by the database, never cached
        assert Country.by_key(session, "CH").name == "Schweiz"
        assert Country.by_key(session, "AT").name == "Austria"
        assert Country.by_key(session, "FR") is None
        session.commit()
        with queries.counting():
            assert Country.by_key(session, "CH").name == "Schweiz"
            assert Country.by_id(session, 4).code == "AT"
            assert Country.by_id(session, 2) is None
        assert queries.selects[0].count("countries") >= 1
        assert len(queries.selects) == 2  # the reload, then the fallback for the missing id 2


def test_rollback_drops_rows_seen_in_the_transaction(Session):
    with Session() as session:
        session.add(Country(id=5, code="ES", name="Spain"))
        assert Country.by_key(session, "ES").name == "Spain"
        session.rollback()
        assert Country.by_key(session, "ES") is None
        assert Country.by_key(session, "CH").name == "Switzerland"


def test_changes_to_other_tables_keep_the_cache(Session, queries):
    with Session() as session:
        Country.by_key(session, "CH")
        session.add(User(id=1, name="u"))
        session.commit()
        with queries.counting():
            Country.by_key(session, "CH")
        assert queries.count == 0


def test_unwatched_session_and_missing_hook_get_clear_errors(engine, Session, monkeypatch):
    with PlainSession(engine) as session:
        with pytest.raises(RuntimeError, match="not watched by an OrmCache"):
            Country.by_id(session, 1)
    monkeypatch.delattr(Country, "cache_create")
    with Session() as session:
        with pytest.raises(TypeError, match="define a classmethod cache_create"):
            Country.by_key(session, "ZZ", create=True)


def test_a_miss_right_after_loading_asks_nothing_more(Session, queries):
    with Session() as session:
        with queries.counting():
            assert Country.by_key(session, "XX") is None
            assert Country.by_id(session, 999) is None  # loaded earlier: asks the database
        assert queries.count == 2


def test_instances_expired_by_a_commit_are_refreshed_from_memory(Session, queries):
    with Session() as session:
        ch = Country.by_key(session, "CH")
        session.commit()  # expires ch
        with queries.counting():
            assert Country.by_key(session, "CH") is ch
            assert ch.name == "Switzerland"
        assert queries.count == 0


def test_text_sql_through_the_session_resets_the_cache(Session):
    from sqlalchemy import text

    with Session() as session:
        assert Country.by_key(session, "CH").name == "Switzerland"
        session.execute(text("UPDATE countries SET name = 'Suisse' WHERE code = 'CH'"))
        session.commit()
        assert Country.by_key(session, "CH").name == "Suisse"
