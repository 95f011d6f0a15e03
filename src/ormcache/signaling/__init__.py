"""Cross-process cache invalidation: Odoo's registry signaling over a pluggable backend.

Every registry has one version counter per cache name plus one for the registry itself, kept in
a backend all worker processes share. A unit of work (request, job) runs as::

    with registry.cursor_scope():      # check_signaling(): drop what others invalidated
        ...                            # work; registry.clear_cache("default") records the name
                                       # success: signal_changes(); failure: reset_changes()

>>> from ormcache.registry import Registry
>>> registry = Registry("signaling-doc")          # LocalSignaling: this process only
>>> registry.check_signaling()                    # first contact: adopt the counters
[]
>>> with registry.cursor_scope():
...     registry.clear_cache("assets")
>>> registry.check_signaling()                    # our own signal is not an invalidation
[]
>>> Registry.delete("signaling-doc")

Backends: ``LocalSignaling`` (in process, the default), ``PostgresSignaling(dsn)``,
``RedisSignaling(url, pubsub=False)`` and ``SqliteSignaling(path)`` (processes sharing an SQLite
file); set one with ``registry.signaling = backend``. ``capture`` builds the triggers that record
signals inside the writers' transactions (``OrmCache.install()``).

In async code, ``await registry.acheck_signaling()`` and ``await registry.asignal_changes()``
are the same protocol with async I/O: the event loop is never blocked for a round trip.

The rules are Odoo's (odoo/modules/registry.py): a moved counter clears the caches of that name
without signaling again; after publishing, the local counter is incremented rather than set to the
backend's value, so a process that raced another writer invalidates once more instead of missing a
change. Added here: when the backend is unreachable, ``check_signaling()`` clears every local cache
and keeps serving (a stale answer is worse than a miss), and ``signal_changes()`` raises
``SignalingError`` and keeps the names, which the next ``signal_changes()`` or
``check_signaling()`` of any thread publishes.
"""
from __future__ import annotations

from .base import (
    REGISTRY,
    LocalSignaling,
    ReadOnlyBackendError,
    SignalingBackend,
    SignalingConfigurationError,
    SignalingError,
    SignalingUnavailable,
    local_signaling,
)
from .protocol import RegistrySignaling

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (issue #21: import cost)
if TYPE_CHECKING:
    from typing import Any

    from .postgres import PostgresSignaling
    from .redis import RedisSignaling
    from .sqlite import SqliteSignaling

__all__ = [
    "REGISTRY",
    "SignalingError",
    "SignalingUnavailable",
    "SignalingConfigurationError",
    "ReadOnlyBackendError",
    "SignalingBackend",
    "LocalSignaling",
    "local_signaling",
    "PostgresSignaling",
    "RedisSignaling",
    "SqliteSignaling",
    "RegistrySignaling",
]

#: backends imported on first use: each module imports its driver
_BACKENDS = {"PostgresSignaling": ".postgres", "RedisSignaling": ".redis", "SqliteSignaling": ".sqlite"}


def __getattr__(name: str) -> Any:
    module = _BACKENDS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module, __name__), name)
