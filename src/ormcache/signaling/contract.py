"""The signaling contract: every hook a backend may provide, and how the other layers reach them.

A backend is any object with the required methods of ``Backend`` (``SignalingBackend`` provides
them all, the coroutine twins by a worker thread). The optional hooks are looked up by the
functions below, never by name elsewhere: the registry (``RegistrySignaling``) and the
SQLAlchemy layer call a backend only through this module.

Required (``Backend``), each call one round trip to the backend's server:

- ``read_versions(db_name, names)`` -> ``(epoch, versions)``, versions in the order of names;
- ``bump(db_name, names)``: add one to each counter;
- ``aread_versions()`` / ``abump()``: their coroutine twins (same results and errors);
- ``close()`` / ``aclose()``.

Optional (absent: the behaviour named):

- ``attach(registry)``: a registry starts using the backend (or a forked child does again);
  absent: nothing to do (``attach_hook``);
- ``timeout`` (seconds): the deadline of one call; absent: 0.5 (``timeout_of``);
- ``gc(names, keep=, older_than=)`` -> rows deleted: the garbage collection of old signals;
  absent: nothing to collect (``gc_hook``);
- ``record_in_transaction`` (bool) with ``record_statement(db_name, names)`` -> SQL and its
  coroutine twin ``arecord_statement()``: the statement that records signals inside the
  writer's own transaction; absent or False: signals are published after the COMMIT
  (``record_hooks``).

And what a backend's listener (Redis pub/sub) calls on a registry: ``Notified``.
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (issue #21: import cost)
if TYPE_CHECKING:
    from typing import Any, Optional, Tuple

    from ._contract_types import ARecordHook, AttachHook, Backend, GcHook, Notified, RecordHook

__all__ = [
    "Backend",
    "Notified",
    "AttachHook",
    "GcHook",
    "RecordHook",
    "ARecordHook",
    "DEFAULT_TIMEOUT",
    "attach_hook",
    "timeout_of",
    "gc_hook",
    "record_hooks",
    "records_in_transaction",
    "says_record_in_transaction",
]

#: the deadline of one call, for a backend without ``timeout``
DEFAULT_TIMEOUT = 0.5

#: the typed names, in ``_contract_types`` (made on first use: it imports ``typing``)
_TYPED = frozenset({"Backend", "Notified", "AttachHook", "GcHook", "RecordHook", "ARecordHook"})


def __getattr__(name: str) -> Any:
    if name in _TYPED:
        from . import _contract_types

        value = getattr(_contract_types, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def attach_hook(backend: Any) -> Optional[AttachHook]:
    """The backend's ``attach(registry)``, or None."""
    return getattr(backend, "attach", None)


def timeout_of(backend: Any) -> float:
    """The backend's deadline of one call (``timeout``), else ``DEFAULT_TIMEOUT``."""
    return getattr(backend, "timeout", DEFAULT_TIMEOUT)


def gc_hook(backend: Any) -> Optional[GcHook]:
    """The backend's ``gc(names, keep=, older_than=)``, or None (it keeps no rows)."""
    return getattr(backend, "gc", None)


def record_hooks(backend: Any) -> Optional[Tuple[RecordHook, Optional[ARecordHook]]]:
    """``(record_statement, arecord_statement or None)`` of a backend that records signals
    inside the writer's transaction (``record_in_transaction`` true and ``record_statement``
    present), else None."""
    record = getattr(backend, "record_statement", None)
    if record is None or not getattr(backend, "record_in_transaction", False):
        return None
    return record, getattr(backend, "arecord_statement", None)


def records_in_transaction(backend: Any) -> bool:
    """Whether the backend records signals inside the writer's transaction."""
    return record_hooks(backend) is not None


def says_record_in_transaction(backend: Any) -> bool:
    """The backend's ``record_in_transaction`` setting alone (False when absent): whether it was
    asked to record in the transaction, whether or not it can."""
    return bool(getattr(backend, "record_in_transaction", False))
