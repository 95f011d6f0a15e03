"""The cold path both hit paths (``_cache_py`` and ``_cache_c``) share: everything but the hit.

- ``resolve``: which registry, model name, LRU and counter serve a call (once per owner kind).
- ``miss``: compute with single flight (its rules and table functions: ``fastlru._flight``);
  concurrent misses on one key compute once, the others wait for that result. No lock is held
  while the method runs, nothing is shared between keys, and a thread never waits on a
  computation that (directly or through other threads) waits on it.
  ``_cache_c`` compiles the uncontended part (its ``_miss``) and joins another's flight through
  ``follow``, as ``miss`` does.
- ``store``: whether a computed value is stored (not after a clear during the computation).
- ``uncached``: a key the cache cannot take (unhashable...) is computed without caching.
- ``multi_miss``: ``ormcache_multi``'s missing ids, with ``miss``'s single flight per id.
"""
from __future__ import annotations

import sys
import time
from _collections_abc import Mapping  # collections.abc's own module, loaded by os (issue #21: import cost)
from _thread import get_ident

from fastlru import LRU as _LRU
from fastlru._flight import (  # single flight's one home; the underscored names: the tests' and _cache_c's
    AGAIN as AGAIN, CYCLE, LAND_GUARDED as _LAND_GUARDED, Flight as Flight, claim as claim, drop as drop,
    join, land as _land, new_flight as _flight, publish, wait as _wait, waiting as _waiting,
    waits_on_me as _waits_on_me)

from ._logger import get_logger
from .registry import ExpiringName, Registry, default_registry

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (issue #21: import cost)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Set, Tuple

_logger = get_logger("ormcache")

#: methods whose uncacheable key was already logged (once per method)
_warned: Set[Any] = set()


def registry_of(pool: Any) -> Registry:
    """The registry of an owner's ``pool``: the pool itself, or ``default_registry`` for an owner
    without one (``None``); any other pool is a mistake, said at once rather than cached in
    ``default_registry`` (issue #21)."""
    if isinstance(pool, Registry):
        return pool
    if pool is None:
        return default_registry
    raise TypeError(f"an ormcache owner's pool must be a Registry (or None: default_registry), "
                    f"not {type(pool).__qualname__}")


def resolve(pool: Any, mkey: Any, func: Callable[..., Any], cache_name: str, counter_type: type) -> Tuple[Any, str, Any, Any]:
    """-> (registry, model name, LRU, counter) for an owner's ``pool`` and ``_name`` (or type)."""
    registry = pool if type(pool) is Registry else registry_of(pool)
    model = model_name(mkey)
    lru = cache_of(registry, cache_name)
    counters = registry.counters
    counter = counters.get((model, func))
    if counter is None:
        # the first call: threads resolving at once must share one counter (a get, then a
        # store, let each make its own and all but the last one's counts were lost: 3.13t)
        counter = counters.setdefault((model, func), counter_type(str(cache_name)))
    if type(counter) is not counter_type:  # another hit path made it (tests)
        fresh = counter_type(str(cache_name))
        fresh.hit, fresh.miss, fresh.err, fresh.gen_time = counter.hit, counter.miss, counter.err, counter.gen_time
        fresh.tx_hit, fresh.tx_miss, fresh.tx_err = (
            getattr(counter, "tx_hit", 0), getattr(counter, "tx_miss", 0), getattr(counter, "tx_err", 0))
        counter = counters[(model, func)] = fresh
    if registry.method_signals:
        registry._watch_method(func)
    if registry.tx_stats:
        lru = _tx_counting(registry, lru, counter)
    return registry, model, lru, counter


class TxCounting:
    """An LRU seen through Odoo 19's transaction statistics (``Registry.tx_stats``): the first
    lookup of a key in the thread's ``cursor_scope()`` counts a ``tx_hit`` or ``tx_miss`` (a
    key it cannot hash, a ``tx_err``). Not an engine type, so the hit paths read it by
    ``lru[key]``; everything else is the LRU's own."""

    __slots__ = ("lru", "counter", "_flags")

    def __init__(self, lru: Any, counter: Any, flags: Any) -> None:
        self.lru = lru
        self.counter = counter
        self._flags = flags

    def __getitem__(self, key: Any) -> Any:
        lookups = self._flags.tx_lookups
        if lookups is None:  # outside a transaction
            return self.lru[key]
        try:
            first = key not in lookups
            if first:
                lookups.add(tuple(key))  # a copy: the hit path may refill its probe tuple
        except Exception:
            self.counter.tx_err += 1
            raise
        try:
            value = self.lru[key]
        except KeyError:
            self.counter.tx_miss += first
            raise
        self.counter.tx_hit += first
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self.lru[key] = value

    def __delitem__(self, key: Any) -> None:
        del self.lru[key]

    def __contains__(self, key: Any) -> bool:
        return key in self.lru

    def __len__(self) -> int:
        return len(self.lru)

    def __iter__(self) -> Any:
        return iter(self.lru)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.lru, name)

    def __repr__(self) -> str:
        return f"<TxCounting {self.lru!r}>"


