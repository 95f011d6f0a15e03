"""``OrmCache``: binds cached values to a registry and to the changes sessions make.

Example::

    registry = Registry("shop")
    orm_cache = OrmCache(registry, Base.metadata)   # redis_url="redis://..." adds a shared tier
    orm_cache.watch(SessionFactory)                  # a (async_)sessionmaker, (Async)Session class or session
    orm_cache.register(App)                          # the classes with @orm_cached members

Per session transaction:

- start (root transaction created): ``registry.check_signaling()`` drops what other processes
  invalidated;
- every flush: each inserted, updated or deleted object is shown to every policy; ORM bulk
  ``insert()/update()/delete()`` statements invalidate by table (and every callable policy, as
  there is no object to show it: a miss is better than a stale answer); ``session.execute(text())``
  SQL other than a read invalidates everything (its tables cannot be known). SQL sent on a
  connection directly, bypassing the session, is not seen. Invalidated values are
  dropped from the local tier at once and, until the transaction ends, kept for that transaction
  only, so no other thread or process can see values built from uncommitted rows;
- commit: local values dropped again (another thread may have stored old rows meanwhile), the
  shared tier's versions moved, the registry cache name recorded and ``registry.signal_changes()``
  publishes it to the other processes;
- rollback (or close without commit): local values dropped again, ``registry.reset_changes()``,
  nothing published.
"""
from __future__ import annotations

import itertools
import logging
import weakref
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple, Type, Union

from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session, async_session, async_sessionmaker
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from ormcache.signaling import LocalSignaling, contract
from ormcache.signaling.base import check_key_prefix
from ormcache.statistics import Counter

from ._changes import (ALL_TABLES, FULL_TABLE_MODELS, association_tables, changed_instances, instance_tables,
                       loaded_state, statement_tables)
from ._bridge import Flights, await_, in_greenlet
from ._session import (INTERNAL_KEY, OWNER_KEY, UNCHECKED_KEY, CachedMember, Transaction, begin, default_session,
                       listen_once, table_key)
from . import capture as _capture
from .capture import fully_captured, read_snapshot
from .shared import SharedTier

__all__ = ["OrmCache"]

_logger = logging.getLogger(__name__)

_EVENTS = ("after_transaction_create", "after_begin", "after_flush", "do_orm_execute", "after_commit",
           "after_rollback", "after_transaction_end")

#: ``Connection.info`` key: what the sessions of the connection's open database transaction
#: invalidated, per OrmCache, sent when that transaction really commits.
_UNSENT_KEY = "ormcache.sqlalchemy.unsent"
#: ``Connection.info`` key: what a two-phase transaction prepared (sent after its commit).
_PREPARED_KEY = "ormcache.sqlalchemy.prepared"


def _default_role(owner: Any) -> Any:
    return getattr(owner, "role", None)


