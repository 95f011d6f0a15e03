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

from fastlru._aio import refuse_async_generator
from fastlru._common import check_ttl, choose

from ._async import cached_coroutine_multi
from ._cold import cache_of, model_name, owner_keys, registry_of
from ._spec import MethodSpec
from .registry import CACHE_SIZES, ExpiringName, Registry

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (issue #21: import cost)
if TYPE_CHECKING:
    from typing import Any, Callable, Optional, Sequence, Tuple, TypeVar, overload

    from typing_extensions import ParamSpec

    from . import _cache_py as _impl
    from ._typing import OrmCached
    from .keys import KeyFunction

    _P = ParamSpec("_P")
    _R = TypeVar("_R")
    _S = TypeVar("_S")

    IMPLEMENTATION = "python"
else:
    _impl, IMPLEMENTATION = choose(__package__, "_cache_c", "_cache_py")

    def overload(func):  # typing.overload's use here: the signatures are for type checkers
        return func

__all__ = ["ormcache", "ormcache_context", "ormcache_multi", "IMPLEMENTATION"]


def _registry_of(owner: Any) -> Registry:
    return registry_of(owner_keys(owner)[0] if owner is not None else None)


def _takes_owner(func: Callable[..., Any]) -> bool:
    """A method: its first parameter is ``self`` or ``cls`` (a staticmethod wrapped outside
    ``@ormcache`` cannot be told from a method otherwise)."""
    import inspect  # at decoration, not with ormcache (issue #21)

    params = list(inspect.signature(func).parameters.values())
    return bool(params) and params[0].name in ("self", "cls") and params[0].kind is not inspect.Parameter.VAR_POSITIONAL


def _refuse_bare(decorator: str, exprs: Tuple[Any, ...]) -> None:
    """``@ormcache`` without parentheses passes the method as an expression: say how to call it
    (keying on every argument, as functools does, would differ from ``@ormcache()``)."""
    if exprs and (callable(exprs[0]) or isinstance(exprs[0], (classmethod, staticmethod))):
        name = getattr(exprs[0], "__qualname__", None) or getattr(getattr(exprs[0], "__func__", None), "__qualname__", "?")
        raise TypeError(
            f"@{decorator} must be called: write @{decorator}('arg', ...) with the key expressions "
            f"over the parameters of {name} (or @{decorator}() for one entry per model), not a bare "
            f"@{decorator}; for a cache keyed on every argument use fastlru.lru_cache"
        )


class ormcache:
    """Cache a method's result in its registry's named LRU, keyed by expressions over its parameters.

    ``@ormcache('model_name', 'mode')`` on ``def _compute(self, model_name, mode='read')`` keys
    each call on ``(self._name, _compute, model_name, mode)``; no expression means one entry per
    model. ``cache`` names the registry cache (``'default'``). ``ttl=seconds``: an entry of this
    method is a miss once it is that old (it lives in the registry's expiring cache of
    ``(cache, ttl)``, cleared with ``cache``; see ``Registry.expiring_cache``). ``skiparg=N``
    (deprecated) keys on ``args[N:]``.

    A method is a function whose first parameter is ``self`` or ``cls`` (or a classmethod): its
    owner gives the registry and the model name. Other callables (functions, staticmethods)
    are cached in ``default_registry`` under their class's or module's name. Exceptions are
    never cached; values are returned as stored, so callers must not mutate them.
    """

    func: Callable[..., Any]
    key: KeyFunction
    has_owner: bool
    model: Optional[str]

    def __init__(
        self, *exprs: str, cache: str = "default", skiparg: Optional[int] = None, ttl: Optional[float] = None
    ) -> None:
        _refuse_bare(type(self).__name__, exprs)
        if cache not in CACHE_SIZES:  # a container too (Odoo: cache='routing.rewrites')
            raise ValueError(f"unknown cache name {cache!r}; known: {sorted(CACHE_SIZES)}")
        if skiparg is not None:
            if exprs:
                raise TypeError("ormcache: give key expressions or skiparg, not both")
            if not isinstance(skiparg, int) or isinstance(skiparg, bool) or skiparg < 0:
                raise TypeError(f"ormcache: skiparg must be an int >= 0, not {skiparg!r}")
            import warnings

            warnings.warn(
                "ormcache(skiparg=N) is deprecated: give the key as expressions over the parameters",
                DeprecationWarning,
                stacklevel=2,
            )
        self.exprs = exprs
        self.ttl = check_ttl(ttl)
        # a ttl method's name resolves to the expiring cache (the hit paths pass it to resolve)
        self.cache_name: str = cache if self.ttl is None else ExpiringName(cache, self.ttl)
        self.skiparg = skiparg

    def __repr__(self) -> str:
        target = getattr(getattr(self, "func", None), "__qualname__", "<unbound>")
        ttl = "" if self.ttl is None else f" ttl={self.ttl!r}"
        return f"<{type(self).__name__} {target} {self.exprs!r} cache={str(self.cache_name)!r}{ttl}>"

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
        refuse_async_generator(method, type(self).__name__)
        self.func = method
        self.has_owner = rewrap is classmethod or (rewrap is None and _takes_owner(method))
        self.model = None
        if not self.has_owner:  # plain function or staticmethod: its class, else its module
            prefix = getattr(method, "__qualname__", "").rpartition(".")[0]
            self.model = prefix if prefix and not prefix.endswith("<locals>") else str(getattr(method, "__module__", None))
        self.key = self._compile_key()
        self.counter_type = _impl.Counter
        # all that the hit paths read (they never read this decorator)
        spec = self._spec = self._make_spec()
        import inspect

        wrapper: Any = self._make_async_wrapper(spec) if inspect.iscoroutinefunction(method) else self._make_wrapper(spec)
        wrapper.__cache__ = self
        wrapper.clear_cache = self.clear_cache
        return rewrap(wrapper) if rewrap is not None else wrapper

    def _compile_key(self) -> KeyFunction:
        from .keys import KeyFunction, compile_key  # at decoration, not at import (issue #21: import cost)

        if self.skiparg is not None:
            skip = self.skiparg
            return KeyFunction(lambda *args, **kwargs: args[skip:], None, 0, -1)
        where = f"{type(self).__name__} on {getattr(self.func, '__qualname__', self.func)!r}"
        return compile_key(self.func, self.exprs, where=where)

    def _make_spec(self) -> MethodSpec:
        return MethodSpec(self.func, self.key, self.cache_name, self.model, self.has_owner, self.counter_type)

    def _make_wrapper(self, spec: MethodSpec) -> Callable[..., Any]:
        return _impl.cached_method(spec)

    def _make_async_wrapper(self, spec: MethodSpec) -> Callable[..., Any]:
        return _impl.cached_coroutine(spec)

    def clear_cache(self, owner: Any = None, *, all_models: bool = False) -> None:
        """Clear the named cache of this method in ``owner``'s registry (recorded for signaling).
        A method's registry is its owner's: ``Model.method.clear_cache()`` without one raises
        ``TypeError`` (it cleared ``default_registry`` instead, issue #21).

        With ``registry.method_signals`` on, drop only this method's entries of ``owner``'s
        model (of every model with ``all_models=True``) instead, here and in every process
        (``Registry.clear_method``)."""
        if owner is None and self.has_owner:
            raise TypeError(
                f"{self.func.__qualname__}.clear_cache() needs the model whose registry to clear: "
                f"clear_cache(model), or registry.clear_cache({str(self.cache_name)!r})")
        registry = _registry_of(owner)
        if registry.method_signals:
            model = None
            if not all_models:
                model = self._model_of(owner)
            registry.clear_method(self.func, model)
            return
        registry.clear_cache(str(self.cache_name))

    def add_value(self, *args: Any, cache_value: Any = None, **kwargs: Any) -> None:
        """Store ``cache_value`` as the result of the call ``method(*args, **kwargs)`` (as Odoo)."""
        owner = args[0] if self.has_owner and args else None
        cache_of(_registry_of(owner), self.cache_name)[self.key_of(*args, **kwargs)] = cache_value

    def key_of(self, *args: Any, **kwargs: Any) -> Tuple[Any, ...]:
        """The cache key of a call (as ``method(*args, **kwargs)``, owner first for methods)."""
        return (self._model_of(args[0] if self.has_owner else None), self.func,
                *self.key.function(*args, **kwargs))

    def _model_of(self, owner: Any) -> Any:
        """The model part of the keys of ``owner``'s calls (the first of the key)."""
        if not self.has_owner:
            return self.model
        return model_name(owner_keys(owner)[1])


class ormcache_context(ormcache):
    """``ormcache`` whose key also holds ``tuple(context.get(k) for k in keys)``.

    ``context`` is the method's ``context`` argument when it has one, else ``self.env.context``
    (or ``self._context``).
    """

    def __init__(
        self, *exprs: str, keys: Sequence[str] = ("lang",), cache: str = "default", ttl: Optional[float] = None
    ) -> None:
        super().__init__(*exprs, cache=cache, ttl=ttl)
        if isinstance(keys, str):
            raise TypeError("ormcache_context: keys must be a sequence of context keys, not a string")
        self.keys = tuple(keys)

    def _compile_key(self) -> KeyFunction:
        from .keys import compile_key

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

    def __init__(
        self, *exprs: str, multi: str = "ids", cache: str = "default", ttl: Optional[float] = None
    ) -> None:
        super().__init__(*exprs, cache=cache, ttl=ttl)
        if not isinstance(multi, str):
            raise TypeError(f"ormcache_multi: multi must be a parameter name, not {multi!r}")
        self.multi = multi

    def _make_async_wrapper(self, spec: MethodSpec) -> Callable[..., Any]:
        return cached_coroutine_multi(spec)

    def _compile_key(self) -> KeyFunction:
        import inspect

        from .keys import compile_key

        where = f"ormcache_multi on {self.func.__qualname__!r}"
        self.signature = inspect.signature(self.func)
        if self.multi not in self.signature.parameters:
            raise ValueError(f"{where}: multi={self.multi!r} is not a parameter of the method")
        return compile_key(self.func, self.exprs, where=where)

    def _make_spec(self) -> MethodSpec:
        import inspect

        # a positional call that gives the ids positionally is called back without binding
        positional = [p.name for p in self.signature.parameters.values()
                      if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        return MethodSpec(
            self.func, self.key, self.cache_name, self.model, self.has_owner, self.counter_type,
            multi=self.multi, signature=self.signature,
            multi_position=positional.index(self.multi) if self.multi in positional else -1,
            multi_name=f"{self.func.__qualname__} returned no value for {self.multi}",
            flights={},  # the ids being computed, as ormcache's (``_cold.multi_miss``)
        )

    def _make_wrapper(self, spec: MethodSpec) -> Callable[..., Any]:
        # the twin's wrapper serves every call, with the keys of the hit path in use; the
        # compiled hit path serves positional calls itself (the ids looked up in C) and hands it
        # the others; ids that cannot be given positionally (keyword-only, *ids): the twin's alone
        from . import _cache_py  # at decoration: not loaded by ``import ormcache`` (issue #21)

        wrapper = _cache_py.cached_multi(spec, _impl.HashedKey)
        if _impl is _cache_py or spec.multi_position < 0:
            return wrapper
        compiled: Callable[..., Callable[..., Any]] = getattr(_impl, "cached_multi")  # _cache_c's: (spec, multi_fallback)
        return compiled(spec, wrapper)
