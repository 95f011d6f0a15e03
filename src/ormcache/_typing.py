"""What type checkers see of a method decorated with ``ormcache`` (and ``ormcache_context``,
``ormcache_multi``): it keeps the method's parameters and return type, binds as a method does
(``obj.method(...)`` checks the arguments after ``self``) and carries ``clear_cache`` and
``__cache__``. Imported only under ``TYPE_CHECKING``: nothing here exists at run time.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, Optional, Protocol, overload

    from typing_extensions import Concatenate, Self

    from fastlru._typing import P, P2, R, R_co, S  # the same type variables as lru_cache's

    from .decorators import ormcache

    class BoundOrmCached(Protocol[P, R_co]):
        """A cached method bound to its object: the method's parameters after ``self``."""

        @property
        def __cache__(self) -> ormcache: ...
        def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
        def clear_cache(self, owner: Any = None) -> None: ...

    class OrmCached(Protocol[P, R_co]):
        """What ``@ormcache(...)`` makes of a method or function taking ``P`` and returning ``R``."""

        @property
        def __cache__(self) -> ormcache: ...
        def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
        def clear_cache(self, owner: Any = None) -> None: ...
        @overload
        def __get__(self, obj: None, objtype: Optional[type] = None) -> Self: ...
        @overload
        def __get__(self: OrmCached[Concatenate[S, P2], R], obj: S,
                    objtype: Optional[type] = None) -> BoundOrmCached[P2, R]: ...
