"""The record cache: prefetch proven by counting SQL statements, invalidation by writes."""
from __future__ import annotations

import pytest
from sqlalchemy import delete, insert, update
from sqlalchemy.orm import Session

from ormcache.sqlalchemy import MissingRecord, RecordCache
from support.sqla import Post, User, add_users, db, engine, queries  # noqa: F401

FIELDS = ["name", "email", "karma"]


@pytest.fixture
def session(engine):
    with Session(engine) as session:
        yield session


def test_prefetch_n_records_m_fields_is_one_query(session, queries):
    ids = add_users(session, 100)
    cache = RecordCache.of(session)
    assert RecordCache.of(session) is cache
    with queries.counting():
        cache.prefetch(User, ids, FIELDS)
        values = [[cache.get(User, i, f) for f in FIELDS] for i in ids]
    assert queries.count == 1
    assert values[41] == ["user42", "u42@example.org", 42]
    # already loaded: prefetching again sends nothing
    with queries.counting():
        cache.prefetch(User, ids, FIELDS)
    assert queries.count == 0


def test_prefetch_loads_only_missing_pairs(session, queries):
    ids = add_users(session, 10)
    cache = RecordCache.of(session)
    cache.prefetch(User, ids[:5], ["name"])
    with queries.counting():
        cache.prefetch(User, ids, ["name", "karma"])
    assert queries.count == 1
    (sql,) = queries.statements
    assert "karma" in sql and "email" not in sql
    assert (User, ids[9], "karma") in cache and (User, ids[0], "email") not in cache


def test_get_miss_loads_the_whole_prefetch_group(session, queries):
    ids = add_users(session, 30)
    cache = RecordCache.of(session)
    cache.prefetch(User, ids, ["name"])
    with queries.counting():
        # a field outside the prefetched ones: one query loads it for all 30 records
        karmas = [cache.get(User, i, "karma") for i in ids]
    assert karmas == ids
    assert queries.count == 1


def test_get_without_prefetch_loads_one_record(session, queries):
    add_users(session, 3)
    cache = RecordCache.of(session)
    with queries.counting():
        assert cache.get(User, 2, "name") == "user2"
        assert cache.get(User, 2, "name") == "user2"
    assert queries.count == 1


def test_read_returns_rows_in_order(session, queries):
    add_users(session, 5)
    cache = RecordCache.of(session)
    with queries.counting():
        rows = cache.read(User, [3, 1], ["name", "karma"])
    assert rows == [{"name": "user3", "karma": 3}, {"name": "user1", "karma": 1}]
    assert queries.count == 1


def test_missing_record_raises_and_is_remembered(session, queries):
    add_users(session, 2)
    cache = RecordCache.of(session)
    cache.prefetch(User, [1, 2, 99], ["name"])
    with queries.counting():
        with pytest.raises(MissingRecord, match="User 99 does not exist"):
            cache.get(User, 99, "name")
    assert queries.count == 0


def test_writes_through_the_session_invalidate_touched_records(session, queries):
    ids = add_users(session, 10)
    cache = RecordCache.of(session)
    cache.prefetch(User, ids, FIELDS)
    user = session.get(User, 3)
    user.name = "renamed"
    # flush-before-read: the unflushed change is flushed, then only record 3 is reloaded
    assert cache.get(User, 3, "name") == "renamed"
    assert (User, 4, "name") in cache
    session.delete(session.get(User, 4))
    session.flush()
    assert (User, 4, "name") not in cache
    with pytest.raises(MissingRecord):
        cache.get(User, 4, "name")
    session.add(User(id=4, name="again"))
    session.flush()
    assert cache.get(User, 4, "name") == "again"


def test_bulk_statements_invalidate_the_model(session, queries):
    ids = add_users(session, 10)
    cache = RecordCache.of(session)
    cache.prefetch(User, ids, FIELDS)
    session.execute(update(User).where(User.id < 4).values(karma=0))
    assert (User, 8, "karma") not in cache
    assert [cache.get(User, i, "karma") for i in ids[:4]] == [0, 0, 0, 4]
    session.execute(delete(User).where(User.id == 10))
    with pytest.raises(MissingRecord):
        cache.get(User, 10, "name")
    cache.prefetch(User, [11], ["name"])
    session.execute(insert(User).values(id=11, name="bulk"))
    assert cache.get(User, 11, "name") == "bulk"
    # writes to another table leave users alone
    cache.prefetch(User, ids[:3], ["name"])
    session.execute(insert(Post).values(id=1, user_id=1, title="t"))
    assert (User, 1, "name") in cache


def test_commit_and_rollback_end_the_cache(session):
    ids = add_users(session, 3)
    cache = RecordCache.of(session)
    cache.prefetch(User, ids, ["name"])
    session.commit()
    assert (User, 1, "name") not in cache
    cache.prefetch(User, ids, ["name"])
    session.get(User, 1).name = "uncommitted"
    assert cache.get(User, 1, "name") == "uncommitted"
    session.rollback()
    assert cache.get(User, 1, "name") == "user1"


def test_explicit_invalidate(session, queries):
    ids = add_users(session, 4)
    cache = RecordCache.of(session)
    cache.prefetch(User, ids, ["name"])
    cache.invalidate(User, 2)
    assert (User, 2, "name") not in cache and (User, 1, "name") in cache
    cache.invalidate(User)
    assert (User, 1, "name") not in cache
    cache.prefetch(User, ids, ["name"])
    cache.invalidate()
    assert (User, 1, "name") not in cache


def test_large_prefetch_is_chunked(session, queries, monkeypatch):
    ids = add_users(session, 25)
    cache = RecordCache.of(session)
    monkeypatch.setattr(cache, "chunk_size", 10)
    with queries.counting():
        cache.prefetch(User, ids, ["name"])
    assert queries.count == 3


def test_bad_input_gets_clear_errors(session):
    cache = RecordCache.of(session)
    with pytest.raises(ValueError, match=r"User has no column attribute \['nope'\]"):
        cache.prefetch(User, [1], ["name", "nope"])
    with pytest.raises(ValueError, match="no column attribute"):
        cache.get(User, 1, "posts")
    with pytest.raises(TypeError, match="is not a mapped class"):
        cache.prefetch(dict, [1], ["name"])


def test_text_sql_that_may_write_clears_the_cache(session):
    from sqlalchemy import text

    ids = add_users(session, 3)
    cache = RecordCache.of(session)
    cache.prefetch(User, ids, ["name"])
    session.execute(text("SELECT 1"))
    assert (User, 1, "name") in cache
    session.execute(text("UPDATE users SET name = 'raw' WHERE id = 1"))
    assert (User, 2, "name") not in cache
    assert cache.get(User, 1, "name") == "raw"
