"""The signaling protocol a Registry runs (mixed into it): check_signaling / signal_changes / reset_changes / cursor_scope."""
from __future__ import annotations

import atexit
import os
import time
from _thread import allocate_lock  # threading's own (issue #21: import cost)

from .._logger import get_logger
from . import contract
from .base import (
    REGISTRY,
    SignalingConfigurationError,
    SignalingError,
    SignalingUnavailable,
    _local_signaling,
    arun_steps,
    run_steps,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (issue #21: import cost)
if TYPE_CHECKING:
    import threading
    import weakref
    from contextlib import AbstractContextManager
    from typing import Any, Awaitable, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

    from .base import Steps, Versions

__all__ = ["RegistrySignaling"]

_logger = get_logger("ormcache.signaling")

_UNSYNCED = object()  # epoch of a registry that has not read the backend yet
_SETTLE_POLL = 0.0005  # seconds between two looks at the bumps in flight
#: ``contextmanager(RegistrySignaling._cursor_scope)``, made by the first ``cursor_scope()``
_scope: Optional[Callable[..., AbstractContextManager[Any]]] = None


class _Blocking:
    """The round trips of the protocol below, made with a backend's blocking methods."""

    @staticmethod
    def read_versions(backend: Any, db_name: str, names: Sequence[str]) -> Versions:
        return backend.read_versions(db_name, names)  # type: ignore[no-any-return]

    @staticmethod
    def bump(backend: Any, db_name: str, names: Sequence[str]) -> None:
        backend.bump(db_name, names)

    @staticmethod
    def settle(registry: "RegistrySignaling", timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while registry._signaling_flying and time.monotonic() < deadline:
            time.sleep(_SETTLE_POLL)

    @staticmethod
    def reload(registry: "RegistrySignaling", on_reload: Callable[[Any], Any]) -> None:
        """``on_reload(registry)`` where nothing can await it (``check_signaling()``,
        ``reset_changes()``): the coroutine of an ``async def on_reload`` is closed unrun, and
        that is logged as an error (only ``acheck_signaling()`` awaits it)."""
        from types import CoroutineType

        result = on_reload(registry)
        if isinstance(result, CoroutineType):  # inspect.iscoroutine(), without importing inspect
            result.close()  # no "never awaited" warning: the error below says it
            _logger.error("on_reload of %r is a coroutine function: check_signaling() and reset_changes() "
                          "cannot await it, it did not run (await registry.acheck_signaling() does)",
                          registry.db_name)


class _Awaiting:
    """The same round trips, made with the backend's coroutine twins."""

    @staticmethod
    def read_versions(backend: Any, db_name: str, names: Sequence[str]) -> Awaitable[Versions]:
        return backend.aread_versions(db_name, names)  # type: ignore[no-any-return]

    @staticmethod
    def bump(backend: Any, db_name: str, names: Sequence[str]) -> Awaitable[None]:
        return backend.abump(db_name, names)  # type: ignore[no-any-return]

    @staticmethod
    async def settle(registry: "RegistrySignaling", timeout: float) -> None:
        import asyncio  # loaded: a coroutine runs; ``import ormcache`` stays without it

        deadline = time.monotonic() + timeout
        while registry._signaling_flying and time.monotonic() < deadline:
            await asyncio.sleep(_SETTLE_POLL)

    @staticmethod
    def reload(registry: "RegistrySignaling", on_reload: Callable[[Any], Any]) -> Any:
        """``on_reload(registry)``; what it returns is awaited if it is awaitable (an ``async
        def on_reload``)."""
        return on_reload(registry)


class RegistrySignaling:
    """Mixin of ``ormcache.registry.Registry``: check_signaling / signal_changes / reset_changes
    / cursor_scope. Uses the Registry's ``db_name``, ``caches``, ``cache_invalidated``,
    ``registry_invalidated``, ``_clear_local()`` and ``signaling`` (a backend, or None for the
    process-wide ``LocalSignaling``).

    ``on_reload`` (None, or a callable taking the registry) is called when another process
    changed the registry itself, after every local cache was cleared; it may be set per instance.
    ``acheck_signaling()`` awaits what it returns when that is awaitable (an ``async def``).

    After the backend failed, the next ``signaling_retry_interval`` seconds do without it: checks
    clear everything at once and signals are kept, instead of each waiting for a network timeout.

    In async code, ``await acheck_signaling()`` and ``await asignal_changes()`` are the same
    protocol (same results, errors, retries and counters; see their docstrings) whose round
    trips never block the event loop.
    """

    on_reload: Optional[Callable[[Any], Optional[Awaitable[Any]]]] = None
    signaling_retry_interval: float = 1.0
    #: publish invalidations kept after a failure from a background thread as soon as the
    #: backend answers (False: only the next signal_changes()/check_signaling() of the process)
    signaling_background_retry: bool = True
    #: at interpreter exit, how long to keep trying to publish invalidations kept after a failure
    signaling_exit_timeout: float = 10.0

    if TYPE_CHECKING:  # what the Registry, which this is a base of, provides
        db_name: str
        signaling: Any
        caches_by_key: Dict[str, Tuple[str, ...]]
        cache_invalidated: Set[str]
        registry_invalidated: bool

        def _expand(self, names: Iterable[str]) -> List[str]: ...
        def _clear_local(self, names: Iterable[str]) -> List[str]: ...
        def _clear_all_local(self) -> List[str]: ...
        def _begin_scope(self) -> Any: ...
        def _end_scope(self, previous: Any) -> None: ...

    def __init__(self) -> None:
        self._signaling_lock = allocate_lock()
        self._signaling_retry_lock = allocate_lock()
        self._signaling_pid = os.getpid()
        self._signaling_backend_seen: Any = None
        self._signaling_epoch: Any = _UNSYNCED
        #: fine-grained signals (a table's, a method's): name -> what to call when it moved
        self._signaling_topics: Dict[str, List[Callable[[List[str]], Any]]] = {}
        #: the names with a counter (the registry's first), read together at every check
        self._signaling_keys: Tuple[str, ...] = self._signaling_names()
        #: per-process local counters: name -> version this process has caught up with
        self._signaling_versions: Dict[str, int] = {}
        #: the same, as a tuple in the order of _signaling_keys (the no-change fast path)
        self._signaling_values: Optional[Tuple[Optional[int], ...]] = None
        self._signaling_outage = False
        self._signaling_failed_at = 0.0  # time.monotonic() of the last failure
        #: bumped whenever the local counters change: a read older than that is read again
        self._signaling_generation = 0
        #: names whose publication failed (any thread); published by the next signal or check
        self._signaling_pending: Set[str] = set()
        self._signaling_pending_registry = False
        #: counts the failures that kept names: a publish sent before one of them must not
        #: forget what it kept (that commit may be newer than the bump), see _signaling_sent
        self._signaling_kept = 0
        #: name -> bumps of this process sent and not answered yet (no lock is held across a
        #: round trip: a check that reads meanwhile counts them as landed, see _signaling_landed)
        self._signaling_flying: Dict[str, int] = {}
        super().__init__()

    # -- helpers ---------------------------------------------------------------------------

    def _signaling_backend(self) -> Any:
        backend = self.signaling
        if backend is None:
            backend = _local_signaling
        if self._signaling_pid != os.getpid():
            # a forked child: fresh locks; the backend attaches again (e.g. to start a listener)
            self._signaling_lock = allocate_lock()
            self._signaling_retry_lock = allocate_lock()
            self._signaling_pid = os.getpid()
            self._signaling_flying = {}  # the parent's threads' bumps are not the child's
            attach = contract.attach_hook(backend)
            if attach is not None and backend is self._signaling_backend_seen:
                attach(self)
        if backend is not self._signaling_backend_seen:
            with self._signaling_lock:
                if backend is not self._signaling_backend_seen:
                    # new backend: its counters say nothing about ours; resync on next read
                    self._signaling_backend_seen = backend
                    self._signaling_epoch = _UNSYNCED
                    self._signaling_versions = {}
                    self._signaling_values = None
                    attach = contract.attach_hook(backend)
                    if attach is not None:
                        attach(self)
        return backend

    def _signaling_names(self) -> Tuple[str, ...]:
        return (REGISTRY, *self.caches_by_key, *sorted(self._signaling_topics))

    def subscribe_signals(self, names: Iterable[str], on_moved: Callable[[List[str]], Any]) -> None:
        """Fine-grained signals: read ``names`` (a table's, a method's: any name that is not a
        cache name) with every check, in the same round trip; when some of them moved,
        ``on_moved(moved)`` is called instead of clearing whole caches. It runs under the
        signaling lock, in the checking thread: it may only drop local entries (an error it
        raises is logged and every cache is cleared instead). A name's first read counts as
        moved (what was cached before may predate it).

        >>> from ormcache.registry import Registry
        >>> from ormcache.signaling import LocalSignaling
        >>> registry = Registry("topics-doc")
        >>> registry.signaling = backend = LocalSignaling()
        >>> registry.check_signaling()                    # first contact
        []
        >>> registry.subscribe_signals(["t.users"], print)
        >>> backend.bump("topics-doc", ["t.users"])
        >>> registry.check_signaling()                    # on_moved(["t.users"]); no cache cleared
        ['t.users']
        []
        >>> Registry.delete("topics-doc")
        """
        names = list(names)
        for name in names:
            if not isinstance(name, str) or not name or name == REGISTRY or name in self.caches_by_key:
                raise ValueError(f"a fine-grained signal is a non-empty string other than a cache "
                                 f"name or {REGISTRY!r}, not {name!r}")
        with self._signaling_lock:
            for name in names:
                callbacks = self._signaling_topics.setdefault(name, [])
                if on_moved not in callbacks:
                    callbacks.append(on_moved)
            keys = self._signaling_names()
            if keys != self._signaling_keys:
                self._signaling_keys = keys
                self._signaling_snapshot()  # a new name reads as moved at the next check

    def publish_signals(self, names: Iterable[str]) -> None:
        """Bump subscribed fine-grained signals now, in one round trip (a method's values
        invalidated in every process, outside of any transaction). This process's counters move
        with them (it drops its own entries itself). On failure raises ``SignalingError`` and
        keeps the names, published again as the cache names are."""
        run_steps(self._signaling_signals_publishing(names), _Blocking)

    async def apublish_signals(self, names: Iterable[str]) -> None:
        """``publish_signals()`` for async code."""
        await arun_steps(self._signaling_signals_publishing(names), _Awaiting)

    def _signaling_signals_publishing(self, names: Iterable[str]) -> Steps[None]:
        names = set(names)
        unknown = sorted(name for name in names if name not in self._signaling_topics)
        if unknown:
            raise ValueError(f"not subscribed fine-grained signals: {unknown}")
        if names:
            yield from self._signaling_publishing(self._signaling_backend(), False, names)

    def _signaling_topics_moved(self, moved: List[str]) -> None:
        """Call the subscribers of the fine-grained signals that moved (under the lock)."""
        by_callback: Dict[Any, Tuple[Callable[[List[str]], Any], List[str]]] = {}
        for name in moved:
            for callback in self._signaling_topics.get(name, ()):
                by_callback.setdefault(id(callback), (callback, []))[1].append(name)
        for callback, names in by_callback.values():
            try:
                callback(names)
            except Exception:  # noqa: BLE001 - never serve what it failed to drop
                _logger.exception("Signaling: dropping the entries of %s failed; all caches of %r "
                                  "cleared instead", names, self.db_name)
                self._signaling_clear_all()

    def _signaling_failed(self) -> None:
        # under the lock: the backend failed; resync at the first check that succeeds
        self._signaling_outage = True
        self._signaling_failed_at = time.monotonic()

    def _signaling_resting(self) -> bool:
        """Whether the backend failed less than signaling_retry_interval seconds ago."""
        return (self._signaling_outage
                and time.monotonic() < self._signaling_failed_at + self.signaling_retry_interval)

    def _signaling_snapshot(self) -> None:
        # under the lock, after every change of the local counters
        self._signaling_values = tuple(map(self._signaling_versions.get, self._signaling_keys))
        self._signaling_generation += 1

    def _signaling_clear_all(self) -> List[str]:
        # through the Registry, which bumps its generation: a value computed across this clear
        # is then not stored afterwards
        return sorted(self._clear_all_local())

    def _signaling_reload(self) -> None:
        self._signaling_clear_all()
        if self.on_reload is not None:
            _Blocking.reload(self, self.on_reload)

    def _signaling_publishing_pending(self, backend: Any) -> Steps[None]:
        with self._signaling_lock:
            registry_changed = self._signaling_pending_registry
            names = set(self._signaling_pending)
        if not (registry_changed or names):
            return
        try:
            yield from self._signaling_publishing(backend, registry_changed, names)
        except SignalingError as exc:
            if isinstance(exc, SignalingConfigurationError):
                raise
            _logger.debug("Signaling: kept invalidations still not published: %s", exc)
            return  # the read below fails too, or tells the same story
        _logger.info("Published invalidations kept during the signaling outage: %s",
                     ["registry"] if registry_changed else sorted(names))
        # this thread's copy of them is done too (other threads publish theirs once more)
        self.cache_invalidated.difference_update(names)
        if registry_changed:
            self.registry_invalidated = False

    def _signaling_publishing(self, backend: Any, registry_changed: bool, names: Set[str]) -> Steps[None]:
        # no need to signal caches with the registry: reloading starts with empty caches
        bumped = [REGISTRY] if registry_changed else sorted(names)
        if registry_changed:  # Odoo's lines (odoo/modules/registry.py), sorted names
            _logger.info("Registry changed, signaling through the database")
        else:
            _logger.info("Caches invalidated, signaling through the database: %s", bumped)
        # No lock is held across the round trip (a coroutine holding a thread lock would stall
        # its loop): the bump is counted in flight, and a check that reads meanwhile takes it as
        # landed (_signaling_landed), so no read taken between the bump and the local increment
        # moves the counters past what this process has seen.
        with self._signaling_lock:
            resting = self._signaling_resting()
            if not resting:
                self._signaling_fly(bumped, 1)
            kept = self._signaling_kept
        failure: Optional[SignalingError] = None
        try:
            if resting:
                raise SignalingUnavailable(
                    f"signaling of {self.db_name!r} failed less than "
                    f"{self.signaling_retry_interval}s ago; not tried again yet")
            yield lambda io: io.bump(backend, self.db_name, bumped)
        except BaseException as exc:
            # failed, or cancelled (the bump may have landed): the names are published again
            with self._signaling_lock:
                if not resting:
                    self._signaling_fly(bumped, -1)
                    self._signaling_generation += 1  # a read counted this bump: read again
                self._signaling_pending |= names
                self._signaling_pending_registry |= registry_changed
                self._signaling_kept += 1
                if isinstance(exc, SignalingUnavailable) and not resting:
                    self._signaling_failed()
            _retrier.watch(self)  # at exit in any case; in the background if allowed
            if not isinstance(exc, SignalingError):
                raise
            failure = exc
        else:
            with self._signaling_lock:
                self._signaling_fly(bumped, -1)
                if self._signaling_epoch is not _UNSYNCED:
                    # Odoo's rule: increment, never set to the backend's value, so that a race
                    # with another writer shows up as one more invalidation at the next check
                    versions = self._signaling_versions
                    for name in bumped:
                        versions[name] = versions.get(name, 0) + 1
                self._signaling_snapshot()
                self._signaling_sent(kept, names, registry_changed)
        if failure is not None:
            what = "the registry change" if registry_changed else f"the invalidation of {sorted(names)}"
            raise type(failure)(f"{failure}; {what} is kept and will be published by the next "
                                "signal_changes() or check_signaling()") from failure

    def _signaling_sent(self, kept: int, names: Set[str], registry_changed: bool) -> None:
        """A bump of the kept ``names`` was answered (under the lock): forget them, unless a
        failure kept names since the bump was sent (``kept`` was ``_signaling_kept`` then). The
        bump may have landed before that newer commit, so they stay kept and are published
        again: one more invalidation at worst, never a lost one."""
        if kept != self._signaling_kept:
            return
        self._signaling_pending -= names
        if registry_changed:
            self._signaling_pending_registry = False

    def _signaling_fly(self, names: Sequence[str], delta: int) -> None:
        # under the lock
        flying = self._signaling_flying
        for name in names:
            count = flying.get(name, 0) + delta
            if count:
                flying[name] = count
            else:
                del flying[name]

    def _signaling_landed(self, names: Sequence[str], values: Tuple[int, ...]) -> Tuple[int, ...]:
        """A read as if every bump still in flight had landed in it (under the lock).

        The publisher adds one per bump to the local counters when it is answered; taking the
        bump out of the read here keeps the two in step whether or not the read saw it: at worst
        one more invalidation at the next check, never a counter past what was seen."""
        flying = self._signaling_flying
        if not flying:
            return values
        return tuple(value - flying.get(name, 0) for name, value in zip(names, values))

    def _signaling_retry(self, force: bool = False) -> bool:
        """Publish the kept invalidations from the background (or at exit, ``force``: even while
        resting). The local counters are left alone, so no lock is held across the round trip:
        this process sees its own signal at its next check, as one more invalidation.
        Returns whether nothing is left to publish."""
        with self._signaling_retry_lock:  # the thread and the exit handler: one publish at a time
            return self._signaling_retry_once(force)

    def _signaling_retry_once(self, force: bool) -> bool:
        with self._signaling_lock:
            registry_changed = self._signaling_pending_registry
            names = set(self._signaling_pending)
            kept = self._signaling_kept
            if not (registry_changed or names):
                return True
            if not force and (self._signaling_resting() or not self.signaling_background_retry):
                return False
        backend = self._signaling_backend()
        try:
            backend.bump(self.db_name, [REGISTRY] if registry_changed else sorted(names))
        except SignalingError as exc:
            with self._signaling_lock:
                if isinstance(exc, SignalingUnavailable) and not self._signaling_resting():
                    self._signaling_failed()
            _logger.debug("Signaling: kept invalidations of %r still not published: %s", self.db_name, exc)
            return False
        with self._signaling_lock:
            self._signaling_sent(kept, names, registry_changed)
            done = not (self._signaling_pending or self._signaling_pending_registry)
        _logger.info("Published invalidations of %r kept during the signaling outage: %s",
                     self.db_name, ["registry"] if registry_changed else sorted(names))
        return done

    # -- the protocol ----------------------------------------------------------------------

    def check_signaling(self) -> List[str]:
        """Catch up with the other processes; call at the start of a unit of work.

        Reads every counter in one round trip; clears (without signaling again) the local caches
        of each name whose counter moved since this process last saw it; if the registry's
        counter moved, clears every cache and calls ``on_reload``. Returns the caches cleared.
        An unreachable backend clears every local cache, logs a warning, and returns them all.
        The first check of a registry adopts the counters: it clears whatever the caches hold
        (filled before any counter was known) and returns ``[]``.
        """
        return run_steps(self._signaling_checking(), _Blocking)

    async def acheck_signaling(self) -> List[str]:
        """``check_signaling()`` for async code: ``cleared = await registry.acheck_signaling()``.

        The same protocol (same counters, result, errors, outage handling and publication of
        kept invalidations) with the backend's async I/O (``redis.asyncio``, psycopg's
        ``AsyncConnection``; a worker thread for other backends): the event loop runs other
        tasks during each round trip, which keeps the backend's deadline (``timeout``). Safe
        from concurrent tasks and from several threads each running its own loop.
        ``on_reload`` is called as by ``check_signaling()``, and awaited if it returns an
        awaitable (an ``async def on_reload``).
        """
        return await arun_steps(self._signaling_checking(), _Awaiting)

    def _signaling_checking(self) -> Steps[List[str]]:
        backend = self._signaling_backend()
        names = self._signaling_keys
        if self._signaling_pending or self._signaling_pending_registry:
            yield from self._signaling_publishing_pending(backend)
        for attempt in range(3):
            if self._signaling_flying:
                # a publish of this process is being answered: read after it (it ends within
                # its backend's deadline), as a blocked lock would have made us wait
                timeout = contract.timeout_of(backend)
                yield lambda io: io.settle(self, timeout)
            generation = self._signaling_generation
            try:
                if self._signaling_resting():
                    raise SignalingUnavailable("not tried again yet")
                epoch, values = yield lambda io: io.read_versions(backend, self.db_name, names)
            except SignalingError as exc:
                if isinstance(exc, SignalingConfigurationError):
                    raise  # a misconfiguration (read-only, authentication...), not an outage: say it loudly
                with self._signaling_lock:
                    first = not self._signaling_outage
                    if not self._signaling_resting():
                        self._signaling_failed()
                    self._signaling_generation += 1
                    cleared = self._signaling_clear_all()
                if first:
                    _logger.warning("Signaling unavailable, clearing all caches of %r at every "
                                    "check until it is back: %s", self.db_name, exc)
                return cleared
            with self._signaling_lock:
                # Another thread moved the local counters while we read (a signal, a check):
                # our read may predate it, and applying it would go backwards; or a publish of
                # ours is in flight. Read again; after three tries apply anyway (the worst is
                # one extra invalidation).
                if (self._signaling_generation != generation or self._signaling_flying) and attempt < 2:
                    continue
                values = self._signaling_landed(names, values)
                if (values == self._signaling_values and epoch == self._signaling_epoch
                        and not self._signaling_outage):
                    return []  # nothing moved: the common case, one tuple comparison
                cleared, call_reload = self._signaling_apply(backend, names, epoch, dict(zip(names, values)))
                self._signaling_snapshot()
                break
        on_reload = self.on_reload
        if call_reload and on_reload is not None:
            yield lambda io: io.reload(self, on_reload)
        return cleared

    def _signaling_apply(self, backend: Any, names: Sequence[str], epoch: Any,
                         versions: Dict[str, int]) -> Tuple[List[str], bool]:
        """Compare a read with the local counters (under the lock): clear what moved."""
        local = self._signaling_versions
        if self._signaling_epoch is _UNSYNCED or backend is not self._signaling_backend_seen:
            # first contact: adopt the counters; whatever the caches hold predates it
            self._signaling_clear_all()
            self._signaling_versions = dict(versions)
            self._signaling_epoch = epoch
            self._signaling_outage = False
            return [], False
        if self._signaling_outage or epoch != self._signaling_epoch:
            # changes may have been missed (outage) or the counters were lost (new epoch)
            registry_moved = epoch != self._signaling_epoch or versions[REGISTRY] != local.get(REGISTRY)
            _logger.info("Signaling of %r %s: all caches cleared", self.db_name,
                         "is back" if self._signaling_outage else "lost its counters (new epoch)")
            self._signaling_outage = False
            self._signaling_epoch = epoch
        else:
            registry_moved = versions[REGISTRY] != local.get(REGISTRY)
            if not registry_moved:
                moved = [name for name in names if versions[name] != local.get(name)]
                if not moved:
                    return [], False
                for name in moved:
                    local[name] = versions[name]
                topics = self._signaling_topics
                cleared = []
                caches = [name for name in moved if name not in topics]
                if caches:
                    # clear, never clear_cache(): that would record the names and signal them back
                    cleared = self._clear_local(caches)
                    _logger.info("Invalidating caches after database signaling: %s", sorted(cleared))
                if len(caches) != len(moved):
                    self._signaling_topics_moved([name for name in moved if name in topics])
                return cleared, False
            _logger.info("Reloading the model registry after database signaling.")
        cleared = self._signaling_clear_all()
        self._signaling_versions = dict(versions)
        return cleared, registry_moved

    def signaling_notified(self, names: Sequence[str]) -> None:
        """A backend's listener (Redis pub/sub) heard that a peer bumped ``names``: clear their
        caches now, leave the counters (and a registry reload) to the next check_signaling().
        The one registry method a backend calls (``contract.Notified``)."""
        if REGISTRY in names:
            self._signaling_clear_all()
        else:
            self._clear_local([name for name in names if name in self.caches_by_key])

    def gc_signaling(self, *, keep: int = 10, older_than: float = 3600.0) -> int:
        """Odoo's garbage collection of old signals, for a scheduled job (``ir.autovacuum``):
        the backend's ``gc()`` on every signaled name (PostgreSQL: rows older than
        ``older_than`` seconds and not among each table's ``keep`` newest); 0 for a backend
        that keeps no rows (Redis). Returns the number of rows deleted."""
        backend = self._signaling_backend()
        collect = contract.gc_hook(backend)
        if collect is None:
            return 0
        return collect(self._signaling_names(), keep=keep, older_than=older_than)

    def signal_changes(self) -> None:
        """Publish this thread's invalidations; call at the end of a successful unit of work.

        Bumps the registry's counter if this thread invalidated the registry, else the counter
        of each name in ``cache_invalidated``, in one round trip, then resets both. On failure
        raises ``SignalingError`` and keeps the names: the next signal_changes() or
        check_signaling() (of any thread) publishes them.
        """
        run_steps(self._signaling_changes(), _Blocking)

    async def asignal_changes(self) -> None:
        """``signal_changes()`` for async code: ``await registry.asignal_changes()``.

        The same protocol (same counters, the same ``SignalingError`` on failure with the names
        kept for the next publish or the background retry) with the backend's async I/O: the
        event loop is never blocked for the round trip. The invalidations published are those
        of the calling thread (``cache_invalidated``, shared by the tasks of its loop). A
        cancelled call keeps the names too (the bump may or may not have landed).
        """
        await arun_steps(self._signaling_changes(), _Awaiting)

    def _signaling_changes(self) -> Steps[None]:
        with self._signaling_lock:
            registry_changed = self.registry_invalidated or self._signaling_pending_registry
            names = self.cache_invalidated | self._signaling_pending
        if not (registry_changed or names):
            return
        yield from self._signaling_publishing(self._signaling_backend(), registry_changed, names)
        self.registry_invalidated = False
        self.cache_invalidated.clear()

    def reset_changes(self) -> None:
        """Cancel this thread's invalidations; call when a unit of work fails.

        The caches of the invalidated names are cleared again (they may hold values computed
        from the rolled-back work) and nothing is published.
        """
        if self.registry_invalidated:
            self._signaling_reload()
            self.registry_invalidated = False
        names = self.cache_invalidated
        if names:
            self._clear_local(names)
            names.clear()

    # -- signals recorded in the writer's transaction --------------------------------------

    def record_changes(self, names: Iterable[str], execute: Callable[[str], Any], *,
                       registry_changed: bool = False,
                       awaiting: Optional[Callable[[Awaitable[str]], str]] = None) -> bool:
        """Record the invalidation of ``names`` (or of the registry) inside the writer's open
        transaction, just before its COMMIT; ``execute(sql)`` runs one SQL string on the writer's
        connection. Returns True when the backend can do that (a ``PostgresSignaling`` with
        ``record_in_transaction``): at most one statement was run, and the signal commits or
        rolls back with the data; then call ``changes_committed()`` after the COMMIT (nothing
        after a ROLLBACK). Returns False, running nothing, otherwise (Local or Redis backend,
        ``record_in_transaction=False``, or a backend never reached whose tables are unknown):
        the caller publishes after the commit as before (``signal_changes()``).

        The statement fails the writer's transaction if that connection is not on the signaling
        database (it compares the backend's epoch token): a misconfiguration is never silent.

        ``awaiting(coroutine)``, when given, waits for a coroutine from this synchronous code
        (SQLAlchemy's ``await_`` inside its greenlet bridge, for an AsyncSession): the backend's
        round trips, if the statement needs any (the first use, a prune that is due), are then
        its async ones and the event loop serves other tasks meanwhile.

        >>> from ormcache.registry import Registry
        >>> registry = Registry("record-doc")
        >>> registry.record_changes({"default"}, print)   # LocalSignaling: nothing to record
        False
        >>> Registry.delete("record-doc")
        """
        names = set(names)
        self._expand(names)  # unknown names: ValueError before anything is sent
        backend = self._signaling_backend()
        hooks = contract.record_hooks(backend)
        if hooks is None:
            return False
        record, arecord = hooks
        bumped = [REGISTRY] if registry_changed else sorted(names)
        if not bumped:
            return True
        try:
            if awaiting is not None and arecord is not None:
                statement = awaiting(arecord(self.db_name, bumped))
            else:
                statement = record(self.db_name, bumped)
        except SignalingError as exc:
            _logger.debug("Signaling: cannot record %s in the transaction, publishing after "
                          "the commit instead: %s", bumped, exc)
            return False
        execute(statement)
        return True

    def changes_committed(self, names: Iterable[str], *, registry_changed: bool = False) -> None:
        """The transaction in which ``record_changes(names, ...)`` returned True committed: move
        this process's counters by one per name (Odoo's increment rule). Sends nothing, clears
        nothing: another thread of this process may have filled those caches from the old data
        between the writer's clear and its COMMIT, and no check will clear them now, so the
        caller clears what it needs once more after the COMMIT (``cursor_scope()`` does)."""
        names = set(names)
        self._expand(names)
        bumped = [REGISTRY] if registry_changed else sorted(names)
        if not bumped:
            return
        with self._signaling_lock:
            if self._signaling_epoch is not _UNSYNCED:
                versions = self._signaling_versions
                for name in bumped:
                    versions[name] = versions.get(name, 0) + 1
            self._signaling_snapshot()

    def signaling_version(self, name: str) -> Optional[Tuple[Any, int, int]]:
        """``(epoch, registry version, version of name)`` this process has caught up with, or
        None when it cannot vouch for one (never synced, or the backend failed since). A value
        stored elsewhere under that version is valid for as long as the version stays."""
        if name not in self.caches_by_key and name not in self._signaling_topics:
            raise ValueError(f"unknown cache name {name!r}; known: {sorted(self.caches_by_key)}")
        with self._signaling_lock:
            epoch = self._signaling_epoch
            if epoch is _UNSYNCED or self._signaling_outage:
                return None
            versions = self._signaling_versions
            return epoch, versions.get(REGISTRY, 0), versions.get(name, 0)

    def signaling_behind(self, epoch: Any, versions: Dict[str, int]) -> bool:
        """Whether a snapshot that read ``(epoch, {name: version})`` from the signaling tables
        (on a reader's own connection, inside its transaction) is older than what this process
        has applied: a value computed from it must not be stored for others. True as well when
        this process cannot vouch for its counters (never synced, the backend failed since, or
        another epoch)."""
        with self._signaling_lock:
            if (self._signaling_epoch is _UNSYNCED or self._signaling_outage
                    or epoch != self._signaling_epoch):
                return True
            local = self._signaling_versions
            return any(version < local.get(name, 0) for name, version in versions.items())

    def cursor_scope(self, execute: Optional[Callable[[str], Any]] = None) -> AbstractContextManager[Any]:
        """``check_signaling()``, the work, then ``signal_changes()`` on success or
        ``reset_changes()`` if the work raised.

        With ``execute`` (runs one SQL string in the caller's open transaction, e.g. a psycopg
        connection's ``execute``), the invalidations are recorded in that transaction at the
        end of the scope (``record_changes()``), and commit with it: enter the scope after the
        transaction began, commit after the scope. This process then sees its own signal at its
        next check, as one more invalidation of those names. When the backend cannot record in
        a transaction, ``signal_changes()`` publishes at the end of the scope as without it.

        Values computed inside the scope are not stored in the shared caches once any
        invalidation was applied in this process after the scope began (by this scope, by
        another thread, or by a check): under REPEATABLE READ they may come from a snapshot
        older than that invalidation.
        """
        global _scope
        if _scope is None:  # contextlib on first use, not at import (issue #21: import cost)
            from contextlib import contextmanager

            _scope = contextmanager(RegistrySignaling._cursor_scope)
        return _scope(self, execute)

    def _cursor_scope(self, execute: Optional[Callable[[str], Any]]) -> Iterator[Any]:
        """``cursor_scope()``'s generator."""
        self.check_signaling()
        scope = self._begin_scope()
        try:
            try:
                yield self
            except BaseException:
                self.reset_changes()
                raise
            try:
                recorded = execute is not None and self.record_changes(
                    self.cache_invalidated, execute, registry_changed=self.registry_invalidated)
            except BaseException:
                self.reset_changes()  # the transaction cannot commit now
                raise
            if recorded:
                self.cache_invalidated.clear()
                self.registry_invalidated = False
            else:
                registry_changed, names = self.registry_invalidated, set(self.cache_invalidated)
                self.signal_changes()
                # Committed and published: clear once more. Another thread may have filled these
                # caches from the old data between our clear and the commit, and the local
                # counters now say this process is up to date, so no check would clear them.
                if registry_changed:
                    self._clear_all_local()
                elif names:
                    self._clear_local(names)
        finally:
            self._end_scope(scope)


class _Retrier:
    """One thread per process publishing the invalidations that registries kept after a failed
    publish, as soon as their backend answers again; and, at interpreter exit, a last try of
    up to ``RegistrySignaling.signaling_exit_timeout`` seconds."""

    POLL = 0.05  # seconds between two looks at the registries (each rests after a failure)

    def __init__(self) -> None:
        self._lock = allocate_lock()
        # made by the first watch(): threading and weakref are not imported with ormcache (issue #21)
        self._registries: Optional[weakref.WeakSet[Any]] = None
        self._wake: Optional[threading.Event] = None
        self._thread: Optional[threading.Thread] = None
        self._pid = os.getpid()

    def watch(self, registry: Any) -> None:
        import threading
        import weakref

        with self._lock:
            if self._registries is None:
                self._registries = weakref.WeakSet()
            if self._wake is None:
                self._wake = threading.Event()
            if self._pid != os.getpid():  # a forked child: the parent's thread did not follow
                self._thread, self._pid = None, os.getpid()
            self._registries.add(registry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ormcache-signaling-retry", daemon=True)
                self._thread.start()
            wake = self._wake
        wake.set()

    def _pending(self) -> List[Any]:
        with self._lock:
            return list(self._registries or ())

    def _run(self) -> None:
        wake = self._wake
        assert wake is not None  # started by watch(), after it made the event
        while True:
            wake.wait(self.POLL)
            wake.clear()
            for registry in self._pending():
                try:
                    if registry._signaling_retry():
                        with self._lock:
                            # a publish that failed since re-added its names (then watch()):
                            # forget the registry only if nothing is pending now
                            if not (registry._signaling_pending or registry._signaling_pending_registry):
                                self._registries.discard(registry)  # type: ignore[union-attr]
                except Exception:  # noqa: BLE001 - the thread must survive; it tries again
                    _logger.exception("Signaling: retrying the kept invalidations of %r failed", registry)

    def at_exit(self) -> None:
        registries = [r for r in self._pending() if r._signaling_pending or r._signaling_pending_registry]
        if not registries:
            return
        deadline = time.monotonic() + max(r.signaling_exit_timeout for r in registries)
        while registries:
            registries = [r for r in registries if not r._signaling_retry(force=True)]
            if not registries or time.monotonic() >= deadline:
                break
            time.sleep(self.POLL)
        for registry in registries:
            _logger.error(
                "Signaling: exiting with invalidations of %r never published (backend %r unreachable "
                "for %ss at exit): other processes keep serving these caches until their next "
                "resync: %s", registry.db_name, registry.signaling, registry.signaling_exit_timeout,
                ["registry"] if registry._signaling_pending_registry else sorted(registry._signaling_pending))


_retrier = _Retrier()
atexit.register(_retrier.at_exit)
