"""AsyncSession support: the synchronous implementation run through SQLAlchemy's greenlet bridge.

Every decision (what to invalidate, what to store, the transaction layers) is made by the same
code for both kinds of session, on the ``Session`` an ``AsyncSession`` wraps (``sync_session``);
``greenlet_spawn`` runs that code so that each of its database calls awaits on the event loop::

    async def by_id(session, id):   # what each awaited entry point does
        return await run(Model.by_id, session.sync_session, id)

``Flights``: the computations running in one process's event loops, so that tasks awaiting the
same cold key compute it once (the others wait, then look again).
"""
from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any, Callable, Dict, Hashable, Tuple, TypeVar, Union

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.concurrency import in_greenlet

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


class Flight:
    """One computation in one event loop; the tasks wanting its key wait for it to end."""

    __slots__ = ("flights", "key", "future")

    def __init__(self, flights: "Flights", key: Tuple[Any, ...], future: "asyncio.Future[None]") -> None:
        self.flights, self.key, self.future = flights, key, future

    def done(self) -> None:
        """The computation ended (stored, kept for its transaction, failed or cancelled): the
        waiting tasks look again (and one of them computes if nothing was stored)."""
        running = self.flights._running
        try:
            if running.get(self.key) is self:
                del running[self.key]
        except Exception:  # noqa: BLE001 - a colliding key's __eq__: left done, replaced by ``start``
            pass
        finally:  # the waiting tasks are woken whatever the removal did
            if not self.future.done():
                self.future.set_result(None)

    async def wait(self) -> None:
        # shielded: a waiter cancelled does not cancel the others' wait
        await asyncio.shield(self.future)


class Flights:
    """The computations in flight, by key, per event loop."""

    __slots__ = ("_running",)

    def __init__(self) -> None:
        self._running: Dict[Tuple[Any, ...], Flight] = {}

    def start(self, key: Hashable) -> Tuple[Flight, bool]:
        """The flight of ``key`` in the running loop, and whether the caller leads it (computes,
        then calls ``done()``) or must ``wait()`` for it."""
        loop = asyncio.get_running_loop()
        full = (loop, key)
        flight = self._running.get(full)
        if flight is not None and not flight.future.done():  # (a done one: its removal failed)
            return flight, False
        flight = self._running[full] = Flight(self, full, loop.create_future())
        return flight, True