class OrmCache:
    """Cached values of one database: a registry cache, policies, optional Redis tier.

    ``cache`` is the registry cache name holding the values (its name is what other processes
    are signalled); ``session(owner)`` and ``role(owner)`` find the session and the role of the
    object a cached member is read on (defaults: ``owner.session``, called if it is not a
    Session, and ``owner.role``). ``redis_url`` adds the shared tier (keys under
    ``redis_prefix``, values serialised with ``serializer``: ``"pickle"``, which needs a
    ``secret``, or ``"msgpack"``; with ``secret`` every value is authenticated with HMAC-SHA256;
    ``redis_timeout``: the deadline of each Redis call, the tier then rests for the registry's
    ``signaling_retry_interval``);
    ``check_signaling=False`` leaves ``registry.check_signaling()`` to the caller.
    """

    def __init__(
        self,
        registry: Any,
        metadata: Any = None,
        *,
        cache: str = "default",
        redis_url: Optional[str] = None,
        redis_prefix: str = "ormcache:{db_name}:orm_cached:",
        serializer: str = "pickle",
        secret: Any = None,
        redis_timeout: float = 0.5,
        session: Callable[[Any], Union[Session, AsyncSession]] = default_session,
        role: Callable[[Any], Any] = _default_role,
        check_signaling: bool = True,
    ) -> None:
        if cache not in registry.caches:
            raise ValueError(f"registry {registry.db_name!r} has no cache {cache!r}; known: {sorted(registry.caches)}")
        if metadata is not None and not isinstance(metadata, MetaData):
            metadata = getattr(metadata, "metadata", None)
            if not isinstance(metadata, MetaData):
                raise TypeError("metadata must be a MetaData or a declarative base with .metadata")
        self.registry = registry
        self.metadata = metadata
        self.cache_name = cache
        self.lru = registry.caches[cache]
        self.shared: Optional[SharedTier] = None
        if redis_url is not None:
            redis_prefix = check_key_prefix(redis_prefix, "redis_prefix")
            self.shared = SharedTier(redis_url, prefix=redis_prefix.format(db_name=registry.db_name),
                                     serializer=serializer, secret=secret, timeout=redis_timeout,
                                     retry_interval=getattr(registry, "signaling_retry_interval", 1.0))
        self.session_of = session
        self.role_of = role
        self.check_signaling = check_signaling
        self._pending_key = ("ormcache.sqlalchemy.pending", id(self))
        #: the invalidation clock: key -> tick of its last invalidation applied in this process
        self._clock = itertools.count(1)
        self._ticks: Dict[Any, int] = {}
        #: orm_cached member -> its statistics (also in ``registry.counters``)
        self._counters: Dict[Any, Any] = {}
        #: orm_cached values being computed by tasks of an event loop (AsyncSession owners)
        self._flights = Flights()
        self._by_table: Dict[str, Set[Any]] = {}
        self._callables: List[Any] = []
        self._tables_of_class: Dict[type, FrozenSet[str]] = {}
        self._watched: List[Any] = []
        self._unvouched_warned = False
        #: the names whose invalidation clears our registry cache (its signaling versions)
        self._signal_names = sorted(name for name, caches in registry.caches_by_key.items() if cache in caches)
        #: True once install() ran, None once the warning that it did not was logged
        self._captured: Optional[bool] = False
        _listen_to_connections()

    def __repr__(self) -> str:
        return f"<OrmCache {self.registry.db_name!r} cache={self.cache_name!r} shared={self.shared!r}>"

    # -- set-up ------------------------------------------------------------------------------

    def register(self, *owners: type) -> None:
        """Register the ``orm_cached`` members of ``owners`` (classes). A policy naming a table
        that ``metadata`` does not know raises ValueError here, at start-up."""
        found: List[Any] = []  # OrmCachedDescriptor members
        for owner in owners:
            for klass in owner.__mro__:
                for value in vars(klass).values():
                    if isinstance(value, property) and isinstance(value.fget, CachedMember):
                        raise TypeError(value.fget.misplaced_property())
                found.extend(v for v in vars(klass).values() if isinstance(v, CachedMember))
        for descriptor in found:
            if descriptor.tables is not None and self.metadata is not None:
                unknown = sorted(set(descriptor.tables) - set(self.metadata.tables))
                if unknown:
                    raise ValueError(
                        f"orm_cached {descriptor.name}: policy {descriptor.policy!r} names unknown "
                        f"table(s) {unknown}; known: {sorted(self.metadata.tables)}"
                    )
        if self._captured is True and self.metadata is None:
            _capture.check_capturable(self, [d for d in found if d not in self._counters])
        for descriptor in found:
            if descriptor in self._counters:
                continue
            counter = self.registry.counters.get(descriptor.key)
            if not isinstance(counter, Counter):
                counter = self.registry.counters[descriptor.key] = Counter(self.cache_name)
            self._counters[descriptor] = counter
            if descriptor.tables is None:
                self._callables.append(descriptor)
            else:
                for table in descriptor.tables:
                    self._by_table.setdefault(table, set()).add(descriptor)

    def watch(self, target: Any) -> Any:
        """Listen to the sessions of ``target`` (a Session or AsyncSession class, a sessionmaker,
        async_sessionmaker, scoped_session or async_scoped_session, or one session); returns
        ``target``. The events of AsyncSessions are those of the Session each one wraps."""
        sync_target = _event_target(target)
        if any(watched is sync_target for watched in self._watched):
            return target
        bind = _bound_engine(sync_target)
        if bind is not None and self._captured is True:
            _capture.check_bind(self, bind)  # raises before anything listens
        for name in _EVENTS:
            event.listen(sync_target, name, getattr(self, "_on_" + name))
        self._watched.append(sync_target)
        if bind is not None:
            _probe(self.registry, bind)
        return target

    def install(self, bind: Any) -> List[Any]:
        """Capture changes in the database of ``bind`` (an Engine or Connection; PostgreSQL or
        SQLite): create, idempotently, the signaling tables and, on every table the registered
        values depend on, triggers that record a signal inside the writer's transaction, so
        that writes made by any path or program invalidate. Raises
        ``SignalingConfigurationError`` when the registry's signaling does not read that
        database. Returns the (schema, table) pairs equipped by this call. See
        ``ormcache.sqlalchemy.capture``."""
        return _capture.install(self, bind, [e for e in map(_bound_engine, self._watched) if e is not None])

    def ddl(self, dialect: Any) -> str:
        """What ``install()`` creates, as SQL text for a migration tool (Alembic's
        ``op.execute``): statements separated by ``;`` (``ddl_statements()``: the list)."""
        return ";\n".join(self.ddl_statements(dialect)) + ";\n"

    def ddl_statements(self, dialect: Any) -> List[str]:
        """``ddl()`` as a list of statements (``dialect``: ``"postgresql"``, ``"sqlite"`` or a
        SQLAlchemy dialect)."""
        return _capture.ddl_statements(self, dialect)

    def close(self) -> None:
        """Stop listening and close the shared tier's connections."""
        for target in self._watched:
            for name in _EVENTS:
                event.remove(target, name, getattr(self, "_on_" + name))
        self._watched.clear()
        _capture.forget(self)  # a closed OrmCache warns no more about record-cache tables
        if self.shared is not None:
            self.shared.close()

    async def aclose(self) -> None:
        """``close()``, and the shared tier's async client of the running event loop (the
        clients of other loops are closed when their loop shuts down)."""
        self.close()
        if self.shared is not None:
            await self.shared.aclose()

    # -- invalidation ------------------------------------------------------------------------

    def pending(self, session: Session) -> Optional[Transaction]:
        """The layer of the current transaction of ``session`` (``.keys``: what it invalidated
        so far), None when it has none."""
        return session.info.get(self._pending_key)

    def transaction(self, session: Session) -> Transaction:
        """The layer of the current transaction of ``session`` (created if needed; first its
        ``check_signaling()``, when that was deferred)."""
        txn = session.info.get(self._pending_key)
        if txn is None and session._transaction is None:
            # a bulk or text() write as the first statement: do_orm_execute runs before the
            # session autobegins; begin now, so the layer holding its keys is the transaction's
            begin(session)
            txn = session.info.get(self._pending_key)
        if txn is None:
            txn = self._deferred(session)
        if txn is None:
            txn = session.info[self._pending_key] = Transaction(next(self._clock), self.registry.generation)
        return txn

    def signaling_version(self) -> Any:
        """The signaling versions this process has caught up with of every name whose
        invalidation clears the registry cache holding the values (None if one is unknown):
        the shared tier stores and finds values under it."""
        registry = self.registry
        version = getattr(registry, "signaling_version", None)
        if version is None:
            return None
        versions = tuple(version(name) for name in self._signal_names)
        return None if None in versions else versions

    def _tier_signals(self) -> bool:
        """Whether the shared tier's own counter is the version source (no signaling backend)."""
        backend = getattr(self.registry, "signaling", None)
        return backend is None or isinstance(backend, LocalSignaling)

    def _shared_version(self) -> Any:
        """The version a transaction beginning now reads and stores shared values under: the
        signaling versions, or without a signaling backend the shared tier's own counter (read
        now, before the transaction's snapshot); None when neither can vouch for one."""
        if not self._tier_signals():
            version = self.signaling_version()
            if version is None and not self._unvouched_warned:
                self._unvouched_warned = True  # once: an outage passes, a missing check does not
                _logger.warning(
                    "orm_cached: the shared tier of %r is not used while the registry's signaling "
                    "has no version to vouch for its values (never checked: check_signaling=False "
                    "and no registry.check_signaling() yet; or signaling failing)", self.registry.db_name)
            return version
        import redis

        try:
            return ("shared tier", self.shared.signals())  # type: ignore[union-attr]  # with a tier
        except redis.RedisError as exc:
            _logger.warning("orm_cached: shared tier unreachable (%s) as a transaction began; its "
                            "values are computed without the tier", exc)
            return None

    def may_store(self, txn: Transaction, key: Any) -> bool:
        """Whether a value of ``key`` computed in ``txn`` may be stored for others: ``txn`` did
        not write what it depends on, and no invalidation of it (nor any clear of the registry)
        was applied since ``txn`` began, so its snapshot cannot be older than the value others
        expect. Check it after computing, and store into an entry taken before computing (an
        invalidation in between detaches that entry)."""
        return (key not in txn.keys and self._ticks.get(key, 0) < txn.start
                and self.registry.generation == txn.generation)

    def _drop(self, keys: Iterable[Any]) -> None:
        """Drop ``keys`` from the local tier; a transaction that began before cannot store them."""
        lru, ticks, clock = self.lru, self._ticks, self._clock
        for key in keys:
            ticks[key] = next(clock)  # the tick first: a store checked after it is refused
            lru.pop(key, None)

    def _invalidate(self, session: Session, descriptors: Iterable[Any], tables: Iterable[str]) -> None:
        keys = [d.key for d in descriptors]
        keys.extend({table_key(model) for table in tables for model in FULL_TABLE_MODELS.get(table, ())})
        if not keys:
            return
        txn = self.transaction(session)
        txn.keys.update(keys)
        txn.shared.update(d.name for d in descriptors)
        for key in keys:
            self.lru.pop(key, None)
            txn.forget(key)
        for connection in txn.connections:
            self._unsent(connection, txn)

    def _unsent(self, connection: Any, txn: Transaction) -> None:
        """Attach what ``txn`` invalidated to the database transaction of ``connection``: it is
        recorded and published when that transaction really commits (not at session.commit()
        when the session joined an external transaction)."""
        unsent = connection.info.setdefault(_UNSENT_KEY, {})
        mine = unsent.get(self)
        if mine is None:
            mine = unsent[self] = _Unsent()
        mine.keys.update(txn.keys)
        mine.shared.update(txn.shared)

    def _committed(self, unsent: "_Unsent", recorded: bool) -> None:
        """After the real COMMIT of a transaction that invalidated ``unsent``: drop the keys
        here (values stored meanwhile from old rows included) and, unless the signals were
        recorded in the transaction, publish them."""
        registry = self.registry
        self._drop(unsent.keys)
        if self.shared is not None and unsent.shared:
            try:
                self.shared.invalidate(unsent.shared, signals=self._tier_signals())
            except Exception as exc:  # noqa: BLE001 - the commit happened; retried on next use
                _logger.error("Shared tier unreachable (%s): invalidation of %s kept, sent before "
                              "the next use of the tier", exc, sorted(unsent.shared))
        if not recorded:
            registry.cache_invalidated.add(self.cache_name)

    def invalidate(self, *descriptors: Any) -> None:
        """Drop ``orm_cached`` values everywhere, now (outside of any transaction)."""
        self._drop([descriptor.key for descriptor in descriptors])
        if self.shared is not None:
            self.shared.invalidate((d.name for d in descriptors), signals=self._tier_signals())
        if _capture.publish_members(self, descriptors):  # installed: those members only
            return
        self.registry.clear_cache(self.cache_name)
        _signal_changes(self.registry)

    def _tables(self, obj: Any) -> FrozenSet[str]:
        cls = type(obj)
        tables = self._tables_of_class.get(cls)
        if tables is None:
            tables = self._tables_of_class[cls] = frozenset(instance_tables(obj))
        return tables

    # -- session events ----------------------------------------------------------------------

    def _on_after_transaction_create(self, session: Session, transaction: Any) -> None:
        if session.info.get(INTERNAL_KEY):
            return
        if transaction.parent is not None:
            if transaction.nested:  # a savepoint: a layer of its own
                txn = session.info.get(self._pending_key) or self._deferred(session)
                if txn is not None:
                    txn.layers.append({})
            return
        session.info[OWNER_KEY] = self
        if ((self.check_signaling or self.shared is not None) and not in_greenlet()
                and async_session(session) is not None):
            # AsyncSession.add()/add_all() (a save-update cascade) autobegin outside the greenlet
            # bridge, where the check would block the event loop: it runs at the transaction's
            # first step inside the bridge (_deferred), before its first SQL and before any
            # cached value is served or stored (so does the shared tier's GET of its own version)
            session.info.setdefault(UNCHECKED_KEY, set()).add(self)
            return
        self._begin(session)

    def _begin(self, session: Session) -> Transaction:
        """The check of a new transaction of ``session``, then its layer."""
        if self._captured is False:
            _capture.warn_uncaptured(self)
        if self.check_signaling:
            _check_signaling(self.registry)
        unchecked = session.info.get(UNCHECKED_KEY)
        if unchecked:
            unchecked.discard(self)  # after the check: one that failed runs again at the next step
        # the clock after the check: what it cleared does not count against this transaction
        txn = Transaction(next(self._clock), self.registry.generation,
                          self._shared_version() if self.shared is not None else None)
        early = session.info.get(self._pending_key)
        if early is not None and early.keys:  # invalidated before the session began: its writes
            txn.keys.update(early.keys)
            txn.shared.update(early.shared)
        session.info[self._pending_key] = txn
        return txn

    def _deferred(self, session: Session) -> Optional[Transaction]:
        """The layer of the transaction of ``session`` whose check was deferred, begun now (the
        check awaited inside the greenlet bridge); None when no check of ours waits."""
        unchecked = session.info.get(UNCHECKED_KEY)
        if not unchecked or self not in unchecked:
            return None
        return self._begin(session)

    def _on_after_begin(self, session: Session, transaction: Any, connection: Any) -> None:
        if session.info.get(INTERNAL_KEY):
            return
        txn = self.transaction(session)
        txn.connections.append(connection)
        if self._captured is True:  # the versions in this transaction's snapshot
            read_snapshot(self, connection, txn)
        unsent = connection.info.get(_UNSENT_KEY, {}).get(self)
        if unsent is not None:
            # joined a database transaction that an earlier session transaction wrote in (an
            # external transaction): its writes are ours to see, not what others committed
            txn.keys.update(unsent.keys)
            txn.shared.update(unsent.shared)
            for key in unsent.keys:
                txn.forget(key)
        if txn.keys:
            self._unsent(connection, txn)

    def _on_after_flush(self, session: Session, flush_context: Any) -> None:
        if session.info.get(INTERNAL_KEY):
            return
        descriptors: Set[Any] = set()
        tables: Set[str] = set()
        by_table = self._by_table
        callables = self._callables
        for obj in changed_instances(session):
            obj_tables = self._tables(obj) | association_tables(session, obj)
            tables |= obj_tables
            for table in obj_tables:
                descriptors.update(by_table.get(table, ()))
            loaded: Any = False  # the object as loaded, computed once if a policy needs it
            for descriptor in callables:
                if descriptor in descriptors:
                    continue
                if descriptor.policy(obj):  # the object as flushed
                    descriptors.add(descriptor)
                    continue
                if loaded is False:
                    loaded = loaded_state(session, obj)
                if loaded is not None and descriptor.policy(loaded):  # as it was before
                    descriptors.add(descriptor)
        self._invalidate(session, descriptors, tables)

    def _on_do_orm_execute(self, orm_execute_state: Any) -> None:
        session = orm_execute_state.session
        if session.info.get(INTERNAL_KEY):
            return
        if session.info.get(UNCHECKED_KEY):
            self._deferred(session)  # before the statement, even on a connection the session holds
        tables = statement_tables(orm_execute_state)
        if tables is ALL_TABLES:  # text() SQL that may write: anything may be stale
            self._invalidate(session, self._counters, FULL_TABLE_MODELS)
            return
        if not tables:
            return
        descriptors: Set[Any] = set(self._callables)  # no objects to show them: invalidate
        for table in tables:
            descriptors.update(self._by_table.get(table, ()))
        self._invalidate(session, descriptors, tables)

    def _on_after_commit(self, session: Session) -> None:
        if session.info.get(INTERNAL_KEY):
            return
        if session.in_nested_transaction():  # a released savepoint: its layer joins its parent's
            txn = session.info.get(self._pending_key)
            if txn is not None and len(txn.layers) > 1:
                top = txn.layers.pop()
                txn.layers[-1].update(top)
            return
        # what it invalidated was sent by the connection's commit (or waits for the real
        # COMMIT of the external transaction the session joined)
        txn = session.info.pop(self._pending_key, None)
        registry = self.registry
        for connection in txn.connections if txn is not None else ():
            _after_two_phase_commit(connection)
        try:
            # not this commit's invalidations (the COMMIT event published them, once): what else
            # the unit of work invalidated through the registry (no round trip when nothing)
            _signal_changes(registry)
        except Exception:  # noqa: BLE001 - the commit happened; signaling keeps the names
            _logger.exception("Publishing the invalidations of %r failed; they are kept and "
                              "published by the next signal_changes() or check_signaling()",
                              registry.db_name)

    def _on_after_rollback(self, session: Session) -> None:
        if session.info.get(INTERNAL_KEY):
            return
        if session.in_nested_transaction():
            pending = session.info.get(self._pending_key)  # the outer work goes on
            if pending is not None and len(pending.layers) > 1:
                pending.layers.pop()  # what the savepoint computed goes with it
        else:
            pending = session.info.pop(self._pending_key, None)
            self.registry.reset_changes()
        if pending is not None:
            for key in pending.keys:
                self.lru.pop(key, None)

    def _on_after_transaction_end(self, session: Session, transaction: Any) -> None:
        unchecked = session.info.get(UNCHECKED_KEY)
        if unchecked and transaction.parent is None:
            unchecked.discard(self)  # ended with no step that needed its check: nothing read
        if transaction.parent is None and self._pending_key in session.info:
            # closed without commit or rollback event (e.g. Session.close()): nothing committed
            pending = session.info.pop(self._pending_key)
            if not pending.keys:
                return
            for key in pending.keys:
                self.lru.pop(key, None)
            self.registry.reset_changes()


