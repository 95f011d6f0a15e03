"""Fixtures shared by the whole suite.

``lru_impl`` runs a test once against the compiled engine and once against the pure-Python
twin. The compiled one is imported directly: if it did not build, its tests fail (never skip).

Where a test goes (tests/README.md): the folders mirror ``src/`` -- ``tests/fastlru/`` (the
engine, ``lru_cache``, policies; ``bench/`` for ``python -m fastlru.bench``), ``tests/ormcache/``
(decorators, registry, hit paths, flights), ``tests/ormcache/signaling/`` and
``tests/ormcache/sqlalchemy/``; what spans both packages (packaging, typing, import cost) stays
here. A new file is ``test_<area>_<topic>.py`` in the folder of the module it tests (basenames
stay unique across folders). Shared helpers live in ``tests/support/`` (``from support.models
import make_model``...); a test module never imports another test module. Each folder's
fixtures are in its ``conftest.py``.
"""
import importlib

import pytest

# helpers' own asserts report like the tests' (support.* is imported as a plain package)
pytest.register_assert_rewrite("support")

# Private PostgreSQL and Redis servers on 127.0.0.1, started on first use (tests/support/servers.py).
pytest_plugins = ("support.servers",)

IMPLEMENTATIONS = [
    pytest.param("fastlru._lru_c", id="c-extension", marks=pytest.mark.c_extension),
    pytest.param("fastlru._lru_py", id="pure-python"),
]


@pytest.fixture(params=IMPLEMENTATIONS, scope="session")
def lru_module(request):
    return importlib.import_module(request.param)


@pytest.fixture(scope="session")
def LRU(lru_module):
    """The LRU class of one implementation."""
    return lru_module.LRU
