"""orm_cached and request_cached: every policy kind, bulk statements, flush-before-read,
rollback publishes nothing, bad input gets a clear error."""
from __future__ import annotations

import uuid
from collections import Counter

import pytest
from sqlalchemy import ForeignKey, String, delete, insert, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from ormcache.registry import Registry
from ormcache.signaling import LocalSignaling
from ormcache.sqlalchemy import OrmCache, orm_cached, request_cached
from support.sqla import Base, Post, Setting, User, add_users, db, engine, queries  # noqa: F401

CALLS: Counter = Counter()


def is_admin(obj) -> bool:
    return isinstance(obj, User) and obj.role == "admin"


class App:
    """An application object: the owner protocol is ``orm_cache``, ``session`` and ``role``."""

    def __init__(self, orm_cache, session, role=None):
        self.orm_cache = orm_cache
        self.session = session
        self.role = role

    @orm_cached(policy="on-table-change:users")
    @property
    def user_names(self):
        CALLS["user_names"] += 1
        return select(User.name).order_by(User.id)  # a Select: executed, a tuple of names

    @orm_cached(policy="on-table-change:settings")
    def setting(self, key, default=None):
        CALLS["setting", key] += 1
        value = self.session.scalar(select(Setting.value).where(Setting.key == key))
        return default if value is None else value

    @orm_cached(policy=is_admin, by_role=True)
    @property
    def admins(self):
        CALLS["admins", self.role] += 1
        columns = (User.name, User.email) if self.role == "admin" else (User.name,)
        return self.session.execute(select(*columns).where(User.role == "admin").order_by(User.id))

    @orm_cached(policy="on-table-change:users, posts")
    @property
    def posts_per_user(self):
        CALLS["posts_per_user"] += 1
        users = {u.id: u.name for u in self.session.scalars(select(User))}
        counts = Counter(users[p.user_id] for p in self.session.scalars(select(Post)))
        return {name: counts[name] for name in users.values()}

    @orm_cached(policy="on-table-change:users")
    @property
    def legacy_query(self):
        return self.session.query(User.name, User.karma).order_by(User.id)  # a Query: materialised

    @request_cached
    @property
    def first_user(self):
        CALLS["first_user"] += 1
        return self.session.scalars(select(User).order_by(User.id)).first()


class BadApp:
    def __init__(self, orm_cache, session):
        self.orm_cache, self.session = orm_cache, session

    @orm_cached(policy="on-table-change:users")
    @property
    def instance(self):
        return self.session.get(User, 1)

    @orm_cached(policy="on-table-change:users")
    @property
    def instances(self):
        return list(self.session.scalars(select(User)))

    @orm_cached(policy="on-table-change:users")
    @property
    def by_name(self):
        return {u.name: u for u in self.session.scalars(select(User))}

    @orm_cached(policy="on-table-change:users")
    @property
    def entity_select(self):
        return select(User)


    @orm_cached(policy="on-table-change:users")
    @property
    def entity_rows(self):
        return select(User, User.name)


class SpySignaling(LocalSignaling):
    """The in-process backend, recording what is published."""

    def __init__(self):
        super().__init__()
        self.bumped = []

    def bump(self, db_name, names):
        names = list(names)
        self.bumped.append(names)
        super().bump(db_name, names)


@pytest.fixture
def registry():
    name = f"test-{uuid.uuid4().hex[:8]}"
    registry = Registry(name)
    registry.signaling = SpySignaling()
    yield registry
    Registry.delete(name)


@pytest.fixture
def orm_cache(engine, registry):
    cache = OrmCache(registry, Base.metadata)
    cache.register(App, BadApp)
    yield cache
    cache.close()


@pytest.fixture
def Session(engine, orm_cache):
    factory = sessionmaker(engine)
    orm_cache.watch(factory)
    CALLS.clear()
    return factory


@pytest.fixture
def session(Session):
    with Session() as session:
        yield session


def test_table_policy(session, orm_cache):
    add_users(session, 3)
    app = App(orm_cache, session)
    assert app.user_names == ("user1", "user2", "user3")
    assert app.user_names == ("user1", "user2", "user3")
    assert CALLS["user_names"] == 1
    session.add(Setting(key="k", value="v"))  # another table: no invalidation
    session.commit()
    assert app.user_names == ("user1", "user2", "user3") and CALLS["user_names"] == 1
    session.get(User, 2).name = "renamed"
    session.commit()
    assert app.user_names == ("user1", "renamed", "user3") and CALLS["user_names"] == 2
    session.delete(session.get(User, 3))
    session.commit()
    assert app.user_names == ("user1", "renamed") and CALLS["user_names"] == 3


