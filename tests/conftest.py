"""Fixtures shared by the whole suite.

``lru_impl`` runs a test once against the compiled engine and once against the pure-Python
twin. The compiled one is imported directly: if it did not build, its tests fail (never skip).
"""
import importlib
import itertools

import pytest

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


HIT_PATHS = [
    pytest.param("ormcache._cache_c", id="c-hit", marks=pytest.mark.c_extension),
    pytest.param("ormcache._cache_py", id="py-hit"),
]
_registry_names = itertools.count()


@pytest.fixture(params=HIT_PATHS)
def hit_path(request, monkeypatch):
    """Decorations made during the test use this ormcache hit path (imported directly: a
    compiled one that did not build fails, never skips)."""
    from ormcache import decorators

    module = importlib.import_module(request.param)
    monkeypatch.setattr(decorators, "_impl", module)
    return module


@pytest.fixture
def registry(LRU, hit_path):
    """A fresh ormcache Registry on one fastlru implementation, deleted afterwards."""
    from ormcache import Registry

    name = f"test-registry-{next(_registry_names)}"
    reg = Registry(name, lru_factory=LRU)
    assert isinstance(reg.caches["default"], LRU)
    yield reg
    Registry.delete(name)
