"""Fixtures shared by the whole suite.

``lru_impl`` runs a test once against the compiled engine and once against the pure-Python
twin. The compiled one is imported directly: if it did not build, its tests fail (never skip).
"""
import importlib

import pytest

# Private PostgreSQL and Redis servers on 127.0.0.1, started on first use (tests/servers.py).
pytest_plugins = ("servers",)

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
