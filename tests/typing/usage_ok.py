"""Typed use of fastlru and ormcache, as user code writes it: ``mypy --strict`` (and pyright)
must report nothing here (tests/test_typing.py). ``assert_type`` pins what a checker infers;
the file also runs (tests/test_typing.py executes it), so what it checks works at run time.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Dict, List, Optional, Tuple

from typing_extensions import assert_type

from fastlru import LRU, CacheInfo, cache, lru_cache
from ormcache import Registry, ormcache, ormcache_context, ormcache_multi
from ormcache.sqlalchemy import orm_cached, request_cached

# -- LRU, generic in key and value ------------------------------------------------------------

lru = LRU[str, int](42)  # as Odoo writes it: LRU[str, "Registry"](42)
assert_type(lru, LRU[str, int])
lru["a"] = 1
assert_type(lru["a"], int)
assert_type(lru.get("a"), Optional[int])
assert_type(lru.get("a", 0), int)
assert_type(lru.get("a", "none"), "int | str")
assert_type(lru.peek("a"), Optional[int])
assert_type(lru.peek("a", -1), int)
assert_type(lru.setdefault("b", 2), int)
assert_type(lru.pop("b"), int)
assert_type(lru.pop("zz", None), Optional[int])
assert_type(lru.popitem(), Tuple[str, int])
assert_type(lru.keys(), List[str])
assert_type(lru.values(), List[int])
assert_type(lru.items(), List[Tuple[str, int]])
assert_type(lru.info(), CacheInfo)
assert_type(lru.info().currsize, int)
assert_type(lru.copy(), LRU[str, int])
assert_type(len(lru), int)
assert_type("a" in lru, bool)
assert_type(lru.count, int)
assert_type(lru.ttl, Optional[float])
for key in lru:
    assert_type(key, str)
lru.update({"c": 3})
lru.update([("d", 4)])
lru.count = 10
del lru["c"]
lru.clear_stats()
lru.clear()
optional: LRU[str, Optional[bytes]] = LRU(4)
assert_type(optional.setdefault("x"), Optional[bytes])
weighed: LRU[int, str] = LRU(8, [(1, "a")], maxweight=10, getsizeof=len, ttl=5.0,
                             on_evict=lambda key, value: print(key, value))
registries: LRU[str, Registry] = LRU(2)


# -- fastlru.lru_cache / fastlru.cache ----------------------------------------------------------

@lru_cache(maxsize=32)
def square(x: int, scale: float = 1.0) -> float:
    return x * x * scale


@lru_cache
def bare(text: str) -> str:
    return text.upper()


@cache
def unbounded(n: int) -> List[int]:
    return list(range(n))


assert_type(square(3), float)
assert_type(square(3, scale=2.0), float)
assert_type(square(x=3), float)
assert_type(bare("a"), str)
assert_type(unbounded(3), List[int])
square.cache_clear()
assert_type(square.cache_info().hits, int)
assert_type(square.cache_info().maxsize, Optional[int])
assert_type(square.cache_parameters(), Dict[str, Any])
wrapped: Callable[[int, float], float] = square.__wrapped__


class Squares:
    @lru_cache(maxsize=None, ttl=60.0)
    def area(self, side: int) -> int:
        return side * side


squares = Squares()
assert_type(squares.area(3), int)
squares.area.cache_clear()
assert_type(Squares.area(squares, 3), int)


# -- ormcache decorators, on methods and functions -----------------------------------------------

class Params:
    pool = Registry("typing-example")
    _name = "ir.config_parameter"

    @ormcache("key")
    def get_param(self, key: str, default: Optional[str] = None) -> Optional[str]:
        return default

    @ormcache_context("key", keys=("lang",))
    def translated(self, key: str, context: Optional[Dict[str, Any]] = None) -> str:
        return key

    @ormcache_multi("mode", multi="ids")
    def names(self, mode: str, ids: List[int]) -> Dict[int, str]:
        return {i: mode for i in ids}


@ormcache("a", "b")
def add(a: int, b: int) -> int:
    return a + b


params = Params()
assert_type(params.get_param("a"), Optional[str])
assert_type(params.get_param("a", default="x"), Optional[str])
assert_type(params.translated("k"), str)
assert_type(params.names("m", [1, 2]), Dict[int, str])
assert_type(add(1, 2), int)
assert_type(add(a=1, b=2), int)
params.get_param.clear_cache(params)
Params.get_param.clear_cache(params)
add.clear_cache()
assert_type(Params.get_param.__cache__, ormcache)
assert_type(Params.get_param(params, "a"), Optional[str])


# -- Registry --------------------------------------------------------------------------------------

registry = Registry("typing-example-sizes", sizes={"mine": 16})
assert_type(registry, Registry)
registry.clear_cache("default", "mine")
assert_type(registry.caches, Dict[str, Any])
assert_type(Registry.registries(), List[Registry])


# -- orm_cached over a method and over a property (SQLAlchemy layer) -----------------------------

class App:
    @orm_cached(policy="on-table-change:settings")
    def setting(self, key: str, default: Optional[str] = None) -> Optional[str]:
        return default

    # mypy refuses every decorator over @property (its own rule, code prop-decorator), so this
    # one line needs the ignore under mypy; pyright needs none
    @orm_cached(policy="on-table-change:users", by_role=True)  # type: ignore[prop-decorator]
    @property
    def admin_names(self) -> Tuple[str, ...]:
        return ()

    @request_cached
    def current_user(self, user_id: int) -> str:
        return str(user_id)


def use(app: App) -> None:
    assert_type(app.setting("k"), Optional[str])
    assert_type(app.setting("k", default="d"), Optional[str])
    names: Tuple[str, ...] = app.admin_names
    assert_type(app.current_user(1), str)
    print(names)


# -- async def, under lru_cache and ormcache: awaited as the function; ormcache's ttl ----------

@lru_cache(maxsize=8)
async def fetch(n: int) -> str:
    return str(n)


class AsyncParams:
    pool = Registry("typing-example-async")
    _name = "ir.config_parameter"

    @ormcache("key")
    async def get_param(self, key: str) -> Optional[str]:
        return key

    @ormcache("key", ttl=5)
    def fresh(self, key: str) -> str:
        return key


async def use_async() -> None:
    async_params = AsyncParams()
    assert_type(await fetch(1), str)
    assert_type(await async_params.get_param("a"), Optional[str])
    assert_type(async_params.fresh("a"), str)


asyncio.run(use_async())
fetch.cache_clear()


Registry.delete("typing-example")
Registry.delete("typing-example-sizes")
Registry.delete("typing-example-async")
