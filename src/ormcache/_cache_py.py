"""The hit path in pure Python: the readable twin of ``_cache_c`` (same names, same keys).

``cached_method(spec)`` returns the wrapper of ``spec.func``, ``cached_multi(spec)`` that of an
``ormcache_multi`` method. A hit costs two attribute reads on
the owner, one key tuple, one LRU lookup and one integer increment; everything else (first call
from a new registry or model, misses, errors) goes to ``_cold``.
"""
from __future__ import annotations

import operator

from ._async import cached_coroutine
from ._cold import lookup_failed, miss, multi_miss, multi_rest, owner_keys, reader, resolve
from ._spec import NO_SLOT, slot_of
from .keys import context_of, context_part
from .registry import DELETE_HOOKS

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (issue #21: import cost)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Tuple

    from ._spec import MethodSpec, Slot

    _AnyTuple = tuple[Any, ...]
else:
    _AnyTuple = tuple

__all__ = ["Counter", "HashedKey", "cached_coroutine", "cached_method", "cached_multi", "forget_registries"]

_UNSET = object()
#: owner types a method remembers (as ``_cache_c``'s MAX_SLOTS); past this, it starts over
MAX_TYPES = 1024
# bumped when a registry is deleted: wrappers then drop the registries they remember
_epoch = [0]


def forget_registries() -> None:
    """Make every wrapper drop the registries it remembers (called by ``Registry.delete``)."""
    _epoch[0] += 1


DELETE_HOOKS.append(forget_registries)


class Counter:
    """Statistics of one (database, model, method)."""

    __slots__ = ("cache_name", "hit", "miss", "err", "gen_time", "tx_hit", "tx_miss", "tx_err")

    def __init__(self, cache_name: str = "") -> None:
        self.cache_name = cache_name
        self.hit = 0
        self.miss = 0
        self.err = 0
        self.gen_time = 0.0
        # Odoo 19's transaction statistics (first lookup of a key in a cursor_scope(); tx_stats)
        self.tx_hit = 0
        self.tx_miss = 0
        self.tx_err = 0

    @property
    def ratio(self) -> float:
        """Hits in percent of lookups."""
        return 100.0 * self.hit / ((self.hit + self.miss) or 1)

    @property
    def tx_ratio(self) -> float:
        """Transactions' first lookups served by the cache, in percent."""
        return 100.0 * self.tx_hit / ((self.tx_hit + self.tx_miss) or 1)

    @property
    def tx_calls(self) -> int:
        """Transactions' first lookups (``tx_hit + tx_miss``)."""
        return self.tx_hit + self.tx_miss

    def __repr__(self) -> str:
        return f"<Counter hit={self.hit} miss={self.miss} err={self.err} gen_time={self.gen_time:.6f}>"


class HashedKey(_AnyTuple):
    """The key a miss stores: a tuple that computes its hash once and keeps it, so the flight
    table, the store and the flight removal never run the arguments' ``__hash__`` again. Equal
    to, and hashed as, the plain tuple; pickled as one."""

    def __hash__(self, _hash: Callable[[Tuple[Any, ...]], int] = tuple.__hash__) -> int:
        try:
            return self.__dict__["hash"]  # type: ignore[no-any-return]  # an int, stored below
        except KeyError:
            value = self.__dict__["hash"] = _hash(self)
            return value

    def __reduce__(self) -> Tuple[Any, ...]:
        return tuple, (tuple(self),)


def cached_method(spec: MethodSpec) -> Callable[..., Any]:
    """The caching wrapper described by ``spec`` (built by the ``ormcache`` decorator)."""
    func = spec.func
    key_function = spec.key.function
    indices = spec.key.indices
    # the key's arguments straight from the positional ones: one index, several, or none
    single = indices[0] if indices is not None and len(indices) == 1 else None
    pick = operator.itemgetter(*indices) if indices is not None and len(indices) > 1 else None
    min_args, max_args = spec.key.min_args, spec.key.max_args
    # ormcache_context: the context's values end the key (a nested tuple)
    context_keys, context_index = spec.key.context_keys, spec.key.context_index
    if max_args < 0:
        max_args = 1 << 62
    has_owner = spec.has_owner
    static_model = spec.model
    flights: Dict[Any, Any] = {}
    # the slot (_spec.SLOT_FIELDS) of the last call
    slot = NO_SLOT
    # every (pool, model key) seen since the last Registry.delete, by identities
    known: Dict[Any, Slot] = {}
    # the last slot of each owner type (a guess, checked by identities: an inherited method
    # called round robin over many models finds its slot without building a key)
    by_type: Dict[Any, Slot] = {}
    epoch = _epoch[0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal slot, known, by_type, epoch
        if has_owner:
            if not args:
                return func(*args, **kwargs)  # let the method report the missing argument
            owner = args[0]
            # _cold.owner_keys, inlined (a call per hit); tests/ormcache/test_spec21_owner.py pins it
            pool = getattr(owner, "pool", None)
            mkey = getattr(owner, "_name", None)
            if mkey is None:
                mkey = owner if isinstance(owner, type) else type(owner)
        else:
            owner = None
            pool = None
            mkey = static_model
        current = slot
        if current[0] is not pool or current[1] is not mkey or epoch != _epoch[0]:
            if epoch != _epoch[0]:  # a registry was deleted: forget them all
                known, by_type, epoch = {}, {}, _epoch[0]
            owner_type = type(owner)
            found = by_type.get(owner_type)
            if found is None or found[0] is not pool or found[1] is not mkey:
                found = known.get((id(pool), id(mkey)))
                if found is None or found[0] is not pool or found[1] is not mkey:
                    found = known[(id(pool), id(mkey))] = slot_of(spec, pool, mkey)
                if len(by_type) >= MAX_TYPES:  # classes made by the thousand are not kept alive
                    by_type = {}
                by_type[owner_type] = found
            slot = current = found
        name = current[3]  # the slot's fields by position (_spec.SLOT_FIELDS): model
        if indices is not None and not kwargs and min_args <= len(args) <= max_args:
            if context_keys is not None:
                context = (args[context_index] or {}) if context_index >= 0 else context_of(args[0])
                key: Tuple[Any, ...] = (name, func, *[args[i] for i in indices], context_part(context, context_keys))
            elif single is not None:
                key = (name, func, args[single])
            elif pick is not None:
                key = (name, func, *pick(args))
            else:
                key = (name, func)
        else:
            key = (name, func, *key_function(*args, **kwargs))
        try:
            value = current[6](key, _UNSET)  # get
        except Exception as exc:  # noqa: BLE001 - unhashable key...: the cache never fails the call
            lookup_failed(func, current[5], key, exc)
        else:
            if value is not _UNSET:
                current[5].hit += 1  # counter
                return value
            _, _, registry, _, lru, counter, _ = current
            return miss(func, flights, registry, lru, counter, HashedKey(key), args, kwargs)
        # outside the except clause: the method's own errors neither chain to the lookup's nor
        # keep it alive
        return func(*args, **kwargs)

    from functools import update_wrapper  # at decoration (issue #21: import cost)

    update_wrapper(wrapper, func)
    wrapper.flights = flights  # type: ignore[attr-defined]  # the computations in progress (as CachedMethod.flights)
    return wrapper


def cached_multi(spec: MethodSpec, key_type: type = HashedKey) -> Callable[..., Any]:
    """``ormcache_multi``'s wrapper described by ``spec``: each id looked up, the method called
    once with only the missing ids (single flight per id, ``spec.flights``), each
    ``result[id]`` cached; returns a dict for all requested ids. A miss's key is a ``key_type``
    (the ``HashedKey`` of the hit path in use: ``_cache_c.cached_multi`` serves the positional
    calls and hands this wrapper the others)."""
    func, cache_name, multi, signature = spec.func, spec.cache_name, spec.multi, spec.signature
    key_function, has_owner, model = spec.key.function, spec.has_owner, spec.model
    counter_type = spec.counter_type
    flights, position, missing_name = spec.flights, spec.multi_position, spec.multi_name
    if multi is None or signature is None or flights is None:
        raise TypeError(f"cached_multi: {spec!r} is not an ormcache_multi method's")

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if has_owner:
            pool, mkey = owner_keys(args[0])
            registry, name, lru, counter = resolve(pool, mkey, func, cache_name, counter_type)
        else:
            registry, name, lru, counter = resolve(None, model, func, cache_name, counter_type)
        base = (name, func, *key_function(*args, **kwargs))
        bound = None
        if not kwargs and 0 <= position < len(args):
            ids = args[position]
        else:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            ids = bound.arguments[multi]
        result: Dict[Any, Any] = {}
        missed: Dict[Any, Any] = {}  # id -> its key, None if the cache cannot take it
        get = reader(lru)  # an overridden __getitem__ is honoured, as by the compiled hit path
        for id_ in ids:
            key = (*base, id_)
            try:
                value = get(key, _UNSET)
            except Exception as exc:  # noqa: BLE001 - the cache never fails the call
                lookup_failed(func, counter, key, exc)
                missed[id_] = None
                continue
            if value is _UNSET:
                counter.miss += 1
                missed[id_] = key_type(key)
            else:
                result[id_] = value
                counter.hit += 1
        if not missed:
            return result
        if bound is None:
            return multi_rest(func, flights, registry, lru, counter, missed, result, args, position, missing_name)

        def call(ids: List[Any]) -> Any:  # the same call with only these ids
            bound.arguments[multi] = ids
            return func(*bound.args, **bound.kwargs)

        values = multi_miss(func, flights, registry, lru, counter, missed, call, missing_name)
        for id_ in missed:
            result[id_] = values[id_]
        return result

    from functools import update_wrapper  # at decoration (issue #21: import cost)

    update_wrapper(wrapper, func)
    return wrapper
