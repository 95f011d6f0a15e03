"""What a hit path is given and what it keeps: ``MethodSpec`` and the slot shape.

``MethodSpec`` is built once by the decorator when it binds a method (``decorators.ormcache``)
and is all that the hit paths read: the compiled one (``_cache_c.CachedMethod``), the twin
(``_cache_py.cached_method``) and the ``async def`` one (``_async``). A slot (``SLOT_FIELDS``, ``slot_of``) is what
a wrapper remembers of one (pool, model key): the twin's and the async path's, with the fields
of the compiled ``_Slot`` in the same order.

A plain ``__slots__`` class and a tuple, no ``typing`` or ``collections`` at run time (issue #21: import cost).
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (issue #21: import cost)
if TYPE_CHECKING:
    import inspect
    from typing import Any, Callable, Dict, Optional, Tuple

    from .keys import KeyFunction

from ._cold import reader, resolve

__all__ = ["MethodSpec", "SLOT_FIELDS", "NO_SLOT", "slot_of"]

_FIELDS = ("func", "key", "cache_name", "model", "has_owner", "counter_type",
           "multi", "signature", "multi_position", "multi_name", "flights")


class MethodSpec:
    """A cached method as its hit paths serve it; immutable.

    - ``func``: the method; ``key``: its compiled key (``keys.KeyFunction``);
    - ``cache_name``: the registry cache its entries live in (an ``ExpiringName`` with a ttl);
    - ``has_owner``: the first argument is the owner (``self``/``cls``), whose ``pool`` and
      ``_name`` give the registry and the model (``_cold.owner_keys``); else ``model`` is the
      model name of every call (a function's class or module);
    - ``counter_type``: the hit path's statistics counter class;
    - ``ormcache_multi`` only (else None, -1, ""): ``multi`` the ids parameter, ``signature`` the
      method's, ``multi_position`` its position when given positionally (-1: keyword-only),
      ``multi_name`` the start of the KeyError of an id the method left out, ``flights`` the ids
      being computed (shared by the compiled wrapper and its Python fallback: one single flight).

    >>> from ormcache._spec import MethodSpec
    >>> spec = MethodSpec(len, None, "default", "m", False, object)
    >>> spec.cache_name, spec.multi_position
    ('default', -1)
    >>> spec.model = "n"
    Traceback (most recent call last):
    ...
    AttributeError: MethodSpec is immutable
    """

    __slots__ = _FIELDS

    func: Callable[..., Any]
    key: KeyFunction
    cache_name: str
    model: Optional[str]
    has_owner: bool
    counter_type: type
    multi: Optional[str]
    signature: Optional[inspect.Signature]
    multi_position: int
    multi_name: str
    flights: Optional[Dict[Any, Any]]

    def __init__(
        self,
        func: Callable[..., Any],
        key: KeyFunction,
        cache_name: str,
        model: Optional[str],
        has_owner: bool,
        counter_type: type,
        multi: Optional[str] = None,
        signature: Optional[inspect.Signature] = None,
        multi_position: int = -1,
        multi_name: str = "",
        flights: Optional[Dict[Any, Any]] = None,
    ) -> None:
        if not callable(func):
            raise TypeError(f"MethodSpec: func must be callable, not {func!r}")
        if not isinstance(multi_position, int) or isinstance(multi_position, bool):
            raise TypeError(f"MethodSpec: multi_position must be an int, not {multi_position!r}")
        values = (func, key, cache_name, model, bool(has_owner), counter_type,
                  multi, signature, multi_position, multi_name, flights)
        for name, value in zip(_FIELDS, values):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("MethodSpec is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("MethodSpec is immutable")

    def __repr__(self) -> str:
        return (f"<MethodSpec {getattr(self.func, '__qualname__', self.func)!r} "
                f"cache={str(self.cache_name)!r} has_owner={self.has_owner}>")


#: What serves the calls from one (pool, model key) of a method, one plain tuple replaced whole
#: (a thread never sees one call's pool with another's LRU), read by position on the hit paths
#: (an exact tuple: CPython's specialised indexing and unpacking apply, not to a subclass). The
#: first six are the compiled ``_cache_c._Slot``'s fields, in the same order; ``get`` is the
#: LRU's lookup as ``_cold.reader`` gives it (the compiled slot decides the same with its
#: ``known`` flag).
SLOT_FIELDS = ("pool", "mkey", "registry", "model", "lru", "counter", "get")
if TYPE_CHECKING:
    #: (pool, model key, registry, model name, LRU, counter, the LRU's reader)
    Slot = Tuple[Any, Any, Any, str, Any, Any, Callable[[Any, Any], Any]]


def slot_of(spec: MethodSpec, pool: Any, mkey: Any) -> Slot:
    """The slot (``SLOT_FIELDS``) of ``spec``'s calls from (``pool``, ``mkey``): ``_cold.resolve``."""
    registry, model, lru, counter = resolve(pool, mkey, spec.func, spec.cache_name, spec.counter_type)
    return (pool, mkey, registry, model, lru, counter, reader(lru))


def _no_lookup(key: Any, default: Any) -> Any:
    raise AssertionError("NO_SLOT is never looked up")  # its pool is no owner's


#: the slot of a wrapper that has served no call: its pool is no owner's
NO_SLOT: Slot = (object(), object(), None, "", None, None, _no_lookup)
