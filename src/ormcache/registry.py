"""The per-database registry of named LRU caches (Odoo's ``Registry``, caches only).

>>> from ormcache.registry import Registry
>>> reg = Registry("demo")
>>> reg is Registry("demo")
True
>>> reg.clear_cache("stable")          # also clears 'default' and 'templates.cached_values'
>>> sorted(reg.cache_invalidated)
['stable']
>>> Registry.delete("demo")

Contract relied on by the signaling and SQLAlchemy layers:

- ``Registry(db_name, *, sizes=None, lru_factory=None, policies=None)``: one registry per
  database; ``policies`` maps a cache name to a ``fastlru.Cache`` policy (``{"default":
  "sieve"}``: that cache is a ``fastlru.Cache`` instead of an LRU, its expiring ones stay LRUs); the keyword
  arguments only matter at first creation. ``sizes`` overrides Odoo's sizes and may add names of
  its own (no dot; each clears only itself, and is signaled like Odoo's: ``caches_by_key``). ``__init__`` runs once per database; the
  ``RegistrySignaling`` mixin may define ``__init__(self)`` (no arguments), called after the caches
  exist.
- ``caches``: cache name -> ``fastlru.LRU``; the objects are never replaced (clearing is in place),
  so decorated methods may keep a reference to them.
- ``cache_invalidated`` (a set, per thread) and ``registry_invalidated`` (a bool, per thread).
- ``clear_cache(*names)``, ``clear_all_caches()``, ``_clear_local(names)``, ``_clear_all_local()``
  and ``signaling``. Clear through these (not ``caches[name].clear()``): they bump
  ``generation``, so a value computed across the clear is not stored afterwards.
- ``expiring_cache(name, ttl)``: the LRU of the methods of cache ``name`` whose entries live ``ttl``
  seconds (``ormcache(..., ttl=)``): made on first use by ``lru_factory(count, ttl=ttl)`` with
  the named cache's count, cleared whenever ``name`` is; ``all_caches()`` lists both kinds.
- ``counters``: (model, method) -> statistics, filled by the decorators (read by ``ormcache.stats``).
- ``method_signals`` (bool, off) and ``clear_method(func, model=None)``: a method's entries dropped
  alone, here and (through its fine-grained signal, subscribed by ``resolve``) in every process.
- ``tx_stats`` (bool, off): count Odoo 19's ``tx_hit``/``tx_miss``/``tx_err``, the first lookup of
  each key in a thread's ``cursor_scope()``; ``resolve`` then serves the hit paths an LRU that counts.
- ``Registry.delete(db_name)`` runs ``DELETE_HOOKS``: the hit paths forget the registries they
  remember, so a deleted registry (and its caches) can be freed.
"""
from __future__ import annotations

from _thread import _local, allocate_lock  # threading's own (issue #21: import cost)

from fastlru._common import check_ttl

