"""The suite's one ormcache model factory, and the isolated-interpreter runner of the hit-path
tests built on it."""
import os
import subprocess
import sys
import textwrap

from ormcache import ormcache as cached

# a hostile case that could crash the interpreter runs in a subprocess, killed after this
CRASH_TIMEOUT = 120
# tests/: the isolated interpreter imports support.models from there
_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_model(registry, name="m", bases=(), **methods):
    """A model class ``Model`` as Odoo declares one: ``_name`` (``name``), ``pool`` (``registry``,
    where its caches live), ``bases`` and ``methods`` (or other class attributes: ``__slots__``),
    the methods decorated by the caller during the test (so that they use the hit path the test
    chose)."""
    return type("Model", bases, {"_name": name, "pool": registry, **methods})


def value_model(registry, calls):
    """``Model.f(x)``: ``@ormcache("x")``, records ``x`` in ``calls`` and returns ``("value", x)``."""

    @cached("x")
    def f(self, x):
        calls.append(x)
        return ("value", x)

    return make_model(registry, f=f)


def counter_of(registry, Model):
    """The hit/miss counter of a ``value_model``'s ``f``."""
    return registry.counters[("m", Model.f.__wrapped__)]


def run_isolated(hit_path_module, lru_module, body):
    """Run ``body`` in a fresh interpreter with ``Model`` (a ``value_model``), ``calls`` and
    ``counter()`` built on the given hit path and engine; it must print "ok" and exit cleanly (a
    crash fails this test only)."""
    code = textwrap.dedent(
        f"""
        import importlib, types
        from ormcache import Registry, decorators, ormcache as cached
        decorators._impl = importlib.import_module({hit_path_module!r})
        LRU = importlib.import_module({lru_module!r}).LRU
        from support.models import value_model
        registry = Registry("isolated", lru_factory=LRU)
        calls = []
        Model = value_model(registry, calls)
        counter = lambda: registry.counters[("m", Model.f.__wrapped__)]
        """
    ) + textwrap.dedent(body)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=CRASH_TIMEOUT,
                         cwd=_TESTS)
    assert (out.returncode, out.stdout.strip()) == (0, "ok"), out.stderr[-3000:]