# -- signaling: the one place each call is made for a unit of work (sync or async session) --------

def _check_signaling(registry: Any) -> None:
    """``registry.check_signaling()`` at the start of a session transaction. For an
    AsyncSession this runs inside the greenlet bridge: ``acheck_signaling()`` is awaited there,
    and the event loop serves other tasks during the round trip (a transaction that
    ``AsyncSession.add()`` began outside the bridge is checked at its first step inside)."""
    if in_greenlet():
        await_(registry.acheck_signaling())
    else:
        registry.check_signaling()


def _signal_changes(registry: Any) -> None:
    """``registry.signal_changes()`` after a commit, or from ``OrmCache.invalidate()`` (the
    caller's thread); inside the greenlet bridge (an AsyncSession's commit),
    ``asignal_changes()`` awaited without blocking the event loop."""
    if in_greenlet():
        await_(registry.asignal_changes())
    else:
        registry.signal_changes()


# -- what watch() listens to --------------------------------------------------------------------

#: marks the Session subclass ``watch()`` gave an async_sessionmaker (its sessions' events)
_SCOPED_KEY = "_ormcache_async_sessionmaker"


def _event_target(target: Any) -> Any:
    """The target of the session events for ``target``: itself for the synchronous kinds; for
    the async ones, the Session class (or session) each AsyncSession wraps."""
    if isinstance(target, async_scoped_session):
        target = target.session_factory
    if isinstance(target, async_sessionmaker):
        return _sync_class(target)
    if isinstance(target, AsyncSession):
        return target.sync_session
    if isinstance(target, type) and issubclass(target, AsyncSession):
        return target.sync_session_class
    if isinstance(target, (Session, sessionmaker, scoped_session)) or (
            isinstance(target, type) and issubclass(target, (Session, scoped_session))):
        return target
    raise TypeError(f"OrmCache.watch(): expected a Session or AsyncSession class, a sessionmaker, "
                    f"async_sessionmaker, scoped_session, async_scoped_session or a session, not {target!r}")