def _tx_counting(registry: Any, lru: Any, counter: Any) -> TxCounting:
    """One ``TxCounting`` per (LRU, counter) of a registry, so that every slot resolved for one
    method shares it (flights are keyed by the LRU's identity)."""
    made = registry._tx_counting
    wrapped: Optional[TxCounting] = made.get((id(lru), id(counter)))
    if wrapped is None or wrapped.lru is not lru or wrapped.counter is not counter:
        wrapped = made[(id(lru), id(counter))] = TxCounting(lru, counter, registry._invalidation_flags)
    return wrapped


def _is_engine_lru(lru: Any) -> bool:
    """Whether ``lru`` is the engine's own LRU, compiled or twin: its ``get`` is its
    ``__getitem__`` with a default. An LRU of the twin exists only once the twin is imported,
    which ``import ormcache`` does not do (issue #21: import cost)."""
    tp = type(lru)
    if tp is _LRU:
        return True
    twin = sys.modules.get("fastlru._lru_py")
    return twin is not None and tp is twin.LRU


def reader(lru: Any) -> Callable[[Any, Any], Any]:
    """``lru``'s lookup as the hit paths read it, ``get(key, default)``: the engine's ``get``,
    or for any other LRU (a ``Registry(lru_factory=...)`` subclass) ``lru[key]``, so that an
    overridden ``__getitem__`` is honoured, as by the compiled hit path; a ``KeyError`` other
    than the miss of this very key is a failed lookup, as there."""
    if _is_engine_lru(lru):
        return lru.get  # type: ignore[no-any-return]

    def get(key: Any, default: Any) -> Any:
        try:
            return lru[key]
        except KeyError as exc:
            if len(exc.args) == 1 and exc.args[0] is key:
                return default
            raise

    return get


def recheck(lru: Any, key: Any) -> Any:
    """The value of ``key`` in ``lru`` (``AGAIN`` if not there or the cache refuses it), read by
    a caller about to start a flight: a flight that ended since this caller missed stored its
    value there, and single flight is single. Not counted by the engine, not made most recent
    (``peek``); another LRU type is read as the hit path reads it (``reader``)."""
    try:
        if _is_engine_lru(lru):
            return lru.peek(key, AGAIN)
        return reader(lru)(key, AGAIN)
    except Exception:  # noqa: BLE001 - the cache refuses it now: computed, as a miss
        return AGAIN


def owner_keys(owner: Any) -> Tuple[Any, Any]:
    """-> (``pool``, model key) of a method's owner, as ``resolve`` takes them: ``owner.pool``
    (None when absent), then the model key: ``owner._name``, else the owner's class (or the
    owner, a class). Read in this order (an attribute that raises: ``pool``'s error first).

    The one owner rule: every Python caller calls it; the twin's hit path inlines it, and the
    compiled one implements it in C (``_cache_owner.h`` and ``_cache_c``'s getattr fallback);
    ``tests/ormcache/test_spec21_owner.py`` pins the three to the same answers."""
    pool = getattr(owner, "pool", None)
    mkey = getattr(owner, "_name", None)
    if mkey is None:
        mkey = owner if isinstance(owner, type) else type(owner)
    return pool, mkey


def model_name(mkey: Any) -> str:
    """The model name that starts a key, from a model key (``owner_keys``): ``_name`` as it is
    when a string, else a class's qualified name (or ``str`` of anything else)."""
    return mkey if isinstance(mkey, str) else getattr(mkey, "__qualname__", None) or str(mkey)


def cache_of(registry: Registry, cache_name: str) -> Any:
    """The LRU a method of ``cache_name`` stores in: the named cache, or for an
    ``ExpiringName`` (``ormcache(..., ttl=)``) the registry's expiring cache of (name, ttl)."""
    if isinstance(cache_name, ExpiringName):
        return registry.expiring_cache(cache_name, cache_name.ttl)
    return registry.caches[cache_name]


def timed(counter: Any, func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[Any, Any]) -> Any:
    start = time.perf_counter()
    try:
        return func(*args, **kwargs)
    finally:
        counter.gen_time += time.perf_counter() - start


