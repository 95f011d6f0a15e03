"""Mistakes a type checker must catch: each marked line (``# E: <mypy error code>``) must give
exactly that error under ``mypy --strict``, and no other line any (tests/test_typing.py).
Never run: it is only type-checked.
"""
from __future__ import annotations

from typing import List, Optional

from fastlru import LRU, lru_cache
from ormcache import Registry, ormcache
from ormcache.sqlalchemy import orm_cached

lru = LRU[str, int](42)
lru["a"] = "one"  # E: assignment
lru.get(1)  # E: call-overload
text: str = lru.get("a")  # E: assignment
first: int = lru.items()[0][0]  # E: assignment
unhashable = LRU[List[int], int](3)  # E: type-var
maybe: int = lru.peek("a")  # E: assignment
lru.count = "ten"  # E: assignment


@lru_cache(maxsize=8)
def square(x: int) -> int:
    return x * x


square(1, 2)  # E: call-arg
square("x")  # E: arg-type
square.clear_cache()  # E: attr-defined
lru_cache(maxsize="big")  # E: call-overload
squared: str = square(2)  # E: assignment


class Params:
    pool = Registry("typing-errors")

    @ormcache("key")
    def get_param(self, key: str, default: Optional[str] = None) -> Optional[str]:
        return default


p = Params()
p.get_param("a", "b", "c")  # E: call-arg
p.get_param(42)  # E: arg-type
value: str = p.get_param("a")  # E: assignment
p.get_param.cache_info()  # E: attr-defined
registry: int = Registry("typing-errors")  # E: assignment


class App:
    @orm_cached(policy="on-table-change:settings")
    def setting(self, key: str) -> int:
        return len(key)


App().setting()  # E: call-arg
label: str = App().setting("k")  # E: assignment