def _bound_engine(sync_target: Any) -> Optional[Engine]:
    """The Engine a watched sessionmaker or session is bound to, None when not known."""
    bind = sync_target.kw.get("bind") if isinstance(sync_target, sessionmaker) else getattr(sync_target, "bind", None)
    return bind if isinstance(bind, Engine) else None


def _sync_class(maker: "async_sessionmaker[Any]") -> Type[Session]:
    """A Session subclass of ``maker``'s own, set as its ``sync_session_class`` (as a
    sessionmaker makes a class of its own): listening to it hears only ``maker``'s sessions."""
    current: Type[Session] = maker.kw.get("sync_session_class") or maker.class_.sync_session_class
    if current.__dict__.get(_SCOPED_KEY) is maker:
        return current
    scoped: Type[Session] = type(current.__name__, (current,), {_SCOPED_KEY: maker})
    maker.kw["sync_session_class"] = scoped
    return scoped


class _Unsent:
    """What the sessions of one database transaction invalidated in one OrmCache."""

    __slots__ = ("keys", "shared")

    def __init__(self) -> None:
        self.keys: Set[Any] = set()
        self.shared: Set[str] = set()


# -- the real COMMIT: connection events (one set of listeners on Engine serves every OrmCache) --

def _listen_to_connections() -> None:
    listen_once(Engine, (
        ("begin", _on_begin),
        ("commit", _on_commit),
        ("rollback", _on_rollback),
        ("prepare_twophase", _on_prepare_twophase),
        ("rollback_twophase", _on_rollback_twophase),
    ))