def miss(func: Callable[..., Any], flights: Dict[Any, Any], registry: Any, lru: Any, counter: Any, key: Tuple[Any, ...], args: Tuple[Any, ...], kwargs: Dict[Any, Any]) -> Any:
    """The key is not cached: compute it once for all concurrent callers, store it, return it.

    ``key`` is the hit path's ``HashedKey``: hashed here, once, and never again by the flight
    table, the store or the flight removal (the lookup that missed hashed it once before). A
    key whose hash fails now is computed without the cache, as any key the cache cannot take.
    """
    try:
        hash(key)
    except Exception as exc:  # noqa: BLE001 - the cache never fails the call
        return uncached(func, counter, key, exc, args, kwargs)
    me = get_ident()
    fkey = (id(lru), key)
    while True:
        flight = _flight(me)
        current = claim(flights, fkey, flight)
        if current is flight:
            break
        value = follow(current, me, func, lru, counter, key, args, kwargs)
        if value is not AGAIN:
            return value
    try:
        value = recheck(lru, key)
        if value is not AGAIN:
            counter.hit += 1
            publish(flight, value)
            return value
        counter.miss += 1
        generation = registry.generation
        value = timed(counter, func, args, kwargs)
        if store(func, registry, lru, counter, key, value, generation):
            publish(flight, value)
        return value
    finally:
        drop(flights, fkey, flight)


def follow(current: Any, me: int, func: Callable[..., Any], lru: Any, counter: Any, key: Tuple[Any, ...], args: Tuple[Any, ...], kwargs: Dict[Any, Any]) -> Any:
    """Thread ``me`` missed ``key`` while flight ``current`` (another's, or its own) computes it:
    wait for that flight and return its value, or compute the value here when waiting would close
    a cycle; ``AGAIN`` when the flight failed or its value is no longer cached. Shared by ``miss``
    and the compiled hit path's miss (``_cache_c``)."""
    value = join(current, me)
    if value is CYCLE:  # recursion on the same key, or a cycle of threads
        counter.miss += 1
        return timed(counter, func, args, kwargs)
    if value is not AGAIN:
        counter.hit += 1
        return value
    # it failed (exceptions are never shared) or the cache was cleared meanwhile: look again
    try:
        value = lru[key]
    except Exception:  # noqa: BLE001 - not there (or the cache refuses): compute it ourselves
        return AGAIN
    counter.hit += 1
    return value


def store(func: Callable[..., Any], registry: Any, lru: Any, counter: Any, key: Any, value: Any, generation: Any) -> bool:
    """Store ``value``, computed since ``registry.generation`` was ``generation``; True if it is
    stored (and may be shared with the callers that waited for it). The sync and the async
    misses (``_async``) both decide here."""
    # a clear during the computation may have invalidated what it read: do not store then
    if registry.generation != generation:
        return False
    try:
        lru[key] = value
    except Exception as exc:  # noqa: BLE001 - the call never fails because of the cache
        counter.err += 1
        _warn_once(func, "cannot store key %r in %s: %r", key, exc)
        return False
    if registry.generation != generation:  # a clear ran between the check and the store: undo it
        lru.pop(key, None)
        return False
    return True


def multi_miss(
    func: Callable[..., Any],
    flights: Dict[Any, Any],
    registry: Any,
    lru: Any,
    counter: Any,
    missed: Dict[Any, Optional[Tuple[Any, ...]]],
    call: Callable[[List[Any]], Any],
    name: str,
) -> Dict[Any, Any]:
    """``ormcache_multi``'s missing ids: computed once for all concurrent callers, per id.

    ``missed`` maps each missing id to its key (a ``HashedKey``), or None when the cache cannot
    take it (computed, never stored). ``call(ids)`` runs the method on a list of ids. Ids that
    another thread is computing are waited for (after computing ours, holding nothing), never
    passed to the method; one whose computation failed is computed here, in one more call.
    The rules are ``miss``'s. Returns ``{id: value}`` for every missing id; raises KeyError
    naming the first id the method's result lacks (``name``: the method and parameter).
    """
    me = get_ident()
    values: Dict[Any, Any] = {}
    pending = missed
    while pending:
        mine: Dict[Any, Tuple[Optional[Tuple[Any, ...]], Optional[Flight]]] = {}
        theirs: Dict[Any, Tuple[Tuple[Any, ...], Flight]] = {}
        for id_, key in pending.items():
            if key is None:  # uncacheable: computed here, never stored
                mine[id_] = (None, None)
                continue
            flight = _flight(me)
            try:
                current = claim(flights, (id(lru), key), flight)
            except Exception:  # noqa: BLE001 - its hash fails now: computed here, never stored
                mine[id_] = (None, None)
                continue
            if current is flight:
                value = recheck(lru, key)
                if value is not AGAIN:  # stored by a flight that ended since the lookup
                    values[id_] = value
                    publish(flight, value)
                    drop(flights, (id(lru), key), flight)
                    continue
                mine[id_] = (key, flight)
            elif _waits_on_me(current, me):  # recursion on the same id, or a cycle of threads
                mine[id_] = (key, None)
            else:
                theirs[id_] = (key, current)
        if mine:
            _compute_ids(func, flights, registry, lru, counter, mine, call, name, values)
        pending = {}
        for id_, (key, flight) in theirs.items():  # ours are released: nobody waits on us now
            value = join(flight, me)  # never CYCLE: we compute nothing now (treated as AGAIN)
            if value is not AGAIN and value is not CYCLE:
                values[id_] = value
                continue
            try:  # it failed (never shared) or a clear dropped it: look again, else compute it here
                values[id_] = lru[key]
            except Exception:  # noqa: BLE001
                pending[id_] = key
    return values