def test_values_are_shared_between_sessions_and_owners(Session, orm_cache):
    with Session() as s1, Session() as s2:
        add_users(s1, 2)
        assert App(orm_cache, s1).user_names == App(orm_cache, s2).user_names
        assert CALLS["user_names"] == 1


def test_method_arguments_are_part_of_the_key(session, orm_cache):
    session.add_all([Setting(key="a", value="1"), Setting(key="b", value="2")])
    session.commit()
    app = App(orm_cache, session)
    assert (app.setting("a"), app.setting("b"), app.setting("c", default="x")) == ("1", "2", "x")
    assert (app.setting("a"), app.setting(key="b"), app.setting("c", default="x")) == ("1", "2", "x")
    assert CALLS["setting", "a"] == 1 and CALLS["setting", "c"] == 1
    session.execute(update(Setting).where(Setting.key == "a").values(value="10"))
    session.commit()
    assert (app.setting("a"), app.setting("b")) == ("10", "2")
    assert CALLS["setting", "a"] == 2 and CALLS["setting", "b"] == 2


def test_callable_policy_and_by_role(session, orm_cache):
    session.add_all([User(id=1, name="ann", email="ann@x", role="admin"), User(id=2, name="bob", email="bob@x")])
    session.commit()
    admin, member = App(orm_cache, session, role="admin"), App(orm_cache, session, role="member")
    assert admin.admins == (("ann", "ann@x"),)
    assert member.admins == ("ann",)
    assert admin.admins == (("ann", "ann@x"),) and member.admins == ("ann",)
    assert CALLS["admins", "admin"] == 1 and CALLS["admins", "member"] == 1
    session.get(User, 2).karma = 5  # not an admin: the policy says the value is still good
    session.commit()
    assert member.admins == ("ann",) and CALLS["admins", "member"] == 1
    session.get(User, 2).role = "admin"  # the policy sees the new state of the object
    session.commit()
    assert member.admins == ("ann", "bob") and admin.admins == (("ann", "ann@x"), ("bob", "bob@x"))
    assert CALLS["admins", "member"] == 2 and CALLS["admins", "admin"] == 2


def test_policy_on_several_tables(session, orm_cache):
    add_users(session, 2)
    app = App(orm_cache, session)
    assert app.posts_per_user == {"user1": 0, "user2": 0}
    session.add(Post(id=1, user_id=2, title="hello"))
    session.commit()
    assert app.posts_per_user == {"user1": 0, "user2": 1}
    assert CALLS["posts_per_user"] == 2


def test_bulk_statements_invalidate(session, orm_cache):
    add_users(session, 3)
    app = App(orm_cache, session)
    member = App(orm_cache, session, role="member")
    assert app.user_names == ("user1", "user2", "user3")
    assert member.admins == ()
    session.execute(update(User).where(User.id == 1).values(name="bulk", role="admin"))
    session.commit()
    assert app.user_names == ("bulk", "user2", "user3")
    assert member.admins == ("bulk",)  # a callable policy is invalidated by any bulk statement
    session.execute(delete(User).where(User.id > 1))
    session.commit()
    assert app.user_names == ("bulk",)
    session.execute(insert(User), [{"id": 7, "name": "seven"}])
    session.commit()
    assert app.user_names == ("bulk", "seven")
    session.execute(update(User.__table__).where(User.__table__.c.id == 7).values(name="core"))
    session.commit()
    assert app.user_names == ("bulk", "core")
    assert CALLS["user_names"] == 5


def test_flush_before_read_and_uncommitted_values_are_not_shared(Session, orm_cache, db):
    with Session() as s1, Session() as s2:
        add_users(s1, 1)
        writer, reader = App(orm_cache, s1), App(orm_cache, s2)
        assert reader.user_names == ("user1",)
        s1.add(User(id=2, name="pending"))  # not flushed
        assert writer.user_names == ("user1", "pending")  # flushed first, then computed
        assert writer.user_names == ("user1", "pending")
        assert CALLS["user_names"] == 2  # kept for this transaction only
        s1.add(User(id=3, name="more"))
        assert writer.user_names == ("user1", "pending", "more")  # a new change: computed again
        assert CALLS["user_names"] == 3
        # another session does not see the uncommitted row, and gets no value built from it
        assert reader.user_names == ("user1",)
        assert CALLS["user_names"] == 4
        s1.commit()
        assert reader.user_names == ("user1", "pending", "more")
        s2.commit()


