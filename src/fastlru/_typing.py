"""What type checkers see of ``lru_cache``/``cache``: the wrapper keeps the decorated callable's
parameters and return type, and binds as a method does (``obj.method(...)`` checks the
arguments after ``self``). Imported only under ``TYPE_CHECKING``: nothing here exists at run
time (``ParamSpec`` and ``Concatenate`` need Python 3.10 or ``typing_extensions``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import time
    from typing import Any, Callable, Dict, NamedTuple, Optional, Protocol, TypeVar, overload

    from typing_extensions import Concatenate, ParamSpec, Self

    P = ParamSpec("P")
    P2 = ParamSpec("P2")
    R = TypeVar("R")
    R_co = TypeVar("R_co", covariant=True)
    S = TypeVar("S")

    class LRUCacheInfo(NamedTuple):
        """``functools``' ``CacheInfo``: ``hits, misses, maxsize, currsize``."""

        hits: int
        misses: int
        maxsize: Optional[int]
        currsize: int

    class BoundLRUCached(Protocol[P, R_co]):
        """A cached method bound to its object: the method's parameters after ``self``."""

        def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
        def cache_info(self) -> LRUCacheInfo: ...
        def cache_clear(self) -> None: ...
        def cache_parameters(self) -> Dict[str, Any]: ...

    class LRUCached(Protocol[P, R_co]):
        """What ``@lru_cache`` makes of a function or method taking ``P`` and returning ``R``."""

        @property
        def __wrapped__(self) -> Callable[P, R_co]: ...
        def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
        def cache_info(self) -> LRUCacheInfo: ...
        def cache_clear(self) -> None: ...
        def cache_parameters(self) -> Dict[str, Any]: ...
        @overload
        def __get__(self, obj: None, objtype: Optional[type] = None) -> Self: ...
        @overload
        def __get__(self: LRUCached[Concatenate[S, P2], R], obj: S,
                    objtype: Optional[type] = None) -> BoundLRUCached[P2, R]: ...

    class LRUCacheDecorator(Protocol):
        """``lru_cache``: bare (``@lru_cache``) or called (``@lru_cache(maxsize=...)``)."""

        @overload
        def __call__(self, maxsize: Callable[P, R], /) -> LRUCached[P, R]: ...
        @overload
        def __call__(
            self, maxsize: Optional[int] = 128, typed: bool = False, *,
            ttl: Optional[float] = None, single_flight: bool = False,
            timer: Callable[[], float] = time.monotonic,
        ) -> Callable[[Callable[P, R]], LRUCached[P, R]]: ...

    class CacheDecorator(Protocol):
        """``cache``: ``lru_cache(maxsize=None)``."""

        def __call__(self, user_function: Callable[P, R], /) -> LRUCached[P, R]: ...
