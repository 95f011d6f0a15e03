"""The code being replaced: Odoo's classic ``odoo.tools.lru.LRU``, re-implemented faithfully.

An ``OrderedDict`` behind a ``threading.RLock``; every method that touches the dict is wrapped by
Odoo's ``locked`` decorator (``odoo.tools.func.locked``). The most recent entry sits at the
*front* (``move_to_end(last=False)``) and eviction pops the *last* one. ``get`` is not locked
itself, as in Odoo: it goes through the locked ``__getitem__`` and turns ``KeyError`` into the
default, so every miss costs a raised exception.

>>> cache = LRU(2)
>>> cache["a"] = 1; cache["b"] = 2; cache["c"] = 3
>>> list(cache.d), cache.get("a")
(['c', 'b'], None)
"""
from __future__ import annotations

import collections
import threading
from functools import wraps
from typing import Any, Callable, Iterable, Tuple, TypeVar

_T = TypeVar("_T")

__all__ = ["LRU", "locked"]


def locked(func: Callable[..., _T]) -> Callable[..., _T]:
    """Decorator making a method thread-safe by holding ``self._lock`` (as in Odoo)."""

    @wraps(func)
    def locked(inst: Any, *args: Any, **kwargs: Any) -> _T:
        with inst._lock:
            return func(inst, *args, **kwargs)

    return locked


class LRU(object):
    """A length-limited O(1) LRU map (Odoo: "later rebuilt on OrderedDict")."""

    def __init__(self, count: int, pairs: Iterable[Tuple[Any, Any]] = ()) -> None:
        self._lock = threading.RLock()
        self.count = max(count, 1)
        self.d: collections.OrderedDict[Any, Any] = collections.OrderedDict()
        for key, value in pairs:
            self[key] = value

    @locked
    def __contains__(self, obj: object) -> bool:
        return obj in self.d

    def get(self, obj: Any, val: Any = None) -> Any:
        try:
            return self[obj]
        except KeyError:
            return val

    @locked
    def __getitem__(self, obj: Any) -> Any:
        a = self.d[obj]
        self.d.move_to_end(obj, last=False)
        return a

    @locked
    def __setitem__(self, obj: Any, val: Any) -> None:
        self.d[obj] = val
        self.d.move_to_end(obj, last=False)
        while len(self.d) > self.count:
            self.d.popitem(last=True)

    @locked
    def __delitem__(self, obj: Any) -> None:
        del self.d[obj]

    @locked
    def __len__(self) -> int:
        return len(self.d)

    @locked
    def pop(self, key: Any) -> Any:
        return self.d.pop(key)

    @locked
    def clear(self) -> None:
        self.d.clear()