def _record(connection: Any, unsent: Dict[OrmCache, _Unsent]) -> Tuple[Dict[Any, Set[str]], Dict[Any, bool]]:
    """Record the invalidations in the transaction of ``connection``, just before its COMMIT,
    where the registry's signaling can (PostgreSQL signaling in the same database): returns
    the names per registry and whether each registry recorded them."""
    by_registry: Dict[Any, Set[str]] = {}
    for cache, what in unsent.items():
        if what.keys and not fully_captured(cache):  # captured: the triggers recorded it
            by_registry.setdefault(cache.registry, set()).add(cache.cache_name)
    dbapi_connection = connection.connection.dbapi_connection

    def execute(sql: str) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(sql)
        finally:
            cursor.close()

    recorded = {}
    awaiting = await_ if in_greenlet() else None  # an AsyncSession: round trips awaited
    for registry, names in by_registry.items():
        record = getattr(registry, "record_changes", None)
        if record is None:
            recorded[registry] = False
            continue
        backend = getattr(registry, "signaling", None)
        if not contract.records_in_transaction(backend):
            recorded[registry] = bool(record(sorted(names), execute, awaiting=awaiting))  # runs nothing
            continue
        verdicts = _same_database.setdefault(connection.engine.pool, {})
        verdict = verdicts.get(id(backend))
        if verdict is None and connection.dialect.name != "postgresql":
            verdict = verdicts[id(backend)] = _elsewhere(registry, connection, "another dialect")
        if verdict is False:
            recorded[registry] = False
        elif verdict is True:
            recorded[registry] = bool(record(sorted(names), execute, awaiting=awaiting))
        else:  # the first time on this pool: a savepoint, in case it is not the signaling database
            execute("SAVEPOINT ormcache_record")
            try:
                recorded[registry] = bool(record(sorted(names), execute, awaiting=awaiting))
            except Exception as exc:
                if not _not_signaling_database(exc):
                    raise
                execute("ROLLBACK TO SAVEPOINT ormcache_record")
                verdicts[id(backend)] = _elsewhere(registry, connection, "another database")
                recorded[registry] = False
            else:
                if recorded[registry]:  # (False: the backend cannot tell yet; asked again next time)
                    verdicts[id(backend)] = True
            execute("RELEASE SAVEPOINT ormcache_record")
    return by_registry, recorded


