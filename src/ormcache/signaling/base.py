"""The base of signaling: the errors, the backend protocol and the in-process backend.

Every other module of ``ormcache.signaling`` imports this one; it imports no driver.
"""
from __future__ import annotations

from _thread import allocate_lock  # threading's own (issue #21: import cost)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (issue #21: import cost)
if TYPE_CHECKING:
    import asyncio
    import weakref
    from typing import (Any, AsyncGenerator, Awaitable, Callable, Dict, Generator, Generic, Iterable, List,
                        Sequence, Tuple, TypeVar)
# asyncio is imported where a coroutine runs (it is loaded then), typing nowhere at run time:
# ``import ormcache`` stays without them (issue #21)

__all__ = [
    "REGISTRY",
    "Versions",
    "SignalingError",
    "SignalingUnavailable",
    "SignalingConfigurationError",
    "ReadOnlyBackendError",
    "SignalingBackend",
    "LocalSignaling",
    "local_signaling",
    "Step",
    "Steps",
    "run_steps",
    "arun_steps",
    "PerLoop",
]

if TYPE_CHECKING:
    _T = TypeVar("_T")

    #: One round trip of a protocol written once for blocking and for async I/O: a function of
    #: the I/O object (a backend, a client, a connection) that returns the answer (blocking I/O)
    #: or an awaitable of it (async I/O).
    Step = Callable[[Any], Any]
    #: A protocol: a generator that yields its round trips, gets each answer sent back (or its
    #: error thrown in), and returns the result. The decisions live in it; only the drivers below
    #: differ (as psycopg drives its generators with blocking or async waits).
    Steps = Generator[Step, Any, _T]
    #: What a backend's read_versions() returns: an epoch (changes when the backend lost its
    #: counters, e.g. a Redis restarted without persistence) and the versions, in the order of
    #: names.
    Versions = Tuple[Any, Tuple[int, ...]]

    class _Generic(Generic[_T]):
        pass
else:
    _T = None

    class _Generic:
        """``PerLoop[X]`` at run time without typing: the class itself."""

        __slots__ = ()

        def __class_getitem__(cls, item):
            return cls


def __getattr__(name: str) -> Any:
    """The type aliases ``Step``, ``Steps`` and ``Versions``, built on first use (they need
    typing, which ``import ormcache`` does not import: issue #21)."""
    if name not in ("Step", "Steps", "Versions"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from typing import Any, Callable, Generator, Tuple, TypeVar

    step = Callable[[Any], Any]
    aliases = {"Step": step, "Steps": Generator[step, Any, TypeVar("_T")],  # type: ignore[misc]
               "Versions": Tuple[Any, Tuple[int, ...]]}
    globals().update(aliases)
    return aliases[name]


def run_steps(steps: Steps[_T], io: Any) -> _T:
    """Drive ``steps`` with blocking I/O on ``io``."""
    try:
        step = next(steps)
        while True:
            try:
                answer = step(io)
            except BaseException as exc:  # thrown in: the protocol decides (and cleans up)
                step = steps.throw(exc)
            else:
                step = steps.send(answer)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def arun_steps(steps: Steps[_T], io: Any) -> _T:
    """Drive ``steps`` with async I/O on ``io``: the event loop runs other tasks meanwhile."""
    import inspect  # loaded with asyncio

    try:
        step = next(steps)
        while True:
            try:
                answer = step(io)
                if inspect.isawaitable(answer):
                    answer = await answer
            except BaseException as exc:  # a cancellation too: the protocol's cleanup runs
                step = steps.throw(exc)
            else:
                step = steps.send(answer)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


class PerLoop(_Generic[_T]):
    """One resource per event loop (an async connection, a client: each belongs to the loop that
    made it), made on first use by ``make()`` and closed by ``await aclose(resource)``.

    A loop that shuts down closes its resource: ``asyncio.run()`` (and the servers built on
    asyncio's runners) close the loop's async generators before closing it, and a guard
    generator started in the loop at first use awaits ``aclose`` then. So a program that runs
    a loop per job (``asyncio.run()`` each time) leaves no connection open behind it.
    """

    def __init__(self, make: Callable[[], _T], aclose: Callable[[_T], Awaitable[None]]) -> None:
        import weakref

        self._make, self._aclose = make, aclose
        self._lock = allocate_lock()
        #: loop -> [resource, its guard]
        self._entries: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, List[Any]]" = (
            weakref.WeakKeyDictionary())

    async def get(self) -> _T:
        """The running loop's resource (made, and its guard started, on first use)."""
        import asyncio
        import weakref

        loop = asyncio.get_running_loop()
        entry = self._entries.get(loop)
        if entry is None:
            mine: List[Any] = [self._make(), None]
            with self._lock:
                entry = self._entries.setdefault(loop, mine)
            if entry is mine:
                entry[1] = await _closing_at_shutdown(self._discarding(weakref.ref(loop), entry))
        return entry[0]  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Close the running loop's resource now (a later ``get()`` makes a new one)."""
        import asyncio

        with self._lock:
            entry = self._entries.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            guard, entry[1] = entry[1], None
            if guard is not None:
                await guard.aclose()  # its finally closes the resource
            else:
                await self._aclose(entry[0])

    def clear(self) -> List[_T]:
        """Forget every loop's resource (their loops may be gone): the caller closes them."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        return [entry[0] for entry in entries]

    def _discarding(self, loop: "weakref.ref[asyncio.AbstractEventLoop]", entry: List[Any]
                    ) -> Callable[[], Awaitable[None]]:
        async def discard() -> None:
            with self._lock:
                alive = loop()
                if alive is not None and self._entries.get(alive) is entry:
                    del self._entries[alive]
            await self._aclose(entry[0])

        return discard


async def _closing_at_shutdown(aclose: Callable[[], Awaitable[None]]) -> AsyncGenerator[None, None]:
    """A started async generator that awaits ``aclose()`` when it is closed: by the running
    loop's ``shutdown_asyncgens()`` (the loop holds it weakly: keep a reference)."""

    async def guard() -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await aclose()

    started = guard()
    await started.asend(None)
    return started


