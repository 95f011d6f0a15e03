"""SQLAlchemy integration: caches invalidated by table changes (``pip install fastlru[sqlalchemy]``).

Example::

    from ormcache import Registry
    from ormcache.sqlalchemy import OrmCache, orm_cached, request_cached, FullTableCache, RecordCache
    orm_cache = OrmCache(Registry("shop"), Base.metadata)     # redis_url=... for a shared tier
    orm_cache.watch(SessionFactory)                             # hooks the session events
    orm_cache.register(App)                                     # classes with @orm_cached members

With an ``AsyncSession`` (``pip install fastlru[asyncio]``) the same names are awaited:
``watch(async_sessionmaker)``, ``await app.member``, ``await Model.by_id(session, id)``,
``await RecordCache.of(session).prefetch(...)``; the same code runs through SQLAlchemy's greenlet
bridge (``_bridge``).

The layers, one module each:

- ``records``: ``RecordCache``, a per-session ``{model: {id: {field: value}}}`` cache with Odoo's
  prefetch (N records x M fields in one SELECT); needs no set-up.
- ``orm_cache``: ``OrmCache``, which turns what sessions flush and commit into invalidations of the
  registry cache and publishes them through the registry's signaling on commit.
- ``cached``: ``orm_cached`` (values invalidated by a policy) and ``request_cached``.
- ``tables``: ``FullTableCache``, a mixin holding a small table whole in memory.
- ``shared``: the optional Redis tier of ``orm_cached`` values.
"""
from .orm_cache import OrmCache
from .cached import orm_cached, request_cached
from .records import AsyncRecordCache, MissingRecord, RecordCache
from .shared import SharedCacheWarning
from .tables import FullTableCache

__all__ = [
    "OrmCache",
    "orm_cached",
    "request_cached",
    "FullTableCache",
    "RecordCache",
    "AsyncRecordCache",
    "MissingRecord",
    "SharedCacheWarning",
]
