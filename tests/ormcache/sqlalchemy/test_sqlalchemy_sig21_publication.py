"""What one SQLAlchemy commit publishes (issue #21 item 1, "one publication path per commit"):
the connection's COMMIT event publishes the commit's invalidations, once (one bump per commit);
the session's ``after_commit`` only flushes what else the unit of work invalidated through the
registry (Odoo's ``signal_changes()`` at the end of a unit of work), which no COMMIT event
sees. These pin both, whichever path a later change keeps."""
import uuid

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

from ormcache.registry import Registry
from ormcache.signaling import LocalSignaling
from ormcache.sqlalchemy import OrmCache, orm_cached
from support.sqla import Base, User


class App:
    def __init__(self, orm_cache, session):
        self.orm_cache, self.session = orm_cache, session

    @orm_cached(policy="on-table-change:users")
    @property
    def names(self):
        return tuple(self.session.scalars(select(User.name).order_by(User.id)))


class CountingSignaling(LocalSignaling):
    """LocalSignaling that notes every bump (one publication each)."""

    def __init__(self):
        super().__init__()
        self.bumps = []

    def bump(self, db_name, names):
        names = list(names)
        self.bumps.append(names)
        super().bump(db_name, names)


@pytest.fixture
def app(tmp_path):
    registry = Registry(f"sig21-publication-{uuid.uuid4().hex[:10]}")
    registry.signaling = backend = CountingSignaling()
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    Base.metadata.create_all(engine)
    factory = sessionmaker(engine)
    cache = OrmCache(registry, Base.metadata)
    cache.watch(factory)
    cache.register(App)
    with factory() as session:
        session.add(User(id=1, name="a"))
        session.commit()
    try:
        yield factory, cache, backend
    finally:
        cache.close()
        engine.dispose()
        Registry.delete(registry.db_name)


def test_a_commit_is_published_once(app):
    factory, cache, backend = app
    for round_ in range(3):
        with factory() as session:
            assert App(cache, session).names  # cached
        backend.bumps.clear()
        with factory() as session:
            session.get(User, 1).name = f"b{round_}"
            session.commit()
        assert backend.bumps == [[cache.cache_name]]
        with factory() as session:
            assert App(cache, session).names == (f"b{round_}",)


def test_what_the_unit_of_work_invalidated_through_the_registry_is_published_at_commit(app):
    factory, cache, backend = app
    with factory() as session:
        session.execute(select(User.id)).all()  # a transaction, no write: no COMMIT publishes
        backend.bumps.clear()
        cache.registry.clear_cache("default")
        session.commit()
    assert backend.bumps == [["default"]]