from .signaling import RegistrySignaling

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (issue #21: import cost)
if TYPE_CHECKING:
    import threading
    from typing import Any, Callable, ClassVar, Dict, Iterable, List, Optional, Set, Tuple

__all__ = ["Registry", "CACHE_SIZES", "CACHES_BY_KEY", "ExpiringName", "default_registry", "method_signal"]

#: Odoo's default size of each named cache.
CACHE_SIZES: Dict[str, int] = {
    "default": 8192,
    "assets": 512,
    "templates": 1024,
    "routing": 1024,
    "routing.rewrites": 8192,
    "templates.cached_values": 2048,
    "groups": 64,
    "stable": 1024,
}

#: The names (keys) that clear_cache() takes and signaling carries, and the caches (containers)
#: each clears: Odoo 19's ``_CACHES_BY_KEY``, plus ``stable`` (Odoo 19 has no such key; this is
#: Odoo master's expansion). A container with a dot is not a key: it is cleared through its key.
CACHES_BY_KEY: Dict[str, Tuple[str, ...]] = {
    "default": ("default", "templates.cached_values"),
    "assets": ("assets", "templates.cached_values"),
    "stable": ("stable", "default", "templates.cached_values"),
    "templates": ("templates", "templates.cached_values"),
    "routing": ("routing", "routing.rewrites", "templates.cached_values"),
    "groups": ("groups", "templates", "templates.cached_values"),
}


class ExpiringName(str):
    """The cache name of a method whose entries live ``ttl`` seconds: equal to the name (so it
    clears and counts as the name), resolved to ``Registry.expiring_cache(name, ttl)``."""

    ttl: float

    def __new__(cls, name: str, ttl: float) -> "ExpiringName":
        self = super().__new__(cls, name)
        self.ttl = ttl
        return self


_MISSING = object()


def method_signal(func: Any) -> str:
    """The fine-grained signal of a cached function's entries: ``o.<module>.<qualname>``, the
    same in every process; a hash of that where a PostgreSQL table name would not keep it."""
    name = f"o.{getattr(func, '__module__', None)}.{getattr(func, '__qualname__', func)}"
    if len(("orm_signaling_" + name).encode("utf-8")) > 63:
        import hashlib  # when a name is too long only (issue #21: import cost)

        name = "o." + hashlib.md5(name.encode("utf-8")).hexdigest()
    return name


#: called without arguments after a registry is deleted or its ``tx_stats`` changes (hit paths
#: drop the registries they keep)
DELETE_HOOKS: List[Callable[[], None]] = []


class _PerDatabase(type):
    """Metaclass: ``Registry(db_name)`` returns the existing registry, else builds it once."""

    _registries: Dict[str, Registry]
    _lock: threading.Lock

    def __call__(cls, db_name: str, **kwargs: Any) -> Registry:
        registries = cls._registries
        registry = registries.get(db_name)  # lock-free fast path: dict reads are atomic
        if registry is not None:
            return registry
        with cls._lock:
            registry = registries.get(db_name)
            if registry is None:
                registry = super().__call__(db_name, **kwargs)
                registries[db_name] = registry
            return registry


class _ThreadFlags(_local):
    """A registry's per-thread flags. ``scope_generation`` (None outside a ``cursor_scope()``)
    is read by every miss (``Registry.generation``, three times): a class default, since reading
    a ``threading.local`` attribute a thread never set raises (and formats) an AttributeError."""

    scope_generation: Any = None
    #: the keys looked up so far in this thread's transaction (``cursor_scope()``), for the
    #: ``tx_*`` counters; None outside a scope
    tx_lookups: Any = None


class Registry(RegistrySignaling, metaclass=_PerDatabase):
    """The caches of one database, shared by every thread of the process."""

    _registries: ClassVar[Dict[str, "Registry"]] = {}
    _lock: ClassVar[threading.Lock] = allocate_lock()

    def __init__(
        self,
        db_name: str,
        *,
        sizes: Optional[Dict[str, int]] = None,
        lru_factory: Optional[Callable[[int], Any]] = None,
        policies: Optional[Dict[str, str]] = None,
    ) -> None:
        factory: Callable[..., Any]
        if lru_factory is None:
            from fastlru import LRU as factory
        else:
            factory = lru_factory
        counts = dict(CACHE_SIZES)
        for name, count in (sizes or {}).items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"cache names are non-empty strings, not {name!r}")
            if "." in name and name not in CACHE_SIZES:
                raise ValueError(f"a cache name of your own has no dot (Odoo keeps dots for "
                                 f"containers cleared through a key), not {name!r}")
            counts[name] = count  # a name Odoo does not have adds a cache of its own
        policies = dict(policies or {})
        if policies:
            from fastlru import POLICIES, Cache

            for name, policy in policies.items():
                if name not in counts:
                    raise ValueError(f"policies: unknown cache name {name!r}; known: "
                                     f"{sorted(counts)}")
                if policy not in POLICIES:
                    raise ValueError(f"policies: unknown policy {policy!r} for {name!r}: "
                                     f"expected one of {', '.join(POLICIES)}")
        self.db_name = db_name
        #: the constructor's keyword arguments that were given (shown by repr)
        self._arguments = {"sizes": dict(sizes or {}), "lru_factory": lru_factory,
                           "policies": policies}
        self._lru_factory = factory
        self._counts = counts
        # a named cache with a policy is a fastlru.Cache; its expiring caches stay LRUs
        self.caches: Dict[str, Any] = {
            name: Cache(count, policy=policies[name]) if name in policies else factory(count)
            for name, count in counts.items()}
        #: (cache name, ttl) -> LRU, made on first use (see ``expiring_cache``); replaced whole
        #: when one is added, so that a thread iterating it never sees it change
        self.expiring: Dict[Tuple[str, float], Any] = {}
        self._expiring_lock = allocate_lock()
        #: name -> caches cleared with it: CACHES_BY_KEY plus this registry's own names
        self.caches_by_key: Dict[str, Tuple[str, ...]] = dict(CACHES_BY_KEY)
        self.caches_by_key.update((name, (name,)) for name in counts if name not in CACHE_SIZES)
        #: (model name, method) -> counter (hit, miss, err, gen_time); filled by the decorators.
        self.counters: Dict[Tuple[str, Any], Any] = {}
        #: the signaling backend (set by the signaling layer), None when signaling is off.
        self.signaling: Any = None
        self._tx_stats = False
        self._method_signals = False
        #: method signal -> the functions it drops (see ``method_signal``)
        self._method_topics: Dict[str, Tuple[Any, ...]] = {}
        #: (id(LRU), id(counter)) -> the ``_cold.TxCounting`` serving them while tx_stats is on
        self._tx_counting: Dict[Tuple[int, int], Any] = {}
        #: bumped by every clear (read through ``generation``)
        self._generation = 0
        self._invalidation_flags = _ThreadFlags()
        super().__init__()

    def __repr__(self) -> str:
        shown = "".join(f" {name}={value!r}" for name, value in self._arguments.items() if value)
        return f"<Registry {self.db_name!r}{shown}>"

    def expiring_cache(self, name: str, ttl: float) -> Any:
        """The LRU of cache ``name``'s methods whose entries live ``ttl`` seconds (made on first
        use, with ``name``'s count; cleared with ``name``)."""
        seconds = check_ttl(ttl)
        if seconds is None:
            raise TypeError("expiring_cache: ttl must be a number of seconds, not None")
        key = (str(name), seconds)
        lru = self.expiring.get(key)
        if lru is None:
            if key[0] not in self.caches:
                raise ValueError(f"unknown cache name {name!r}; known: {sorted(self.caches)}")
            with self._expiring_lock:
                lru = self.expiring.get(key)
                if lru is None:
                    lru = self._lru_factory(self._counts[key[0]], ttl=seconds)
                    self.expiring = {**self.expiring, key: lru}
        return lru

    def all_caches(self) -> List[Tuple[str, Any]]:
        """(label, LRU) of every cache: the named ones, then the expiring ones as
        ``"<name> ttl=<seconds>"``."""
        return [*self.caches.items(),
                *((f"{name} ttl={ttl:g}", lru) for (name, ttl), lru in self.expiring.items())]

    @classmethod
    def delete(cls, db_name: str) -> None:
        """Forget the registry of ``db_name`` (no error if there is none)."""
        with cls._lock:
            cls._registries.pop(db_name, None)
        for hook in list(DELETE_HOOKS):
            hook()

    @classmethod
    def registries(cls) -> List["Registry"]:
        """The registries alive in this process."""
        return list(cls._registries.values())

    # -- per-thread invalidation flags -------------------------------------------------------

    @property
    def cache_invalidated(self) -> Set[str]:
        """Names cleared by this thread since the last signal/reset (per thread)."""
        try:
            names: Set[str] = self._invalidation_flags.cache_invalidated
            return names
        except AttributeError:
            names = self._invalidation_flags.cache_invalidated = set()
            return names

    @cache_invalidated.setter
    def cache_invalidated(self, names: Iterable[str]) -> None:
        self._invalidation_flags.cache_invalidated = set(names)

    @property
    def registry_invalidated(self) -> bool:
        """Whether this thread changed the registry itself (per thread)."""
        return getattr(self._invalidation_flags, "registry_invalidated", False)

    @registry_invalidated.setter
    def registry_invalidated(self, value: bool) -> None:
        self._invalidation_flags.registry_invalidated = bool(value)

    # -- what may be stored -------------------------------------------------------------------

    @property
    def generation(self) -> Any:
        """Read before computing a value and compared after it: the value is stored only if
        both reads are equal. Every clear moves it; inside a ``cursor_scope()`` during which a
        clear happened (any thread), each read is a new object, so nothing more is stored by
        that scope: its snapshot may predate the invalidation."""
        generation = self._generation
        start = getattr(self._invalidation_flags, "scope_generation", None)
        if start is not None and start != generation:
            return object()  # equal to nothing: not stored
        return generation

    def _begin_scope(self) -> Any:
        """Start a scope in this thread (``cursor_scope()``); returns what ``_end_scope()``
        restores (scopes nest)."""
        flags = self._invalidation_flags
        previous = getattr(flags, "scope_generation", None)
        if previous is None:  # a nested scope runs in the outer one's transaction: keep its start
            flags.scope_generation = self._generation
            flags.tx_lookups = set()
        return previous

    def _end_scope(self, previous: Any) -> None:
        self._invalidation_flags.scope_generation = previous
        if previous is None:
            self._invalidation_flags.tx_lookups = None

    # -- per-method invalidation across processes (odoo/odoo#35012) ------------------------

    @property
    def method_signals(self) -> bool:
        """Whether ``Model.method.clear_cache(model)`` drops only that method's entries, in
        every process (off by default: it clears the method's named cache, as Odoo).

        When on, each method this process calls subscribes a fine-grained signal of its own
        (``method_signal(func)``), read with the other names in the check's one round trip;
        ``clear_method()`` drops the method's entries here and publishes that signal, and
        every other process drops the method's entries (all models) at its next check."""
        return self._method_signals

    @method_signals.setter
    def method_signals(self, value: bool) -> None:
        if type(value) is not bool:
            raise TypeError(f"method_signals must be True or False, not {value!r}")
        if value is not self._method_signals:
            self._method_signals = value
            for hook in list(DELETE_HOOKS):  # the hit paths resolve (and subscribe) again
                hook()

    def _watch_method(self, func: Any) -> str:
        """Subscribe ``func``'s signal (once); returns its name."""
        topic = method_signal(func)
        if func not in self._method_topics.get(topic, ()):
            with self._expiring_lock:  # a short lock of this registry's (no user code under it)
                funcs = self._method_topics.get(topic, ())
                if func not in funcs:
                    self._method_topics[topic] = (*funcs, func)
            self.subscribe_signals([topic], self._method_signals_moved)
        return topic

    def _method_signals_moved(self, topics: List[str]) -> None:
        # under the signaling lock: drop local entries only
        for topic in topics:
            for func in self._method_topics.get(topic, ()):
                self._drop_method(func, None)

    def _drop_method(self, func: Any, model: Optional[str]) -> int:
        """Drop the entries of ``func`` (of model ``model``, or every model) from every cache;
        moves ``generation`` (a value computed across the drop is not stored). Returns how many."""
        self._generation += 1
        dropped = 0
        for _, lru in self.all_caches():
            doomed = [key for key in lru.keys()
                      if isinstance(key, tuple) and len(key) >= 2 and key[1] is func
                      and (model is None or key[0] == model)]
            for key in doomed:
                if lru.pop(key, _MISSING) is not _MISSING:
                    dropped += 1
        return dropped

    def clear_method(self, func: Any, model: Optional[str] = None) -> int:
        """Drop the entries of the cached function ``func`` (a decorated method's ``__cache__.func``)
        of ``model`` (every model when None) now; with ``method_signals`` and signaling on, publish
        its signal now (outside of any transaction: call it once the change committed), and the
        other processes drop its entries of every model at their next check. Returns how many
        entries were dropped here."""
        dropped = self._drop_method(func, model)
        if self._method_signals and self.signaling is not None:
            self.publish_signals([self._watch_method(func)])
        return dropped

    # -- Odoo 19's transaction statistics ----------------------------------------------------

    @property
    def tx_stats(self) -> bool:
        """Whether the counters' ``tx_hit``/``tx_miss``/``tx_err`` move (off by default).

        When on, the first lookup of each key in a thread's ``cursor_scope()`` (its transaction)
        counts a ``tx_hit`` or a ``tx_miss`` (Odoo 19's statistics); it costs every call of this
        registry's methods a set lookup, so the hit paths take it only when asked."""
        return self._tx_stats

    @tx_stats.setter
    def tx_stats(self, value: bool) -> None:
        if type(value) is not bool:
            raise TypeError(f"tx_stats must be True or False, not {value!r}")
        if value is not self._tx_stats:
            self._tx_stats = value
            for hook in list(DELETE_HOOKS):  # the hit paths resolve their slots again
                hook()

    # -- clearing ----------------------------------------------------------------------------

    def _expand(self, names: Iterable[str]) -> List[str]:
        caches: List[str] = []
        for name in names:
            try:
                expansion = self.caches_by_key[name]
            except (KeyError, TypeError):
                if isinstance(name, str) and name in self.caches:
                    keys = sorted(key for key, caches in self.caches_by_key.items() if name in caches)
                    raise ValueError(f"{name!r} is a cache container, cleared through its keys "
                                     f"{keys}, not a cache name (Odoo refuses names with a dot)") from None
                raise ValueError(
                    f"unknown cache name {name!r}; known: {sorted(self.caches_by_key)}") from None
            caches.extend(cache for cache in expansion if cache not in caches)
        return caches

    def _clear_local(self, names: Iterable[str]) -> List[str]:
        """Clear the caches ``names`` expand to, without recording them; returns those caches."""
        caches = self._expand(names)
        self._generation += 1
        for cache in caches:
            self.caches[cache].clear()
        for (name, _), lru in self.expiring.items():
            if name in caches:
                lru.clear()
        return caches

    def _clear_all_local(self) -> List[str]:
        """Clear every cache without recording anything (for signaling); returns their names."""
        self._generation += 1
        for _, cache in self.all_caches():
            cache.clear()
        return sorted(self.caches)

    def clear_cache(self, *names: str) -> None:
        """Clear the named caches (default ``'default'``) and record the names for signaling."""
        names = names or ("default",)
        self._clear_local(names)
        self.cache_invalidated.update(names)

    def clear_all_caches(self) -> None:
        """Clear every cache of this registry and record every name (the keys, as Odoo)."""
        self._clear_all_local()
        self.cache_invalidated.update(self.caches_by_key)


#: The registry of owners without a ``pool`` (plain classes, functions).
default_registry = Registry("<default>")
