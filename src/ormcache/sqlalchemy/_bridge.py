"""AsyncSession support: the synchronous implementation run through SQLAlchemy's greenlet bridge.

Every decision (what to invalidate, what to store, the transaction layers) is made by the same
code for both kinds of session, on the ``Session`` an ``AsyncSession`` wraps (``sync_session``);
``greenlet_spawn`` runs that code so that each of its database calls awaits on the event loop::

    async def by_id(session, id):   # what each awaited entry point does
        return await run(Model.by_id, session.sync_session, id)

``Flights``: the computations running in one process's event loops, so that tasks awaiting the
same cold key compute it once (the others wait, then look again): ``fastlru._aio.AsyncFlights``.
"""
from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Callable, Dict, Hashable, Tuple, TypeVar, Union

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.concurrency import in_greenlet

from fastlru._aio import AsyncFlights, Flight as Flight

from ._session import UNCHECKED_KEY

try:
    from sqlalchemy.util import await_  # SQLAlchemy 2.1 (await_only is its deprecated alias)
except ImportError:  # SQLAlchemy 2.0
    from sqlalchemy.util import await_only as await_

if TYPE_CHECKING:
    from typing import Coroutine

    from typing_extensions import TypeIs

__all__ = ["is_async", "sync_session", "run", "resolve", "ready", "Flights", "Flight", "MISS", "await_", "in_greenlet"]

_T = TypeVar("_T")

#: what a probe (a lookup that may do no I/O) returns when the value is not at hand
MISS: Any = object()


def is_async(session: Any) -> "TypeIs[AsyncSession]":
    return isinstance(session, AsyncSession)


def sync_session(session: Union[Session, AsyncSession], what: str) -> Session:
    """The ``Session`` the implementation works on (an AsyncSession's ``sync_session``);
    TypeError for anything else, naming ``what`` asked for it."""
    if isinstance(session, Session):
        return session
    if isinstance(session, AsyncSession):
        return session.sync_session
    raise TypeError(f"{what}: expected a Session or an AsyncSession, not {type(session).__name__} "
                    "(a sessionmaker or scoped_session must be called first)")


def run(fn: Callable[..., _T], *args: Any) -> "Coroutine[Any, Any, _T]":
    """``fn(*args)`` run in a greenlet: awaited, its database calls await on the event loop."""
    return greenlet_spawn(fn, *args)


def resolve(value: Any) -> Any:
    """``value``, awaited if it is awaitable (an ``async def`` member's coroutine, a coroutine of
    the AsyncSession): only inside ``run()``."""
    if inspect.isawaitable(value):
        return await_(value)
    return value


def ready(session: Session) -> bool:
    """Whether ``session`` is in a transaction that checked signaling, with nothing to flush: a
    cache lookup needs no I/O."""
    return session._transaction is not None and not session.info.get(UNCHECKED_KEY) and session._is_clean()


class Flights(AsyncFlights[Hashable]):
    """The computations in flight, by key, per event loop: ``fastlru._aio.AsyncFlights`` (the one
    asyncio single flight), started the way the greenlet side wants it (``start``)."""

    __slots__ = ()

    def start(self, key: Hashable) -> Tuple[Flight, bool]:
        """The flight of ``key`` in the running loop, and whether the caller leads it (computes,
        then calls ``done()``: its waiters look again) or must ``wait()`` for it."""
        led, joined = self.claim((key,), cycles=False)
        if joined:
            return joined[key], False
        flight = led[key]
        if flight is None:
            raise RuntimeError("no running event loop")
        return flight, True

    @property
    def _running(self) -> Dict[Tuple[Any, Hashable], Flight]:
        """The table (``AsyncFlights.table``): (loop, key) -> flight."""
        return self.table
