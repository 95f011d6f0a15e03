"""Every change is seen: text() that may write, association tables of relationships, callable
policies shown the old and the new state, full-table caches per mapper (inheritance)."""
from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import Column, ForeignKey, String, Table, select, text, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ormcache.sqlalchemy import FullTableCache, orm_cached
from ormcache.sqlalchemy import _changes
from support.sqla import cache_watching, engine_url, make_engine

CALLS: Counter = Counter()


class ChangesBase(DeclarativeBase):
    pass


member_groups = Table(
    "member_groups", ChangesBase.metadata,
    Column("member_id", ForeignKey("members.id"), primary_key=True),
    Column("group_id", ForeignKey("groups.id"), primary_key=True),
)


class Group(ChangesBase):
    __tablename__ = "groups"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class Member(ChangesBase):
    __tablename__ = "members"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    role: Mapped[str] = mapped_column(String(20), default="user")
    groups = relationship(Group, secondary=member_groups, backref="members")


# single-table inheritance
class Animal(FullTableCache, ChangesBase):
    __tablename__ = "animals"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(50))
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "animal"}


class Dog(Animal):
    __mapper_args__ = {"polymorphic_identity": "dog"}


class Cat(Animal):
    __mapper_args__ = {"polymorphic_identity": "cat"}


# joined inheritance
class Vehicle(FullTableCache, ChangesBase):
    __tablename__ = "vehicles"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(50))
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "vehicle"}


class Car(Vehicle):
    __tablename__ = "cars"
    id: Mapped[int] = mapped_column(ForeignKey("vehicles.id"), primary_key=True)
    doors: Mapped[int] = mapped_column(default=4)
    __mapper_args__ = {"polymorphic_identity": "car"}


class Bike(Vehicle):
    __tablename__ = "bikes"
    id: Mapped[int] = mapped_column(ForeignKey("vehicles.id"), primary_key=True)
    gears: Mapped[int] = mapped_column(default=1)
    __mapper_args__ = {"polymorphic_identity": "bike"}


def is_admin(obj) -> bool:
    return isinstance(obj, Member) and obj.role == "admin"


class ChangesApp:
    def __init__(self, orm_cache, session):
        self.orm_cache, self.session = orm_cache, session

    @orm_cached(policy="on-table-change:member_groups")
    @property
    def memberships(self):
        CALLS["memberships"] += 1
        rows = self.session.execute(select(member_groups.c.member_id, member_groups.c.group_id)
                                    .order_by(member_groups.c.member_id, member_groups.c.group_id))
        return tuple(tuple(row) for row in rows)

    @orm_cached(policy=is_admin)
    @property
    def admins(self):
        CALLS["admins"] += 1
        return select(Member.name).where(Member.role == "admin").order_by(Member.id)

    @orm_cached(policy="on-table-change:members")
    @property
    def names(self):
        CALLS["names"] += 1
        return select(Member.name).order_by(Member.id)


@pytest.fixture(params=["sqlite", "postgresql"])
def kind(request):
    return request.param


@pytest.fixture
def engine(request, tmp_path, kind):
    engine = make_engine(kind, engine_url(request, tmp_path, kind))
    ChangesBase.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def Session(engine):
    with cache_watching(engine, ChangesBase.metadata, ChangesApp) as (cache, factory):
        factory.orm_cache = cache
        CALLS.clear()
        with factory() as session:
            session.add_all([Group(id=1, name="staff"), Group(id=2, name="ops")])
            session.add_all([Member(id=1, name="ann", role="admin"), Member(id=2, name="bob")])
            session.commit()
        yield factory


def app(session, Session):
    return ChangesApp(Session.orm_cache, session)


# -- text() ------------------------------------------------------------------------------------

