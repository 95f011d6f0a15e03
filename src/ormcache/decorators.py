"""The decorators: ``ormcache``, ``ormcache_context``, ``ormcache_multi`` (Odoo's API).

>>> from ormcache import ormcache
>>> class Params:
...     _name = "ir.config_parameter"
...     @ormcache("key")
...     def get_param(self, key, default=None):
...         return key.upper()
>>> Params().get_param("a"), Params().get_param(key="a")
('A', 'A')

The owner protocol is Odoo's: ``self.pool`` is the ``Registry`` (else ``default_registry``) and
``self._name`` the model name (else the class's qualified name); a key is
``(model name, method, *exprs)``, so two methods never share entries.

Cached values are returned as they are, not copied: callers must not mutate them (a method
returning a fresh list or dict is fine, as in Odoo, as long as nobody changes the result).

The hit path is ``_cache_c`` (compiled) unless ``FASTLRU_NO_EXTENSIONS`` is set, the interpreter
is not CPython, or it did not build; then ``_cache_py``. ``IMPLEMENTATION`` says which.
"""
from __future__ import annotations

import functools
import inspect
import warnings
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Sequence, Tuple, TypeVar, overload

from fastlru._common import choose

from ._lookup import _warn_once, resolve, timed
from .keys import KeyFunction, compile_key
from .registry import CACHE_SIZES, Registry, default_registry

if TYPE_CHECKING:
    from typing_extensions import ParamSpec

    from . import _cache_py as _impl
    from ._typing import OrmCached

    _P = ParamSpec("_P")
    _R = TypeVar("_R")
    _S = TypeVar("_S")

    IMPLEMENTATION = "python"
else:
    _impl, IMPLEMENTATION = choose(__package__, "_cache_c", "_cache_py")

__all__ = ["ormcache", "ormcache_context", "ormcache_multi", "IMPLEMENTATION"]


def _registry_of(owner: Any) -> Registry:
    pool = getattr(owner, "pool", None)
    return pool if isinstance(pool, Registry) else default_registry


def _takes_owner(func: Callable[..., Any]) -> bool:
    """A method: its first parameter is ``self`` or ``cls`` (a staticmethod wrapped outside
    ``@ormcache`` cannot be told from a method otherwise)."""
    params = list(inspect.signature(func).parameters.values())
    return bool(params) and params[0].name in ("self", "cls") and params[0].kind is not inspect.Parameter.VAR_POSITIONAL


class ormcache:
    """Cache a method's result in its registry's named LRU, keyed by expressions over its parameters.

    ``@ormcache('model_name', 'mode')`` on ``def _compute(self, model_name, mode='read')`` keys
    each call on ``(self._name, _compute, model_name, mode)``; no expression means one entry per
    model. ``cache`` names the registry cache (``'default'``). ``skiparg=N`` (deprecated) keys on
    ``args[N:]``.

    A method is a function whose first parameter is ``self`` or ``cls`` (or a classmethod): its
    owner gives the registry and the model name. Other callables (functions, staticmethods)
    are cached in ``default_registry`` under their class's or module's name. Exceptions are
    never cached; values are returned as stored, so callers must not mutate them.
    """

    func: Callable[..., Any]
    key: KeyFunction
    has_owner: bool
    model: Optional[str]

    def __init__(self, *exprs: str, cache: str = "default", skiparg: Optional[int] = None) -> None:
        if cache not in CACHE_SIZES:  # a container too (Odoo: cache='routing.rewrites')
            raise ValueError(f"unknown cache name {cache!r}; known: {sorted(CACHE_SIZES)}")
        if skiparg is not None:
            if exprs:
                raise TypeError("ormcache: give key expressions or skiparg, not both")
            if not isinstance(skiparg, int) or isinstance(skiparg, bool) or skiparg < 0:
                raise TypeError(f"ormcache: skiparg must be an int >= 0, not {skiparg!r}")
            warnings.warn(
                "ormcache(skiparg=N) is deprecated: give the key as expressions over the parameters",
                DeprecationWarning,
                stacklevel=2,
            )
        self.exprs = exprs
        self.cache_name = cache
        self.skiparg = skiparg

    def __repr__(self) -> str:
        target = getattr(getattr(self, "func", None), "__qualname__", "<unbound>")
        return f"<{type(self).__name__} {target} {self.exprs!r} cache={self.cache_name!r}>"

    @overload
    def __call__(self, method: classmethod[_S, _P, _R]) -> classmethod[_S, _P, _R]: ...
    @overload
    def __call__(self, method: staticmethod[_P, _R]) -> staticmethod[_P, _R]: ...  # type: ignore[overload-overlap, unused-ignore]  # callable from 3.10
    @overload
    def __call__(self, method: Callable[_P, _R]) -> OrmCached[_P, _R]: ...
    def __call__(self, method: Any) -> Any:
        if hasattr(self, "func"):
            raise TypeError(f"{self!r} is already bound to a method")
        rewrap: Optional[type] = None
        if isinstance(method, (classmethod, staticmethod)):
            rewrap, method = type(method), method.__func__
        if not callable(method):
            raise TypeError(f"{type(self).__name__} decorates callables, not {method!r}")
        self.func = method
        self.has_owner = rewrap is classmethod or (rewrap is None and _takes_owner(method))
        self.model = None
        if not self.has_owner:  # plain function or staticmethod: its class, else its module
            prefix = getattr(method, "__qualname__", "").rpartition(".")[0]
            self.model = prefix if prefix and not prefix.endswith("<locals>") else str(getattr(method, "__module__", None))
        self.key = self._compile_key()
        wrapper: Any = self._make_wrapper()  # given the attributes OrmCached declares
        wrapper.__cache__ = self
        wrapper.clear_cache = self.clear_cache
        return rewrap(wrapper) if rewrap is not None else wrapper

    def _compile_key(self) -> KeyFunction:
        if self.skiparg is not None:
            skip = self.skiparg
            return KeyFunction(lambda *args, **kwargs: args[skip:], None, 0, -1)
        where = f"{type(self).__name__} on {getattr(self.func, '__qualname__', self.func)!r}"
        return compile_key(self.func, self.exprs, where=where)

    def _make_wrapper(self) -> Callable[..., Any]:
        self.counter_type = _impl.Counter
        return _impl.cached_method(self)

    def clear_cache(self, owner: Any = None) -> None:
        """Clear the named cache of this method in ``owner``'s registry (recorded for signaling)."""
        _registry_of(owner).clear_cache(self.cache_name)

    def add_value(self, *args: Any, cache_value: Any = None, **kwargs: Any) -> None:
        """Store ``cache_value`` as the result of the call ``method(*args, **kwargs)`` (as Odoo)."""
        owner = args[0] if self.has_owner and args else None
        _registry_of(owner).caches[self.cache_name][self.key_of(*args, **kwargs)] = cache_value

    def key_of(self, *args: Any, **kwargs: Any) -> Tuple[Any, ...]:
        """The cache key of a call (as ``method(*args, **kwargs)``, owner first for methods)."""
        if self.has_owner:
            owner = args[0]
            model = getattr(owner, "_name", None)
            if model is None:
                model = (owner if isinstance(owner, type) else type(owner)).__qualname__
        else:
            model = self.model
        return (model, self.func, *self.key.function(*args, **kwargs))