#: The counter of the registry itself (moves when models change: the registry must reload).
REGISTRY = "registry"



class SignalingError(Exception):
    """The signaling backend failed: nothing was published."""


class SignalingUnavailable(SignalingError):
    """The signaling backend cannot be reached (down, restarting, network)."""


class SignalingConfigurationError(SignalingError):
    """The signaling backend is misconfigured (wrong password, a Redis that may evict keys...):
    not an outage, so it is raised, never handled by clearing caches and waiting."""


class ReadOnlyBackendError(SignalingConfigurationError):
    """The signaling backend is read-only (a replica, or a read-only transaction/connection)."""


class SignalingBackend:
    """What a backend provides; each call is one round trip to its server.

    - ``read_versions(db_name, names)`` -> ``(epoch, versions)``, versions in the order of names
      (0 for a name never bumped);
    - ``bump(db_name, names)``: add one to each counter;
    - ``attach(registry)``: a registry starts using the backend (optional);
    - ``close()``.

    Their coroutine twins ``aread_versions()`` / ``abump()`` (used by ``acheck_signaling()`` and
    ``asignal_changes()``) have the same results and errors and never block the event loop: by
    default they run the blocking call in a worker thread (``asyncio.to_thread``, so a backend
    must be thread-safe, as the registries of a threaded server already need); the PostgreSQL
    and Redis backends use async drivers instead. ``aclose()`` closes what the running loop
    opened. ``ormcache.signaling.contract`` lists these and the optional hooks (``timeout``,
    ``gc()``, ``record_statement()``...).
    """

    def read_versions(self, db_name: str, names: Sequence[str]) -> Versions:
        raise NotImplementedError

    def read(self, db_name: str, names: Sequence[str]) -> Tuple[Any, Dict[str, int]]:
        """``(epoch, {name: version})``: read_versions() as a mapping."""
        epoch, versions = self.read_versions(db_name, names)
        return epoch, dict(zip(names, versions))

    def bump(self, db_name: str, names: Iterable[str]) -> None:
        raise NotImplementedError

    async def aread_versions(self, db_name: str, names: Sequence[str]) -> Versions:
        import asyncio

        return await asyncio.to_thread(self.read_versions, db_name, names)

    async def abump(self, db_name: str, names: Iterable[str]) -> None:
        import asyncio

        await asyncio.to_thread(self.bump, db_name, list(names))

    def attach(self, registry: Any) -> None:
        pass

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        """Close the connections of the running event loop (``close()`` closes the others)."""

    def __enter__(self) -> "SignalingBackend":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LocalSignaling(SignalingBackend):
    """Counters in this process only: the embedded default, when there is one worker process.

    >>> backend = LocalSignaling()
    >>> backend.bump("db", ["default"])
    >>> backend.read("db", ["default", "assets"])
    (None, {'default': 1, 'assets': 0})
    """

    def __init__(self) -> None:
        self._lock = allocate_lock()
        self._counters: Dict[str, Dict[str, int]] = {}

    def read_versions(self, db_name: str, names: Sequence[str]) -> Versions:
        counters = self._counters.get(db_name, {})
        return None, tuple(map(counters.get, names, _zeros(len(names))))

    def bump(self, db_name: str, names: Iterable[str]) -> None:
        with self._lock:
            counters = self._counters.setdefault(db_name, {})
            for name in names:
                counters[name] = counters.get(name, 0) + 1

    async def aread_versions(self, db_name: str, names: Sequence[str]) -> Versions:
        return self.read_versions(db_name, names)  # in memory: nothing to wait for

    async def abump(self, db_name: str, names: Iterable[str]) -> None:
        self.bump(db_name, names)

    def __repr__(self) -> str:
        return "LocalSignaling()"


def check_key_prefix(prefix: Any, argument: str) -> str:
    """``prefix`` (a Redis key prefix formatted with ``db_name``) if it can be used: a str
    whose only placeholder is ``{db_name}``; else TypeError/ValueError at construction (it
    would fail at every call)."""
    if not isinstance(prefix, str):
        raise TypeError(f"{argument} must be a str, not {type(prefix).__name__}")
    try:
        prefix.format(db_name="db")
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ValueError(f"{argument} {prefix!r}: its only placeholder may be {{db_name}} "
                         f"(double the braces of a literal one): {type(exc).__name__} {exc}") from None
    return prefix


def _zeros(count: int) -> Tuple[int, ...]:
    return (0,) * count


_local_signaling = LocalSignaling()


def local_signaling() -> LocalSignaling:
    """The process-wide ``LocalSignaling`` used by registries whose ``signaling`` is None."""
    return _local_signaling