def test_commit_publishes_rollback_publishes_nothing(session, orm_cache, registry):
    add_users(session, 1)
    app = App(orm_cache, session)
    assert app.user_names == ("user1",)
    registry.signaling.bumped.clear()
    session.add(User(id=2, name="doomed"))
    assert app.user_names == ("user1", "doomed")
    session.rollback()
    assert registry.signaling.bumped == []
    assert registry.cache_invalidated == set()
    assert app.user_names == ("user1",)  # nothing computed from the rolled-back row survives
    session.get(User, 1).name = "kept"
    session.commit()
    assert registry.signaling.bumped == [["default"]]
    assert app.user_names == ("kept",)
    # a commit that changed nothing cached publishes nothing
    session.add(Setting(key="x", value="y"))
    session.commit()
    assert registry.signaling.bumped == [["default"], ["default"]]  # settings has a policy
    registry.signaling.bumped.clear()
    session.add(Post(id=1, user_id=1, title="t"))
    session.commit()
    assert registry.signaling.bumped == [["default"]]  # posts: posts_per_user's policy


def test_close_without_commit_publishes_nothing(Session, orm_cache, registry):
    with Session() as session:
        add_users(session, 1)
        registry.signaling.bumped.clear()
        session.add(User(id=2, name="never"))
        session.flush()
    assert registry.signaling.bumped == []
    with Session() as session:
        assert App(orm_cache, session).user_names == ("user1",)


def test_savepoint_rollback_keeps_the_outer_invalidation(session, orm_cache, registry):
    add_users(session, 1)
    app = App(orm_cache, session)
    assert app.user_names == ("user1",)
    registry.signaling.bumped.clear()
    session.get(User, 1).name = "outer"
    session.flush()
    with session.begin_nested() as savepoint:
        session.add(User(id=2, name="inner"))
        session.flush()
        savepoint.rollback()
    assert app.user_names == ("outer",)
    session.commit()
    assert registry.signaling.bumped == [["default"]]
    assert app.user_names == ("outer",)


def test_other_process_invalidation_clears_at_next_transaction(Session, orm_cache, registry):
    """What another process publishes is applied by check_signaling() when a transaction starts
    (simulated here by bumping the backend's counter as another process would)."""
    with Session() as session:
        add_users(session, 1)
        assert App(orm_cache, session).user_names == ("user1",)
        session.commit()
        registry.signaling.bump(registry.db_name, ["default"])
        assert App(orm_cache, session).user_names == ("user1",)
    assert CALLS["user_names"] == 2


def test_select_results_are_materialised(session, orm_cache):
    add_users(session, 2)
    app = App(orm_cache, session)
    assert isinstance(app.user_names, tuple)
    admin = App(orm_cache, session, role="admin")
    assert admin.admins == () and isinstance(admin.admins, tuple)
    assert app.legacy_query == (("user1", 1), ("user2", 2))
    session.execute(delete(User))
    assert app.legacy_query == () and app.user_names == ()


def test_request_cached(Session, orm_cache, queries):
    with Session() as session:
        add_users(session, 2)
        app = App(orm_cache, session)
        with queries.counting():
            first = app.first_user
            assert app.first_user is first
        assert queries.count == 1 and CALLS["first_user"] == 1
        session.commit()  # end of the unit of work
        assert app.first_user is first  # same session: same identity
        assert CALLS["first_user"] == 2


def test_request_cached_values_are_per_owner(Session, orm_cache):
    class RoleApp(App):
        @request_cached
        def greeting(self, punctuation="!"):
            CALLS["greeting", self.role] += 1
            return f"hello {self.role}{punctuation}"

    with Session() as session:
        user = RoleApp(orm_cache, session, role="user")
        admin = RoleApp(orm_cache, session, role="admin")
        assert user.greeting() == "hello user!" and admin.greeting() == "hello admin!"
        assert user.greeting() == "hello user!" and admin.greeting("?") == "hello admin?"
        assert CALLS["greeting", "user"] == 1 and CALLS["greeting", "admin"] == 2


def test_request_cached_merges_into_the_current_session(Session, orm_cache, queries):
    class RequestApp(App):
        def __init__(self, session):
            super().__init__(orm_cache, session)
            self.request_cache = {}

    with Session() as s1:
        add_users(s1, 1)
        app = RequestApp(s1)
        user = app.first_user
        assert user.name == "user1"
        s1.expunge(user)
        with Session() as s2:
            app.session = s2
            with queries.counting():
                merged = app.first_user
            assert merged in s2 and merged is not user and merged.name == "user1"
            assert queries.count == 0 and CALLS["first_user"] == 1


