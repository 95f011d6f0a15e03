"""``orm_cached`` (values invalidated by table changes) and ``request_cached`` (per request).

Example::

    class App:
        orm_cache = OrmCache(registry, Base.metadata)
        def __init__(self, session, role=None):
            self.session, self.role = session, role

        @orm_cached(policy="on-table-change:settings")
        def setting(self, key):                       # a method: arguments are part of the key
            return self.session.scalar(select(Setting.value).where(Setting.key == key))

        @orm_cached(policy=lambda obj: isinstance(obj, User) and obj.role == "admin", by_role=True)
        @property
        def admin_names(self):                        # a property; one value per role
            return select(User.name).where(User.role == "admin")   # executed: a tuple of names

        @request_cached
        def current_user(self):                       # may hold ORM instances
            return self.session.get(User, self.user_id)
    App.orm_cache.register(App)

Policies: ``"on-table-change:users"`` (several tables: ``"on-table-change:users,groups"``) or a
callable receiving each changed object and returning whether the value is stale. Before a value is
read, the session's pending changes are flushed, so its own unflushed writes invalidate first.

Values are shared and must not be mutated. ORM instances (or containers of them, one level deep)
are refused with a TypeError: they belong to one session; cache ids or plain data, or use
``request_cached``. A ``Select`` is executed and a result materialised into a tuple.
"""
from __future__ import annotations

import functools
import inspect as inspect_module
import itertools
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Optional, Tuple, TypeVar, Union, overload

from sqlalchemy import inspect
from sqlalchemy.engine import Result, Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Query, Session
from sqlalchemy.orm.state import InstanceState
from sqlalchemy.sql import Select

from ormcache.statistics import Counter

from ._changes import ALL_TABLES, KEY_PREFIX, statement_tables
from ._bridge import MISS, Flight, Flights, ready, resolve, run, sync_session
from ._session import CachedMember, begin, default_session, listen_once
from .shared import FORGED, MOVED, NOT_FOUND

if TYPE_CHECKING:
    from typing import Protocol

    from typing_extensions import Concatenate, ParamSpec, Self

    _P = ParamSpec("_P")
    _R = TypeVar("_R")
    _R_co = TypeVar("_R_co", covariant=True)
    _S = TypeVar("_S")
    _S_contra = TypeVar("_S_contra", contravariant=True)

    class CachedMethod(Protocol[_S_contra, _P, _R_co]):
        """An ``orm_cached``/``request_cached`` method: on an object, the method's parameters
        after ``self`` and its return type."""

        @overload
        def __get__(self, owner: None, owner_type: Any = None) -> Self: ...
        @overload
        def __get__(self, owner: _S_contra, owner_type: Any = None) -> Callable[_P, _R_co]: ...
        # (not callable at run time: there for mypy, which types a property with a decorator
        # over it, ``# type: ignore[prop-decorator]``, by calling that decorator's result)
        def __call__(self, owner: _S_contra, /, *args: _P.args, **kwargs: _P.kwargs) -> _R_co: ...

    class CachedDecorator(Protocol):
        """``orm_cached(...)``: over a method (typed as the method), or over a ``property``
        (``property`` is not generic: its value is ``Any``)."""

        @overload
        def __call__(self, fn: property) -> OrmCachedDescriptor: ...
        @overload
        def __call__(self, fn: Callable[Concatenate[_S, _P], _R]) -> CachedMethod[_S, _P, _R]: ...

__all__ = ["orm_cached", "request_cached", "OrmCachedDescriptor", "RequestCachedDescriptor", "Counter"]

_logger = logging.getLogger(__name__)

_TABLE_POLICY = "on-table-change:"
_REQUEST_KEY = "ormcache.sqlalchemy.request"


def _is_instance(obj: Any) -> bool:
    return isinstance(inspect(obj, raiseerr=False), InstanceState)


def _refuse_instances(name: str, value: Any) -> None:
    """TypeError if ``value`` is an ORM instance or holds one, one level deep (keys included)."""
    if _is_instance(value):
        raise TypeError(f"orm_cached {name}: cannot cache an ORM instance ({value!r}); it belongs to "
                        "one session. Cache ids or plain values, or use request_cached")
    if isinstance(value, (str, bytes)):
        return
    if isinstance(value, dict):
        children: Iterable[Any] = [*value.keys(), *value.values()]
    elif isinstance(value, (tuple, list, set, frozenset)):
        children = value
    else:
        return
    for child in children:
        if _is_instance(child):
            raise TypeError(f"orm_cached {name}: cannot cache a {type(value).__name__} holding an ORM "
                            f"instance ({child!r}); cache ids or plain values, or use request_cached")