READS = [
    "SELECT 1", "SELECT 1;  ", "select count(*) from members -- UPDATE members SET name = 'x'",
    "SELECT 'UPDATE members' AS s", "SELECT /* DELETE FROM members */ 1", "EXPLAIN SELECT 1",
    "WITH x AS (SELECT id FROM members) SELECT count(*) FROM x", "VALUES (1), (2)",
    "SELECT name FROM members WHERE id IN (1, 2) AND name = :name", "SELECT $x$; DELETE$x$",
    "SELECT E'\\'; DELETE FROM members'",
]
WRITES = [
    "SELECT 1; UPDATE members SET name = 'x'", "EXPLAIN ANALYZE UPDATE members SET name = 'x'",
    "WITH x AS (UPDATE members SET name = 'x' RETURNING id) SELECT count(*) FROM x",
    "SELECT 1 /* ; */; DELETE FROM members", "SELECT 'it''s'; DELETE FROM members",
    "SELECT $$;$$; DELETE FROM members", "SELECT '\\'; DELETE FROM members; --'",
    "SELECT 1 /* /* */ ; DELETE FROM members */", "SELECT nextval('s')", "SELECT my_function()",
    "SELECT public.f(1)", 'SELECT "f"(1)', "SELECT * INTO copy FROM members",
    "SELECT id FROM members FOR UPDATE", "SELECT 'unterminated", "SELECT 1 /* unterminated",
    "/* SELECT */ DELETE FROM members", "-- SELECT\nDELETE FROM members", "PRAGMA user_version = 5",
    "COMMIT", "", "   ", "SET search_path TO evil", "CALL p()", "DO $$ BEGIN END $$",
]


@pytest.mark.parametrize("sql", READS)
def test_text_that_is_one_read(sql):
    assert _changes.is_single_read(sql) is True


@pytest.mark.parametrize("sql", WRITES)
def test_text_that_may_write(sql):
    assert _changes.is_single_read(sql) is False


@pytest.mark.parametrize("sql", [
    "SELECT 1; UPDATE members SET name = 'x'",
    "EXPLAIN ANALYZE UPDATE members SET name = 'x'",
    "WITH x AS (UPDATE members SET name = 'x' RETURNING id) SELECT count(*) FROM x",
])
def test_text_writing_like_a_read_invalidates_on_postgresql(pg_dsn, sql):
    engine = make_engine("postgresql", pg_dsn)
    ChangesBase.metadata.create_all(engine)
    try:
        with cache_watching(engine, ChangesBase.metadata, ChangesApp) as (cache, factory):
            with factory() as session:
                session.add_all([Member(id=1, name="ann"), Member(id=2, name="bob")])
                session.commit()
            with factory() as session:
                assert ChangesApp(cache, session).names == ("ann", "bob")
                session.execute(text(sql))
                assert ChangesApp(cache, session).names == ("x", "x")  # this transaction: its own write
                session.commit()
            with factory() as session:
                assert ChangesApp(cache, session).names == ("x", "x")  # and everyone after the commit
    finally:
        engine.dispose()


def test_text_reads_keep_the_cache(Session):
    with Session() as session:
        assert app(session, Session).names == ("ann", "bob")
        for sql in ["SELECT name FROM members WHERE id IN (1, 2)", "SELECT 'UPDATE members'",
                    "SELECT count(*) FROM members -- UPDATE"]:
            session.execute(text(sql))
        session.commit()
        assert app(session, Session).names == ("ann", "bob")
    assert CALLS["names"] == 1


# -- association tables --------------------------------------------------------------------------

def test_many_to_many_append_and_remove_invalidate_the_association_table(Session):
    with Session() as session:
        assert app(session, Session).memberships == ()
    with Session() as session:
        bob = session.get(Member, 2)
        bob.groups.append(session.get(Group, 1))
        session.commit()
    with Session() as session:
        assert app(session, Session).memberships == ((2, 1),)
    with Session() as session:
        ops = session.get(Group, 2)
        ops.members.append(session.get(Member, 1))  # through the backref
        session.commit()
    with Session() as session:
        assert app(session, Session).memberships == ((1, 2), (2, 1))
    with Session() as session:
        bob = session.get(Member, 2)
        bob.groups.remove(session.get(Group, 1))
        session.commit()
    with Session() as session:
        assert app(session, Session).memberships == ((1, 2),)
    with Session() as session:
        session.delete(session.get(Member, 1))  # its association rows go with it
        session.commit()
    with Session() as session:
        assert app(session, Session).memberships == ()


def test_new_object_with_a_collection_invalidates_the_association_table(Session):
    with Session() as session:
        assert app(session, Session).memberships == ()
        session.add(Member(id=3, name="cy", groups=[session.get(Group, 2)]))
        session.flush()
        assert app(session, Session).memberships == ((3, 2),)  # its own write, this transaction
        session.commit()
    with Session() as session:
        assert app(session, Session).memberships == ((3, 2),)