def test_orm_instances_are_refused(session, orm_cache):
    add_users(session, 1)
    bad = BadApp(orm_cache, session)
    with pytest.raises(TypeError, match=r"BadApp.instance: cannot cache an ORM instance"):
        bad.instance
    with pytest.raises(TypeError, match=r"cannot cache a list holding an ORM instance"):
        bad.instances
    with pytest.raises(TypeError, match=r"cannot cache a dict holding an ORM instance"):
        bad.by_name
    with pytest.raises(TypeError, match=r"cannot cache a tuple holding an ORM instance"):
        bad.entity_select
    with pytest.raises(TypeError, match=r"cannot cache a tuple holding an ORM instance"):
        bad.entity_rows
    for member in (BadApp.instance, BadApp.instances, BadApp.by_name, BadApp.entity_select, BadApp.entity_rows):
        assert not orm_cache.lru.peek(member.key)  # nothing stored (at most an empty entry)


def test_bad_policies_get_clear_errors(registry):
    class Typo:
        @orm_cached(policy="on-table-change:userz")
        def names(self):
            return ()

    cache = OrmCache(registry, Base)
    with pytest.raises(ValueError, match=r"Typo.names: policy 'on-table-change:userz' names unknown table\(s\) \['userz'\]"):
        cache.register(Typo)
    with pytest.raises(ValueError, match="unknown policy 'on-change:users'"):
        orm_cached(policy="on-change:users")(lambda self: 1)
    with pytest.raises(ValueError, match="names no table"):
        orm_cached(policy="on-table-change:")(lambda self: 1)
    with pytest.raises(TypeError, match="policy must be a string or a callable"):
        orm_cached(policy=42)(lambda self: 1)
    with pytest.raises(ValueError, match="has no cache 'nope'"):
        OrmCache(registry, Base, cache="nope")
    with pytest.raises(TypeError, match="metadata must be"):
        OrmCache(registry, object())


def test_unregistered_owner_gets_a_clear_error(session, registry):
    cache = OrmCache(registry, Base)
    with pytest.raises(RuntimeError, match=r"App.user_names is not registered .* orm_cache.register\(App\)"):
        App(cache, session).user_names


def test_invalidate_by_hand(session, orm_cache, registry):
    add_users(session, 1)
    app = App(orm_cache, session)
    assert app.user_names == ("user1",)
    registry.signaling.bumped.clear()
    orm_cache.invalidate(App.user_names)
    assert registry.signaling.bumped == [["default"]]
    assert app.user_names == ("user1",) and CALLS["user_names"] == 2


def test_unreachable_shared_tier_computes_and_commits(engine, registry, caplog):
    cache = OrmCache(registry, Base.metadata, redis_url="redis://127.0.0.1:1/0", secret=b"test secret")
    cache.shared.client.connection_pool.connection_kwargs["socket_connect_timeout"] = 0.5
    cache.register(App)
    factory = sessionmaker(engine)
    cache.watch(factory)
    CALLS.clear()
    try:
        with factory() as session:
            add_users(session, 1)
            app = App(cache, session)
            assert app.user_names == ("user1",) and app.user_names == ("user1",)
            assert CALLS["user_names"] == 2  # nothing trusted without the shared versions
            session.get(User, 1).name = "renamed"
            session.commit()  # committed; the shared invalidation is kept for later
            assert App.user_names.name in cache.shared._backlog
            assert app.user_names == ("renamed",)
        assert "shared tier unreachable" in caplog.text.lower()
    finally:
        cache.close()


def test_arguments_key_binds_calls_like_the_method():
    from ormcache.sqlalchemy.cached import arguments_key

    def method(self, a, b=2, *rest, c, d=4, **extra):
        pass

    key = arguments_key(method)
    assert key(None, 1, c=3) == key(None, a=1, b=2, c=3, d=4) == (1, 2, (), 3, 4, ())
    assert key(None, 1, 2, 9, c=3, z=0) == (1, 2, (9,), 3, 4, (("z", 0),))
    with pytest.raises(TypeError):
        key(None, 1)  # c is missing, as in a real call
    assert arguments_key(lambda self: 1) is None