#: pool -> {id(signaling backend): whether its database is the signaling one}, learnt at the
#: first commit that records (a pool's connections all go to one database)
_same_database: "weakref.WeakKeyDictionary[Any, Dict[int, bool]]" = weakref.WeakKeyDictionary()


def _probe(registry: Any, engine: Engine) -> None:
    """At ``watch()``: whether the signals of ``registry`` can be recorded in the transactions
    of ``engine``'s database. Another dialect is known at once; another PostgreSQL database is
    found with one probe connection (its epoch token is not the signaling database's). Either
    way the one warning is logged now and commits publish after the COMMIT, with no SQL sent for
    recording. When the probe cannot tell (a server unreachable now), the first commit decides
    (in a savepoint)."""
    backend = getattr(registry, "signaling", None)
    if backend is None or not contract.records_in_transaction(backend):
        return
    verdicts = _same_database.setdefault(engine.pool, {})
    if id(backend) in verdicts:
        return
    if engine.dialect.name != "postgresql":
        verdicts[id(backend)] = _elsewhere(registry, engine, "another dialect")
        return
    try:
        epoch = backend.read_versions(registry.db_name, [])[0]  # creates the signaling tables
        with engine.connect() as connection:
            found = _capture.app_epoch(connection)
    except Exception as exc:  # noqa: BLE001 - undecided: the first commit's savepoint decides
        _logger.debug("ormcache %r: the signaling database probe of %s failed (%s); the first "
                      "commit decides", registry.db_name,
                      engine.url.render_as_string(hide_password=True), exc)
        return
    if epoch is not None and found != epoch:
        verdicts[id(backend)] = _elsewhere(registry, engine, "another database")


