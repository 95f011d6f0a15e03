"""Threads of one process: readers never get a value older than the last commit they know of,
while a writer keeps changing the table (orm_cached and the full-table cache)."""
from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy.orm import sessionmaker

from ormcache.registry import Registry
from ormcache.sqlalchemy import OrmCache
from support.sqla import Base, Country, User, db, engine  # noqa: F401
from support.sqla_stale import StaleApp  # its version: the name of user 1, as an int

ROUNDS = 60
READERS = 3


@pytest.mark.timeout(120)
def test_readers_never_see_a_value_older_than_the_last_commit(engine):
    registry = Registry(f"test-{uuid.uuid4().hex[:8]}")
    orm_cache = OrmCache(registry, Base.metadata)
    factory = sessionmaker(engine)
    orm_cache.watch(factory)
    orm_cache.register(StaleApp)
    with factory() as session:
        session.add(User(id=1, name="0"))
        session.add(Country(id=1, code="CH", name="0"))
        session.commit()
    committed = [0]
    done = threading.Event()
    failures = []
    reads = [0]

    def writer():
        try:
            for i in range(1, ROUNDS + 1):
                with factory() as session:
                    session.get(User, 1).name = str(i)
                    session.get(Country, 1).name = str(i)
                    session.commit()
                committed[0] = i  # known to readers only once commit() returned
                time.sleep(0.001)
        except Exception as exc:  # noqa: BLE001
            failures.append(f"writer: {exc!r}")
        finally:
            done.set()

    def reader():
        try:
            while not done.is_set():
                floor = committed[0]
                with factory() as session:
                    version = StaleApp(orm_cache, session).version
                    country = int(Country.by_key(session, "CH").name)
                    session.commit()
                reads[0] += 1
                if version < floor or country < floor:
                    failures.append(f"stale read: orm_cached {version}, full-table {country}, committed {floor}")
                    return
        except Exception as exc:  # noqa: BLE001
            failures.append(f"reader: {exc!r}")

    threads = [threading.Thread(target=reader) for _ in range(READERS)] + [threading.Thread(target=writer)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(100)
        assert not any(thread.is_alive() for thread in threads)
        assert failures == []
        assert reads[0] > ROUNDS
        with factory() as session:
            assert StaleApp(orm_cache, session).version == ROUNDS
    finally:
        done.set()
        orm_cache.close()
        Registry.delete(registry.db_name)