# -- callable policies: old and new state ----------------------------------------------------------

def test_demoting_an_admin_invalidates_admins(Session):
    with Session() as session:
        assert app(session, Session).admins == ("ann",)
    with Session() as session:
        session.get(Member, 1).role = "user"  # was an admin: the policy sees it as loaded too
        session.commit()
    with Session() as session:
        assert app(session, Session).admins == ()
    assert CALLS["admins"] == 2


def test_callable_policy_sees_an_isinstance_view_of_the_old_state(Session):
    seen = []

    def policy(obj):
        seen.append((isinstance(obj, Member), obj.role, obj.name))
        return False

    from ormcache.sqlalchemy._changes import LoadedState

    with Session() as session:
        member = session.get(Member, 2)
        member.role = "admin"
        view = LoadedState(member)
        assert isinstance(view, Member) and view.role == "user" and view.name == "bob"
        with pytest.raises(AttributeError):
            view.role = "x"
        policy(member)
        policy(view)
    assert seen == [(True, "admin", "bob"), (True, "user", "bob")]


def test_promoting_and_unrelated_changes(Session):
    with Session() as session:
        assert app(session, Session).admins == ("ann",)
    with Session() as session:
        session.get(Member, 2).name = "bobby"  # not an admin before nor after: admins kept
        session.commit()
    with Session() as session:
        assert app(session, Session).admins == ("ann",)
        assert CALLS["admins"] == 1
        session.get(Member, 2).role = "admin"
        session.commit()
    with Session() as session:
        assert app(session, Session).admins == ("ann", "bobby")


# -- full-table caches per mapper ----------------------------------------------------------------

@pytest.fixture
def zoo(Session):
    with Session() as session:
        session.add_all([Dog(id=1, name="rex"), Cat(id=2, name="tom"), Dog(id=3, name="fido"),
                         Car(id=1, name="mini", doors=3), Bike(id=2, name="bmx", gears=1)])
        session.commit()
    return Session


def test_single_table_inheritance_has_a_cache_per_class(zoo):
    with zoo() as session:
        assert sorted(d.name for d in Dog.cached_rows(session)) == ["fido", "rex"]  # Dog loaded first
        cat = Cat.by_id(session, 2)
        assert isinstance(cat, Cat) and cat.name == "tom"
        assert Dog.by_id(session, 2) is None  # a Cat is not a Dog
        rows = Animal.cached_rows(session)
        assert sorted((type(a).__name__, a.name) for a in rows) == [("Cat", "tom"), ("Dog", "fido"), ("Dog", "rex")]
        assert Cat.by_id(session, 1) is None
    with zoo() as session:
        assert Dog.by_id(session, 2) is None
        assert Animal.by_id(session, 2).name == "tom"


def test_single_table_inheritance_changes_reset_every_class(zoo):
    with zoo() as session:
        assert len(Animal.cached_rows(session)) == 3 and len(Dog.cached_rows(session)) == 2
        session.add(Dog(id=4, name="max"))
        session.commit()
    with zoo() as session:
        assert len(Animal.cached_rows(session)) == 4 and len(Dog.cached_rows(session)) == 3
        assert len(Cat.cached_rows(session)) == 1
        session.execute(update(Cat).where(Cat.id == 2).values(name="felix"))
        session.commit()
    with zoo() as session:
        assert Animal.by_id(session, 2).name == "felix" and Cat.by_id(session, 2).name == "felix"


def test_joined_inheritance_has_a_cache_per_class(zoo):
    with zoo() as session:
        assert [c.name for c in Car.cached_rows(session)] == ["mini"]
        assert Bike.by_id(session, 1) is None
        assert Car.by_id(session, 2) is None
        rows = Vehicle.cached_rows(session)
        assert sorted((type(v).__name__, v.name) for v in rows) == [("Bike", "bmx"), ("Car", "mini")]
        assert Vehicle.by_id(session, 1).doors == 3
    with zoo() as session:
        session.get(Car, 1).doors = 5  # a column of the subclass's table only
        session.commit()
    with zoo() as session:
        assert Car.by_id(session, 1).doors == 5
        assert Vehicle.by_id(session, 1).doors == 5
