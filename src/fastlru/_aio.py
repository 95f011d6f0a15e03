"""Single flight for coroutines: concurrent awaits of one key in one event loop compute once.

>>> import asyncio
>>> flights, calls = AsyncFlights(), []
>>> async def compute():
...     calls.append(1)
...     await asyncio.sleep(0)
...     return 42, True              # (value, share it with the waiters)
>>> async def get():
...     return await flights.run("answer", compute, lambda outcome: outcome)
>>> async def main():
...     return await asyncio.gather(*(get() for _ in range(10)))
>>> asyncio.run(main()), len(calls)
([42, 42, 42, 42, 42, 42, 42, 42, 42, 42], 1)

``fastlru.lru_cache`` on a coroutine function and ormcache's decorators on ``async def``
methods use it. The rules:

- Computations in progress are keyed by (event loop, key): a future of one loop is never
  awaited from another; threads that each run their own loop compute each for themselves.
- The computing task resolves its flight with the value to share, or with ``RETRY`` (it failed,
  was cancelled, or its value must not be shared). A flight never holds an exception and is
  never cancelled: a waiter gets ``CancelledError`` only when its own task is cancelled, and an
  exception is raised only in the task that computed (never shared between tasks, as between
  threads); waiters of a flight that ended without a value look again, then compute themselves
  (one of them, again in single flight).
- A waiter waits through ``asyncio.shield``: cancelling it leaves the flight to the others.
- A task whose computation awaits its own key (directly, or through a chain of tasks waiting on
  each other) computes it without the flight instead of waiting forever.
- Outside a running asyncio loop (a coroutine driven by another framework) nothing is shared.
"""
from __future__ import annotations

from ._flight import reaches