def multi_rest(
    func: Callable[..., Any],
    flights: Dict[Any, Any],
    registry: Any,
    lru: Any,
    counter: Any,
    missed: Dict[Any, Optional[Tuple[Any, ...]]],
    result: Dict[Any, Any],
    args: Tuple[Any, ...],
    position: int,
    name: str,
) -> Dict[Any, Any]:
    """``multi_miss`` for a positional call whose ids are ``args[position]``; fills ``result``."""

    def call(ids: List[Any]) -> Any:  # the same call with only these ids
        return func(*args[:position], ids, *args[position + 1:])

    values = multi_miss(func, flights, registry, lru, counter, missed, call, name)
    for id_ in missed:
        result[id_] = values[id_]
    return result


def _compute_ids(
    func: Callable[..., Any],
    flights: Dict[Any, Any],
    registry: Any,
    lru: Any,
    counter: Any,
    mine: Dict[Any, Tuple[Optional[Tuple[Any, ...]], Optional[Flight]]],
    call: Callable[[List[Any]], Any],
    name: str,
    values: Dict[Any, Any],
) -> None:
    """Run the method once on ``mine``'s ids, store and publish each value, release the flights."""
    generation = registry.generation
    try:
        computed = timed(counter, call, (list(mine),), {})
        check_multi_result(func, name, computed)
        for id_, (key, flight) in mine.items():
            value = values[id_] = multi_value(computed, id_, name)
            if key is not None and store(func, registry, lru, counter, key, value, generation) and flight is not None:
                publish(flight, value)
    finally:
        for key, flight in mine.values():
            if flight is not None:
                drop(flights, (id(lru), key), flight)


def check_multi_result(func: Callable[..., Any], name: str, result: object) -> None:
    """An ``ormcache_multi`` method returns {id: value}; anything else (a list would be indexed
    by the ids) is a TypeError saying so (``name``: "<method> returned no value for <multi>")."""
    if not isinstance(result, Mapping):
        multi = name.rpartition(" ")[2]
        raise TypeError(
            f"ormcache_multi method {func.__qualname__} must return a dict {{id: value}} for the "
            f"ids of {multi!r}, not a {type(result).__name__}"
        )


def multi_value(computed: Any, id_: Any, name: str) -> Any:
    """The value an ``ormcache_multi`` method returned for ``id_``; KeyError naming it if none."""
    try:
        return computed[id_]
    except KeyError:
        raise KeyError(f"{name} {id_!r}") from None


def lookup_failed(func: Callable[..., Any], counter: Any, key: Any, exc: BaseException) -> None:
    """The cache refused the key (unhashable, failing ``__hash__``...): count it, log it once."""
    counter.err += 1
    _warn_once(func, "cache lookup error on key %r in %s: %r; computing without cache", key, exc)


def uncached(func: Callable[..., Any], counter: Any, key: Any, exc: BaseException, args: Tuple[Any, ...], kwargs: Dict[Any, Any]) -> Any:
    """``lookup_failed``, then compute without the cache."""
    lookup_failed(func, counter, key, exc)
    del exc  # a frame holding it would tie the method's own error to this one (a cycle)
    return func(*args, **kwargs)


def _warn_once(func: Callable[..., Any], message: str, key: Any, exc: BaseException) -> None:
    if func not in _warned:
        _warned.add(func)
        try:
            text = repr(key)
        except Exception:  # noqa: BLE001
            text = f"<unrepresentable {type(key).__name__}>"
        # text only: a record holding the exception would keep its frames (and arguments) alive
        _logger.warning(message.replace("%r", "%s"), text, getattr(func, "__qualname__", func), repr(exc))