def _materialise(session: Session, value: Any) -> Any:
    """A Select is executed; results become tuples (one column: its values; else plain tuples)."""
    if isinstance(value, Select):
        value = session.execute(value)
    if isinstance(value, Query):
        return tuple(_plain(row) for row in value)
    if isinstance(value, Result):
        if len(value.keys()) == 1:
            return tuple(value.scalars().all())
        return tuple(tuple(row) for row in value.all())
    if isinstance(value, list) and value and isinstance(value[0], Row):
        return tuple(_plain(row) for row in value)
    return value


def _plain(row: Any) -> Any:
    """A Row as a plain tuple (its value when it has one column); anything else as is."""
    if isinstance(row, Row):
        return tuple(row) if len(row) > 1 else row[0]
    return row


def arguments_key(fn: Callable[..., Any]) -> Optional[Callable[..., Tuple[Any, ...]]]:
    """A function of the same signature returning its arguments after ``self`` as a tuple, so
    positional, keyword and default calls give one key (compiled once, as Odoo's ormcache);
    None when the method takes nothing but ``self``."""
    parameters = list(inspect_module.signature(fn).parameters.values())[1:]
    if not parameters:
        return None
    defaults: Dict[str, Any] = {}
    params, values = ["__self"], []
    for p in parameters:
        if p.kind is p.VAR_POSITIONAL:
            params.append(f"*{p.name}")
            values.append(p.name)
        elif p.kind is p.VAR_KEYWORD:
            params.append(f"**{p.name}")
            values.append(f"tuple(sorted({p.name}.items()))")
        else:
            if p.kind is p.KEYWORD_ONLY and not any(x.startswith("*") for x in params):
                params.append("*")
            if p.default is p.empty:
                params.append(p.name)
            else:
                defaults[f"__default_{p.name}"] = p.default
                params.append(f"{p.name}=__default_{p.name}")
            values.append(p.name)
    source = f"lambda {', '.join(params)}: ({', '.join(values)},)"
    return eval(source, {"__builtins__": {"tuple": tuple, "sorted": sorted}, **defaults})  # type: ignore[no-any-return]  # noqa: S307


def _sync_read(member: Any, session: Any) -> Session:
    """``session``, for reading ``member`` (a descriptor) synchronously: TypeError if the member
    is an async def or ``session`` is not a Session (before anything is read or cached)."""
    if member.is_coroutine:
        raise TypeError(f"{member.label} is an async def: its owner's session must be an AsyncSession, not a "
                        f"{type(session).__name__} (read it with await)")
    if isinstance(session, Session):
        return session
    return sync_session(session, member.label)


def _flush(session: Session) -> None:
    # read-your-own-writes: pending changes invalidate before anything cached is read
    if not session._flushing:  # never from inside a flush (an event handler reading a value)
        session.flush()