def _not_signaling_database(exc: BaseException) -> bool:
    """Whether recording failed because the connection is not on the signaling database: the
    signaling tables are missing there, or the epoch token is another database's."""
    return getattr(exc, "sqlstate", None) == "42P01" or "not in the signaling database" in str(exc)


def _elsewhere(registry: Any, bind: Any, why: str) -> bool:
    """Warn, once per pool and backend, that signals of ``registry`` are published after the
    COMMIT; returns False (they cannot be recorded in the transaction)."""
    backend = getattr(registry, "signaling", None)
    if contract.says_record_in_transaction(backend):
        _logger.warning(
            "ormcache %r: the application database (%s, %s) is not the signaling database of %r: "
            "invalidations are published after the COMMIT, before commit() returns; between the "
            "COMMIT and the publish (one round trip) another process may read old values. Put the "
            "signaling tables in the application database, or set record_in_transaction=False to "
            "say so", registry.db_name, bind.engine.url.render_as_string(hide_password=True),
            why, backend)
    return False


def _after_commit(unsent: Dict[OrmCache, _Unsent], by_registry: Dict[Any, Set[str]],
                  recorded: Dict[Any, bool]) -> None:
    for cache, what in unsent.items():
        if what.keys:
            cache._committed(what, cache.registry not in by_registry or recorded[cache.registry])
    for registry, names in by_registry.items():
        try:
            if recorded[registry]:
                registry.changes_committed(sorted(names))  # this process is up to date
            else:
                _signal_changes(registry)  # before commit() returns; kept and retried if it fails
        except Exception:  # noqa: BLE001 - the commit happened; signaling keeps the names
            _logger.exception("Publishing the invalidations of %r failed; they are kept and "
                              "published by the next signal_changes() or check_signaling()",
                              registry.db_name)


