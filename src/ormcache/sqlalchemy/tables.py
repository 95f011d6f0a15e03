"""``FullTableCache``: small reference tables held whole in memory.

Example::

    class Country(FullTableCache, Base):
        __tablename__ = "countries"
        __cache_key__ = "code"                        # the column by_key looks up
        id: Mapped[int] = mapped_column(primary_key=True)
        code: Mapped[str] = mapped_column(unique=True)

        @classmethod
        def cache_create(cls, session, key):           # optional: by_key(..., create=True)
            return cls(code=key)
    Country.by_id(session, 3), Country.by_key(session, "CH")
    await Country.by_id(async_session, 3)               # the same with an AsyncSession, awaited

Each mapped class has a cache of its own, loaded with its polymorphic filter: with single-table or
joined inheritance ``Dog.by_id`` never returns a Cat, and ``Animal.cached_rows`` returns every
animal whatever class was loaded first. The first lookup loads the whole table in one SELECT into the registry cache of the ``OrmCache``
watching the session; later lookups answer from memory and return instances merged into the
caller's session (the caller's own instance when the session already has that row). A lookup
that misses asks the database (a row added since the load) and keeps what it finds. Any insert,
update or delete of the table (flushed or bulk) resets the cache here at once and, when the
transaction commits, in the other processes through the registry's signaling. While a transaction
has changed the table, its lookups go to the database: uncommitted rows are never cached.
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Optional, Tuple, Union

from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ._bridge import is_async, run, sync_session
from ._changes import FULL_TABLE_MODELS
from ._session import INTERNAL_KEY, OWNER_KEY, begin, table_key

__all__ = ["FullTableCache"]


class _Snapshot:
    """The rows of one table: detached instances by primary key, and key -> primary key."""

    __slots__ = ("by_id", "by_key", "loaded")

    def __init__(self) -> None:
        self.by_id: Dict[Any, Any] = {}
        self.by_key: Dict[Any, Any] = {}
        self.loaded = False


def _orm_cache(session: Session) -> Any:
    begin(session)  # a watching OrmCache registers itself and checks signaling
    cache = session.info.get(OWNER_KEY)
    if cache is None:
        raise RuntimeError("FullTableCache: this session is not watched by an OrmCache; call "
                           "orm_cache.watch(<sessionmaker or Session class>) at start-up")
    return cache


class FullTableCache:
    """Mixin of a mapped class whose whole table is cached in memory."""

    #: column (attribute name) ``by_key`` looks up; None: by_key is not available.
    __cache_key__: ClassVar[Optional[str]] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        mapper = inspect(cls, raiseerr=False)
        if mapper is None or getattr(cls, "__table__", None) is None:
            return  # a mixin or an abstract class: nothing mapped yet
        # a change of any table of this class resets its cache and those of the cached classes
        # it inherits from (their rows include this class's, with the polymorphic filter)
        owners = [base for base in cls.__mro__ if isinstance(base, type) and issubclass(base, FullTableCache)
                  and base is not FullTableCache and inspect(base, raiseerr=False) is not None]
        for table in mapper.tables:
            FULL_TABLE_MODELS.setdefault(table.name, set()).update(owners)

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def _detached(cls, session: Session, where: Any = None) -> List[Any]:
        """Instances of ``cls`` loaded on the caller's connection, detached from any session."""
        connection = session.connection(bind_arguments={"mapper": inspect(cls)})
        with Session(bind=connection, expire_on_commit=False, info={INTERNAL_KEY: True}) as loader:
            statement = select(cls) if where is None else select(cls).where(where)
            rows = list(loader.scalars(statement))
            loader.expunge_all()
        return rows

    @classmethod
    def _add(cls, snapshot: _Snapshot, obj: Any) -> None:
        mapper = inspect(cls)
        id_ = mapper.primary_key_from_instance(obj)
        id_ = id_[0] if len(id_) == 1 else tuple(id_)
        snapshot.by_id[id_] = obj
        if cls.__cache_key__ is not None:
            snapshot.by_key[getattr(obj, cls.__cache_key__)] = id_

    @classmethod
    def _snapshot(cls, session: Session) -> Tuple[Optional[_Snapshot], bool, bool]:
        """The cached rows, loaded if needed; whether they were loaded by this call; whether rows
        found later may be added to them. None while this transaction has changed the table."""
        cache = _orm_cache(session)
        if not session._flushing:
            session.flush()  # our own pending writes reset the cache before we read it
        key = table_key(cls)
        txn = cache.transaction(session)
        if key in txn.keys:
            return None, False, False
        mine = txn.find(key)  # loaded by this transaction for itself
        if mine is not None:
            return mine, False, True
        # taken before loading: a reset meanwhile detaches it, so old rows are never kept
        shared = cache.lru.get(key)
        if shared is None:
            shared = cache.lru.setdefault(key, _Snapshot())
        if shared.loaded:
            return shared, False, cache.may_store(txn, key)
        snapshot = _Snapshot()
        for obj in cls._detached(session):
            cls._add(snapshot, obj)
        snapshot.loaded = True
        if not cache.may_store(txn, key):  # our snapshot may predate an invalidation
            return txn.put(key, snapshot), True, True
        if not shared.loaded:
            shared.by_id, shared.by_key = snapshot.by_id, snapshot.by_key
            shared.loaded = True
        return shared, True, True

    @staticmethod
    def _attach(session: Session, obj: Any) -> Any:
        existing = session.identity_map.get(inspect(obj).key)
        if existing is not None:
            state = inspect(existing)
            if state.modified or not state.expired_attributes:
                return existing  # the caller's instance, with whatever it changed in it
            # expired (by a commit): refreshed from memory rather than by a SELECT
        return session.merge(obj, load=False)

    # -- lookups -----------------------------------------------------------------------------

    @classmethod
    def by_id(cls, session: Union[Session, AsyncSession], id: Any) -> Any:
        """The row with primary key ``id`` (an instance in ``session``), or None; awaitable with
        an AsyncSession."""
        if is_async(session):
            return run(cls.by_id, session.sync_session, id)
        snapshot, fresh, addable = cls._snapshot(sync_session(session, f"{cls.__name__}.by_id"))
        if snapshot is None:
            return session.get(cls, id)
        obj = snapshot.by_id.get(id)
        if obj is None:
            if fresh:
                return None  # the table was read just now
            pk = inspect(cls).primary_key[0]
            found = cls._detached(session, pk == id)
            if not found:
                return None
            obj = found[0]
            if addable:
                cls._add(snapshot, obj)
        return cls._attach(session, obj)

    @classmethod
    def by_key(cls, session: Union[Session, AsyncSession], key: Any, create: bool = False) -> Any:
        """The row whose ``__cache_key__`` column equals ``key``, or None; with ``create=True`` a
        missing row is made by ``cls.cache_create(session, key)``, added and flushed (with an
        AsyncSession: awaitable, and ``cache_create`` gets the Session it wraps)."""
        if cls.__cache_key__ is None:
            raise TypeError(f"{cls.__name__}.by_key: set __cache_key__ to the column to look up")
        if is_async(session):
            return run(cls.by_key, session.sync_session, key, create)
        column = getattr(cls, cls.__cache_key__)
        snapshot, fresh, addable = cls._snapshot(sync_session(session, f"{cls.__name__}.by_key"))
        if snapshot is None:
            obj = session.scalars(select(cls).where(column == key)).first()
        else:
            id_ = snapshot.by_key.get(key)
            if id_ is not None:
                return cls._attach(session, snapshot.by_id[id_])
            found = [] if fresh else cls._detached(session, column == key)
            obj = None
            if found:
                if addable:
                    cls._add(snapshot, found[0])
                obj = cls._attach(session, found[0])
        if obj is None and create:
            creator = getattr(cls, "cache_create", None)
            if creator is None:
                raise TypeError(f"{cls.__name__}.by_key(create=True): define a classmethod "
                                "cache_create(cls, session, key) returning the new instance")
            obj = creator(session, key)
            session.add(obj)
            session.flush()
        return obj

    @classmethod
    def cached_rows(cls, session: Union[Session, AsyncSession]) -> Any:
        """Every row, from memory (instances in ``session``); awaitable with an AsyncSession."""
        if is_async(session):
            return run(cls.cached_rows, session.sync_session)
        snapshot, _, _ = cls._snapshot(sync_session(session, f"{cls.__name__}.cached_rows"))
        if snapshot is None:
            return list(session.scalars(select(cls)))
        return [cls._attach(session, obj) for obj in list(snapshot.by_id.values())]