class _Loaded:
    """A member whose value ``load(owner, *args, **kwargs)`` gives: read as a property, the value;
    as a method, ``load`` bound to the owner; on the class, the member itself."""

    is_property: bool

    def load(self, owner: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @overload
    def __get__(self, owner: None, owner_type: Any = None) -> Self: ...
    @overload
    def __get__(self, owner: object, owner_type: Any = None) -> Any: ...
    def __get__(self, owner: Any, owner_type: Any = None) -> Any:
        if owner is None:
            return self
        if self.is_property:
            return self.load(owner)
        return functools.partial(self.load, owner)


class OrmCachedDescriptor(CachedMember, _Loaded):
    """The member created by ``@orm_cached``: a property or a method whose values are cached."""

    def __init__(self, fn: Any, policy: Union[str, Callable[[Any], bool]], by_role: bool) -> None:
        self.is_property = isinstance(fn, property)
        self.fn = fn.fget if self.is_property else fn
        if self.fn is None:
            raise TypeError("orm_cached: the property has no getter")
        self.policy = policy
        self.by_role = bool(by_role)
        if isinstance(policy, str):
            if not policy.startswith(_TABLE_POLICY):
                raise ValueError(f"orm_cached {self.fn.__qualname__}: unknown policy {policy!r}; "
                                 f"use '{_TABLE_POLICY}<table>[,<table>...]' or a callable")
            tables = tuple(t.strip() for t in policy[len(_TABLE_POLICY):].split(","))
            if not all(tables):
                raise ValueError(f"orm_cached {self.fn.__qualname__}: policy {policy!r} names no table")
            self.tables: Optional[Tuple[str, ...]] = tables
        elif callable(policy):
            self.tables = None
        else:
            raise TypeError(f"orm_cached {self.fn.__qualname__}: policy must be a string or a callable, "
                            f"not {type(policy).__name__}")
        self.name = f"{self.fn.__module__}.{self.fn.__qualname__}"
        # (model, method) as ormcache's keys, so ormcache.stats() counts its entries
        self.key = (KEY_PREFIX, self.fn)
        self.arguments_key = None if self.is_property else arguments_key(self.fn)
        self.is_coroutine = inspect_module.iscoroutinefunction(self.fn)
        self.label = f"orm_cached {self.name}"
        functools.update_wrapper(self, self.fn)

    def __repr__(self) -> str:
        return f"<orm_cached {self.name} policy={self.policy!r}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # reached when ``@property`` is above ``@orm_cached``: the property calls us as its getter
        raise TypeError(self.misplaced_property())

    def misplaced_property(self) -> str:
        """The message for ``@property`` written above ``@orm_cached`` (here and in register())."""
        return (f"orm_cached {self.name}: @property is above @orm_cached; put @orm_cached "
                f"outermost (@orm_cached(...) on the line above @property)")

    def create(self, owner: Any, session: Session, args: Tuple[Any, ...], kwargs: Dict[Any, Any], counter: Any = None) -> Any:
        """Compute the value (materialised, checked for ORM instances); a miss for ``counter``."""
        start = time.perf_counter()
        raw = resolve(self.fn(owner, *args, **kwargs))
        value = _materialise(session, raw)
        _refuse_instances(self.name, value)
        if value is not raw:  # rows of a statement: look inside each row too
            for row in value:
                if isinstance(row, tuple):
                    _refuse_instances(self.name, row)
        if counter is not None:
            counter.miss += 1
            counter.gen_time += time.perf_counter() - start
        return value

    def load(self, owner: Any, *args: Any, **kwargs: Any) -> Any:
        """The value for ``owner`` (and the method's arguments), from a tier or computed; an
        awaitable of it when the owner's session is an AsyncSession."""
        cache = owner.orm_cache
        counter = cache._counters.get(self)
        if counter is None:
            raise RuntimeError(f"orm_cached {self.name} is not registered with {cache!r}: call "
                               f"orm_cache.register({type(owner).__name__}) at start-up, so that "
                               "changes made before its first read invalidate it too")
        session = cache.session_of(owner)
        if isinstance(session, AsyncSession):
            return self._aload(cache, counter, owner, session.sync_session, args, kwargs)
        return self._load(cache, counter, owner, _sync_read(self, session), args, kwargs)

    async def _aload(self, cache: Any, counter: Any, owner: Any, session: Session, args: Tuple[Any, ...],
                     kwargs: Dict[str, Any]) -> Any:
        """``load()`` for an AsyncSession (``session``: the Session it wraps): a hit is read
        here without I/O; otherwise the same code runs through the greenlet bridge, and tasks
        wanting the same cold value compute it once (the others wait, then look again)."""
        while True:
            if ready(session):
                value = self._load(cache, counter, owner, session, args, kwargs, probe=True)
                if value is not MISS:
                    return value
            value = await run(self._load, cache, counter, owner, session, args, kwargs, False, cache._flights)
            if type(value) is not Flight:
                return value
            await value.wait()

    def _load(self, cache: Any, counter: Any, owner: Any, session: Session, args: Tuple[Any, ...],
              kwargs: Dict[str, Any], probe: bool = False, flights: Optional[Flights] = None) -> Any:
        """The value, from a tier or computed. ``probe``: MISS instead of any I/O; ``flights``
        (async): the Flight to wait for when another task is computing the value."""
        if probe and cache.shared is not None:
            return MISS  # the shared tier is asked over the network
        begin(session)
        _flush(session)
        role = cache.role_of(owner) if self.by_role else None
        subkey = (role, self.arguments_key(owner, *args, **kwargs)) if self.arguments_key else role
        try:
            hash(subkey)
        except TypeError:
            if probe:
                return MISS
            if not counter.err:  # once per member, as Odoo's ormcache
                _logger.warning("orm_cached %s: unhashable arguments %r, computed without caching",
                                self.name, subkey)
            counter.err += 1
            return self.create(owner, session, args, kwargs)
        txn = cache.transaction(session)
        layered = txn.find(self.key)
        if layered is not None and subkey in layered:
            counter.hit += 1
            return layered[subkey]
        if self.key in txn.keys:
            if probe:
                return MISS
            # this transaction changed what the value depends on: keep it for this transaction only
            return self._keep(txn, subkey, self.create(owner, session, args, kwargs, counter))
        lru = cache.lru
        # the entry is taken before computing: an invalidation meanwhile detaches it, so a
        # value computed from old rows is never stored where later readers look
        entry = lru.get(self.key)
        if entry is None:
            entry = lru.setdefault(self.key, {})
        shared = cache.shared
        if shared is None:
            try:
                value = entry[subkey]
            except KeyError:
                if probe:
                    return MISS
                flight = None
                if flights is not None:
                    flight, leads = flights.start((id(entry), subkey))  # entry: alive while it runs
                    if not leads:
                        return flight
                try:
                    value = self.create(owner, session, args, kwargs, counter)
                    if not cache.may_store(txn, self.key):  # its snapshot may predate an invalidation
                        return self._keep(txn, subkey, value)
                    entry[subkey] = value
                    return value
                finally:
                    if flight is not None:
                        flight.done()
            counter.hit += 1
            return value
        return self._load_shared(cache, txn, shared, entry, subkey, owner, session, args, kwargs, counter)

    def _keep(self, txn: Any, subkey: Any, value: Any) -> Any:
        """Keep ``value`` in the transaction's layer (its innermost savepoint) only."""
        layer = txn.layers[-1].get(self.key)
        if layer is None:
            layer = txn.put(self.key, {})
        layer[subkey] = value
        return value

    def _load_shared(self, cache: Any, txn: Any, shared: Any, entry: Dict[Any, Any], subkey: Any, owner: Any,
                     session: Session, args: Tuple[Any, ...], kwargs: Dict[Any, Any], counter: Any) -> Any:
        import redis

        if txn.version is None:
            # no signaling version to vouch for a shared value (never synced, outage): the
            # tier is not used, nothing is trusted
            return self.create(owner, session, args, kwargs, counter)
        signals = shared.token(txn.version)
        local = entry.get(subkey)
        try:
            if (type(local) is _SharedCopy and local.signals == signals
                    and local.version == shared.version(self.name)):
                counter.hit += 1
                return local.value
            version, value = shared.get(self.name, subkey, signals)
        except TypeError as exc:  # no stable key for the role or an argument
            if ("key", self.name) not in shared._warned:
                shared._warned.add(("key", self.name))
                _logger.warning("orm_cached %s: %s (%r); computed without the shared tier", self.name, exc, subkey)
            return self._keep(txn, subkey, self.create(owner, session, args, kwargs, counter))
        except redis.RedisError as exc:  # (a wrong password is raised, as a SignalingConfigurationError)
            _logger.warning("orm_cached %s: shared tier unreachable (%s), computed without caching", self.name, exc)
            return self.create(owner, session, args, kwargs, counter)
        if value is FORGED:
            counter.err += 1
            if ("forged", self.name) not in shared._warned:  # once per member
                shared._warned.add(("forged", self.name))
                _logger.error("orm_cached %s: a shared value does not carry a valid tag (written by "
                              "someone without the secret?); not read, computed from the database", self.name)
            value = NOT_FOUND
        if value is NOT_FOUND:
            value = self.create(owner, session, args, kwargs, counter)
            if not cache.may_store(txn, self.key):  # its snapshot may predate an invalidation
                return self._keep(txn, subkey, value)
            try:
                outcome = shared.store(self.name, subkey, version, value, signals)
            except redis.RedisError as exc:
                _logger.warning("orm_cached %s: shared tier unreachable (%s), not cached", self.name, exc)
                return value
            if outcome == MOVED:
                return value  # invalidated while computing: maybe built from old rows, keep nothing
            # STORED, or LOCAL_ONLY: kept here, still validated by the shared version
        else:
            counter.hit += 1  # computed by another process
        entry[subkey] = _SharedCopy(version, signals, value)
        return value


class _SharedCopy:
    """A shared-tier value held in the local tier, valid while the tier's counter reads
    ``version`` and for transactions that began under the signaling version ``signals``."""

    __slots__ = ("version", "signals", "value")

    def __init__(self, version: bytes, signals: str, value: Any) -> None:
        self.version, self.signals, self.value = version, signals, value


def orm_cached(policy: Union[str, Callable[[Any], bool]], by_role: bool = False) -> CachedDecorator:
    """Cache a method's or property's value until a change its ``policy`` matches is committed."""

    def decorate(fn: Any) -> Any:
        return OrmCachedDescriptor(fn, policy, by_role)

    return decorate


# -- request_cached ------------------------------------------------------------------------------

def _merge(session: Session, value: Any) -> Any:
    """``value`` with its ORM instances (one level deep) attached to ``session``."""
    if _is_instance(value):
        return _attach(session, value)
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, (tuple, list)):
        merged = [_attach(session, v) if _is_instance(v) else v for v in value]
        return type(value)(merged) if any(m is not v for m, v in zip(merged, value)) else value
    if isinstance(value, dict):
        if any(_is_instance(v) for v in value.values()):
            return {k: _attach(session, v) if _is_instance(v) else v for k, v in value.items()}
    return value


