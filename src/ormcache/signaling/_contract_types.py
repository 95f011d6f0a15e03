"""The typed half of ``ormcache.signaling.contract``: the protocols and hook types, for type
checkers and ``isinstance(backend, contract.Backend)``. Imported on first use of one of its
names through ``contract`` (it imports ``typing``, which ``import ormcache`` does not: issue #21,
import cost)."""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable, Protocol, Sequence, runtime_checkable

from .base import Versions

__all__ = ["Backend", "Notified", "AttachHook", "GcHook", "RecordHook", "ARecordHook"]

#: ``attach(registry)``
AttachHook = Callable[[Any], None]
#: ``gc(names, *, keep, older_than)`` -> rows deleted
GcHook = Callable[..., int]
#: ``record_statement(db_name, names)`` -> the SQL that records the signals
RecordHook = Callable[[str, Sequence[str]], str]
#: ``arecord_statement(db_name, names)``: its coroutine twin
ARecordHook = Callable[[str, Sequence[str]], Awaitable[str]]


@runtime_checkable
class Backend(Protocol):
    """The methods every signaling backend provides (``SignalingBackend`` has them all)."""

    def read_versions(self, db_name: str, names: Sequence[str]) -> Versions: ...

    def bump(self, db_name: str, names: Iterable[str]) -> None: ...

    def aread_versions(self, db_name: str, names: Sequence[str]) -> Awaitable[Versions]: ...

    def abump(self, db_name: str, names: Iterable[str]) -> Awaitable[None]: ...

    def close(self) -> None: ...

    def aclose(self) -> Awaitable[None]: ...


class Notified(Protocol):
    """What a backend's listener calls on a registry when a peer published ``names``."""

    def signaling_notified(self, names: Sequence[str]) -> None: ...