class ormcache_context(ormcache):
    """``ormcache`` whose key also holds ``tuple(context.get(k) for k in keys)``.

    ``context`` is the method's ``context`` argument when it has one, else ``self.env.context``
    (or ``self._context``).
    """

    def __init__(self, *exprs: str, keys: Sequence[str] = ("lang",), cache: str = "default") -> None:
        super().__init__(*exprs, cache=cache)
        if isinstance(keys, str):
            raise TypeError("ormcache_context: keys must be a sequence of context keys, not a string")
        self.keys = tuple(keys)

    def _compile_key(self) -> KeyFunction:
        return compile_key(
            self.func, self.exprs, context_keys=self.keys, where=f"ormcache_context on {self.func.__qualname__!r}"
        )


class ormcache_multi(ormcache):
    """Cache per element of the ``multi`` argument (a collection of ids).

    A call looks each id up, calls the method once with only the missing ids, caches each
    ``result[id]`` and returns a dict for all requested ids::

        @ormcache_multi('mode', multi='ids')
        def _names(self, mode, ids): return {i: ... for i in ids}
    """

    def __init__(self, *exprs: str, multi: str = "ids", cache: str = "default") -> None:
        super().__init__(*exprs, cache=cache)
        if not isinstance(multi, str):
            raise TypeError(f"ormcache_multi: multi must be a parameter name, not {multi!r}")
        self.multi = multi

    def _compile_key(self) -> KeyFunction:
        where = f"ormcache_multi on {self.func.__qualname__!r}"
        self.signature = inspect.signature(self.func)
        if self.multi not in self.signature.parameters:
            raise ValueError(f"{where}: multi={self.multi!r} is not a parameter of the method")
        return compile_key(self.func, self.exprs, where=where)

    def _make_wrapper(self) -> Callable[..., Any]:
        func, cache_name, multi, signature = self.func, self.cache_name, self.multi, self.signature
        key_function, has_owner, model = self.key.function, self.has_owner, self.model
        counter_type = self.counter_type = _impl.Counter

        def wrapper(*args: Any, **kwargs: Any) -> Dict[Any, Any]:
            if has_owner:
                owner = args[0]
                mkey = getattr(owner, "_name", None)
                if mkey is None:
                    mkey = owner if isinstance(owner, type) else type(owner)
                registry, name, lru, counter = resolve(getattr(owner, "pool", None), mkey, func, cache_name, counter_type)
            else:
                registry, name, lru, counter = resolve(None, model, func, cache_name, counter_type)
            base = (name, func, *key_function(*args, **kwargs))
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            result: Dict[Any, Any] = {}
            missed: Dict[Any, bool] = {}  # id -> True if its value may be stored
            for id_ in bound.arguments[multi]:
                try:
                    result[id_] = lru[(*base, id_)]
                    counter.hit += 1
                except KeyError:
                    counter.miss += 1
                    missed[id_] = True
                except Exception as exc:  # noqa: BLE001 - the cache never fails the call
                    counter.err += 1
                    _warn_once(func, "cache lookup error on key %r in %s: %r; computing without cache", (*base, id_), exc)
                    missed[id_] = False
            if missed:
                bound.arguments[multi] = list(missed)
                generation = registry.generation
                computed = timed(counter, func, bound.args, bound.kwargs)
                for id_, store in missed.items():
                    try:
                        value = result[id_] = computed[id_]
                    except KeyError:
                        raise KeyError(f"{func.__qualname__} returned no value for {multi} {id_!r}") from None
                    if store and registry.generation == generation:
                        try:
                            lru[(*base, id_)] = value
                        except Exception as exc:  # noqa: BLE001
                            counter.err += 1
                            _warn_once(func, "cannot store key %r in %s: %r", (*base, id_), exc)
                        else:
                            if registry.generation != generation:  # a clear ran meanwhile
                                lru.pop((*base, id_), None)
            return result

        functools.update_wrapper(wrapper, func)
        return wrapper