def _attach(session: Session, obj: Any) -> Any:
    if obj in session:
        return obj
    state = inspect(obj)
    if state.key is not None:
        existing = session.identity_map.get(state.key)
        if existing is not None:
            return existing
    return session.merge(obj, load=not (state.key is not None and not state.modified))


class RequestCachedDescriptor(_Loaded):
    """The member created by ``@request_cached``: one value per request (or per transaction).

    Values live in ``owner.request_cache`` (a dict the framework renews per request) when the owner
    has one, else in the session, where they end with the transaction. On a hit, ORM instances not
    in the current session are merged into it (without a query when they are clean). A value is
    computed again after the session wrote anything (a flush, a bulk or ``text()`` write) or
    rolled back (a savepoint included): it may depend on what changed.
    """

    def __init__(self, fn: Any) -> None:
        self.is_property = isinstance(fn, property)
        self.fn = fn.fget if self.is_property else fn
        self.key = (KEY_PREFIX, "request_cached", f"{self.fn.__module__}.{self.fn.__qualname__}")
        self.is_coroutine = inspect_module.iscoroutinefunction(self.fn)
        self.label = f"request_cached {self.key[2]}"
        functools.update_wrapper(self, self.fn)  # type: ignore[arg-type]  # __doc__, __name__... on the descriptor
        _install_listeners()

    def load(self, owner: Any, *args: Any, **kwargs: Any) -> Any:
        """The value for ``owner``; an awaitable of it when its session is an AsyncSession."""
        cache = getattr(owner, "orm_cache", None)
        session = cache.session_of(owner) if cache is not None else default_session(owner)
        if isinstance(session, AsyncSession):
            return run(self._load, owner, session.sync_session, args, kwargs)
        return self._load(owner, _sync_read(self, session), args, kwargs)

    def _load(self, owner: Any, session: Session, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        _flush(session)
        store = getattr(owner, "request_cache", None)
        if store is None:
            store = session.info.get(_REQUEST_KEY)
            if store is None:
                store = session.info[_REQUEST_KEY] = {}
        # The owner is part of the key (its value may depend on it); the entry keeps the owner
        # itself, so an id reused by a later object cannot find another owner's value.
        key = (self.key, id(owner), args, tuple(sorted(kwargs.items())))
        entry = store.get(key)
        # valid while the session that computed it (its info dict) neither wrote nor rolled back
        if entry is not None and entry[0] is owner and entry[2].get(_WRITES_KEY, 0) == entry[3]:
            return _merge(session, entry[1])
        info = session.info
        stamp = info.get(_WRITES_KEY, 0)
        value = _materialise(session, resolve(self.fn(owner, *args, **kwargs)))
        store[key] = (owner, value, info, stamp)
        return value


@overload
def request_cached(fn: property) -> RequestCachedDescriptor: ...
@overload
def request_cached(fn: Callable[Concatenate[_S, _P], _R]) -> CachedMethod[_S, _P, _R]: ...
def request_cached(fn: Any) -> Any:
    """Cache a method's or property's value for the current request; ORM instances allowed."""
    return RequestCachedDescriptor(fn)


#: ``session.info`` key of the session's write stamp: moved by every write and rollback
_WRITES_KEY = "ormcache.sqlalchemy.writes"
_stamps = itertools.count(1)


def _install_listeners() -> None:
    listen_once(Session, (
        ("after_transaction_end", _end_of_transaction),
        ("after_flush", _wrote),
        ("after_rollback", _rolled_back),
        ("do_orm_execute", _executed),
    ))


def _wrote(session: Session, *args: Any) -> None:
    session.info[_WRITES_KEY] = next(_stamps)  # unique: no other session's stamp matches


def _rolled_back(session: Session) -> None:
    _wrote(session)


def _executed(orm_execute_state: Any) -> None:
    tables = statement_tables(orm_execute_state)
    if tables or tables is ALL_TABLES:
        _wrote(orm_execute_state.session)


def _end_of_transaction(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop(_REQUEST_KEY, None)