def _on_commit(connection: Any) -> None:
    unsent = connection.info.pop(_UNSENT_KEY, None)
    if not unsent:
        return
    try:
        by_registry, recorded = _record(connection, unsent)
    except Exception as exc:  # noqa: BLE001 - wrapped and raised as SQLAlchemy would
        _discard(connection)  # nothing committed, and no later transaction may commit it
        connection._handle_dbapi_exception(exc, None, None, None, None)
    try:
        # The real COMMIT now, so that what follows happens after it and before commit()
        # returns (with an external transaction, session.commit() is not this COMMIT); the
        # COMMIT SQLAlchemy sends next finds nothing left to commit.
        connection.connection.dbapi_connection.commit()
    except Exception as exc:  # noqa: BLE001 - wrapped and raised as SQLAlchemy would
        # the server may have committed (its answer lost): publish anyway, an invalidation
        # too many costs a miss; then leave nothing open on the connection
        _after_commit(unsent, by_registry, dict.fromkeys(by_registry, False))
        _discard(connection)
        connection._handle_dbapi_exception(exc, None, None, None, None)
    _after_commit(unsent, by_registry, recorded)


def _discard(connection: Any) -> None:
    """Roll back the DBAPI transaction of ``connection`` after a failure inside its COMMIT
    event (SQLAlchemy then holds the transaction for ended and would not); if that fails too,
    invalidate the connection, so the pool never hands out a transaction left open."""
    try:
        connection.connection.dbapi_connection.rollback()
    except Exception:  # noqa: BLE001 - the connection is unusable: never reused
        try:
            connection.invalidate()
        except Exception:  # noqa: BLE001 - already invalidated or closed
            pass


def _info(connection: Any) -> Dict[str, Any]:
    """``connection.info``, or an empty dict once the connection is gone (a rollback after a
    disconnect): what it held was not committed."""
    try:
        return connection.info  # type: ignore[no-any-return]  # a DBAPI connection's dict
    except Exception:  # noqa: BLE001 - invalidated or closed: nothing to send
        return {}


def _on_rollback(connection: Any) -> None:
    unsent = _info(connection).pop(_UNSENT_KEY, None)
    for cache, what in (unsent or {}).items():
        for key in what.keys:  # values computed from the rolled-back rows, if any
            cache.lru.pop(key, None)


def _on_prepare_twophase(connection: Any, xid: Any) -> None:
    # PREPARE TRANSACTION ends what may be written: record now, publish after the commit
    unsent = connection.info.pop(_UNSENT_KEY, None)
    if unsent:
        _publishing_two_phase_commits(connection.dialect)
        connection.info[_PREPARED_KEY] = (unsent, *_record(connection, unsent))


def _publishing_two_phase_commits(dialect: Any) -> None:
    """Have ``dialect``'s ``do_commit_twophase`` publish once it returns: SQLAlchemy sends no
    event after a two-phase COMMIT (psycopg's ``tpc_commit()`` runs no statement either), and
    the connection's next BEGIN may never come (``engine.dispose()``). A COMMIT that raises
    may have committed: it publishes too, and the connection is discarded (psycopg keeps a
    connection whose ``tpc_commit()`` failed in its two-phase state: every later transaction
    on it would fail)."""
    if dialect.__dict__.get("_ormcache_publishing"):
        return
    inner = dialect.do_commit_twophase

    def do_commit_twophase(connection: Any, xid: Any, is_prepared: bool = True, recover: bool = False) -> None:
        try:
            inner(connection, xid, is_prepared, recover=recover)
        except BaseException:
            _discard_two_phase(connection)
            raise
        finally:
            _after_two_phase_commit(connection)

    dialect.do_commit_twophase = do_commit_twophase
    dialect._ormcache_publishing = True


def _discard_two_phase(connection: Any) -> None:
    """After a failed two-phase COMMIT: the pool must not hand out this DBAPI connection again."""
    try:
        connection.invalidate()
    except Exception:  # noqa: BLE001 - already invalidated or closed
        pass


def _on_rollback_twophase(connection: Any, xid: Any, is_prepared: bool) -> None:
    _info(connection).pop(_PREPARED_KEY, None)
    _on_rollback(connection)


def _after_two_phase_commit(connection: Any) -> None:
    prepared = _info(connection).pop(_PREPARED_KEY, None)
    if prepared is not None:
        _after_commit(*prepared)


def _on_begin(connection: Any) -> None:
    _after_two_phase_commit(connection)  # a two-phase commit no session followed up: it is over
    _info(connection).pop(_UNSENT_KEY, None)  # left by a transaction that ended unseen: not committed