def test_scoped_session_and_session_class_targets(engine, registry):
    """``owner.session`` may be a scoped_session (called to get the session); watch() accepts
    it, as it accepts a Session subclass."""
    from sqlalchemy.orm import Session as SASession
    from sqlalchemy.orm import scoped_session

    class AppSession(SASession):
        pass

    cache = OrmCache(registry, Base.metadata)
    cache.register(App)
    scoped = scoped_session(sessionmaker(engine, class_=AppSession))
    cache.watch(AppSession)
    CALLS.clear()
    try:
        add_users(scoped(), 1)
        app = App(cache, scoped)
        assert app.user_names == ("user1",) and app.user_names == ("user1",)
        scoped.add(User(id=2, name="two"))
        scoped.commit()
        assert app.user_names == ("user1", "two") and CALLS["user_names"] == 2
    finally:
        scoped.remove()
        cache.close()


def test_joined_inheritance_changes_invalidate_the_base_table(engine, registry):
    class Local(DeclarativeBase):
        pass

    class Person(Local):
        __tablename__ = "people"
        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str] = mapped_column(String(20))
        name: Mapped[str] = mapped_column(String(20))
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "person"}

    class Employee(Person):
        __tablename__ = "employees"
        id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)
        salary: Mapped[int] = mapped_column(default=0)
        __mapper_args__ = {"polymorphic_identity": "employee"}

    class People:
        def __init__(self, orm_cache, session):
            self.orm_cache, self.session = orm_cache, session

        @orm_cached(policy="on-table-change:people")
        @property
        def names(self):
            return select(Person.name).order_by(Person.id)

    Local.metadata.create_all(engine)
    cache = OrmCache(registry, Local.metadata)
    cache.register(People)
    factory = sessionmaker(engine)
    cache.watch(factory)
    try:
        with factory() as session:
            session.add(Employee(id=1, name="eve"))
            session.commit()
            people = People(cache, session)
            assert people.names == ("eve",)
            session.get(Employee, 1).name = "eva"  # an Employee: stored in people and employees
            session.commit()
            assert people.names == ("eva",)
    finally:
        cache.close()
        Local.metadata.drop_all(engine)


def test_commit_survives_a_signaling_outage_and_publishes_later(session, orm_cache, registry, caplog):
    from ormcache.signaling import SignalingUnavailable

    registry.signaling_retry_interval = 0  # retry at once once the backend is back
    add_users(session, 1)
    app = App(orm_cache, session)
    assert app.user_names == ("user1",)
    spy = registry.signaling
    real_bump = spy.bump
    spy.bump = lambda db_name, names: (_ for _ in ()).throw(SignalingUnavailable("backend down"))
    session.get(User, 1).name = "during outage"
    session.commit()  # the database commit stands; the invalidation is kept
    assert "Publishing the invalidations" in caplog.text
    assert app.user_names == ("during outage",)  # this process dropped its value at once
    spy.bump = real_bump
    spy.bumped.clear()
    session.add(Setting(key="k", value="v"))
    session.commit()
    assert spy.bumped and all(names == ["default"] for names in spy.bumped)  # published now
    assert not registry.cache_invalidated


def test_statistics_are_listed_by_ormcache_stats(session, orm_cache, registry):
    from ormcache import stats

    add_users(session, 1)
    app = App(orm_cache, session)
    for _ in range(3):
        app.user_names
    app.setting("a")
    assert app.setting("zz", default=["unhashable"]) == ["unhashable"]
    rows = {row["method"]: row for row in stats(registry)}
    names = rows["App.user_names"]
    assert (names["hit"], names["miss"], names["err"], names["entries"]) == (2, 1, 0, 1)
    assert names["model"] == "ormcache.sqlalchemy" and names["cache"] == "default"
    assert names["gen_time"] > 0 and round(names["ratio"]) == 67
    assert (rows["App.setting"]["miss"], rows["App.setting"]["err"]) == (1, 1)


def test_text_sql_through_the_session(session, orm_cache):
    from sqlalchemy import text

    add_users(session, 1)
    app = App(orm_cache, session)
    assert app.user_names == ("user1",)
    session.execute(text("SELECT name FROM users"))  # a read: nothing invalidated
    session.commit()
    assert app.user_names == ("user1",) and CALLS["user_names"] == 1
    session.execute(text("UPDATE users SET name = 'raw'"))  # which tables? all of them, then
    session.commit()
    assert app.user_names == ("raw",) and CALLS["user_names"] == 2


def test_property_above_orm_cached_says_to_put_orm_cached_outermost(registry):
    class Misordered:
        def __init__(self, session):
            self.session = session

        @property
        @orm_cached(policy="on-table-change:users")
        def names(self):
            return ()

    message = r"orm_cached .*Misordered.names: @property is above @orm_cached; put @orm_cached outermost"
    with pytest.raises(TypeError, match=message):
        OrmCache(registry, Base).register(Misordered)
    with pytest.raises(TypeError, match=message):
        Misordered(None).names
