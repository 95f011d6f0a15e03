"""What the binding (``OrmCache``) and the cached members share: the session's keys, ``begin``,
the keys of full-table caches and the marker of cached members. Imports no other module of the
package but ``_changes``, so ``binding``, ``cached`` and ``tables`` never import each other."""
from __future__ import annotations

from typing import Any, Tuple

from sqlalchemy.orm import Session

from ._changes import KEY_PREFIX

#: ``session.info`` key of the OrmCache watching a session (found by the full-table cache).
OWNER_KEY = "ormcache.sqlalchemy.owner"
#: ``session.info`` flag of the sessions this package opens for itself (never watched).
INTERNAL_KEY = "ormcache.sqlalchemy.internal"


def table_key(model: type) -> Tuple[str, str, type]:
    """Key of the full-table cache of ``model`` (a mapped class) in the registry cache: one per
    mapper, so classes sharing a table through inheritance never share rows."""
    return (KEY_PREFIX, "table", model)


def begin(session: Session) -> None:
    """Start the session's transaction if it has none (no SQL, no connection): a unit of work
    that only reads cached values still starts with ``check_signaling()``."""
    if session._transaction is None and session.autobegin:
        session._autobegin_t()  # what any query would do first; fires after_transaction_create


def default_session(owner: Any) -> Session:
    """``owner.session``, called when it is not a Session (a scoped_session, a factory)."""
    session = owner.session
    return session if isinstance(session, Session) else session()


class CachedMember:
    """Base of the members ``OrmCache.register()`` collects (``orm_cached`` ones)."""

    __slots__ = ()
