"""Single flight for threads: concurrent misses of one key compute it once.

>>> flights, me = {}, 1
>>> flight = new_flight(me)
>>> claim(flights, "key", flight) is flight       # nobody computes "key": this caller leads
True
>>> publish(flight, 42)                           # its value, shared with the waiters
>>> drop(flights, "key", flight)                  # removed, then its waiters woken
>>> flights, flight.landed, join(flight, 2)      # a late waiter: at once, the shared value
({}, True, 42)

The one home of the rules every thread-side cache follows (``lru_cache(single_flight=True)``
through ``_cached.SingleFlight``, ormcache's ``@ormcache`` and ``ormcache_multi`` misses and the
compiled hit path's ``_miss``, whose ``ormcache._cache_c.Flight`` is ``Flight``'s declared
twin: the same attributes, read and written by these functions):

- A table maps a key to its ``Flight``; the first caller to ``claim`` a key leads (computes),
  the others ``join`` it: they wait (no lock is held while anyone computes), then take its
  ``publish``-ed value, or ``AGAIN`` when it has none (it failed: exceptions are never shared).
- A caller that starts a flight looks in its cache once more first: a flight that ended since it
  missed stored its value there (the lost-race re-check, the caller's to do: it knows its cache).
- ``drop`` removes a finished flight (only it), then wakes its waiters whatever the removal did:
  a colliding key's ``__eq__`` may raise there; the flight stays, landed, and the next ``claim``
  of its key replaces it (issue #20).
- A thread never waits on a flight that it computes, directly or through threads that wait on
  it (``waits_on_me``): ``join`` says ``CYCLE`` and the caller computes without a flight.
- A flight makes its lock only when someone waits for it (most flights have no waiter).
"""
from __future__ import annotations

import sys
from _thread import allocate_lock

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (issue #21: import cost)
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

__all__ = ["AGAIN", "CYCLE", "Flight", "LAND_GUARDED", "claim", "drop", "join", "land",
           "new_flight", "publish", "reaches", "wait", "waiting", "waits_on_me"]


class _Marker:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: ``join``'s answer when the flight has no value to share (it failed, or its value was not
#: stored): look in the cache again, then claim the key again
AGAIN: Any = _Marker("AGAIN")
#: ``join``'s answer when waiting would close a cycle: compute without a flight
CYCLE: Any = _Marker("CYCLE")


class Flight:
    """One computation in progress, by thread ``thread``. ``lock`` is made by the first thread
    that waits for it, held until the computing thread lands it (``land``); ``landed`` tells a
    late waiter not to wait; ``value`` is shared when ``stored``. Made by ``new_flight`` (a plain
    function: cheaper per miss than a class with ``__init__``). The compiled twin is
    ``ormcache._cache_c.Flight``."""

    __slots__ = ("thread", "lock", "value", "stored", "landed")
    thread: int
    lock: Any
    value: Any
    stored: bool
    landed: bool


_new = object.__new__

#: thread ident -> the flight it waits for (to detect waits that would close a cycle), for every
#: table of every layer: a cycle through ``lru_cache`` and ``@ormcache`` flights is one cycle
waiting: Dict[int, Any] = {}

#: orders a waiter's arrival (making the flight's lock) against the flight's landing
_guard = allocate_lock()
#: free-threaded builds: the landing also takes ``_guard`` (without the GIL, the landing's
#: store-then-load and the waiter's are not ordered otherwise)
LAND_GUARDED: bool = not getattr(sys, "_is_gil_enabled", lambda: True)()


def new_flight(me: int) -> Flight:
    """A new flight of thread ``me`` (no lock until someone waits)."""
    flight = _new(Flight)
    flight.thread = me
    flight.lock = None
    flight.value = None
    flight.stored = False
    flight.landed = False
    return flight


def claim(flights: Dict[Any, Any], fkey: Any, flight: Any) -> Any:
    """``flights.setdefault(fkey, flight)``: ``flight`` when the caller leads, else the flight
    to ``join``. A flight left there landed (its removal failed, ``drop``) is replaced, never
    followed."""
    current = flights.setdefault(fkey, flight)
    if current is not flight and current.landed:
        flights[fkey] = current = flight
    return current


def publish(flight: Any, value: Any) -> None:
    """``value`` is the flight's result, stored in the cache: its waiters take it."""
    flight.value = value
    flight.stored = True


def drop(flights: Dict[Any, Any], fkey: Any, flight: Any) -> None:
    """The computing thread is done with ``flight``: remove it (only it) from ``flights``, then
    wake its waiters whatever the removal did (a colliding key's ``__eq__`` may raise there: the
    flight then stays, landed, and ``claim`` replaces it)."""
    try:
        if flights.get(fkey) is flight:
            del flights[fkey]  # callers from now on find the value in the cache
    except Exception:  # noqa: BLE001 - the computing caller's value is still its to return
        pass
    finally:
        land(flight)


def wait(flight: Any, me: int) -> None:
    """Block thread ``me`` until ``flight`` lands (returns at once if it has).

    The first waiter makes the lock, held on the computing thread's behalf (``_guard``: one lock
    per flight, whatever the number of waiters), then looks at ``landed`` again: the landing sets
    ``landed`` before it reads ``lock``, so either it sees this lock and releases it, or this
    waiter sees ``landed`` and does not wait: never a wait for a release that will not come."""
    with _guard:
        if flight.landed:
            return
        lock = flight.lock
        if lock is None:
            lock = allocate_lock()
            lock.acquire()
            flight.lock = lock
    if not LAND_GUARDED and flight.landed:
        return  # it landed meanwhile, perhaps reading ``lock`` before we set it: no release to wait for
    waiting[me] = flight
    try:
        with lock:  # released when the computing thread is done
            pass
    finally:
        waiting.pop(me, None)


def land(flight: Any) -> None:
    """The computing thread is done with ``flight``: wake its waiters, if any."""
    if LAND_GUARDED:
        with _guard:
            flight.landed = True
            lock = flight.lock
    else:  # the GIL orders these two steps against ``wait``'s
        flight.landed = True
        lock = flight.lock
    if lock is not None:
        lock.release()


def reaches(owner: Any, me: Any, waits: Dict[Any, Any], field: str) -> bool:
    """True if ``owner`` is ``me``, or waits (transitively) on a flight that ``me`` computes:
    ``waits`` maps a waiter to the flight it waits for, whose ``field`` names its owner. The one
    cycle rule, for threads (``waits_on_me``) and for asyncio tasks (``_aio``)."""
    for _ in range(256):
        if owner == me:
            return True
        waited = waits.get(owner)
        if waited is None:
            return False
        owner = getattr(waited, field)
    return True  # a chain that long: do not wait


def waits_on_me(flight: Any, me: int) -> bool:
    """True if ``flight`` is computed by thread ``me``, or by one waiting (transitively) on it."""
    return reaches(flight.thread, me, waiting, "thread")


def join(flight: Any, me: int) -> Any:
    """Thread ``me`` wants the key ``flight`` computes: its shared value once it lands, ``AGAIN``
    when it has none, ``CYCLE`` (without waiting) when waiting would close a cycle."""
    if waits_on_me(flight, me):  # recursion on the same key, or a cycle of threads
        return CYCLE
    wait(flight, me)
    return flight.value if flight.stored else AGAIN
