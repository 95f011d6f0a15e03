"""Coroutine methods under ``ormcache``, ``ormcache_context`` and ``ormcache_multi``.

>>> import asyncio
>>> from ormcache import ormcache
>>> class Params:
...     _name = "ir.config_parameter"
...     @ormcache("key")
...     async def get_param(self, key):
...         await asyncio.sleep(0)
...         return key.upper()
>>> asyncio.run(Params().get_param("a")), asyncio.run(Params().get_param("a"))
('A', 'A')

The awaited value is cached, never the coroutine; the wrapper is an ``async def`` (so
``inspect.iscoroutinefunction`` holds). Keys, registries, counters and what is stored are the
sync path's (``keys``, ``_cold.resolve``, ``_cold.store``); only the waiting differs:

- concurrent awaits of one key in one event loop compute once (``fastlru._aio.AsyncFlights``);
  a failed or cancelled computation stores nothing and is never shared: its waiters look
  again, then one of them computes (as threads do); an exception reaches only the task that
  computed, and ``CancelledError`` only a task that was itself cancelled.
- a clear during the computation: the value is returned, not stored (``_cold.store``).
- ``ormcache_multi``: one flight per id; the method is awaited once, with only the ids that
  are neither cached nor being computed by another task, then the others are awaited.
"""
from __future__ import annotations

import time

from fastlru._aio import RETRY, AsyncFlights

