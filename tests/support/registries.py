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
