"""What ``OrmCache`` (``orm_cache``) and the cached members share: the session's keys, ``begin``,
the keys of full-table caches and the marker of cached members. Imports no other module of the
package but ``_changes``, so ``orm_cache``, ``cached`` and ``tables`` never import each other."""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Set, Tuple, Union, cast

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ._changes import KEY_PREFIX

#: ``session.info`` key of the OrmCache watching a session (found by the full-table cache).
OWNER_KEY = "ormcache.sqlalchemy.owner"
#: ``session.info`` flag of the sessions this package opens for itself (never watched).
INTERNAL_KEY = "ormcache.sqlalchemy.internal"
#: ``session.info`` key: the OrmCaches whose ``check_signaling()`` of the current transaction
#: has not run yet (an AsyncSession's ``add()`` began it outside the greenlet bridge; the check
#: runs at its first step inside). No cached value may be served or stored meanwhile.
UNCHECKED_KEY = "ormcache.sqlalchemy.unchecked"


#: (event name, listener) pairs that ``listen_once`` installs together
Listeners = Tuple[Tuple[str, Callable[..., Any]], ...]
_listened: Set[Tuple[Any, Listeners]] = set()
_listen_lock = threading.Lock()


def listen_once(target: Any, listeners: Listeners) -> None:
    """Install ``listeners`` on ``target`` (``Session``, ``Engine``: one set of listeners on the
    class serves every OrmCache, cached member and record cache) the first time it is called
    with them; later calls cost a set lookup."""
    key = (target, listeners)
    if key in _listened:
        return
    with _listen_lock:
        if key not in _listened:
            for name, listener in listeners:
                event.listen(target, name, listener)
            _listened.add(key)


def table_key(model: type) -> Tuple[str, str, type]:
    """Key of the full-table cache of ``model`` (a mapped class) in the registry cache: one per
    mapper, so classes sharing a table through inheritance never share rows."""
    return (KEY_PREFIX, "table", model)


def begin(session: Session) -> None:
    """Start the session's transaction if it has none (no SQL, no connection): a unit of work
    that only reads cached values still starts with ``check_signaling()``."""
    if session._transaction is None and session.autobegin:
        session._autobegin_t()  # what any query would do first; fires after_transaction_create


def default_session(owner: Any) -> Union[Session, AsyncSession]:
    """``owner.session``, called when it is not a Session or an AsyncSession (a scoped_session,
    an async_scoped_session, a factory)."""
    session: Any = owner.session
    if isinstance(session, (Session, AsyncSession)) or not callable(session):
        return cast(Union[Session, AsyncSession], session)  # anything else: refused by the caller
    return cast(Union[Session, AsyncSession], session())


class CachedMember:
    """Base of the members ``OrmCache.register()`` collects (``orm_cached`` ones)."""

    __slots__ = ()

    def misplaced_property(self) -> str:
        """The TypeError message when ``@property`` is written above this member's decorator."""
        raise NotImplementedError


class Transaction:
    """What one session transaction of an ``OrmCache`` did and computed: its layer.

    ``keys``: the cache keys it invalidated (its own writes); ``layers``: values it computed that
    may not be stored for others (they depend on its own writes, or an invalidation of them was
    applied after it began: with REPEATABLE READ its snapshot may be older), one layer per open
    savepoint, key -> value; dropped with the savepoint or the transaction. ``start`` and
    ``generation``: the invalidation clock of the ``OrmCache`` and the registry's generation when
    it began (after ``check_signaling()``); ``version``: the signaling version it began under.
    """

    __slots__ = ("keys", "shared", "layers", "start", "generation", "version", "connections")

    def __init__(self, start: int, generation: int, version: Any = None) -> None:
        self.keys: Set[Any] = set()
        self.shared: Set[Any] = set()
        self.layers: List[Dict[Any, Any]] = [{}]
        self.start = start
        self.generation = generation
        self.version = version
        #: the connections its database work runs on (their commit sends what it invalidated)
        self.connections: List[Any] = []

    def find(self, key: Any) -> Any:
        """The value of ``key`` in the innermost layer holding it, else None."""
        for layer in reversed(self.layers):
            value = layer.get(key)
            if value is not None:
                return value
        return None

    def put(self, key: Any, value: Any) -> Any:
        """Keep ``value`` for this transaction (its innermost savepoint); returns it."""
        self.layers[-1][key] = value
        return value

    def forget(self, key: Any) -> None:
        for layer in self.layers:
            layer.pop(key, None)