from ._cold import AGAIN, check_multi_result, lookup_failed, multi_value, owner_keys, reader, recheck, store
from ._spec import NO_SLOT, slot_of
from .registry import DELETE_HOOKS

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (issue #21: import cost)
if TYPE_CHECKING:
    from typing import Any, Awaitable, Callable, Coroutine, Dict, List, Tuple

    from ._spec import MethodSpec, Slot


__all__ = ["await_miss", "cached_coroutine", "cached_coroutine_multi"]

#: bumped when a registry is deleted: the wrappers then drop the one they remember
_epoch = [0]


def _forget_registries() -> None:
    _epoch[0] += 1


DELETE_HOOKS.append(_forget_registries)


class _Last:
    """The ``Slot`` of a wrapper's last (pool, model key), and the ``_epoch`` it was resolved
    in: a hit on the same kind of owner resolves nothing. ``state`` is one tuple, replaced whole
    (threads): (epoch, slot)."""

    __slots__ = ("spec", "state")

    def __init__(self, spec: MethodSpec) -> None:
        self.spec = spec
        self.state: Tuple[int, Slot] = (-1, NO_SLOT)

    def resolve(self, pool: Any, mkey: Any) -> Slot:
        slot = slot_of(self.spec, pool, mkey)
        self.state = (_epoch[0], slot)
        return slot


def _fast_index(spec: MethodSpec) -> Tuple[int, int, int]:
    """(index, min_args, max_args): a positional call with ``min_args <= len(args) <= max_args``
    is keyed on ``args[index]`` alone (the key's one expression is that parameter); index -1:
    always call the key function."""
    key = spec.key
    if key.indices is None or len(key.indices) != 1:
        return -1, 0, 0
    return key.indices[0], key.min_args, key.max_args if key.max_args >= 0 else 1 << 62


async def _timed(counter: Any, func: Callable[..., Awaitable[Any]], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    start = time.perf_counter()
    try:
        return await func(*args, **kwargs)
    finally:
        counter.gen_time += time.perf_counter() - start


def _recheck(lru: Any, counter: Any, key: Tuple[Any, ...], outcome: Any) -> Any:
    """A waiter's flight ended: its shared value, else the cache's, else ``RETRY``."""
    if outcome is RETRY:
        try:
            outcome = reader(lru)(key, RETRY)
        except Exception:  # noqa: BLE001 - the cache refuses it now: compute it ourselves
            return RETRY
    if outcome is not RETRY:
        counter.hit += 1
    return outcome


async def await_miss(
    func: Callable[..., Awaitable[Any]],
    flights: AsyncFlights[Tuple[Any, ...]],
    registry: Any,
    lru: Any,
    counter: Any,
    key: Tuple[Any, ...],
    args: Tuple[Any, ...],
    kwargs: Dict[str, Any],
) -> Any:
    """The key is not cached: compute it once for the event loop's concurrent callers (the
    wrapper below, and the compiled hit path's ``_cache_c.cached_coroutine``)."""

    async def compute() -> Tuple[Any, bool]:
        counter.miss += 1
        generation = registry.generation
        value = await _timed(counter, func, args, kwargs)
        return value, store(func, registry, lru, counter, key, value, generation)

    return await flights.run(key, compute, lambda outcome: _recheck(lru, counter, key, outcome))


def cached_coroutine(spec: MethodSpec) -> Callable[..., Coroutine[Any, Any, Any]]:
    """The caching wrapper of an ``async def`` method under ``ormcache``/``ormcache_context``
    (the pure-Python hit path's; ``_cache_c.cached_coroutine`` is the compiled one)."""
    func, key_function, has_owner, model = spec.func, spec.key.function, spec.has_owner, spec.model
    index, min_args, max_args = _fast_index(spec)
    last = _Last(spec)
    flights: AsyncFlights[Tuple[Any, ...]] = AsyncFlights()

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if has_owner:
            if not args:
                return await func(*args, **kwargs)  # let the method report the missing argument
            pool, mkey = owner_keys(args[0])
        else:
            pool, mkey = None, model
        epoch, slot = last.state
        if slot[0] is not pool or slot[1] is not mkey or epoch != _epoch[0]:
            slot = last.resolve(pool, mkey)
        # the slot's fields by position (_spec.SLOT_FIELDS): 3 model, 5 counter, 6 get
        if index >= 0 and not kwargs and min_args <= len(args) <= max_args:
            key = (slot[3], func, args[index])
        else:
            key = (slot[3], func, *key_function(*args, **kwargs))
        try:
            value = slot[6](key, RETRY)
        except Exception as exc:  # noqa: BLE001 - unhashable key...: the cache never fails the call
            lookup_failed(func, slot[5], key, exc)
        else:
            if value is not RETRY:
                slot[5].hit += 1
                return value
            _, _, registry, _, lru, counter, _ = slot
            return await await_miss(func, flights, registry, lru, counter, key, args, kwargs)
        # outside the except clause: the method's own errors do not chain to the lookup's
        return await func(*args, **kwargs)

    from functools import update_wrapper  # at decoration (issue #21: import cost)

    update_wrapper(wrapper, func)
    wrapper.flights = flights  # type: ignore[attr-defined]  # the computations in progress
    return wrapper


def cached_coroutine_multi(spec: MethodSpec) -> Callable[..., Coroutine[Any, Any, Dict[Any, Any]]]:
    """The caching wrapper of an ``async def`` method under ``ormcache_multi``."""
    func, key_function, has_owner = spec.func, spec.key.function, spec.has_owner
    multi, signature, model = spec.multi, spec.signature, spec.model
    if multi is None or signature is None:
        raise TypeError(f"cached_coroutine_multi: {spec!r} is not an ormcache_multi method's")
    last = _Last(spec)
    flights: AsyncFlights[Tuple[Any, ...]] = AsyncFlights()
    missing = spec.multi_name

    async def wrapper(*args: Any, **kwargs: Any) -> Dict[Any, Any]:
        if has_owner and not args:
            return await func(*args, **kwargs)  # type: ignore[no-any-return]
        pool, mkey = owner_keys(args[0]) if has_owner else (None, model)
        _, _, registry, name, lru, counter, get = last.resolve(pool, mkey)
        base = (name, func, *key_function(*args, **kwargs))
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        ids = list(bound.arguments[multi])
        found: Dict[Any, Any] = {}
        todo: Dict[Tuple[Any, ...], Any] = {}  # key -> id, for the ids still to get
        unkeyed: List[Any] = []  # ids the cache refuses: computed, never stored
        for id_ in ids:
            key = (*base, id_)
            try:
                value = get(key, RETRY)
            except Exception as exc:  # noqa: BLE001 - the cache never fails the call
                lookup_failed(func, counter, key, exc)
                unkeyed.append(id_)
                continue
            if value is RETRY:
                todo[key] = id_
            else:
                counter.hit += 1
                found[id_] = value
        while todo or unkeyed:
            led, joined = flights.claim(list(todo))
            try:
                for key, flight in list(led.items()):
                    value = recheck(lru, key) if flight is not None else AGAIN
                    if value is not AGAIN:  # stored by a flight that ended since the lookup
                        flights.release({key: flight}, {key: value})
                        found[todo.pop(key)] = value
                        del led[key]
            except BaseException:  # a key's __eq__ failed: the flights claimed end here
                flights.release(led, {})
                raise
            if led or unkeyed:
                shared: Dict[Tuple[Any, ...], Any] = {}
                try:
                    counter.miss += len(led)
                    generation = registry.generation
                    bound.arguments[multi] = [todo[key] for key in led] + unkeyed
                    computed = await _timed(counter, func, bound.args, bound.kwargs)
                    check_multi_result(func, missing, computed)
                    for key in led:
                        value = found[todo[key]] = multi_value(computed, todo[key], missing)
                        if store(func, registry, lru, counter, key, value, generation):
                            shared[key] = value
                    for id_ in unkeyed:
                        found[id_] = multi_value(computed, id_, missing)
                finally:
                    flights.release(led, shared)
                unkeyed = []
                for key in led:
                    del todo[key]
            for key, flight in joined.items():  # after our own computation: no task waits on us
                value = _recheck(lru, counter, key, await flights.wait(flight))
                if value is not RETRY:
                    found[todo.pop(key)] = value
        return {id_: found[id_] for id_ in ids}

    from functools import update_wrapper  # at decoration (issue #21: import cost)

    update_wrapper(wrapper, func)
    wrapper.flights = flights  # type: ignore[attr-defined]  # the computations in progress
    return wrapper
