"""The layout of ormcache.sqlalchemy: what the binding and the cached members share lives in a
lower module, so neither imports the other; statistics use ormcache's own Counter."""
from __future__ import annotations

import ast
import importlib
import inspect
import uuid

from sqlalchemy import select

from ormcache import stats
from ormcache.registry import Registry
from support.sqla import Base, User


def _imported_modules(module_name: str) -> set:
    """Modules of the package a module imports (at the top or inside functions), by name."""
    module = importlib.import_module(module_name)
    tree = ast.parse(inspect.getsource(module))
    package = module_name.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = f"{package}.{base}" if base else package
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_binding_and_cached_do_not_import_each_other():
    assert "ormcache.sqlalchemy.cached" not in _imported_modules("ormcache.sqlalchemy.orm_cache")
    assert "ormcache.sqlalchemy.orm_cache" not in _imported_modules("ormcache.sqlalchemy.cached")
    assert "ormcache.sqlalchemy.orm_cache" not in _imported_modules("ormcache.sqlalchemy.tables")


def test_orm_cached_statistics_use_ormcache_counter():
    from ormcache import _cache_py
    from ormcache.sqlalchemy import OrmCache, orm_cached

    class Owner:
        def __init__(self, orm_cache, session):
            self.orm_cache, self.session = orm_cache, session

        @orm_cached(policy="on-table-change:users")
        @property
        def names(self):
            return select(User.name)

    registry = Registry(f"test-{uuid.uuid4().hex[:8]}")
    try:
        cache = OrmCache(registry, Base.metadata)
        cache.register(Owner)
        counter = registry.counters[Owner.names.key]
        assert type(counter) is _cache_py.Counter
        assert counter.cache_name == "default" and (counter.hit, counter.miss, counter.err) == (0, 0, 0)
        counter.hit, counter.miss = 3, 1
        assert counter.ratio == 75.0
        row = [r for r in stats(registry) if r["cache"] == "default"][0]
        assert (row["hit"], row["miss"], row["ratio"]) == (3, 1, 75.0)
        cache.register(Owner)  # registering again keeps the same counter
        assert registry.counters[Owner.names.key] is counter
    finally:
        Registry.delete(registry.db_name)
