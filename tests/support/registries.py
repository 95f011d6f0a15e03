"""Fresh registries for a test, cleaned up after it."""
import contextlib
import uuid

from ormcache import Registry


@contextlib.contextmanager
def fresh_registries(prefix, close_signaling=True):
    """Yields ``new(**kwargs)``: a ``Registry(f"{prefix}-<random>", **kwargs)``. On exit, each
    one's signaling backend is closed (if it has one and ``close_signaling``; a backend on a
    black hole is left alone) and the registry deleted."""
    made = []

    def new(**kwargs):
        registry = Registry(f"{prefix}-{uuid.uuid4().hex[:10]}", **kwargs)
        made.append(registry)
        return registry

    try:
        yield new
    finally:
        for registry in made:
            if close_signaling and registry.signaling is not None:
                registry.signaling.close()
            Registry.delete(registry.db_name)


_DEFAULT = object()


@contextlib.contextmanager
def signaling_registries(prefix, retry_interval=_DEFAULT, background_retry=True):
    """Yields ``make(backend=None)``: a ``fresh_registries`` registry on the signaling
    ``backend``; with ``retry_interval`` (seconds before a failed backend is tried again; 0: at
    once) and without the background retry thread when ``background_retry`` is False (tests that
    follow who publishes kept invalidations, and when), else the registry's defaults."""
    with fresh_registries(prefix) as new:

        def make(backend=None):
            registry = new()
            registry.signaling = backend
            if retry_interval is not _DEFAULT:
                registry.signaling_retry_interval = retry_interval
            if not background_retry:
                registry.signaling_background_retry = False
            return registry

        yield make


def synced(*registries):
    """``registries``, each past its first ``check_signaling()`` (which found nothing to do)."""
    for registry in registries:
        assert registry.check_signaling() == []
    return registries