__all__ = ["AsyncFlights", "Flight", "RETRY", "await_miss", "cached_coroutine", "function_like", "refuse_async_generator"]

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (issue #21: import cost)
if TYPE_CHECKING:
    import asyncio
    from typing import (
        Any,
        Coroutine,
        Awaitable,
        Callable,
        Dict,
        Final,
        Generic,
        Hashable,
        Iterable,
        Mapping,
        Optional,
        Tuple,
        TypeVar,
    )

    K = TypeVar("K", bound=Hashable)
    V = TypeVar("V")
    _W = TypeVar("_W", bound=Callable[..., Any])
else:
    # ``import fastlru`` leaves asyncio (and its ~100 modules) alone until the first AsyncFlights,
    # made when an ``async def`` is decorated (issue #21); until then nothing here runs it
    asyncio = None

    class Generic:
        """typing.Generic's place at run time (typing is not imported): ``AsyncFlights[T]`` is
        ``AsyncFlights``; the type variables exist for type checkers only."""

        __slots__ = ()

        def __class_getitem__(cls, item):
            return cls

    K = None


def _import_asyncio() -> None:
    global asyncio
    import asyncio



class _Retry:
    __slots__ = ()

    def __repr__(self) -> str:
        return "RETRY"


#: A flight's outcome when it has no value to share: waiters look again, then compute.
RETRY: Final = _Retry()


class Flight:
    """One computation in progress: the future its waiters await, the task computing it, and
    the table (``flights``) and ``key`` it computes, for ``done()`` and ``wait()``."""

    __slots__ = ("loop", "future", "task", "flights", "key")

    def __init__(self, loop: asyncio.AbstractEventLoop, task: Optional[asyncio.Task[Any]],
                 flights: AsyncFlights[Any], key: Any) -> None:
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        self.task = task
        self.flights = flights
        self.key = key

    def done(self) -> None:
        """End this flight with nothing to share (``flights.release``): its waiters look again."""
        self.flights.release({self.key: self}, {})

    def wait(self) -> Awaitable[Any]:
        """``flights.wait(self)``: the flight's outcome, its shared value or ``RETRY``."""
        return self.flights.wait(self)


#: task -> the flight it waits for (to see when waiting would close a cycle)
_waiting: Dict[asyncio.Task[Any], Flight] = {}


def _reaches(flight: Flight, task: Optional[asyncio.Task[Any]]) -> bool:
    """True if ``flight`` is computed by ``task``, or by a task waiting (transitively) on it
    (``_flight.reaches``: the threads' rule)."""
    return reaches(flight.task, task, _waiting, "task")


def _running_loop() -> Optional[asyncio.AbstractEventLoop]:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # driven by another framework: no loop to share futures in
        return None


class AsyncFlights(Generic[K]):
    """The computations in progress of one cached callable, in every event loop."""

    __slots__ = ("table",)

    def __init__(self) -> None:
        if asyncio is None:
            _import_asyncio()
        self.table: Dict[Tuple[asyncio.AbstractEventLoop, K], Flight] = {}

    def claim(self, keys: Iterable[K], *, cycles: bool = True) -> Tuple[Dict[K, Optional[Flight]], Dict[K, Flight]]:
        """-> (keys this task computes, keys others compute). A led key maps to its flight, to
        be ``release``d, or to ``None`` when it is computed outside any flight (no loop, or
        waiting would close a cycle). ``cycles=False``: a flight of the caller's own task is
        joined as any other (``ormcache.sqlalchemy``'s bridge: its rule before this table)."""
        loop = _running_loop()
        led: Dict[K, Optional[Flight]] = {}
        joined: Dict[K, Flight] = {}
        if loop is None:
            return dict.fromkeys(keys), joined
        task = asyncio.current_task(loop)
        try:
            for key in keys:
                flight = Flight(loop, task, self, key)
                current = self.table.setdefault((loop, key), flight)
                if current is not flight and current.future.done():
                    # a flight that ended but could not be removed (``release``): replace it
                    self.table[(loop, key)] = current = flight
                if current is flight:
                    led[key] = flight
                elif cycles and _reaches(current, task):  # our own computation, or one that waits on us
                    led[key] = None
                else:
                    joined[key] = current
        except BaseException:  # a key's __hash__ or __eq__ failed: claim nothing
            self.release(led, {})
            raise
        return led, joined

    def release(self, led: Mapping[K, Optional[Flight]], shared: Mapping[K, Any]) -> None:
        """End the flights ``led``: each shares ``shared[key]``, or ``RETRY`` when missing."""
        for key, flight in led.items():
            if flight is None:
                continue
            outcome: Any = RETRY
            try:  # callers from now on look in the cache
                outcome = shared.get(key, RETRY)
                table_key = (flight.loop, key)
                if self.table.get(table_key) is flight:
                    del self.table[table_key]
            except Exception:  # noqa: BLE001 - a colliding key's __eq__: left done, replaced by ``claim``
                pass
            finally:  # the waiters are woken whatever the removal did
                if not flight.future.done() and not flight.loop.is_closed():
                    flight.future.set_result(outcome)

    async def wait(self, flight: Flight) -> Any:
        """The outcome of another task's flight: its shared value, or ``RETRY``."""
        task = asyncio.current_task()
        if task is not None:
            _waiting[task] = flight
        try:
            return await asyncio.shield(flight.future)
        finally:
            if task is not None:
                _waiting.pop(task, None)

    async def run(
        self,
        key: K,
        compute: Callable[[], Awaitable[Tuple[V, bool]]],
        recheck: Callable[[Any], Any],
    ) -> V:
        """``compute()`` -> (value, share it?) once for every concurrent caller of ``key``.

        A waiter passes its flight's outcome through ``recheck``: it returns the value to
        return (counting a hit, say), or ``RETRY`` to claim the key again (after a failed or
        cancelled computation, ``recheck(RETRY)`` looks in the cache first).
        """
        while True:
            led, joined = self.claim((key,))
            if led:
                break
            outcome = recheck(await self.wait(joined[key]))
            if outcome is not RETRY:
                return outcome  # type: ignore[no-any-return]
        shared: Dict[K, Any] = {}
        try:
            if led[key] is not None:
                # a flight that ended since this caller missed stored its value: no new one
                outcome = recheck(RETRY)
                if outcome is not RETRY:
                    shared[key] = outcome
                    return outcome  # type: ignore[no-any-return]
            value, share = await compute()
            if share:
                shared[key] = value
            return value
        finally:
            self.release(led, shared)


# -- the decorators' side ----------------------------------------------------------------------

def refuse_async_generator(func: Callable[..., Any], decorator: str) -> None:
    """Async generators yield once per iteration: there is no single result to cache."""
    import inspect  # at decoration, not at import (issue #21)

    if inspect.isasyncgenfunction(func):
        name = getattr(func, "__qualname__", func)
        raise TypeError(
            f"{decorator} cannot cache the async generator function {name!r}: cache a coroutine "
            "function that returns the items (a list or tuple) instead"
        )


async def await_miss(
    flights: AsyncFlights[Hashable],
    lru: Any,
    key: Hashable,
    func: Callable[..., Awaitable[V]],
    args: Tuple[Any, ...],
    kwargs: Dict[str, Any],
) -> V:
    async def compute() -> Tuple[V, bool]:
        value = await func(*args, **kwargs)
        lru.setdefault(key, value)  # a call made meanwhile (another loop) stored first
        return value, True

    def recheck(outcome: Any) -> Any:
        return lru.peek(key, RETRY) if outcome is RETRY else outcome

    return await flights.run(key, compute, recheck)


def function_like(wrapper: _W, func: Callable[..., Any]) -> _W:
    """``wrapper`` (a compiled callable with a ``__dict__``) made to look like ``func`` to
    ``inspect``: ``functools.update_wrapper``, and the attributes ``inspect`` reads of a
    function-like callable (``__code__``, ``__defaults__``, ``__kwdefaults__``), so that
    ``inspect.iscoroutinefunction`` (3.10+) holds for the compiled wrapper of a coroutine
    function, as it does for an ``async def``; 3.12+: ``inspect.markcoroutinefunction`` too."""
    import inspect
    from functools import update_wrapper

    update_wrapper(wrapper, func)
    for name in ("__code__", "__defaults__", "__kwdefaults__"):
        setattr(wrapper, name, getattr(func, name, None))
    mark = getattr(inspect, "markcoroutinefunction", None)
    if mark is not None:
        mark(wrapper)
    return wrapper


def cached_coroutine(
    inner: Any,
    make_key: Callable[[Tuple[Any, ...], Dict[str, Any], bool], Hashable],
    func: Callable[..., Awaitable[V]],
    typed: bool,
) -> Callable[..., Coroutine[Any, Any, V]]:
    """``lru_cache`` of a coroutine function: the awaited value is cached, in single flight.

    ``inner`` is the wrapper ``lru_cache`` makes of a plain function: it holds the LRU and
    answers ``cache_info()``, ``cache_clear()`` and ``cache_parameters()``; ``make_key`` is
    its key of a call. The wrapper is an ``async def``: ``inspect.iscoroutinefunction`` holds.
    """
    flights: AsyncFlights[Hashable] = AsyncFlights()
    lru = inner._lru

    if lru is None:  # maxsize=0: nothing is cached; ``inner`` counts the miss and calls func

        async def wrapper(*args: Any, **kwargs: Any) -> V:
            return await inner(*args, **kwargs)  # type: ignore[no-any-return]

    else:

        async def wrapper(*args: Any, **kwargs: Any) -> V:
            key = make_key(args, kwargs, typed)
            result = lru.get(key, RETRY)
            if result is not RETRY:
                return result  # type: ignore[no-any-return]
            return await await_miss(flights, lru, key, func, args, kwargs)

    from functools import update_wrapper

    for name in ("cache_info", "cache_clear", "cache_parameters"):
        setattr(wrapper, name, getattr(inner, name))
    return update_wrapper(wrapper, func)
